// Every binding of the native addon called with extreme sizes, strides and offsets (2^31, 2^32,
// 2^53, 2^62, 2^64, -1, NaN, Infinity, ...) over small buffers: each call either works within its
// buffers or throws a RangeError / TypeError; nothing crashes the process (a crash fails this file)
// and nothing is written outside a buffer (each buffer is a view with canary floats on both sides).
// Every buffer is at most 6 elements, so a call that works does next to nothing: one that takes
// seconds loops over a size no buffer bounds (attentionBackward looped over 2^53 empty batch-heads)
// and fails the test with its parameters.
//   node --import tsx --test test/backends/native-fuzz.test.ts
//   MOXING_FUZZ_SEED=3 node --import tsx --test test/backends/native-fuzz.test.ts   (another random stream)
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeBackend, nativeLoadError } from "../../src/backends/native/index.js";
import { mulberry32 } from "../tokenizers/corpus.js";

type Buf = Float32Array | Int32Array | null;
type Fn = (...bufs: Buf[]) => unknown;
interface RawAddon {
  params: Float64Array;
  [name: string]: unknown;
}

const skip = nativeBackend ? false : `native addon not built: ${nativeLoadError}`;
const addon: RawAddon | null = nativeBackend
  ? (createRequire(import.meta.url)(
      process.env.MOXING_NATIVE_ADDON || fileURLToPath(new URL("../../build/Release/moxing_native.node", import.meta.url)),
    ) as RawAddon)
  : null;

const EXTREME = [
  0,
  1,
  2,
  3,
  -1,
  -2,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 53,
  2 ** 62,
  2 ** 63,
  2 ** 64,
  -(2 ** 63),
  Number.MAX_SAFE_INTEGER,
  1e300,
  -1e300,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  0.5,
];

// Each binding's buffer arguments: f32, i32, or f32-or-null ("f32?").
const BINDINGS: Record<string, string[]> = {
  unary: ["any", "f32"],
  binary: ["any", "any", "any"],
  where: ["any", "any", "any", "any"],
  copy: ["any", "any"],
  reduce: ["any", "f32"],
  matmul: ["f32", "f32", "f32"],
  gather: ["f32", "i32", "f32"],
  indexAdd: ["f32", "i32", "f32"],
  softmax: ["f32", "f32"],
  softmaxBackward: ["f32", "f32", "f32"],
  layerNorm: ["f32", "f32?", "f32?", "f32", "f32", "f32"],
  layerNormBackward: ["f32", "f32?", "f32", "f32", "f32", "f32", "f32?", "f32?"],
  rmsNorm: ["f32", "f32?", "f32", "f32"],
  rmsNormBackward: ["f32", "f32?", "f32", "f32", "f32", "f32?"],
  silu: ["f32", "f32"],
  siluBackward: ["f32", "f32", "f32"],
  swiglu: ["f32", "f32", "f32"],
  swigluBackward: ["f32", "f32", "f32", "f32", "f32"],
  rope: ["f32", "f32", "f32", "f32"],
  gelu: ["f32", "f32"],
  geluBackward: ["f32", "f32", "f32"],
  biasGelu: ["f32", "f32", "f32"],
  crossEntropy: ["f32", "i32", "f32", "f32"],
  crossEntropyBackward: ["f32", "i32", "f32", "f32", "f32"],
  adamw: ["f32", "f32", "f32", "f32"],
  attention: ["f32", "f32", "f32", "f32", "f32"],
  attentionBackward: ["f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32"],
};

const SEED = Number(process.env.MOXING_FUZZ_SEED ?? 7);
const CANARY = 8; // floats on each side of every buffer
// The longest a call may take. Working calls take microseconds and the slowest seen on a loaded
// 2-core machine 0.15 s; a loop of 2^31 empty iterations took 11 s.
const CALL_BUDGET_MS = 2000;
const MARK = 1234.5;

/** A typed array of `len` elements inside a larger buffer whose other elements are MARK. */
function guarded(kind: "f32" | "i32", len: number, rand: () => number): { view: Float32Array | Int32Array; check(): boolean } {
  const all = new ArrayBuffer((len + 2 * CANARY) * 4);
  const f = new Float32Array(all);
  f.fill(MARK);
  const view = kind === "f32" ? new Float32Array(all, CANARY * 4, len) : new Int32Array(all, CANARY * 4, len);
  for (let i = 0; i < len; i++) view[i] = kind === "f32" ? rand() * 4 - 2 : Math.floor(rand() * 6) - 1;
  return {
    view,
    check: () => {
      for (let i = 0; i < CANARY; i++) if (f[i] !== MARK || f[CANARY + len + i] !== MARK) return false;
      return true;
    },
  };
}

