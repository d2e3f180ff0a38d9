// `moxing train --arch llama`: a small Llama (grouped-query attention, SwiGLU, rotary positions) on the
// one training loop. Its loss falls, its directory is Hugging Face's LlamaForCausalLM layout, an
// interrupted run resumes to exactly the losses and weights of an uninterrupted one, `moxing generate`
// reads it (char and byte-level BPE tokenizers), and flags that do not fit a Llama are one-line errors.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { loadCausalLM } from "../../src/io/causal-lm.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { estimateLlamaMemory, LLAMA_DEFAULTS, Llama, llamaParameterCount } from "../../src/models/llama.js";
import { type TrainOptions, train } from "../../src/train/trainer.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-llama-train-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const words = ["the", "union", "is", "strong", "and", "we", "will", "build", "a", "nation", "of", "hope", "people", "work"];
let text = "";
for (let i = 0; text.length < 6000; i++) text += `${words[(i * 7 + (i >> 2)) % words.length]}${i % 11 === 10 ? ".\n" : " "}`;
const data = join(tmp, "data.txt");
writeFileSync(data, text);

const quiet = { onLog: () => {} };
const options = (out: string): TrainOptions => ({
  out,
  data,
  arch: "llama",
  nLayer: 2,
  nHead: 4,
  nEmbd: 32,
  blockSize: 32,
  batchSize: 4,
  gradAccum: 2,
  maxSteps: 30,
  learningRate: 3e-3,
  warmupSteps: 3,
  evalInterval: 10,
  evalIters: 2,
  checkpointInterval: 10,
  seed: 7,
});
const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);

