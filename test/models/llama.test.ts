// The Llama model file and its layers: finite-difference gradients through a decoder layer (RMSNorm,
// GQA with RoPE and q/k norms, SwiGLU), the KV cache against full forwards, training steps, quantised
// layers against their dequantised float32 selves, and Hugging Face directories written and read
// back, with one-line errors for configs and weights that do not fit.

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { llamaConfigFromJSON, loadLlamaDir, saveLlamaDir } from "../../src/io/llama.js";
import { Llama, LlamaDecoderLayer } from "../../src/models/llama.js";
import { QEmbedding, QLinear, randomParams } from "../../src/nn/quantized.js";
import { RotaryEmbedding, ropeInvFreq } from "../../src/nn/rotary.js";
import { AdamW } from "../../src/optim/adamw.js";
import { QuantizedTensor, roundActivations } from "../../src/quant/ggml.js";
import { Generator, linear, noGrad, tensor } from "../../src/tensor/index.js";
import { assertClose, gradcheck, rnd } from "../helpers.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "hf-llama");
const tmp = mkdtempSync(join(tmpdir(), "moxing-llama-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = {
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-5,
  initializer_range: 0.3,
};
const ids = (rows: number[][]) => tensor(rows, { dtype: "int32" });

describe("gradients", () => {
  for (const model_type of ["llama", "qwen2", "qwen3"] as const) {
    test(`a ${model_type} decoder layer, by finite differences`, () => {
      const c = { ...tiny, model_type, head_dim: 4, rope_theta: 10000, rope_scaling: null, attention_bias: false } as const;
      const layer = new LlamaDecoderLayer({ ...new Llama({ ...tiny, model_type }).config, ...c }, randomParams(new Generator(3)));
      const rope = new RotaryEmbedding(4, 10000);
      gradcheck(`${model_type} layer`, (x) => layer.forward(x, rope, null), [rnd([2, 3, 16], 7)], { eps: 1e-2, atol: 3e-3, rtol: 3e-2 });
    });
  }

  test("a few AdamW steps lower the loss of a tiny Llama", () => {
    const model = new Llama({ ...tiny, initializer_range: 0.02 }, { seed: 1 });
    const opt = new AdamW(model.optimGroups(0.1), { lr: 1e-2 });
    const x = ids([[1, 2, 3, 4, 5, 6, 7, 8]]);
    const y = ids([[2, 3, 4, 5, 6, 7, 8, 9]]);
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      const { loss } = model.forward(x, { targets: y });
      losses.push((loss as { item(): number }).item());
      opt.zeroGrad();
      loss?.backward();
      opt.step();
    }
    assert.ok((losses.at(-1) as number) < (losses[0] as number) / 4, `loss ${losses[0]} -> ${losses.at(-1)}`);
  });
});

describe("generation", () => {
  test("the KV cache (prompt chunks, then one token at a time) gives the full forward's logits", () => {
    for (const model_type of ["llama", "qwen2", "qwen3"] as const) {
      const model = new Llama({ ...tiny, model_type, tie_word_embeddings: model_type !== "llama" }, { seed: 5 }).eval();
      const seq = [3, 14, 15, 9, 2, 6, 5, 35, 8, 9];
      const full = noGrad(() => model.forward(ids([seq])).logits).toArray();
      const caches = model.newCaches(1, 16);
      const V = tiny.vocab_size;
      const chunks = [
        [0, 4],
        [4, 7],
        [7, 8],
        [8, 9],
        [9, 10],
      ] as const;
      for (const [a, b] of chunks) {
        const l = noGrad(() => model.forward(ids([seq.slice(a, b)]), { caches }).logits).toArray();
        assertClose(`${model_type} positions ${a}..${b - 1}`, l, full.slice(a * V, b * V), 1e-5, 1e-5);
      }
    }
  });

  test("positions beyond the context are refused", () => {
    const model = new Llama({ ...tiny, max_position_embeddings: 4 }, { seed: 1 });
    assert.throws(() => model.forward(ids([[1, 2, 3, 4, 5]])), /sequence of length 5; the model attends over at most 4/);
  });

  test("Llama 3 rope scaling leaves high frequencies, divides low ones by the factor, and blends between", () => {
    const scaling = {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    } as const;
    const plain = ropeInvFreq(64, 500000);
    const scaled = ropeInvFreq(64, 500000, scaling);
    assert.equal(scaled[0], plain[0]);
    assert.equal(scaled[31], Math.fround((plain[31] as number) / 8));
    const mid = [...plain.keys()].filter(
      (i) => (scaled[i] as number) !== plain[i] && (scaled[i] as number) !== Math.fround((plain[i] as number) / 8),
    );
    assert.ok(mid.length > 0, "some frequencies are blended");
  });
});

