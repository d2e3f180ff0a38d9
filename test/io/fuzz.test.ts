// Fuzzing the readers: thousands of mutated safetensors and GGUF files (bytes flipped, lengths and
// offsets set to absurd values, header JSON rewritten, truncated, extended). Every one must either
// read, with data no larger than the file, or be rejected with the reader's own one-line error: no
// other exception (a crash), no read taking long (a hang), and no large allocation (the process's
// peak memory barely moves).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { encodeGGUF, GGUFError, type GGUFValue, parseGGUF, readGGUF } from "../../src/io/gguf.js";
import { decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsError } from "../../src/io/safetensors.js";
import { mulberry32 } from "../tokenizers/corpus.js";

const root = mkdtempSync(join(tmpdir(), "moxing-fuzz-"));
after(() => rmSync(root, { recursive: true, force: true }));

const ITERATIONS = 10_000;
const FILE_ITERATIONS = 500;
/** Peak RSS may grow by at most this much over a whole fuzz run (a single absurd allocation would be GBs). */
const MAX_RSS_GROWTH_MB = 256;
/** No single read may take longer than this (a hang, or quadratic work on a small file). */
const MAX_MS_PER_READ = 500;

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)] as T;

/** Values that break assumptions: huge, negative, fractional, wrong type. */
const WEIRD: unknown[] = [
  -1,
  0,
  1,
  7,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 64,
  1e308,
  -0,
  0.5,
  Number.MAX_SAFE_INTEGER,
  "8",
  null,
  true,
  [],
  {},
  [1, 2, 3],
  "F32",
  "__proto__",
];

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Generic byte-level damage. */
function mutateBytes(rng: Rng, src: Uint8Array, hot: number): Uint8Array {
  let b: Uint8Array = src.slice();
  const kind = int(rng, 6);
  if (kind === 0) {
    for (let k = 1 + int(rng, 4); k > 0; k--) b[int(rng, Math.min(b.length, hot))] = int(rng, 256);
  } else if (kind === 1) {
    b = b.subarray(0, int(rng, b.length + 1));
  } else if (kind === 2) {
    b = concat([b, Uint8Array.from({ length: 1 + int(rng, 64) }, () => int(rng, 256))]);
  } else if (kind === 3) {
    // an 8-byte little-endian field somewhere in the header set to an extreme value
    const at = int(rng, Math.max(1, Math.min(b.length - 8, hot)));
    const v = pick(rng, [0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(int(rng, 1 << 20))]);
    if (at + 8 <= b.length) new DataView(b.buffer, b.byteOffset).setBigUint64(at, v, true);
  } else if (kind === 4) {
    const at = int(rng, Math.max(1, Math.min(b.length - 4, hot)));
    if (at + 4 <= b.length)
      new DataView(b.buffer, b.byteOffset).setUint32(at, pick(rng, [0, 1, 7, 9, 13, 255, 2 ** 31, 2 ** 32 - 1]), true);
  } else {
    b = Uint8Array.from({ length: int(rng, 200) }, () => int(rng, 256));
  }
  return b;
}

function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function fuzz(
  name: string,
  seeds: Uint8Array[],
  mutate: (rng: Rng, seed: Uint8Array) => Uint8Array,
  read: (buf: Uint8Array) => number,
  isOwnError: (e: unknown) => boolean,
  iterations: number,
): { read: number; rejected: number } {
  const rng = mulberry32(0xfeed ^ name.length);
  const before = peakRssMB();
  let ok = 0;
  let rejected = 0;
  for (let i = 0; i < iterations; i++) {
    const buf = mutate(rng, pick(rng, seeds));
    const t0 = performance.now();
    try {
      const bytes = read(buf);
      assert.ok(bytes <= 2 * buf.length + 64, `${name} #${i}: decoded ${bytes} bytes from a ${buf.length}-byte file`);
      ok++;
    } catch (e) {
      if (!isOwnError(e)) {
        throw new Error(`${name} #${i}: crashed with ${(e as Error)?.stack ?? e} on ${Buffer.from(buf.subarray(0, 200)).toString("hex")}`);
      }
      assert.ok(!(e as Error).message.includes("\n"), `${name} #${i}: multi-line error ${(e as Error).message}`);
      rejected++;
    }
    const ms = performance.now() - t0;
    assert.ok(ms < MAX_MS_PER_READ, `${name} #${i}: took ${ms.toFixed(0)} ms`);
  }
  const growth = peakRssMB() - before;
  assert.ok(growth < MAX_RSS_GROWTH_MB, `${name}: peak memory grew by ${growth.toFixed(0)} MB`);
  return { read: ok, rejected };
}

// ---- safetensors --------------------------------------------------------------------------------------

function safetensorsSeeds(): Uint8Array[] {
  const f16 = (() => {
    const h = new TextEncoder().encode(
      JSON.stringify({ h: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] }, b: { dtype: "BF16", shape: [2], data_offsets: [8, 12] } }),
    );
    const out = new Uint8Array(8 + h.length + 12);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set([0, 0x3c, 0, 0xc0, 0xff, 0x7b, 1, 0, 0x80, 0x3f, 0, 0x40], 8 + h.length);
    return out;
  })();
  return [
    encodeSafetensors(
      {
        "transformer.wte.weight": { dtype: "F32", shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 3) },
        "transformer.h.0.attn.c_attn.weight": { dtype: "F32", shape: [4, 12], data: new Float32Array(48).fill(0.5) },
        ids: { dtype: "I32", shape: [5], data: new Int32Array([1, 2, 3, 4, 5]) },
        empty: { dtype: "F32", shape: [0, 3], data: new Float32Array(0) },
        scalar: { dtype: "F32", shape: [], data: new Float32Array([1]) },
      },
      { format: "pt", step: "12" },
    ),
    encodeSafetensors({ x: { dtype: "F32", shape: [1], data: new Float32Array([2]) } }),
    f16,
  ];
}

