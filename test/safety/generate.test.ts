// Issue 11, generation: a tiny temperature behaves like greedy (1e-308 used to overflow the logits
// to Inf, the probabilities to NaN, and pick the least likely token); non-finite weights are
// refused when a model is loaded (generate printed garbage and eval {"loss": null}, both with exit
// 0); streaming is linear in the number of tokens (the whole output used to be decoded again for
// every token) and the command line warns when more tokens are asked for than the context holds.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { generate, generateIds, sampleNext, streamText, TextStreamer } from "../../src/generate/index.js";
import { saveBert } from "../../src/io/bert.js";
import { loadModel, saveModel } from "../../src/io/checkpoint.js";
import { checkFiniteWeights, countNonFinite } from "../../src/io/finite.js";
import { exportGGUF, loadGGUFModel } from "../../src/io/gguf-gpt2.js";
import { loadModelFrom, saveModelAs } from "../../src/io/model-files.js";
import { Bert, bertConfig } from "../../src/models/bert.js";
import { GPT } from "../../src/models/gpt.js";
import { ByteLevelBPE, CharTokenizer, type Tokenizer, WordPieceTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing, repo } from "../cli-run.js";
import { mx } from "../helpers.js";

const root = mkdtempSync(join(tmpdir(), "moxing-gen-"));
after(() => rmSync(root, { recursive: true, force: true }));

const text = "the cat sat on the mat. the dog sat on the log. ".repeat(4);
const chars = CharTokenizer.fromText(text);
const small = () => new GPT({ vocab_size: chars.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16 }, { seed: 7 });

/** Set the first `count` values of the named parameter to v (or v(i)). */
function poison(model: { namedParameters(): [string, mx.Tensor][] }, name: string, v: number | ((i: number) => number), count = 1): void {
  const p = model.namedParameters().find(([n]) => n === name)?.[1];
  assert.ok(p, name);
  const data = p.data as Float32Array;
  for (let i = 0; i < count; i++) data[p.offset + i] = typeof v === "number" ? v : v(i);
}

describe("a tiny temperature is greedy", () => {
  const logits = new Float32Array([1, 3, 2, -1, 2.9999]);
  for (const temperature of [1e-308, 5e-324, 1e-30]) {
    test(`temperature ${temperature} picks the most likely token, every time`, () => {
      for (let seed = 0; seed < 50; seed++) {
        assert.equal(sampleNext(logits, [], { temperature }, new mx.Generator(seed)), 1);
        assert.equal(sampleNext(logits, [], { temperature, topK: 3, topP: 0.9 }, new mx.Generator(seed)), 1);
      }
    });
  }

  test("generate with --temperature 1e-308 equals greedy decoding, for any seed", () => {
    const m = small();
    const greedy = generate(m, chars, "the ", { maxNewTokens: 24, temperature: 0 });
    for (const seed of [1, 2, 3]) assert.equal(generate(m, chars, "the ", { maxNewTokens: 24, temperature: 1e-308, seed }), greedy);
  });

  test("ties at a tiny temperature are shared among the best tokens only", () => {
    const tied = new Float32Array([5, 1, 5, 0]);
    const seen = new Set<number>();
    for (let seed = 0; seed < 100; seed++) seen.add(sampleNext(tied, [], { temperature: 1e-308 }, new mx.Generator(seed)));
    assert.deepEqual([...seen].sort(), [0, 2]);
  });

  test("non-finite logits are an error, not an arbitrary token", () => {
    const g = new mx.Generator(0);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const l = new Float32Array([1, bad, 2]);
      assert.throws(() => sampleNext(l, [], { temperature: 0.8 }, g), /generate: the model's logits are not finite \(.* for token 1\)/);
      assert.throws(() => sampleNext(l, [], { temperature: 0 }, g), /logits are not finite/);
    }
  });
});