describe("quantised layers", () => {
  const b = rnd([48], 12);
  for (const [type, K] of [
    ["Q8_0", 64],
    ["Q4_K", 256],
    ["F16", 64],
  ] as const) {
    test(`QLinear with ${type} weights equals linear() of the rounded activations and the dequantised weights`, () => {
      const q = QuantizedTensor.quantize(type, [48, K], rnd([48, K], 13).contiguousData() as Float32Array);
      const lin = new QLinear(q, b);
      const deq = tensor(q.toFloat32(), { shape: [...q.shape] });
      for (const shape of [
        [1, 1, q.cols],
        [2, 5, q.cols],
      ]) {
        const x = rnd(shape, 14);
        const got = noGrad(() => lin.forward(x));
        const xr = Float32Array.from(x.contiguousData() as Float32Array);
        for (let r = 0; r < xr.length; r += K) roundActivations(type, xr, r, K);
        const want = noGrad(() => linear(tensor(xr, { shape }), deq, b));
        assertClose(`${type} ${JSON.stringify(shape)}`, got.toArray(), want.toArray(), 1e-5, 1e-5);
      }
      // A gradient to the input (an adapter on a quantised model) goes through the dequantised weights.
      const x = rnd([1, 2, q.cols], 15).requiresGrad_();
      lin.forward(x).sum().backward();
      assert.ok(x.grad);
    });
  }
  test("QEmbedding decodes only the rows looked up, as the float table would give them", () => {
    const table = rnd([10, 32], 16);
    const q = QuantizedTensor.quantize("Q8_0", [10, 32], table.contiguousData() as Float32Array);
    const emb = new QEmbedding(q);
    const got = emb.forward(ids([[3, 0, 9]])).toArray();
    const all = q.toFloat32();
    assertClose("rows", got, [...all.slice(96, 128), ...all.slice(0, 32), ...all.slice(288, 320)]);
    assert.throws(() => emb.forward(ids([[10]])), /index 10 is out of range for a table of 10 rows/);
  });
});

describe("Hugging Face directories", () => {
  test("save and load back: the same logits, the tokenizer kept", () => {
    const { model, tokenizer } = loadLlamaDir(join(fixtures, "qwen3"));
    const dir = join(tmp, "saved");
    saveLlamaDir(dir, model, tokenizer);
    const back = loadLlamaDir(dir);
    const x = ids([[5, 6, 7, 8]]);
    assert.deepEqual(noGrad(() => back.model.forward(x).logits).toArray(), noGrad(() => model.forward(x).logits).toArray());
    assert.deepEqual(back.tokenizer.encode("Hello world"), tokenizer.encode("Hello world"));
    assert.equal(back.config.model_type, "qwen3");
  });

  test("configs it cannot run are refused by name", () => {
    const base = JSON.parse(readFileSync(join(fixtures, "llama3", "config.json"), "utf8"));
    assert.throws(
      () => llamaConfigFromJSON({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } }),
      /rope_scaling type "yarn" is not supported/,
    );
    assert.throws(() => llamaConfigFromJSON({ ...base, hidden_act: "gelu" }), /hidden_act is "gelu"/);
    assert.throws(() => llamaConfigFromJSON({ ...base, quantization_config: { quant_method: "gptq" } }), /quantised with "gptq".*GGUF/);
    assert.throws(() => llamaConfigFromJSON({ ...base, num_key_value_heads: 3 }), /multiple of num_key_value_heads/);
    assert.throws(() => llamaConfigFromJSON({ ...base, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }), /model_type is "gpt2"/);
    const mistral = llamaConfigFromJSON({ ...base, model_type: "mistral", sliding_window: 64 });
    assert.equal(
      new Llama({
        ...mistral,
        vocab_size: 8,
        hidden_size: 8,
        num_attention_heads: 2,
        num_key_value_heads: 2,
        head_dim: 4,
        num_hidden_layers: 1,
      }).blockSize,
      64,
    );
  });

  test("weights that do not fit the config are refused, naming the tensor", () => {
    const dir = join(tmp, "bad");
    cpSync(join(fixtures, "qwen3"), dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    assert.throws(
      () => loadLlamaDir(dir),
      /tensor 'model\.layers\.1\.[a-z_.]+' is not a weight of a qwen3 model with this config \(num_hidden_layers 1/,
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    assert.throws(() => loadLlamaDir(dir), /the weights lack 'model\.layers\.2\./);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, intermediate_size: 100 }));
    assert.throws(() => loadLlamaDir(dir), /has shape \[(96, 48|48, 96)\] but this model needs \[(100, 48|48, 100)\]/);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
    assert.throws(() => loadLlamaDir(dir), /lack 'lm_head\.weight'.*not tied/);
  });

  test("a shard index naming a file outside the directory is refused", () => {
    const dir = join(tmp, "escape");
    cpSync(join(fixtures, "llama3"), dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    const name = Object.keys(index.weight_map)[0] as string;
    index.weight_map[name] = "../../etc/passwd.safetensors";
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    assert.throws(
      () => loadLlamaDir(dir),
      /weight_map names "..\/..\/etc\/passwd.safetensors"; expected a .safetensors file in the same directory/,
    );
  });
});