/** Calls binding `name` with the parameter block P[0..n) set to `params` over fresh small buffers.
 *  Returns "ok" or the error's class; fails the test on any other outcome. */
function call(name: string, params: readonly number[], rand: () => number, what: string): string {
  const A = addon as RawAddon;
  const P = A.params;
  P.fill(0, 0, 64);
  for (let i = 0; i < params.length; i++) P[i] = params[i] as number;
  const guards: { check(): boolean }[] = [];
  const args = (BINDINGS[name] as string[]).map((k) => {
    if (k === "f32?" && rand() < 0.3) return null;
    const kind = k === "i32" || (k === "any" && rand() < 0.3) ? "i32" : "f32";
    const g = guarded(kind, Math.floor(rand() * 7), rand);
    guards.push(g);
    return g.view;
  });
  let outcome = "ok";
  const t0 = performance.now();
  try {
    (A[name] as Fn)(...args);
  } catch (e) {
    outcome = e instanceof Error ? e.constructor.name : typeof e;
    assert.ok(e instanceof RangeError || e instanceof TypeError, `${what}: threw ${String(e)}`);
  }
  const ms = performance.now() - t0;
  for (const g of guards) assert.ok(g.check(), `${what}: wrote outside a buffer`);
  const lens = args.map((b) => (b ? b.length : "null")).join(", ");
  assert.ok(ms < CALL_BUDGET_MS, `${what} over buffers of [${lens}]: ${outcome} after ${Math.round(ms)} ms`);
  return outcome;
}

