// Byte-level BPE training and encoding, checked against deliberately naive reference implementations,
// plus round-trip property tests and the Hugging Face JSON layout.

import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { ByteLevelBPE, bytesToByteLevel, GPT2_SPLIT_PATTERN, loadTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, gpt2FilesDir, mulberry32, randomText } from "./corpus.js";

/**
 * The textbook trainer: recount every pair of every word before each merge. Same rules as the real one
 * (most frequent pair; ties to the smaller (left id, right id); stop below minFrequency).
 */
function naiveTrain(corpus: string, vocabSize: number, minFrequency = 2): string[] {
  const counts = new Map<string, number>();
  for (const [w] of corpus.matchAll(new RegExp(GPT2_SPLIT_PATTERN, "gu"))) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ syms: [...Buffer.from(w, "utf8")], f }));
  const tokens: string[] = Array.from({ length: 256 }, (_, b) => bytesToByteLevel([b]));
  const merges: string[] = [];
  while (tokens.length < vocabSize) {
    const pairs = new Map<number, number>();
    for (const { syms, f } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = (syms[i] as number) * 2 ** 21 + (syms[i + 1] as number);
        pairs.set(key, (pairs.get(key) ?? 0) + f);
      }
    }
    let best = -1;
    let bestCount = 0;
    for (const [key, c] of pairs) if (c > bestCount || (c === bestCount && key < best)) [best, bestCount] = [key, c];
    if (bestCount < minFrequency) break;
    const a = Math.floor(best / 2 ** 21);
    const b = best - a * 2 ** 21;
    const spelled = (tokens[a] as string) + (tokens[b] as string);
    let id = tokens.indexOf(spelled);
    if (id < 0) id = tokens.push(spelled) - 1;
    merges.push(`${tokens[a]} ${tokens[b]}`);
    for (const word of words) {
      const out: number[] = [];
      for (let i = 0; i < word.syms.length; i++) {
        if (word.syms[i] === a && word.syms[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(word.syms[i] as number);
      }
      word.syms = out;
    }
  }
  return merges;
}

/** GPT-2's original encoder.py bpe(): merge the lowest-ranked pair everywhere, repeat. */
function referenceEncode(tok: ByteLevelBPE, text: string): number[] {
  const json = tok.toJSON();
  const ranks = new Map(json.model.merges.map((m, i) => [m, i]));
  const ids: number[] = [];
  for (const [w] of text.matchAll(new RegExp(GPT2_SPLIT_PATTERN, "gu"))) {
    let word = [...bytesToByteLevel(Buffer.from(w, "utf8"))];
    for (;;) {
      let best: [string, string] | null = null;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [[word[i] as string, word[i + 1] as string], r];
      }
      if (best === null) break;
      const next: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (word[i] === best[0] && word[i + 1] === best[1]) {
          next.push(best[0] + best[1]);
          i++;
        } else next.push(word[i] as string);
      }
      word = next;
    }
    for (const t of word) ids.push(json.model.vocab[t] as number);
  }
  return ids;
}

const trainingText = buildLargeText(300_000);
const trained = ByteLevelBPE.train(trainingText, { vocabSize: 3000, specialTokens: ["<|endoftext|>", "<|pad|>"] });