describe("non-finite weights are refused when a model is loaded", () => {
  test("countNonFinite counts NaN and both infinities", () => {
    assert.equal(countNonFinite(new Float32Array([0, Number.NaN, 1, Number.POSITIVE_INFINITY, -3, Number.NEGATIVE_INFINITY])), 3);
    assert.equal(countNonFinite(new Float32Array([0, -0, 3.4e38, -3.4e38, 1e-45])), 0);
  });

  test("a model directory with NaN in one tensor: loadModel names the tensor and the count", () => {
    const m = small();
    poison(m, "transformer.h.0.attn.c_attn.weight", Number.NaN, 5);
    poison(m, "transformer.ln_f.bias", Number.POSITIVE_INFINITY);
    const dir = join(root, "nan");
    saveModel(dir, m, chars);
    assert.throws(
      () => loadModel(dir),
      /nan: 5 of the 768 values of 'transformer\.h\.0\.attn\.c_attn\.weight' are NaN or infinite \(and 1 other tensor\); the weights are damaged or training diverged/,
    );
  });

  test("the same from a bare .safetensors file and from GGUF (named as the file names it)", () => {
    const bpe = ByteLevelBPE.train(text, { vocabSize: 270 });
    const m = new GPT({ vocab_size: bpe.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16 }, { seed: 1 });
    poison(m, "transformer.wte.weight", Number.NEGATIVE_INFINITY);
    const dir = join(root, "inf-st");
    saveModel(dir, m, bpe);
    assert.throws(
      () => loadModelFrom(join(dir, "model.safetensors")),
      /model\.safetensors: 1 of the \d+ values of 'transformer\.wte\.weight'/,
    );
    const gguf = join(root, "inf.gguf");
    exportGGUF(gguf, m, bpe);
    assert.throws(() => loadGGUFModel(gguf), /inf\.gguf: 1 of the \d+ values of 'token_embd\.weight' are NaN or infinite/);
  });

  test("a BERT directory with NaN weights", () => {
    const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat"];
    const tok = WordPieceTokenizer.fromVocabTxt(vocab.join("\n"));
    const model = new Bert(bertConfig("tiny", { vocab_size: vocab.length, num_hidden_layers: 1, max_position_embeddings: 16 }), {
      seed: 1,
    });
    poison(model, "bert.encoder.layer.0.output.dense.weight", Number.NaN);
    const dir = join(root, "bert-nan");
    saveBert(dir, { model, tokenizer: tok });
    return import("../../src/io/bert.js").then(({ loadBert }) => {
      assert.throws(
        () => loadBert(dir),
        /model\.safetensors: 1 of the \d+ values of 'bert\.encoder\.layer\.0\.output\.dense\.weight' are NaN/,
      );
    });
  });

  test("checkFiniteWeights passes finite weights and uses the error class given", () => {
    class E extends Error {}
    assert.doesNotThrow(() => checkFiniteWeights(small().namedParameters(), "x"));
    assert.throws(
      () => checkFiniteWeights([["w", mx.tensor([1, Number.NaN])]], "src", E),
      (e: Error) => e instanceof E && /^src: 1 of the 2 values of 'w'/.test(e.message),
    );
  });

  test('moxing generate and eval exit 1 with one line instead of garbage or {"loss": null}', async () => {
    const m = small();
    poison(m, "transformer.wte.weight", Number.NaN, 3);
    const dir = join(root, "nan-cli");
    saveModel(dir, m, chars);
    const data = join(root, "data.txt");
    writeFileSync(data, text);
    const [g, e] = await Promise.all([
      moxing(["generate", "--model", dir, "--prompt", "the"]),
      moxing(["eval", "--model", dir, "--data", data]),
    ]);
    assertOneLineError(g, /nan-cli: 3 of the \d+ values of 'transformer\.wte\.weight' are NaN or infinite/, 1);
    assertOneLineError(e, /nan-cli: 3 of the \d+ values of 'transformer\.wte\.weight' are NaN or infinite/, 1);
    assert.equal(g.stdout, "");
    assert.equal(e.stdout, "");
  });

  test("finite weights that overflow: eval refuses a non-finite loss, generate non-finite logits", async () => {
    const m = small();
    // Finite, so loading accepts them; but each logit sums 16 products of about ±3e38.
    poison(m, "transformer.wte.weight", (i) => (i % 3 === 0 ? -3e38 : 3e38), 16 * chars.vocabSize);
    const dir = join(root, "overflow");
    saveModel(dir, m, chars);
    const data = join(root, "data2.txt");
    writeFileSync(data, text);
    const [g, e] = await Promise.all([
      moxing(["generate", "--model", dir, "--prompt", "the"]),
      moxing(["eval", "--model", dir, "--data", data]),
    ]);
    assertOneLineError(g, /generate: the model's logits are not finite/, 1);
    assertOneLineError(e, /eval: the loss on '.*data2\.txt' is (NaN|Infinity); the model's activations overflow/, 1);
  });
});

describe("streaming is incremental", () => {
  /** A tokenizer whose decode counts the ids it is given. */
  function counting(tok: Tokenizer): { tok: Pick<Tokenizer, "decode">; decoded: () => number } {
    let n = 0;
    return {
      tok: {
        decode: (ids: readonly number[]) => {
          n += ids.length;
          return tok.decode(ids as number[]);
        },
      },
      decoded: () => n,
    };
  }

  const multilingual = "naïve café — 日本語のテキスト, emoji 🙂🚀 and ascii. ".repeat(8);
  const bpe = ByteLevelBPE.train(multilingual, { vocabSize: 300 });

  test("the pieces add up to decoding everything, across multi-byte characters split between tokens", () => {
    const g = new mx.Generator(5);
    for (let trial = 0; trial < 20; trial++) {
      // Random byte-level tokens: many end inside a character, some never complete one.
      const ids = Array.from({ length: 200 }, () => g.randint(bpe.vocabSize));
      const s = new TextStreamer(bpe);
      let out = "";
      for (const id of ids) out += s.push(id);
      out += s.flush();
      assert.equal(out, bpe.decode(ids));
    }
    const ids = bpe.encode(multilingual);
    const s = new TextStreamer(bpe);
    const pieces = ids.map((id) => s.push(id));
    assert.equal(pieces.join("") + s.flush(), multilingual);
    assert.ok(!pieces.some((p) => p.includes("\uFFFD")), "no half characters are streamed");
  });

  test("decoding work is linear in the number of tokens (it was quadratic)", () => {
    const ids = bpe.encode(multilingual.repeat(4));
    const n = ids.length;
    const c = counting(bpe);
    const s = new TextStreamer(c.tok);
    for (const id of ids) s.push(id);
    s.flush();
    // Each push decodes a window of a few tokens twice; re-decoding the output each time would be n²/2.
    assert.ok(c.decoded() < 20 * n, `${c.decoded()} ids decoded for ${n} tokens`);
    assert.ok(n * n > 100 * c.decoded(), "the test distinguishes linear from quadratic");
  });

  test("generate over many block_size windows: linear decoding, output as long as asked", () => {
    const m = small();
    const c = counting(chars);
    const tok = Object.assign(Object.create(Object.getPrototypeOf(chars)), chars, { decode: c.tok.decode }) as Tokenizer;
    const n = 600; // 37 windows of block_size 16
    const out = generate(m, tok, "the ", { maxNewTokens: n, temperature: 0.8, seed: 3 });
    assert.equal([...out].length, n);
    assert.ok(c.decoded() < 20 * n, `${c.decoded()} ids decoded for ${n} tokens`);
    assert.equal(out, generate(m, chars, "the ", { maxNewTokens: n, temperature: 0.8, seed: 3 }));
  });

  test("streamText yields pieces that add up to generate(); a stop string never leaks", () => {
    const m = small();
    const full = generate(m, chars, "the ", { maxNewTokens: 60, seed: 4 });
    assert.equal([...streamText(m, chars, "the ", { maxNewTokens: 60, seed: 4 })].join(""), full);
    const stop = full.slice(30, 33);
    const pieces = [...streamText(m, chars, "the ", { maxNewTokens: 60, seed: 4, stop: [stop] })];
    assert.equal(pieces.join(""), full.slice(0, full.indexOf(stop)));
  });

  test("generateIds keeps the repetition penalty over every token seen, as before", () => {
    const m = small();
    const a = [...generateIds(m, [1, 2, 3], { maxNewTokens: 40, repetitionPenalty: 1.5, seed: 2 })];
    assert.equal(a.length, 40);
    assert.deepEqual(a, [...generateIds(m, [1, 2, 3], { maxNewTokens: 40, repetitionPenalty: 1.5, seed: 2 })]);
  });

  test("moxing generate --max-new-tokens 1e9 | head: stops when the reader goes away", { timeout: 120_000 }, async () => {
    const dir = join(root, "endless");
    saveModelAs(dir, "dir", small(), chars);
    const p = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "generate", "--model", dir, "--prompt", "the", "--max-new-tokens", "1e9"],
      {
        cwd: repo,
        env: { ...process.env, MOXING_QUIET: "1" },
      },
    );
    let got = "";
    p.stdout.on("data", (d) => {
      got += d;
      if (got.length > 200) p.stdout.destroy(); // what `head -c 200` does
    });
    const code = await new Promise<number | null>((resolve) => p.on("close", resolve));
    assert.equal(code, 0, "a closed pipe ends the run quietly (1e9 tokens would take days)");
    assert.ok(got.length > 200);
  });

  test("moxing generate: more tokens than the context works and says what the model sees", async () => {
    const m = small();
    const dir = join(root, "long");
    saveModelAs(dir, "dir", m, chars);
    const r = await moxing(["generate", "--model", dir, "--prompt", "the", "--max-new-tokens", "100", "--seed", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal([...r.stdout.replace(/\n$/, "")].length, 3 + 100);
    assert.match(
      r.stderr.trim(),
      /^moxing: note: --max-new-tokens 100 is more than the model's context of 16 tokens; past it each token is predicted from the last 8 to 16 tokens only$/,
    );
    const within = await moxing(["generate", "--model", dir, "--prompt", "the", "--max-new-tokens", "10"]);
    assert.equal(within.stderr, "");
  });
});