describe("native addon: extreme sizes never crash", { skip }, () => {
  it("the cases of issue 11: rows x cols that overflow 64 bits are refused", () => {
    const rand = mulberry32(1);
    const big = 2 ** 32;
    for (const name of [
      "softmax",
      "softmaxBackward",
      "layerNorm",
      "layerNormBackward",
      "rmsNorm",
      "rmsNormBackward",
      "crossEntropy",
      "crossEntropyBackward",
      "biasGelu",
    ]) {
      assert.equal(call(name, [big, big, 0, 0], rand, `${name}(2^32, 2^32)`), "RangeError", name);
      assert.equal(call(name, [2 ** 62, 4, 0, 0], rand, `${name}(2^62, 4)`), "RangeError", name);
    }
    // attention: both the contiguous and the kv-stride layouts; and its backward
    for (const kvs of [0, 2 ** 62, 2 ** 32]) {
      assert.equal(call("attention", [big, big, 1, 1, 1, 0, kvs], rand, `attention kvs=${kvs}`), "RangeError");
      assert.equal(call("attention", [2, 1, big, big, 1, 1, kvs], rand, `attention S, hs kvs=${kvs}`), "RangeError");
      assert.equal(call("attention", [2 ** 40, 1, 1, 1, 1, 1, 2 ** 40], rand, `attention bh*kvs kvs=${kvs}`), "RangeError");
    }
    assert.equal(call("attentionBackward", [big, big, big, big, 1, 1], rand, "attentionBackward"), "RangeError");
    assert.equal(call("rope", [big, big, 1, 2], rand, "rope(2^32, 2^32)"), "RangeError");
    assert.equal(call("rope", [1, 1, 2 ** 62, 2], rand, "rope H=2^62"), "RangeError");
    assert.equal(call("matmul", [0, 0, 1, 1, 0, 0, 1, 1, big, big, big, 1], rand, "matmul"), "RangeError");
    // a view whose shape multiplies past 2^64 (ones([1,4]).expand([2**62, 4]): stride 0)
    assert.equal(call("unary", [0, 2, 2 ** 62, 4, 0, 1, 0, 0, 0], rand, "unary expand 2^62"), "RangeError");
    assert.equal(call("reduce", [0, 3, 2 ** 40, 2 ** 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], rand, "reduce 0-size"), "RangeError");
  });

  it("element counts that are not sizes are refused (silu and swiglu ignored them)", () => {
    const rand = mulberry32(2);
    for (const name of ["silu", "siluBackward", "swiglu", "swigluBackward"])
      for (const n of [-1, -(2 ** 63), 2 ** 62, Number.NaN, Number.POSITIVE_INFINITY])
        assert.equal(call(name, [n], rand, `${name}(${n})`), "RangeError", `${name}(${n})`);
    for (const hs of [-1, -2, Number.NaN]) assert.equal(call("rope", [1, 1, 1, hs], rand, `rope hs=${hs}`), "RangeError", `rope hs=${hs}`);
  });

  it("attentionBackward with no queries, keys or features does not loop over the batch-heads", () => {
    const A = addon as RawAddon;
    const P = A.params;
    const bwd = A.attentionBackward as Fn;
    const f = (n: number, v = Number.NaN) => new Float32Array(n).fill(v);
    // (bh, T, S, hs): no buffer bounds bh when every head is empty; it took 11 s at 2^31 (2^53: forever).
    for (const [bh, T, S, hs] of [
      [2 ** 31, 0, 0, 4],
      [2 ** 31, 0, 3, 0],
      [2 ** 53, 0, 0, 2],
      [2 ** 53, 0, 3, 0],
    ]) {
      P.fill(0, 0, 64);
      [P[0], P[1], P[2], P[3]] = [bh, T, S, hs] as [number, number, number, number];
      const t0 = performance.now();
      bwd(f(0), f(0), f(0), f(0), f(0), f(0), f(0), f(0), f(0));
      assert.ok(performance.now() - t0 < CALL_BUDGET_MS, `bh=${bh} T=${T} S=${S} hs=${hs}: ${performance.now() - t0} ms`);
    }
    // No queries but keys (heads kv-stride 5 apart): dk and dv are zeroed head by head, the gaps kept.
    P.fill(0, 0, 64);
    [P[0], P[1], P[2], P[3], P[6]] = [2, 0, 2, 2, 5];
    const [dk, dv] = [f(9, 1), f(9, 2)];
    bwd(f(9), f(9), f(9), f(0), f(0), f(0), f(0), dk, dv);
    assert.deepEqual([...dk], [0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert.deepEqual([...dv], [0, 0, 0, 0, 2, 0, 0, 0, 0]);
  });

  it("random parameter blocks of extreme values, for every binding", () => {
    const rand = mulberry32(SEED);
    const pick = () => (rand() < 0.5 ? (EXTREME[Math.floor(rand() * EXTREME.length)] as number) : Math.floor(rand() * 5));
    const counts: Record<string, Record<string, number>> = {};
    for (const name of Object.keys(BINDINGS)) {
      const seen: Record<string, number> = {};
      for (let trial = 0; trial < 1500; trial++) {
        const params = Array.from({ length: 24 }, pick);
        // View ops read nd from P[1]: keep it small often, so their strides and offsets get fuzzed too.
        if (["unary", "binary", "where", "copy", "reduce"].includes(name)) {
          if (rand() < 0.7) params[1] = Math.floor(rand() * 4);
          // A broadcast (stride 0) view of up to 2^53 elements is valid, and reducing or copying it
          // is real work of that size: keep such views small, beyond 2^53 they must be refused.
          const nd = params[1] as number;
          if (Number.isInteger(nd) && nd >= 0 && nd <= 16) {
            const numel = params.slice(2, 2 + nd).reduce((a, b) => a * b, 1);
            if (numel > 2 ** 16 && numel <= 2 ** 53) for (let d = 0; d < nd; d++) params[2 + d] = Math.floor(rand() * 5);
          }
        }
        if (name === "matmul" && params[3] === 0 && params[6] === 0) {
          // k broadcast in both operands (stride 0) is a valid product of k terms: keep k small.
          const k = params[11] as number;
          if (k > 2 ** 16 && k <= 2 ** 53) params[11] = Math.floor(rand() * 5);
        }
        const r = call(name, params, rand, `seed ${SEED}: ${name}(${params.slice(0, 12).join(", ")})`);
        seen[r] = (seen[r] ?? 0) + 1;
      }
      counts[name] = seen;
    }
    // Both outcomes occur for each binding, so the fuzz reaches the kernels and the checks.
    for (const [name, seen] of Object.entries(counts)) {
      assert.ok((seen.ok ?? 0) > 0, `${name} never ran: ${JSON.stringify(seen)}`);
      assert.ok((seen.RangeError ?? 0) + (seen.TypeError ?? 0) > 0, `${name} never refused: ${JSON.stringify(seen)}`);
    }
  });

  it("setThreads, alloc and setIsa with extreme arguments", () => {
    const A = addon as RawAddon;
    const setThreads = A.setThreads as (n: unknown) => void;
    const alloc = A.alloc as (n: unknown) => ArrayBuffer | null;
    const setIsa = A.setIsa as (n: unknown) => boolean;
    const info = A.info as () => { threads: number; isa: string };
    const before = info();
    try {
      for (const n of [2 ** 31 - 1, -5, Number.NaN, 2 ** 40, "x", undefined]) setThreads(n);
      assert.ok(info().threads >= 1 && info().threads <= 256, String(info().threads));
    } finally {
      setThreads(before.threads);
    }
    for (const n of [-1, 0, Number.NaN, Number.POSITIVE_INFINITY, 1e300, 2 ** 62, "x"]) assert.equal(alloc(n), null, String(n));
    for (const n of ["", "x".repeat(1000), 5, null]) assert.equal(setIsa(n), false, String(n));
    assert.equal(info().isa, before.isa);
  });
});
