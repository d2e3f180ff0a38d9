// GGUF: the file layout (ggml's docs/gguf.md, v3), llama.cpp's gpt2 tensor names and dims, the
// embedded tokenizer, a lossless round trip back into moxing, what cannot be exported, and one-line
// errors for damaged files.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import "../../src/index.js";
import { generateIds } from "../../src/generate/index.js";
import { encodeGGUF, GGUFError, type GGUFValue, parseGGUF, plainValue, readGGUF, readGGUFHeader } from "../../src/io/gguf.js";
import { exportGGUF, loadGGUFModel } from "../../src/io/gguf-gpt2.js";
import { loadModel } from "../../src/io/gpt.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { GPT, type GPTConfig } from "../../src/models/gpt.js";
import { transpose2d } from "../../src/nn/state-dict.js";
import { tensor } from "../../src/tensor/index.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";

const fixture = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "hf-gpt2");
const expected = JSON.parse(readFileSync(join(fixture, "expected.json"), "utf8")) as { prompt: string; ids: number[]; greedy: number[] };
const root = mkdtempSync(join(tmpdir(), "moxing-gguf-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (ext = ".gguf") => join(root, `f${n++}${ext}`);

const concat = (chunks: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};

function logits(model: GPT, ids: number[]): Float32Array {
  return model.forward(tensor([ids], { dtype: "int32" })).logits.contiguousData() as Float32Array;
}

describe("export of the PyTorch-written GPT-2 fixture", () => {
  const { model, tokenizer } = loadModel(fixture);
  const path = fresh();
  exportGGUF(path, model, tokenizer);
  const file = readGGUFHeader(path);
  const meta = (k: string) => plainValue(file.metadata.get(k) as GGUFValue);

  test("header, metadata and alignment follow the spec", () => {
    const bytes = readFileSync(path);
    assert.equal(bytes.subarray(0, 4).toString("latin1"), "GGUF");
    assert.equal(bytes.readUInt32LE(4), 3);
    assert.equal(Number(bytes.readBigUInt64LE(8)), file.tensors.length);
    assert.equal(Number(bytes.readBigUInt64LE(16)), file.metadata.size);
    assert.equal(file.version, 3);
    assert.equal(file.alignment, 32);
    assert.equal(file.dataStart % 32, 0);
    for (const t of file.tensors) assert.equal(t.offset % 32, 0, t.name);
    const want: Record<string, unknown> = {
      "general.architecture": "gpt2",
      "general.file_type": 0,
      "gpt2.context_length": 64,
      "gpt2.embedding_length": 32,
      "gpt2.feed_forward_length": 128,
      "gpt2.block_count": 2,
      "gpt2.attention.head_count": 4,
      "tokenizer.ggml.model": "gpt2",
      "tokenizer.ggml.pre": "gpt-2",
      "tokenizer.ggml.bos_token_id": 299,
      "tokenizer.ggml.eos_token_id": 299,
      "tokenizer.ggml.add_bos_token": false,
    };
    for (const [k, v] of Object.entries(want)) assert.deepEqual(meta(k), v, k);
    assert.equal(file.metadata.get("gpt2.context_length")?.type, "u32");
    assert.equal(file.metadata.get("gpt2.attention.layer_norm_epsilon")?.type, "f32");
    assert.ok(Math.abs((meta("gpt2.attention.layer_norm_epsilon") as number) - 1e-5) < 1e-10);
  });

  test("the tokenizer: byte-level tokens by id, token types, merges", () => {
    const tokens = meta("tokenizer.ggml.tokens") as string[];
    const types = meta("tokenizer.ggml.token_type") as number[];
    assert.equal(file.metadata.get("tokenizer.ggml.token_type")?.type, "array");
    assert.equal(tokens.length, 300);
    const bpe = tokenizer as ByteLevelBPE;
    assert.deepEqual(
      tokens,
      tokens.map((_, id) => bpe.idToToken(id)),
    );
    assert.equal(tokens[299], "<|endoftext|>");
    assert.deepEqual(
      types.map((t, id) => (id === 299 ? t === 3 : t === 1)),
      types.map(() => true),
    );
    assert.deepEqual(meta("tokenizer.ggml.merges"), bpe.toJSON().model.merges);
  });

  test("llama.cpp's gpt2 tensor names and GGML dims (ne[0] innermost), tied head omitted", () => {
    const dims = Object.fromEntries(file.tensors.map((t) => [t.name, t.dims]));
    assert.deepEqual(dims["token_embd.weight"], [32, 300]);
    assert.deepEqual(dims["position_embd.weight"], [32, 64]);
    assert.deepEqual(dims["blk.0.attn_norm.weight"], [32]);
    assert.deepEqual(dims["blk.0.attn_qkv.weight"], [32, 96]);
    assert.deepEqual(dims["blk.0.attn_qkv.bias"], [96]);
    assert.deepEqual(dims["blk.1.attn_output.weight"], [32, 32]);
    assert.deepEqual(dims["blk.1.ffn_norm.bias"], [32]);
    assert.deepEqual(dims["blk.1.ffn_up.weight"], [32, 128]);
    assert.deepEqual(dims["blk.1.ffn_down.weight"], [128, 32]);
    assert.deepEqual(dims["output_norm.weight"], [32]);
    assert.equal(dims["output.weight"], undefined);
    assert.equal(file.tensors.length, 2 + 2 * 12 + 2);
    assert.ok(file.tensors.every((t) => t.typeName === "F32"));
  });

  test("projection data is Hugging Face's Conv1D weight transposed (as llama.cpp's converter writes it)", () => {
    const hf = readSafetensors(join(fixture, "model.safetensors")).tensors;
    const { tensors } = readGGUF(path);
    const c = hf.get("transformer.h.1.attn.c_attn.weight");
    assert.deepEqual(tensors.get("blk.1.attn_qkv.weight")?.data, transpose2d(c?.data as Float32Array, 32, 96));
    assert.deepEqual(tensors.get("token_embd.weight")?.data, hf.get("transformer.wte.weight")?.data);
  });

  test("reads back into the same model: same logits, tokenizer and greedy continuation", () => {
    const back = loadGGUFModel(path);
    assert.deepEqual(logits(back.model, expected.ids), logits(model, expected.ids));
    assert.deepEqual(back.tokenizer.encode(expected.prompt), expected.ids);
    assert.deepEqual([...back.tokenizer.specialTokens], [["<|endoftext|>", 299]]);
    assert.deepEqual([...generateIds(back.model, expected.ids, { temperature: 0, maxNewTokens: 24 })], expected.greedy);
  });
});

describe("what exports, and how", () => {
  const text = "the quick brown fox jumps over the lazy dog; hello world. ".repeat(20);
  const bpe = ByteLevelBPE.train(text, { vocabSize: 280 });
  const roundTrip = (config: Partial<GPTConfig>, tok = bpe) => {
    const model = new GPT({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: tok.vocabSize, ...config }, { seed: 5 });
    model.eval();
    const p = fresh();
    exportGGUF(p, model, tok);
    const back = loadGGUFModel(p);
    const ids = tok.encode("the quick brown fox");
    const diff = logits(back.model, ids).reduce((m, v, i) => Math.max(m, Math.abs(v - (logits(model, ids)[i] as number))), 0);
    return { p, back, diff };
  };

  test("untied head, no biases, sinusoidal positions: same logits after reading back", () => {
    for (const cfg of [{ tie_weights: false }, { bias: false }, { pos_encoding: "sinusoidal" }] as Partial<GPTConfig>[]) {
      const { p, diff, back } = roundTrip(cfg);
      assert.equal(diff, 0, JSON.stringify(cfg));
      const names = readGGUFHeader(p).tensors.map((t) => t.name);
      assert.equal(names.includes("output.weight"), cfg.tie_weights === false);
      assert.equal(back.config.pos_encoding, "learned");
    }
  });

  test("a tokenizer without special tokens has no bos/eos; padding ids become unused tokens and are dropped on reading", () => {
    const { p, back } = roundTrip({ vocab_size: bpe.vocabSize + 3 });
    const f = readGGUFHeader(p);
    assert.equal(f.metadata.has("tokenizer.ggml.eos_token_id"), false);
    const tokens = plainValue(f.metadata.get("tokenizer.ggml.tokens") as GGUFValue) as string[];
    const types = plainValue(f.metadata.get("tokenizer.ggml.token_type") as GGUFValue) as number[];
    assert.equal(tokens.length, bpe.vocabSize + 3);
    assert.deepEqual(tokens.slice(-3), [`[PAD${bpe.vocabSize}]`, `[PAD${bpe.vocabSize + 1}]`, `[PAD${bpe.vocabSize + 2}]`]);
    assert.deepEqual(types.slice(-3), [5, 5, 5]);
    assert.equal(back.tokenizer.vocabSize, bpe.vocabSize);
    assert.equal(back.config.vocab_size, bpe.vocabSize + 3);
  });

  test("refused with a clear error: char-level tokenizers (naming --tokenizer bpe) and rope", () => {
    const chars = CharTokenizer.fromText(text);
    const model = new GPT({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: chars.vocabSize }, { seed: 1 });
    assert.throws(
      () => exportGGUF(fresh(), model, chars),
      (e: Error) => e instanceof GGUFError && /character-level.*--tokenizer bpe/.test(e.message) && !e.message.includes("\n"),
    );
    const rope = new GPT(
      { n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: bpe.vocabSize, pos_encoding: "rope" },
      { seed: 1 },
    );
    assert.throws(() => exportGGUF(fresh(), rope, bpe), /rotary position embeddings \(rope\)/);
  });
});

// ---- damaged files ------------------------------------------------------------------------------------

/** A small valid GGUF file, and the byte positions of its fields, for targeted damage. */
function small(meta: [string, GGUFValue][] = [["general.architecture", { type: "string", value: "gpt2" }]]): Uint8Array {
  return concat(
    encodeGGUF(meta, [
      { name: "a", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      { name: "b", shape: [4], data: new Float32Array([7, 8, 9, 10]) },
    ]),
  );
}

function rejects(buf: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseGGUF(buf, "bad.gguf"),
    (e: unknown) => {
      assert.ok(e instanceof GGUFError, `expected GGUFError, got ${e}`);
      assert.match(e.message, /^bad\.gguf: /);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    },
  );
}

/** Hand-built header: magic, version, counts, then raw bytes. */
function raw(version: number, tensors: bigint, kvs: bigint, rest: number[] = []): Uint8Array {
  const b = Buffer.alloc(24 + rest.length);
  b.write("GGUF", 0, "latin1");
  b.writeUInt32LE(version, 4);
  b.writeBigUInt64LE(tensors, 8);
  b.writeBigUInt64LE(kvs, 16);
  Buffer.from(rest).copy(b, 24);
  return new Uint8Array(b);
}

const u64le = (v: bigint) => [...Buffer.from(new BigUint64Array([v]).buffer)];
const u32le = (v: number) => [...Buffer.from(new Uint32Array([v]).buffer)];
const strBytes = (s: string) => [...u64le(BigInt(Buffer.byteLength(s))), ...Buffer.from(s)];

describe("damaged GGUF files are one-line errors", () => {
  test("a valid small file parses and its tensors read back in row-major shape", () => {
    const p = fresh();
    writeFileSync(p, small());
    const { file, tensors } = readGGUF(p);
    assert.deepEqual(file.tensors[0]?.dims, [3, 2]);
    assert.deepEqual(tensors.get("a"), { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
  });

  test("magic, version, endianness, truncation", () => {
    rejects(new Uint8Array([0x47, 0x47]), /2 bytes, too short/);
    rejects(new TextEncoder().encode("GGML and more bytes here........"), /does not start with 'GGUF'/);
    rejects(raw(1, 0n, 0n), /version 1, which is obsolete/);
    rejects(raw(7, 0n, 0n), /GGUF version 7; moxing reads versions 2 and 3/);
    rejects(raw(0x03000000, 0n, 0n), /big-endian/);
    const ok = small();
    for (const cut of [10, 30, 60, ok.length - 17]) rejects(ok.subarray(0, cut), /truncated|file ends|runs past|damaged/);
  });

  test("counts, lengths and array sizes larger than the file", () => {
    rejects(raw(3, 2n ** 40n, 0n), /claims 0 metadata entries and 1099511627776 tensors, more than its 24 bytes/);
    rejects(raw(3, 0n, 2n ** 62n), /impossibly large|more than its/);
    rejects(raw(3, 0n, 1n, [...u64le(2n ** 50n), ...new Array(16).fill(0)]), /metadata key 0 claims 1125899906842624 bytes but only/);
    const arr = [...strBytes("k"), ...u32le(9), ...u32le(0), ...u64le(2n ** 40n)];
    rejects(raw(3, 0n, 1n, arr), /'k' claims 1099511627776 items of u8/);
    let nested: number[] = [...u32le(0), ...u64le(0n)];
    for (let i = 0; i < 20; i++) nested = [...u32le(9), ...u64le(1n), ...nested];
    rejects(raw(3, 0n, 1n, [...strBytes("k"), ...u32le(9), ...nested]), /nests arrays more than 8 deep/);
  });

  test("bad values: type ids, bools, UTF-8, duplicate keys, alignment", () => {
    rejects(
      raw(3, 0n, 1n, [...strBytes("k"), ...u32le(13), 0, 0, 0, 0, 0, 0, 0, 0]),
      /the type of 'k' is 13, which is not a GGUF value type/,
    );
    rejects(raw(3, 0n, 1n, [...strBytes("k"), ...u32le(7), 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), /bool with byte value 2/);
    rejects(raw(3, 0n, 1n, [...u64le(1n), 0xff, ...u32le(0), 0, 0, 0, 0, 0, 0, 0, 0, 0]), /not valid UTF-8/);
    const kv = [...strBytes("k"), ...u32le(4), ...u32le(1)];
    rejects(raw(3, 0n, 2n, [...kv, ...kv]), /metadata key 'k' appears twice/);
    const nl = [...strBytes("a\nb"), ...u32le(4), ...u32le(1)];
    rejects(raw(3, 0n, 2n, [...nl, ...nl]), /metadata key 'a\\u000ab' appears twice/);
    rejects(small([["general.alignment", { type: "u32", value: 24 }]]), /general\.alignment must be a u32 power of two/);
    rejects(small([["general.alignment", { type: "string", value: "32" }]]), /general\.alignment must be a u32 power of two/);
  });

  test("tensor infos: names, dims, types, offsets, overlap", () => {
    const info = (name: string, dims: bigint[], type: number, offset: bigint) => [
      ...strBytes(name),
      ...u32le(dims.length),
      ...dims.flatMap(u64le),
      ...u32le(type),
      ...u64le(offset),
    ];
    const pad = new Array(64).fill(0);
    rejects(raw(3, 1n, 0n, [...info("x".repeat(64), [1n], 0, 0n), ...pad]), /is 64 bytes long; at most 63/);
    rejects(raw(3, 1n, 0n, [...info("x", [1n, 1n, 1n, 1n, 1n], 0, 0n), ...pad]), /has 5 dimensions; GGML allows at most 4/);
    rejects(raw(3, 1n, 0n, [...info("x", [1n], 99, 0n), ...pad]), /GGML type 99, which moxing does not know/);
    rejects(raw(3, 1n, 0n, [...info("x", [33n], 2, 0n), ...pad]), /Q4_0 \(blocks of 32\) but its first dimension 33/);
    rejects(raw(3, 1n, 0n, [...info("x", [1n], 0, 4n), ...pad]), /offset 4, not a multiple of the alignment 32/);
    rejects(raw(3, 1n, 0n, [...info("x", [2n ** 20n, 2n ** 20n], 0, 0n), ...pad]), /runs past the end of the file/);
    rejects(raw(3, 1n, 0n, [...info("x", [2n ** 40n, 2n ** 40n], 0, 0n), ...pad]), /too many elements/);
    rejects(raw(3, 2n, 0n, [...info("x", [16n], 0, 0n), ...info("x", [1n], 0, 64n), ...pad]), /tensor 'x' appears twice/);
    rejects(raw(3, 2n, 0n, [...info("x", [16n], 0, 0n), ...info("y", [16n], 0, 32n), ...pad, ...pad]), /tensors 'x' and 'y' overlap/);
  });

  test("quantized tensors are recognised but not decoded; a missing file and a directory are named", () => {
    const info = [...strBytes("q"), ...u32le(1), ...u64le(32n), ...u32le(8), ...u64le(0n)];
    const buf = raw(3, 1n, 0n, info);
    const full = new Uint8Array(Math.ceil(buf.length / 32) * 32 + 34);
    full.set(buf);
    const p = fresh();
    writeFileSync(p, full);
    assert.equal(readGGUFHeader(p).tensors[0]?.typeName, "Q8_0");
    assert.throws(() => readGGUF(p), /tensor 'q' is Q8_0; moxing reads F32, F16 and BF16 tensors/);
    assert.throws(() => readGGUFHeader(join(root, "none.gguf")), /none\.gguf: file not found/);
    assert.throws(() => readGGUFHeader(root), /is a directory, not a GGUF file/);
  });
});