describe("ByteLevelBPE.train", () => {
  it("learns the vocabulary size asked for, special tokens last", () => {
    assert.equal(trained.vocabSize, 3000);
    assert.deepEqual(
      [...trained.specialTokens],
      [
        ["<|endoftext|>", 2998],
        ["<|pad|>", 2999],
      ],
    );
    assert.equal(trained.mergeCount, 3000 - 256 - 2);
  });

  it("learns the same merges as a naive trainer that recounts everything", () => {
    const corpus = buildLargeText(20_000);
    const expected = naiveTrain(corpus, 256 + 300);
    const actual = ByteLevelBPE.train(corpus, { vocabSize: 256 + 300 }).toJSON().model.merges;
    assert.deepEqual(actual, expected);
  });

  it("breaks ties by the smaller pair of ids and is deterministic", () => {
    const tok = ByteLevelBPE.train("abcd\nabcd\nabcd", { vocabSize: 259 });
    assert.deepEqual(tok.toJSON().model.merges, ["a b", "c d", "ab cd"]);
    const again = ByteLevelBPE.train(trainingText, { vocabSize: 3000, specialTokens: ["<|endoftext|>", "<|pad|>"] });
    assert.deepEqual(again.toJSON(), trained.toJSON());
  });

  it("stops early when no pair reaches minFrequency", () => {
    const tok = ByteLevelBPE.train("abab", { vocabSize: 1000 });
    assert.deepEqual(tok.toJSON().model.merges, ["a b"]);
    assert.equal(tok.vocabSize, 257);
    assert.equal(ByteLevelBPE.train("abab", { vocabSize: 1000, minFrequency: 1 }).vocabSize, 258);
  });

  it("learns nothing from special-token text in the corpus", () => {
    const tok = ByteLevelBPE.train("hello world<|endoftext|>".repeat(50), { vocabSize: 400, specialTokens: ["<|endoftext|>"] });
    assert.equal(tok.encode("<|endoftext|>", { disallowedSpecial: [] }).length, "<|endoftext|>".length);
    assert.deepEqual(tok.encode("hello world<|endoftext|>", { allowedSpecial: "all" }).length, 3);
  });

  it("trains on a few megabytes (incremental pair counts; a full recount per merge would take minutes)", () => {
    const text = buildLargeText(2_000_000);
    const tok = ByteLevelBPE.train(text, { vocabSize: 8000 });
    assert.ok(tok.vocabSize > 1000);
    assert.equal(tok.decode(tok.encode(text)), text);
  });

  it("rejects impossible sizes with the allowed range", () => {
    assert.throws(() => ByteLevelBPE.train("abc", { vocabSize: 200 }), /vocabSize must be an integer from 256 .* got 200/);
    assert.throws(() => ByteLevelBPE.train("abc", { vocabSize: 256, specialTokens: ["<s>"] }), /from 257/);
  });
});

describe("ByteLevelBPE encode/decode", () => {
  it("encodes like GPT-2's original algorithm (short and very long words)", () => {
    const rng = mulberry32(3);
    const long = `${"ab".repeat(400)} ${"x".repeat(1000)} ${"the".repeat(300)} ${"中文".repeat(100)}`;
    const texts = [long, trainingText.slice(0, 30_000)];
    for (let i = 0; i < 200; i++) texts.push(randomText(rng, 40));
    for (const text of texts) assert.deepEqual(trained.encode(text), referenceEncode(trained, text));
  });

  it("round-trips thousands of random strings (ASCII, CJK, emoji, whitespace runs, newlines, marks)", () => {
    const dir = gpt2FilesDir();
    const gpt2 = ByteLevelBPE.fromGPT2Files(path.join(dir, "encoder.json"), path.join(dir, "vocab.bpe"));
    const rng = mulberry32(20240101);
    for (let i = 0; i < 3000; i++) {
      const text = randomText(rng, 1 + Math.floor(rng() * 80));
      for (const tok of [trained, gpt2]) {
        const ids = tok.encode(text, { disallowedSpecial: [] });
        assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
        const back = tok.decode(ids);
        if (back !== text) assert.fail(`round trip failed (case ${i}): ${JSON.stringify(text)} -> ${JSON.stringify(back)}`);
      }
    }
  });

  it("round-trips special tokens and text around them", () => {
    const text = "<|pad|>start 文本 😀<|endoftext|><|endoftext|>end<|pad|>";
    const ids = trained.encode(text, { allowedSpecial: "all" });
    assert.equal(ids.filter((id) => id >= 2998).length, 4);
    assert.equal(trained.decode(ids), text);
    assert.equal(trained.decode(Int32Array.from(ids)), text);
  });

  it("decodes the empty list and encodes the empty string", () => {
    assert.deepEqual(trained.encode(""), []);
    assert.equal(trained.decode([]), "");
  });

  it("names a bad id and the vocabulary size in decode", () => {
    assert.throws(() => trained.decode([1, 3000]), /id 3000 is not valid.*\[0, 2999\].*3000 ids/);
  });

  it("adds special tokens after the vocabulary", () => {
    const tok = ByteLevelBPE.train("some text here, some text there", { vocabSize: 270 });
    const size = tok.vocabSize;
    assert.deepEqual(tok.addSpecialTokens(["<|im_start|>", "<|im_end|>", "<|im_start|>"]), [size, size + 1, size]);
    assert.equal(tok.vocabSize, size + 2);
    const text = "<|im_start|>some text<|im_end|>";
    assert.equal(tok.decode(tok.encode(text, { allowedSpecial: "all" })), text);
    const loaded = loadTokenizer(JSON.stringify(tok));
    assert.deepEqual(loaded.encode(text, { allowedSpecial: "all" }), tok.encode(text, { allowedSpecial: "all" }));
  });
});

