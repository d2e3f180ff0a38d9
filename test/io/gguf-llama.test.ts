// GGUF for Llama-family models: llama.cpp's names, dims, metadata and tokenizer keys; the llama
// architecture's q/k row permutation; lossless float32 round trips of the Hugging Face fixtures
// (logits and token ids); quantised files kept quantised in memory (about the file's size); Q5_K and
// Q6_K tensors read bit for bit; and one-line errors for files moxing cannot run.
// (llama.cpp itself reading these files is scripts/test-llamacpp-llama.mjs, run by hand.)

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import "../../src/index.js";
import { type GGUFValue, readGGUF, readGGUFHeader, writeGGUF } from "../../src/io/gguf.js";
import { ggufNameOf, llamaGGUF, loadLlamaGGUF, mixType, permuteRows, typeForRow, writeLlamaGGUF } from "../../src/io/gguf-llama.js";
import { loadLlamaDir } from "../../src/io/llama.js";
import { Llama } from "../../src/models/llama.js";
import { QEmbedding, QLinear } from "../../src/nn/quantized.js";
import { QuantizedTensor } from "../../src/quant/ggml.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { HFTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText } from "../tokenizers/corpus.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "..", "tools", "fixtures", "hf-llama");
const quants = join(here, "..", "..", "tools", "fixtures", "ggml-quants");
const tmp = mkdtempSync(join(tmpdir(), "moxing-gguf-llama-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(tmp, `m${n++}.gguf`);
const ids = (rows: number[][]) => tensor(rows, { dtype: "int32" });
const logits = (m: Llama, x = ids([[5, 9, 20, 33, 7, 100, 3, 4]])) => noGrad(() => m.forward(x).logits).toArray();
const meta = (path: string, key: string) => readGGUFHeader(path).metadata.get(key)?.value;

describe("float32 round trips of the Hugging Face fixtures", () => {
  const text = buildLargeText(30_000);
  for (const name of ["llama3", "mistral", "qwen2", "qwen3"]) {
    test(name, () => {
      const { model, tokenizer } = loadLlamaDir(join(fixtures, name));
      const path = fresh();
      writeLlamaGGUF(path, model, tokenizer);
      const back = loadLlamaGGUF(path);
      assert.deepEqual(logits(back.model), logits(model), "the same logits, bit for bit");
      assert.deepEqual(back.tokenizer.encode(text, { allowedSpecial: "all" }), tokenizer.encode(text, { allowedSpecial: "all" }));
      assert.deepEqual(back.tokenizer.encodePrompt("Hello"), tokenizer.encodePrompt("Hello"));
      const arch = name === "mistral" || name === "llama3" ? "llama" : name;
      assert.equal(meta(path, "general.architecture"), arch);
      assert.equal(meta(path, `${arch}.attention.head_count_kv`), model.config.num_key_value_heads);
      assert.equal(meta(path, `${arch}.block_count`), 2);
      const header = readGGUFHeader(path);
      const names = header.tensors.map((t) => t.name);
      assert.equal(names.includes("output.weight"), !model.config.tie_word_embeddings);
      assert.equal(names.includes("rope_freqs.weight"), name === "llama3", "Llama 3's rope scaling as rope_freqs");
      assert.equal(names.includes("blk.0.attn_q.bias"), name === "qwen2");
      assert.equal(names.includes("blk.1.attn_k_norm.weight"), name === "qwen3");
      const q = header.tensors.find((t) => t.name === "blk.0.attn_q.weight");
      assert.deepEqual(
        q?.dims,
        [model.config.hidden_size, model.config.num_attention_heads * model.config.head_dim],
        "GGML dims are [in, out]",
      );
      if (name === "mistral") {
        assert.equal(meta(path, "tokenizer.ggml.model"), "llama", "SentencePiece-style BPE is llama.cpp's SPM vocabulary");
        assert.equal(meta(path, "tokenizer.ggml.add_bos_token"), true);
      } else {
        assert.equal(meta(path, "tokenizer.ggml.model"), "gpt2");
        assert.equal(meta(path, "tokenizer.ggml.pre"), name === "llama3" ? "llama-bpe" : "qwen2");
      }
    });
  }

  test("the llama architecture stores q and k rows in llama.cpp's adjacent-pair order", () => {
    const { model, tokenizer } = loadLlamaDir(join(fixtures, "mistral"));
    const path = fresh();
    writeLlamaGGUF(path, model, tokenizer);
    const { tensors } = readGGUF(path, { only: (t) => t.name === "blk.1.attn_k.weight" });
    const k = tensors.get("blk.1.attn_k.weight")?.data as Float32Array;
    const hf = Float32Array.from(model.stateDict().get("model.layers.1.self_attn.k_proj.weight")?.toArray() ?? []);
    const { head_dim: d, num_key_value_heads: h, hidden_size: C } = model.config;
    assert.notDeepEqual(k, hf, "rows are reordered");
    permuteRows(hf, C, h, d, true);
    assert.deepEqual(k, hf);
    // GGUF row h·d + 2i + j is Hugging Face row h·d + j·d/2 + i: row 1 is Hugging Face's row d/2.
    const orig = model.stateDict().get("model.layers.1.self_attn.k_proj.weight")?.toArray() as number[];
    assert.deepEqual(Array.from(k.subarray(C, 2 * C)), orig.slice((d / 2) * C, (d / 2 + 1) * C));
  });
});

describe("quantised files", () => {
  // Rows of 256 values, so Q4_K applies to every matrix (the fixtures' 64-wide ones stay float32).
  const tokenizer = HFTokenizer.fromJSON(
    JSON.parse(readFileSync(join(fixtures, "llama3", "tokenizer.json"), "utf8")),
    JSON.parse(readFileSync(join(fixtures, "llama3", "tokenizer_config.json"), "utf8")),
  );
  const model = new Llama(
    {
      vocab_size: 304,
      hidden_size: 256,
      intermediate_size: 512,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 64,
      tie_word_embeddings: false,
      initializer_range: 0.05,
    },
    { seed: 4 },
  ).eval();
  const want = logits(model);
  for (const [type, tol] of [
    // Relative RMS error of the logits of this random model: float16 activations and weights
    // about 1e-3, 8-bit blocks about 3e-2, 6-bit 0.07, 5-bit 0.13, 4-bit about 0.3; a wrong block
    // layout gives about 1.
    ["F16", 2e-3],
    ["Q8_0", 0.04],
    ["Q4_0", 0.45],
    ["Q4_K", 0.4],
    ["Q5_K", 0.2],
    ["Q6_K", 0.12],
  ] as const) {
    test(`${type}: the matrices stay ${type} in memory, about the file's size, and the logits stay close`, () => {
      const path = fresh();
      writeLlamaGGUF(path, model, tokenizer, { type });
      const { model: q } = loadLlamaGGUF(path);
      let bytes = 0;
      for (const [, m] of q.namedModules()) {
        if (m instanceof QLinear || m instanceof QEmbedding) {
          assert.ok(m.weight instanceof QuantizedTensor && m.weight.type === type, `${type} weight kept as ${type}`);
          bytes += m.weight.data.length;
        }
      }
      bytes += q.numParameters() * 4;
      const file = statSync(path).size;
      assert.ok(bytes <= file && bytes > file * 0.9, `weights in memory ${bytes} B for a ${file} B file`);
      const got = logits(q);
      let err = 0;
      let norm = 0;
      for (let i = 0; i < got.length; i++) {
        err += ((got[i] as number) - (want[i] as number)) ** 2;
        norm += (want[i] as number) ** 2;
      }
      const rel = Math.sqrt(err / norm);
      assert.ok(rel < tol, `${type}: logits differ by ${rel} (relative RMS)`);
      // Writing a model in its own type copies the blocks as they are.
      const again = fresh();
      writeLlamaGGUF(again, q, tokenizer, { type });
      const a = readGGUFHeader(path).tensors.find((t) => t.name === "blk.0.attn_k.weight");
      const b = readGGUFHeader(again).tensors.find((t) => t.name === "blk.0.attn_k.weight");
      const raw = (p: string, t: typeof a) =>
        readFileSync(p).subarray(
          readGGUFHeader(p).dataStart + (t?.offset ?? 0),
          readGGUFHeader(p).dataStart + (t?.offset ?? 0) + (t?.bytes ?? 0),
        );
      assert.deepEqual(raw(again, b), raw(path, a));
    });
  }

  test("the Q4_K_M mix: Q6_K where llama-quantize puts it, Q4_K elsewhere, the logits close", () => {
    const path = fresh();
    writeLlamaGGUF(path, model, tokenizer, { mix: "Q4_K_M" });
    const h = readGGUFHeader(path);
    const types = Object.fromEntries(h.tensors.map((t) => [t.name, t.typeName]));
    // 2 layers: use_more_bits picks layer 1 (the last eighth: i >= 7·2/8), not layer 0
    assert.equal(types["output.weight"], "Q6_K");
    assert.equal(types["token_embd.weight"], "Q4_K", "untied: the embedding stays in the base type");
    assert.equal(types["blk.0.attn_v.weight"], "Q4_K");
    assert.equal(types["blk.1.attn_v.weight"], "Q6_K");
    assert.equal(types["blk.0.ffn_down.weight"], "Q4_K");
    assert.equal(types["blk.1.ffn_down.weight"], "Q6_K");
    assert.equal(types["blk.1.attn_q.weight"], "Q4_K");
    assert.equal(types["blk.1.ffn_gate.weight"], "Q4_K");
    assert.equal(h.metadata.get("general.file_type")?.value, 15, "LLAMA_FTYPE_MOSTLY_Q4_K_M");
    assert.equal(mixType("Q5_K_M", "blk.3.ffn_up.weight", 24, true), "Q5_K");
    assert.equal(mixType("Q5_K_M", "token_embd.weight", 24, true), "Q6_K", "tied: the embedding is the output head");
    // 28 layers (Qwen3-0.6B): the first 3, the last 4 and every third between
    const picked = Array.from({ length: 28 }, (_, i) => i).filter(
      (i) => mixType("Q4_K_M", `blk.${i}.ffn_down.weight`, 28, true) === "Q6_K",
    );
    assert.deepEqual(picked, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
    const got = logits(loadLlamaGGUF(path).model);
    let err = 0;
    let norm = 0;
    for (let i = 0; i < got.length; i++) {
      err += ((got[i] as number) - (want[i] as number)) ** 2;
      norm += (want[i] as number) ** 2;
    }
    assert.ok(Math.sqrt(err / norm) < 0.4, `logits differ by ${Math.sqrt(err / norm)} (relative RMS)`);
  });

  test("rows that are not whole blocks fall back as llama-quantize's do", () => {
    assert.equal(typeForRow("Q4_K", 512), "Q4_K");
    assert.equal(typeForRow("Q4_K", 576), "Q5_0", "SmolLM2's 576-wide rows: Q4_K becomes Q5_0");
    assert.equal(typeForRow("Q8_0", 48), "F16");
    assert.equal(typeForRow("Q4_K", 48), "F16");
    const path = fresh();
    const narrow = new Llama(
      { vocab_size: 304, hidden_size: 64, intermediate_size: 256, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2 },
      { seed: 2 },
    );
    writeLlamaGGUF(path, narrow, tokenizer, { type: "Q4_K" });
    const types = Object.fromEntries(readGGUFHeader(path).tensors.map((t) => [t.name, t.typeName]));
    assert.equal(types["blk.0.ffn_down.weight"], "Q4_K", "rows of 256");
    assert.equal(types["blk.0.ffn_up.weight"], "Q5_0", "rows of 64");
    assert.equal(types["blk.0.attn_norm.weight"], "F32");
    const { model: back } = loadLlamaGGUF(path);
    assert.equal(logits(back).length, logits(narrow).length);
  });

  test("Q5_K and Q6_K tensors (written by ggml's C quantisers) read bit for bit", () => {
    // gate_proj and up_proj of a model 256 wide with 8 hidden units are (8, 256): the fixture's shape.
    const small = new Llama(
      { vocab_size: 304, hidden_size: 256, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2 },
      { seed: 1 },
    );
    const { metadata, tensors } = llamaGGUF(small, tokenizer);
    const swap = (gguf: string, type: "Q5_K" | "Q6_K", id: number) => {
      const t = tensors.find((x) => x.name === gguf);
      assert.ok(t);
      t.data = new Uint8Array(readFileSync(join(quants, `${type}.bin`)));
      t.type = id;
    };
    swap("blk.0.ffn_gate.weight", "Q5_K", 13);
    swap("blk.0.ffn_up.weight", "Q6_K", 14);
    const path = fresh();
    writeGGUF(path, metadata as [string, GGUFValue][], tensors);
    const { model: m } = loadLlamaGGUF(path);
    const layer = m.model.layers.items[0];
    for (const [w, type] of [
      [layer?.mlp.gate_proj.weight, "Q5_K"],
      [layer?.mlp.up_proj.weight, "Q6_K"],
    ] as const) {
      assert.ok(w instanceof QuantizedTensor && w.type === type);
      const expected = new Float32Array(new Uint8Array(readFileSync(join(quants, `${type}.dequant.f32`))).buffer);
      assert.deepEqual(w.toFloat32(), expected);
    }
    assert.equal(ggufNameOf("model.layers.0.mlp.up_proj.weight"), "blk.0.ffn_up.weight");
  });
});

describe("files it cannot run are refused in one line", () => {
  const { model, tokenizer } = loadLlamaDir(join(fixtures, "qwen3"));
  const base = llamaGGUF(model, tokenizer);
  const write = (edit: (m: [string, GGUFValue][], t: typeof base.tensors) => void) => {
    const metadata = base.metadata.map(([k, v]) => [k, v] as [string, GGUFValue]);
    const tensors = base.tensors.map((t) => ({ ...t }));
    edit(metadata, tensors);
    const path = fresh();
    writeGGUF(path, metadata, tensors);
    return path;
  };
  const set = (m: [string, GGUFValue][], key: string, value: GGUFValue) => {
    const e = m.find(([k]) => k === key);
    if (e) e[1] = value;
    else m.push([key, value]);
  };
  test("another architecture", () => {
    const p = write((m) => set(m, "general.architecture", { type: "string", value: "gemma3" }));
    assert.throws(() => loadLlamaGGUF(p), /general\.architecture is 'gemma3'; the Llama reader reads llama, qwen2, qwen3/);
  });
  test("a pre-tokenizer moxing does not know", () => {
    const p = write((m) => set(m, "tokenizer.ggml.pre", { type: "string", value: "deepseek-llm" }));
    assert.throws(() => loadLlamaGGUF(p), /tokenizer\.ggml\.pre is 'deepseek-llm'; moxing reads llama-bpe, qwen2, smollm, gpt-2/);
  });
  test("a missing tensor, and one that belongs to no Llama", () => {
    const p = write((_m, t) =>
      t.splice(
        t.findIndex((x) => x.name === "blk.1.ffn_down.weight"),
        1,
      ),
    );
    assert.throws(() => loadLlamaGGUF(p), /tensor 'blk\.1\.ffn_down\.weight' is missing \(a qwen3 model with 2 blocks has it\)/);
    const q = write((_m, t) => t.push({ name: "blk.0.ffn_gate_exps.weight", shape: [4], data: new Float32Array(4) }));
    assert.throws(() => loadLlamaGGUF(q), /tensor 'blk\.0\.ffn_gate_exps\.weight' is not part of a qwen3 model/);
  });
  test("a GGML type moxing does not decode", () => {
    const p = write((_m, t) => {
      const e = t.find((x) => x.name === "blk.0.ffn_up.weight");
      if (e) Object.assign(e, { shape: [96, 256], data: new Uint8Array((96 * 256 * 84) / 256), type: 10 }); // Q2_K
    });
    assert.throws(
      () => loadLlamaGGUF(p),
      /tensor 'blk\.0\.ffn_up\.weight' is Q2_K; moxing reads F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q4_K, Q5_K and Q6_K/,
    );
  });
});