/** Rewrite the header JSON: a field of an entry set to a weird value, an entry removed or added. */
function mutateSafetensorsHeader(rng: Rng, src: Uint8Array): Uint8Array {
  const len = Number(new DataView(src.buffer, src.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(src.subarray(8, 8 + len))) as Record<string, Record<string, unknown>>;
  const data = src.subarray(8 + len);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const target = header[pick(rng, names)] as Record<string, unknown>;
  const kind = int(rng, 7);
  if (kind === 0) target.dtype = pick(rng, ["F32", "F16", "BF16", "I32", "F64", "I64", "BOOL", "U8", "Q4", "", 3]);
  else if (kind === 1) target.shape = Array.from({ length: int(rng, 5) }, () => (rng() < 0.7 ? int(rng, 20) : pick(rng, WEIRD)));
  else if (kind === 2) target.data_offsets = [pick(rng, [0, 4, 8, ...WEIRD]), pick(rng, [0, 4, 8, 16, 48, ...WEIRD])];
  else if (kind === 3) delete target[pick(rng, ["dtype", "shape", "data_offsets"])];
  else if (kind === 4) header[pick(rng, ["__metadata__", "new", "", "__proto__"])] = pick(rng, WEIRD) as Record<string, unknown>;
  else if (kind === 5) {
    // a second entry claiming the same bytes (overlap), or a huge tensor at the end
    header.dup = { ...target };
    if (rng() < 0.5) header.dup.shape = [2 ** 20, 2 ** 20];
  } else header.__metadata__ = { k: pick(rng, WEIRD) } as Record<string, unknown>;
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(rng() < 0.9 ? text.length : int(rng, text.length * 2)), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function decodedBytes(tensors: Map<string, { data: { byteLength: number } }>): number {
  let n = 0;
  for (const t of tensors.values()) n += t.data.byteLength;
  return n;
}

describe("safetensors reader under fuzzing", () => {
  const seeds = safetensorsSeeds();
  const mutate = (rng: Rng, s: Uint8Array) => (rng() < 0.5 ? mutateSafetensorsHeader(rng, s) : mutateBytes(rng, s, 400));
  const own = (e: unknown) => e instanceof SafetensorsError;

  test(`${ITERATIONS} mutated buffers: read or rejected with SafetensorsError, no hang, no huge allocation`, () => {
    for (const s of seeds) assert.ok(decodeSafetensors(s).tensors.size > 0, "the seeds are valid");
    const r = fuzz("safetensors", seeds, mutate, (buf) => decodedBytes(decodeSafetensors(buf, "fuzz").tensors), own, ITERATIONS);
    assert.ok(r.rejected > ITERATIONS / 4 && r.read > 20, `read ${r.read}, rejected ${r.rejected}: the mutations should do both`);
  });

  test(`${FILE_ITERATIONS} mutated files through the file reader`, () => {
    const p = join(root, "fuzz.safetensors");
    fuzz(
      "safetensors file",
      seeds,
      mutate,
      (buf) => {
        writeFileSync(p, buf);
        return decodedBytes(readSafetensors(p).tensors);
      },
      own,
      FILE_ITERATIONS,
    );
  });
});

// ---- GGUF -----------------------------------------------------------------------------------------------

function ggufSeeds(): Uint8Array[] {
  const meta: [string, GGUFValue][] = [
    ["general.architecture", { type: "string", value: "gpt2" }],
    ["general.alignment", { type: "u32", value: 32 }],
    ["gpt2.attention.layer_norm_epsilon", { type: "f32", value: 1e-5 }],
    ["x.i64", { type: "i64", value: -5 }],
    ["x.bool", { type: "bool", value: true }],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: ["a", "b", "Ġc", "<|endoftext|>"] }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: [1, 1, 1, 3] }],
    ["x.nested", { type: "array", itemType: "array", value: [{ itemType: "u8", value: [1, 2] }] }],
  ];
  const tensors = [
    { name: "token_embd.weight", shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i) },
    { name: "blk.0.attn_norm.bias", shape: [3], data: new Float32Array([1, 2, 3]) },
  ];
  return [concat(encodeGGUF(meta, tensors)), concat(encodeGGUF([], [{ name: "t", shape: [1], data: new Float32Array([1]) }]))];
}

describe("GGUF reader under fuzzing", () => {
  const seeds = ggufSeeds();
  const own = (e: unknown) => e instanceof GGUFError;

  test(`${ITERATIONS} mutated buffers: parsed or rejected with GGUFError, no hang, no huge allocation`, () => {
    for (const s of seeds) parseGGUF(s);
    const r = fuzz(
      "gguf",
      seeds,
      (rng, s) => mutateBytes(rng, s, 600),
      (buf) => {
        parseGGUF(buf, "fuzz");
        return 0;
      },
      own,
      ITERATIONS,
    );
    assert.ok(r.rejected > ITERATIONS / 4 && r.read > 20, `read ${r.read}, rejected ${r.rejected}`);
  });

  test(`${FILE_ITERATIONS} mutated files through the file reader, tensors decoded`, () => {
    const p = join(root, "fuzz.gguf");
    fuzz(
      "gguf file",
      seeds,
      (rng, s) => mutateBytes(rng, s, 600),
      (buf) => {
        writeFileSync(p, buf);
        let n = 0;
        for (const t of readGGUF(p).tensors.values()) n += t.data.byteLength;
        return n;
      },
      own,
      FILE_ITERATIONS,
    );
  });
});