describe("ByteLevelBPE JSON (Hugging Face tokenizer.json layout)", () => {
  const json = trained.toJSON();

  it("has the layout Hugging Face tokenizers reads", () => {
    assert.equal(json.version, "1.0");
    assert.equal(json.model.type, "BPE");
    assert.equal(json.pre_tokenizer.type, "ByteLevel");
    assert.equal(json.pre_tokenizer.add_prefix_space, false);
    assert.equal(json.decoder.type, "ByteLevel");
    assert.equal(Object.keys(json.model.vocab).length, 3000);
    assert.equal(json.model.merges.length, trained.mergeCount);
    assert.ok(json.model.merges.every((m) => m.split(" ").length === 2));
    assert.deepEqual(
      json.added_tokens.map((t) => [t.content, t.id, t.special]),
      [
        ["<|endoftext|>", 2998, true],
        ["<|pad|>", 2999, true],
      ],
    );
    assert.equal(json.model.vocab.Ġ, 32);
  });

  it("loads back to the same tokenizer", () => {
    const loaded = loadTokenizer(JSON.stringify(json));
    assert.ok(loaded instanceof ByteLevelBPE);
    assert.deepEqual(loaded.toJSON(), json);
    assert.deepEqual(loaded.encode(trainingText), trained.encode(trainingText));
  });

  it("explains what it cannot read", () => {
    const withPrefix = { ...json, pre_tokenizer: { ...json.pre_tokenizer, add_prefix_space: true } };
    assert.throws(() => ByteLevelBPE.fromJSON(withPrefix), /pre_tokenizer is .*add_prefix_space":true.*only GPT-2-style byte-level BPE/);
    const metaspace = { ...json, pre_tokenizer: { type: "Metaspace" } };
    assert.throws(() => ByteLevelBPE.fromJSON(metaspace), /pre_tokenizer is \{"type":"Metaspace"\}/);
    // loadTokenizer reads those other pipelines with HFTokenizer (hf-tokenizer.ts).
    assert.equal(loadTokenizer(withPrefix).constructor.name, "HFTokenizer");
    const missingMerge = { ...json, model: { ...json.model, merges: [...json.model.merges, "Ġ zzzz"] } };
    assert.throws(() => loadTokenizer(missingMerge), /uses "zzzz", which is not in the vocabulary/);
    const { Ġ: _dropped, ...vocabWithoutSpace } = json.model.vocab;
    assert.throws(
      () => loadTokenizer({ ...json, model: { ...json.model, vocab: vocabWithoutSpace } }),
      /no token has id 32|lacks the single-byte token "Ġ"/,
    );
  });
});