describe("moxing train --arch llama", () => {
  const straight = join(tmp, "straight");

  test("trains a GQA Llama whose loss falls; the directory is LlamaForCausalLM's", async () => {
    const r = await train(options(straight), quiet);
    assert.ok(r.model instanceof Llama);
    const m = metrics(straight);
    const evals = m.filter((x) => "val_loss" in x).map((x) => x.val_loss as number);
    assert.ok((evals[evals.length - 1] as number) < (evals[0] as number), `val loss ${evals.join(" -> ")}`);
    assert.ok(
      (m[m.length - 1]?.train_loss as number) < 0.8 * (m[0]?.train_loss as number),
      `${m[0]?.train_loss} -> ${m[m.length - 1]?.train_loss}`,
    );
    const config = JSON.parse(readFileSync(join(straight, "config.json"), "utf8"));
    assert.deepEqual(
      [config.architectures, config.num_attention_heads, config.num_key_value_heads, config.intermediate_size, config.hidden_act],
      [["LlamaForCausalLM"], 4, 2, 96, "silu"],
      "half as many key/value heads; SwiGLU 8/3 n_embd rounded up to 32",
    );
    const names = [...readSafetensors(join(straight, "model.safetensors")).tensors.keys()];
    assert.ok(names.includes("model.layers.1.self_attn.k_proj.weight") && names.includes("model.layers.0.mlp.gate_proj.weight"));
    assert.ok(!names.includes("lm_head.weight"), "tied head by default");
  });

  test("interrupted and resumed, it logs the losses and ends with the weights of an uninterrupted run", async () => {
    const split = join(tmp, "split");
    const abort = new AbortController();
    const first = await train(options(split), { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 13 && abort.abort() });
    assert.equal(first.status, "interrupted");
    await train({ out: split, resume: true }, quiet);
    const strip = (x: Record<string, number>) => [x.step, x.train_loss, x.val_loss, x.grad_norm, x.lr];
    assert.deepEqual(metrics(split).map(strip), metrics(straight).map(strip));
    assert.deepEqual(readFileSync(join(split, "model.safetensors")), readFileSync(join(straight, "model.safetensors")));
  });

  test("moxing generate and loadCausalLM read it, with a char or a byte-level BPE tokenizer", async () => {
    const bpe = join(tmp, "bpe");
    // biome-ignore format: flags read best in pairs
    const r = await moxing([
      "train", "--arch", "llama", "--data", data, "--out", bpe, "--tokenizer", "bpe", "--vocab-size", "300",
      "--n-layer", "1", "--n-head", "4", "--n-kv-head", "1", "--n-embd", "32", "--block-size", "16",
      "--max-steps", "4", "--eval-interval", "4", "--eval-iters", "1", "--batch-size", "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /moxing eval --model .* --data /);
    assert.match(r.stdout, /moxing generate --model/);
    for (const dir of [straight, bpe]) {
      const g = await moxing(["generate", "--model", dir, "--prompt", "the union", "--max-new-tokens", "8", "--temperature", "0"]);
      assert.equal(g.code, 0, g.stderr);
      assert.ok(g.stdout.startsWith("the union") && g.stdout.trim().length > "the union".length, g.stdout);
      assert.equal(loadCausalLM(dir).family, "llama");
    }
    assert.equal(JSON.parse(readFileSync(join(bpe, "config.json"), "utf8")).num_key_value_heads, 1, "multi-query attention");
  });

  test("moxing eval reads it: every character but the first predicted, below chance after training", async () => {
    const r = await moxing(["eval", "--model", straight, "--data", data, "--batch-size", "8"]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { loss: number; perplexity: number; tokens: number };
    assert.equal(result.tokens, text.length - 1, "a char tokenizer: one token per character");
    const vocab = new Set(text).size;
    assert.ok(result.loss > 0 && result.loss < 0.8 * Math.log(vocab), `loss ${result.loss} vs chance ${Math.log(vocab)}`);
    assert.ok(Math.abs(result.perplexity - Math.exp(result.loss)) < 1e-9 * result.perplexity);
    // Shorter windows predict the same tokens, each from less context.
    const short = JSON.parse((await moxing(["eval", "--model", straight, "--data", data, "--block-size", "8"])).stdout);
    assert.equal(short.tokens, text.length - 1);
    assert.ok(short.loss > result.loss, `block 8: ${short.loss}, block 32: ${result.loss}`);
    assertOneLineError(
      await moxing(["eval", "--model", straight, "--data", data, "--block-size", "33"]),
      /--block-size 33 is longer than the model's context of 32 tokens/,
      2,
    );
  });

  test("sizes that cannot fit are refused before the model is built, naming the flag and the estimate", async () => {
    const base = ["train", "--arch", "llama", "--data", data, "--out", join(tmp, "huge"), "--max-steps", "1"];
    const need =
      /the model would need about [\d.]+ [KMGTP]i?B to train \([\d.e+]+ parameters; weights [\d.]+ [KMGTP]i?B, .*\), more than the 8\.0 GiB of MOXING_MAX_MEMORY; lower /;
    const old = process.env.MOXING_MAX_MEMORY;
    process.env.MOXING_MAX_MEMORY = "8G"; // moxing() passes this process's environment on
    try {
      const cases: [string[], RegExp][] = [
        [["--n-layer", "100000"], /Llama training: --n-layer 100000: .*; lower --n-layer$/],
        [["--n-embd", "1000000", "--n-head", "4"], /Llama training: --n-embd 1000000: .*; lower --n-embd$/],
        [["--batch-size", "100000000"], /Llama training: --batch-size 100000000: .*; lower --batch-size$/],
      ];
      for (const [flags, pattern] of cases) {
        const r = await moxing([...base, ...flags]);
        assertOneLineError(r, pattern, 1);
        assert.match(r.stderr, need);
      }
    } finally {
      if (old === undefined) delete process.env.MOXING_MAX_MEMORY;
      else process.env.MOXING_MAX_MEMORY = old;
    }
  });

  test("the estimate counts the parameters exactly", () => {
    for (const c of [
      {
        ...LLAMA_DEFAULTS,
        vocab_size: 50,
        hidden_size: 32,
        intermediate_size: 96,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
      },
      {
        ...LLAMA_DEFAULTS,
        model_type: "qwen2" as const,
        vocab_size: 40,
        hidden_size: 16,
        intermediate_size: 40,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 8,
        tie_word_embeddings: true,
      },
      {
        ...LLAMA_DEFAULTS,
        model_type: "qwen3" as const,
        vocab_size: 40,
        hidden_size: 16,
        intermediate_size: 40,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 6,
        attention_bias: true,
      },
    ]) {
      assert.equal(llamaParameterCount(c), new Llama(c, { seed: 1 }).numParameters(), c.model_type);
      assert.equal(estimateLlamaMemory(c).parameters, llamaParameterCount(c));
    }
  });

  test("flags that do not fit a Llama are one-line errors", async () => {
    const out = join(tmp, "bad");
    const base = ["train", "--data", data, "--out", out, "--max-steps", "1"];
    assertOneLineError(
      await moxing([...base, "--arch", "llama", "--n-head", "4", "--n-kv-head", "3"]),
      /--n-head \(4\) must be a multiple of --n-kv-head \(3\)/,
    );
    assertOneLineError(await moxing([...base, "--arch", "llama", "--dropout", "0.1"]), /--dropout applies to --arch gpt/, 2);
    assertOneLineError(await moxing([...base, "--n-kv-head", "2"]), /--n-kv-head applies to --arch llama/, 2);
    assertOneLineError(await moxing([...base, "--arch", "mamba"]), /--arch must be gpt or llama/, 2);
  });
});
