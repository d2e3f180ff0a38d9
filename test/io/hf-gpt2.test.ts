// Hugging Face's GPT-2 layout: a checkpoint directory written by PyTorch (tools/torch_hf_gpt2.py,
// committed in tools/fixtures/hf-gpt2/) loads unchanged, gives PyTorch's logits to 1e-4 and its
// greedy continuation exactly; the variants other writers produce load too; what moxing saves has
// the names, shapes and orientation Hugging Face expects; and wrong files are one-line errors that
// name the tensor.

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import "../../src/index.js";
import { generateIds } from "../../src/generate/index.js";
import { configFromJSON, loadModel, saveModel } from "../../src/io/gpt.js";
import { CheckpointError } from "../../src/io/model-dir.js";
import { readSafetensors, readSafetensorsHeader, type SafeTensor, writeSafetensors } from "../../src/io/safetensors.js";
import { GPT } from "../../src/models/gpt.js";
import { transpose2d } from "../../src/nn/state-dict.js";
import { tensor } from "../../src/tensor/index.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";

const fixture = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "hf-gpt2");
const expected = JSON.parse(readFileSync(join(fixture, "expected.json"), "utf8")) as {
  prompt: string;
  ids: number[];
  logits: { shape: [number, number]; data: number[] };
  greedy: number[];
};
const root = mkdtempSync(join(tmpdir(), "moxing-hf-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);

function copyFixture(): string {
  const d = fresh();
  cpSync(fixture, d, { recursive: true });
  unlinkSync(join(d, "expected.json"));
  return d;
}

function logitsOf(model: GPT, ids: number[]): Float32Array {
  return model.forward(tensor([ids], { dtype: "int32" })).logits.contiguousData() as Float32Array;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function oneLine(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof CheckpointError, `CheckpointError expected, got ${e}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    return true;
  });
}

/** Rewrite a directory's model.safetensors through `edit` (tensors by name; metadata). */
function editWeights(dir: string, edit: (t: Map<string, SafeTensor>, meta: Record<string, string>) => void): void {
  const p = join(dir, "model.safetensors");
  const { tensors, metadata } = readSafetensors(p);
  edit(tensors, metadata);
  writeSafetensors(p, tensors, metadata);
}

describe("a Hugging Face GPT-2 checkpoint written by PyTorch", () => {
  const { model, tokenizer, config } = loadModel(fixture);

  test("loads unchanged: HF config.json, tokenizer.json, Conv1D weights without lm_head", () => {
    assert.deepEqual(config, {
      n_layer: 2,
      n_head: 4,
      n_embd: 32,
      block_size: 64,
      vocab_size: 300,
      dropout: 0.1,
      bias: true,
      tie_weights: true,
      pos_encoding: "learned",
    });
    assert.ok(tokenizer instanceof ByteLevelBPE);
    assert.equal(tokenizer.vocabSize, 300);
    assert.deepEqual(tokenizer.encode(expected.prompt), expected.ids);
  });

  test("matches PyTorch's logits to 1e-4", () => {
    const got = logitsOf(model, expected.ids);
    const diff = maxDiff(got, expected.logits.data);
    assert.ok(diff < 1e-4, `max |moxing - torch| = ${diff}`);
  });

  test("continues the prompt greedily exactly as PyTorch does, with and without the KV cache", () => {
    const opts = { temperature: 0, maxNewTokens: expected.greedy.length };
    assert.deepEqual([...generateIds(model, expected.ids, opts)], expected.greedy);
    assert.deepEqual([...generateIds(model, expected.ids, { ...opts, useCache: false })], expected.greedy);
  });

  test("saving it gives back Hugging Face's names, shapes, orientation and config keys", () => {
    const out = fresh();
    saveModel(out, model, tokenizer);
    const ours = readSafetensors(join(out, "model.safetensors"));
    const theirs = readSafetensors(join(fixture, "model.safetensors"));
    assert.equal(ours.metadata.format, "pt");
    assert.deepEqual([...ours.tensors.keys()].sort(), [...theirs.tensors.keys()].sort());
    assert.ok(!ours.tensors.has("lm_head.weight"), "a tied head is not saved");
    for (const [name, t] of theirs.tensors) {
      assert.deepEqual(ours.tensors.get(name)?.shape, t.shape, name);
      assert.deepEqual(ours.tensors.get(name)?.data, t.data, name);
    }
    assert.deepEqual(ours.tensors.get("transformer.h.0.attn.c_attn.weight")?.shape, [32, 96]);
    assert.deepEqual(ours.tensors.get("transformer.h.1.mlp.c_proj.weight")?.shape, [128, 32]);
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    for (const k of [
      "n_layer",
      "n_head",
      "n_embd",
      "n_positions",
      "vocab_size",
      "model_type",
      "layer_norm_epsilon",
      "activation_function",
    ]) {
      assert.equal(cfg[k], JSON.parse(readFileSync(join(fixture, "config.json"), "utf8"))[k], k);
    }
    assert.deepEqual(cfg.architectures, ["GPT2LMHeadModel"]);
    assert.equal(cfg.n_inner, null);
    assert.equal(cfg.eos_token_id, 299);
    assert.deepEqual(
      JSON.parse(readFileSync(join(out, "tokenizer.json"), "utf8")),
      JSON.parse(readFileSync(join(fixture, "tokenizer.json"), "utf8")),
    );
  });
});

describe("variants other writers produce load to the same model", () => {
  const reference = logitsOf(loadModel(fixture).model, expected.ids);
  const same = (dir: string, tol = 0) => {
    const diff = maxDiff(logitsOf(loadModel(dir).model, expected.ids), reference);
    assert.ok(diff <= tol, `max diff ${diff}`);
  };

  test("names without 'transformer.', old attn.bias / attn.masked_bias buffers, a redundant tied lm_head", () => {
    const d = copyFixture();
    editWeights(d, (t) => {
      for (const [name, v] of [...t]) {
        t.delete(name);
        t.set(name.replace(/^transformer\./, ""), v);
      }
      for (const i of [0, 1]) {
        t.set(`h.${i}.attn.bias`, { dtype: "F32", shape: [1, 1, 64, 64], data: new Float32Array(64 * 64).fill(1) });
        t.set(`h.${i}.attn.masked_bias`, { dtype: "F32", shape: [], data: new Float32Array([-1e4]) });
      }
      t.set("lm_head.weight", t.get("wte.weight") as SafeTensor);
    });
    same(d);
  });

  test("GPT-2's vocab.json + merges.txt instead of tokenizer.json", () => {
    const d = copyFixture();
    const json = JSON.parse(readFileSync(join(d, "tokenizer.json"), "utf8"));
    unlinkSync(join(d, "tokenizer.json"));
    writeFileSync(join(d, "vocab.json"), JSON.stringify(json.model.vocab));
    writeFileSync(join(d, "merges.txt"), `#version: 0.2\n${json.model.merges.join("\n")}\n`);
    const { tokenizer } = loadModel(d);
    assert.deepEqual(tokenizer.encode(expected.prompt), expected.ids);
    assert.deepEqual([...tokenizer.specialTokens], [["<|endoftext|>", 299]]);
  });

  test("F16 and BF16 weights are widened to F32", () => {
    for (const dtype of ["F16", "BF16"]) {
      const d = copyFixture();
      // Hand-encode the halves: moxing reads these dtypes but writes F32 only.
      const p = join(d, "model.safetensors");
      const { tensors } = readSafetensors(p);
      const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
      const chunks: Uint8Array[] = [];
      let off = 0;
      for (const [name, t] of tensors) {
        const halves = new Uint16Array(t.data.length);
        const f = new Float32Array(1);
        const u = new Uint32Array(f.buffer);
        t.data.forEach((x, i) => {
          f[0] = x;
          halves[i] = dtype === "BF16" ? (u[0] as number) >>> 16 : toHalf(x);
        });
        header[name] = { dtype, shape: t.shape, data_offsets: [off, off + halves.byteLength] };
        chunks.push(new Uint8Array(halves.buffer));
        off += halves.byteLength;
      }
      const h = new TextEncoder().encode(JSON.stringify(header));
      const buf = new Uint8Array(8 + h.length + off);
      new DataView(buf.buffer).setBigUint64(0, BigInt(h.length), true);
      buf.set(h, 8);
      let at = 8 + h.length;
      for (const c of chunks) {
        buf.set(c, at);
        at += c.length;
      }
      writeFileSync(p, buf);
      same(d, 0.5); // the logits move by the rounding of the weights, not by a wrong layout
    }
  });

  test("weights sharded over several files (model.safetensors.index.json)", () => {
    const d = copyFixture();
    const { tensors, metadata } = readSafetensors(join(d, "model.safetensors"));
    unlinkSync(join(d, "model.safetensors"));
    const names = [...tensors.keys()].sort();
    const weightMap: Record<string, string> = {};
    const shards = [names.slice(0, 10), names.slice(10)];
    shards.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(d, file), new Map(part.map((k) => [k, tensors.get(k) as SafeTensor])), metadata);
      for (const k of part) weightMap[k] = file;
    });
    writeFileSync(join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    same(d);
  });

  test("a directory written by moxing 0.1 (Linear (out, in) projections, format 'moxing') still loads", () => {
    const d = copyFixture();
    editWeights(d, (t, meta) => {
      meta.format = "moxing";
      for (const [name, v] of t) {
        if (/\.(c_attn|c_proj|c_fc)\.weight$/.test(name)) {
          const [rows, cols] = v.shape as [number, number];
          t.set(name, { dtype: "F32", shape: [cols, rows], data: transpose2d(v.data as Float32Array, rows, cols) });
        }
      }
    });
    const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    writeFileSync(
      join(d, "config.json"),
      JSON.stringify({ model_type: "gpt2", ...pick(cfg, ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size"]) }),
    );
    same(d);
  });

  test("an untied head (lm_head.weight, Linear orientation) round-trips", () => {
    const { tokenizer } = loadModel(fixture);
    const model = new GPT({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 8, vocab_size: 300, tie_weights: false }, { seed: 3 });
    const d = fresh();
    saveModel(d, model, tokenizer);
    const h = readSafetensorsHeader(join(d, "model.safetensors"));
    assert.deepEqual(h.tensors.get("lm_head.weight")?.shape, [300, 8]);
    assert.deepEqual(h.tensors.get("transformer.h.0.mlp.c_fc.weight")?.shape, [8, 32]);
    const ids = [1, 2, 3];
    model.eval();
    assert.deepEqual(logitsOf(loadModel(d).model, ids), logitsOf(model, ids));
  });
});

describe("wrong files are one-line errors naming the tensor or key", () => {
  test("a weight in the wrong orientation", () => {
    const d = copyFixture();
    editWeights(d, (t) => {
      const w = t.get("transformer.h.1.mlp.c_fc.weight") as SafeTensor;
      t.set("transformer.h.1.mlp.c_fc.weight", { ...w, shape: [128, 32], data: transpose2d(w.data as Float32Array, 32, 128) });
    });
    oneLine(
      () => loadModel(d),
      /model\.safetensors: tensor 'transformer\.h\.1\.mlp\.c_fc\.weight' has shape \[128, 32\] but this model needs \[32, 128\] \(Hugging Face's Conv1D layout: \(in_features, out_features\)\)/,
    );
  });

  test("missing, unexpected and duplicated tensors", () => {
    const a = copyFixture();
    editWeights(a, (t) => t.delete("transformer.h.0.ln_2.bias"));
    oneLine(() => loadModel(a), /model\.safetensors: missing tensor 'transformer\.h\.0\.ln_2\.bias'/);
    const b = copyFixture();
    editWeights(b, (t) => t.set("transformer.h.2.ln_1.weight", { dtype: "F32", shape: [32], data: new Float32Array(32) }));
    oneLine(
      () => loadModel(b),
      /unexpected tensor 'transformer\.h\.2\.ln_1\.weight': not a weight of a GPT-2 model with this config \(n_layer 2\)/,
    );
    const c = copyFixture();
    editWeights(c, (t) => t.set("wpe.weight", t.get("transformer.wpe.weight") as SafeTensor));
    oneLine(() => loadModel(c), /tensors 'transformer\.wpe\.weight' and 'wpe\.weight' are the same weight/);
    const e = copyFixture();
    const cfg = JSON.parse(readFileSync(join(e, "config.json"), "utf8"));
    writeFileSync(join(e, "config.json"), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
    oneLine(() => loadModel(e), /missing tensor 'lm_head\.weight'; the config says the head is not tied/);
  });

  test("GPT-2 config features moxing does not implement are refused by name", () => {
    const cfg = JSON.parse(readFileSync(join(fixture, "config.json"), "utf8"));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ activation_function: "relu" }, /activation_function is "relu"; moxing's GPT uses GELU with the tanh approximation/],
      [{ n_inner: 100 }, /n_inner is 100; moxing's GPT has a feed-forward width of 4 \* n_embd \(128\)/],
      [{ layer_norm_epsilon: 1e-6 }, /layer_norm_epsilon is 0\.000001; moxing's GPT uses 0\.00001/],
      [{ scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx is true/],
      [{ model_type: "llama" }, /model_type is "llama"/],
    ];
    for (const [patch, pattern] of cases) oneLine(() => configFromJSON({ ...cfg, ...patch }, "x/config.json"), pattern);
    // gelu_pytorch_tanh is the same function; n_ctx stands in for n_positions in old configs.
    const { n_positions: _, ...old } = cfg;
    assert.equal(configFromJSON({ ...old, activation_function: "gelu_pytorch_tanh" }).block_size, 64);
  });

  test("only pytorch_model.bin: says how to get safetensors", () => {
    const d = copyFixture();
    unlinkSync(join(d, "model.safetensors"));
    writeFileSync(join(d, "pytorch_model.bin"), "PK");
    oneLine(() => loadModel(d), /only pytorch_model\.bin .*safe_serialization=True/);
  });

  test("a char tokenizer in a Hugging Face-shaped directory still loads (moxing's own tokenizer JSON)", () => {
    const d = copyFixture();
    const tok = CharTokenizer.fromText("abc");
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify(tok.toJSON()));
    assert.equal(loadModel(d).tokenizer.type, "char");
  });
});

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}

/** float32 -> IEEE half bits, round to nearest even (values here are normal and in range). */
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0] as number;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign; // flush tiny values to zero
  let h = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return h;
}
