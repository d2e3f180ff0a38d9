// The native backend against straightforward JavaScript loops: every primitive and fused kernel,
// on random sizes (1, primes, large), broadcast (stride 0), transposed and strided views, int32 data,
// each GEMM instruction-set path and several thread counts.
//   node --import tsx --test test/backends/native.test.ts
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeBackend, nativeInfo, nativeLoadError, nativeTesting } from "../../src/backends/native/index.js";
import { BINARY_OPS, type BinaryOp, type MatView, type TypedArray, UNARY_OPS, type UnaryOp, type View } from "../../src/tensor/backend.js";

const B = nativeBackend;
const skipReason = B ? false : `native addon not built: ${nativeLoadError}`;

// ---- deterministic random numbers ----------------------------------------------------------------
let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
}
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

// ---- strided views ----------------------------------------------------------------------------
const SIZES = [1, 1, 2, 3, 5, 7, 13, 17, 31, 64];
function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
/** A view with the given shape over a fresh buffer, with a random layout: contiguous, permuted
 *  (transposed), padded (strided), offset, or with some dims broadcast (stride 0). */
function randomView(shape: number[], kind: "f32" | "i32" = "f32", allowBroadcast = true, scale = 2): View {
  const nd = shape.length;
  // allocate a padded, permuted base
  const perm = shape.map((_, i) => i);
  if (rand() < 0.5) perm.sort(() => rand() - 0.5);
  const pad = shape.map(() => (rand() < 0.3 ? randInt(1, 3) : 0));
  const strides = new Array<number>(nd).fill(0);
  let acc = 1;
  for (let j = nd - 1; j >= 0; j--) {
    const d = perm[j];
    strides[d!] = acc;
    acc *= shape[d!]! + pad[d!]!;
  }
  if (allowBroadcast) for (let d = 0; d < nd; d++) if (rand() < 0.2) strides[d] = 0;
  if (rand() < 0.2 && nd > 0) {
    const d = randInt(0, nd - 1);
    strides[d] = -strides[d]!;
  }
  let lo = 0;
  let hi = 0;
  for (let d = 0; d < nd; d++) {
    if (shape[d] === 0) continue;
    const e = (shape[d]! - 1) * strides[d]!;
    if (e < 0) lo += e;
    else hi += e;
  }
  const offset = -lo + randInt(0, 3);
  const len = offset + hi + 1 + randInt(0, 3);
  const data: TypedArray = kind === "f32" ? randn(len, scale) : Int32Array.from(randn(len, 10), (v) => Math.round(v));
  return { data, shape, strides, offset };
}
function randomShape(maxNd = 4): number[] {
  const nd = randInt(0, maxNd);
  return Array.from({ length: nd }, () => pick(SIZES));
}
/** Element offsets of a view in row-major order of its shape. */
function offsets(v: { shape: readonly number[]; strides: readonly number[]; offset: number }): number[] {
  const n = numel(v.shape);
  const out = new Array<number>(n);
  const nd = v.shape.length;
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < n; i++) {
    let o = v.offset;
    for (let d = 0; d < nd; d++) o += idx[d]! * v.strides[d]!;
    out[i] = o;
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < v.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}
function read(v: View): number[] {
  return offsets(v).map((o) => v.data[o]!);
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`);
      continue;
    }
    if (a === e) continue;
    const tol = atol + rtol * Math.abs(e!);
    assert.ok(Math.abs(a! - e!) <= tol, `${what}[${i}]: got ${a}, expected ${e} (tol ${tol})`);
  }
}

function erf(x: number): number {
  // Series for |x| < 3, continued-fraction-free asymptotic complement beyond: accurate to ~1e-15.
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = x;
    let term = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc via continued fraction (Lentz)
  let f = ax;
  let C = ax;
  let D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const UNARY_JS: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => Math.max(x, 0), // NaN stays NaN, as in torch.relu
  erf,
  abs: Math.abs,
  sin: Math.sin,
  cos: Math.cos,
};
const BINARY_JS: Record<BinaryOp, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
  pow: (x, y) => (x === 1 ? 1 : y === 0 ? 1 : x ** y),
  maximum: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y)),
  minimum: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y)),
  eq: (x, y) => (x === y ? 1 : 0),
  ne: (x, y) => (x !== y ? 1 : 0),
  lt: (x, y) => (x < y ? 1 : 0),
  le: (x, y) => (x <= y ? 1 : 0),
  gt: (x, y) => (x > y ? 1 : 0),
  ge: (x, y) => (x >= y ? 1 : 0),
};

function withThreads(n: number, f: () => void): void {
  const before = nativeInfo().threads;
  nativeTesting.setThreads(n);
  try {
    f();
  } finally {
    nativeTesting.setThreads(before);
  }
}

const FAMILIES = [
  "gemm",
  "gemv",
  "elementwise",
  "softmax",
  "layerNorm",
  "gelu",
  "crossEntropy",
  "adamw",
  "attention",
  "attentionBackward",
] as const;

const maybe = (t: TestContext): boolean => {
  if (!B) {
    t.skip(String(skipReason));
    return false;
  }
  return true;
};

describe("native backend", () => {
  it("reports the instruction set serving each kernel family, the sets this CPU runs, and threads", (t) => {
    if (!maybe(t)) return;
    const info = nativeInfo();
    assert.ok(info.available.length >= 1, "at least the generic set");
    assert.equal(info.available[info.available.length - 1], "generic");
    for (const isa of info.available) assert.ok(["avx512", "avx2", "neon", "generic"].includes(isa), isa);
    assert.deepEqual(Object.keys(info.kernels).sort(), [...FAMILIES].sort());
    // Every family from MOXING_ISA when it is set (npm test runs this file once per set), else
    // from the best set this CPU runs.
    const want = process.env.MOXING_ISA || info.available[0];
    for (const f of FAMILIES) assert.equal(info.kernels[f], want, f);
    assert.equal(info.isa, info.kernels.gemm);
    assert.ok(info.threads >= 1);
    assert.equal(B!.name, "native");
  });

  it("setIsa switches every family, and refuses a set the CPU lacks without changing anything", (t) => {
    if (!maybe(t)) return;
    const info = nativeInfo();
    try {
      for (const isa of info.available) {
        assert.equal(nativeTesting.setIsa(isa), true, isa);
        for (const f of FAMILIES) assert.equal(nativeInfo().kernels[f], isa, `${isa} ${f}`);
      }
      const before = nativeInfo().kernels;
      for (const isa of ["avx512", "avx2", "neon", "generic"] as const) {
        if (!info.available.includes(isa)) assert.equal(nativeTesting.setIsa(isa), false, isa);
      }
      assert.equal(nativeTesting.setIsa("sse9" as "avx2"), false);
      assert.deepEqual(nativeInfo().kernels, before);
    } finally {
      nativeTesting.setIsa(info.kernels.gemm as "avx2");
    }
  });

  it("unary ops on strided, broadcast and int32 views", (t) => {
    if (!maybe(t)) return;
    for (let it = 0; it < 300; it++) {
      const op = UNARY_OPS[it % UNARY_OPS.length];
      const shape = randomShape();
      const x = randomView(shape, it % 7 === 3 ? "i32" : "f32", true, op === "exp" ? 20 : 4);
      if (op === "log" || op === "sqrt")
        for (let i = 0; i < x.data.length; i++) x.data[i] = Math.abs(x.data[i]!) + (x.data instanceof Int32Array ? 1 : 1e-3);
      const out = new Float32Array(numel(shape));
      B!.unary(op!, x, out);
      const exp = read(x).map(UNARY_JS[op!]);
      close(out, exp, 3e-6, op === "sin" || op === "cos" ? 2e-6 : 1e-7, `unary ${op} ${shape}`);
    }
  });

  it("unary special values match PyTorch (NaN, +-inf, extremes) on the vector paths", (t) => {
    if (!maybe(t)) return;
    const vals = [NaN, Infinity, -Infinity, 0, -0, 88.7, 88.8, -87.5, -103, -104.5, 1e-8, -1e-8, 0.6, 0.65, 9, -9, 30, -30];
    const x = new Float32Array(64);
    for (let i = 0; i < x.length; i++) x[i] = vals[i % vals.length]!;
    const view = { data: x, shape: [64], strides: [1], offset: 0 };
    for (const op of ["exp", "tanh", "sigmoid", "relu", "neg", "abs"] as const) {
      const out = new Float32Array(64);
      B!.unary(op, view, out);
      const exp = Array.from(x, (v) => (op === "relu" && Number.isNaN(v) ? NaN : UNARY_JS[op](v)));
      close(out, Float32Array.from(exp), 3e-6, 3e-45, `special ${op}`); // float32 sigmoid(-103) underflows to 0 as in torch
    }
  });

  it("large element-wise ops use threads and stay exact", (t) => {
    if (!maybe(t)) return;
    for (const threads of [1, 2, 3]) {
      withThreads(threads, () => {
        const n = 300_007;
        const a = { data: randn(n), shape: [n], strides: [1], offset: 0 };
        const b = { data: randn(n), shape: [n], strides: [1], offset: 0 };
        const out = new Float32Array(n);
        B!.binary("mul", a, b, out);
        for (let i = 0; i < n; i += 997) assert.equal(out[i], Math.fround(a.data[i]! * b.data[i]!));
        B!.unary("exp", a, out);
        close(out, Array.from(a.data, Math.exp), 3e-6, 0, "exp big");
        const rows = 1000;
        const cols = 301;
        const m = { data: randn(rows * cols), shape: [rows, cols], strides: [cols, 1], offset: 0 };
        const bias = { data: randn(cols), shape: [rows, cols], strides: [0, 1], offset: 0 };
        const o2 = new Float32Array(rows * cols);
        B!.binary("add", m, bias, o2);
        for (let i = 0; i < rows * cols; i += 101) assert.equal(o2[i], Math.fround(m.data[i]! + bias.data[i % cols]!));
      });
    }
  });

  it("binary ops: broadcasts, scalars, transposes, int32 inputs and outputs", (t) => {
    if (!maybe(t)) return;
    for (let it = 0; it < 600; it++) {
      const op = BINARY_OPS[it % BINARY_OPS.length];
      const shape = randomShape();
      const kind = it % 5 === 4 ? "i32" : "f32";
      const a = randomView(shape, kind);
      const b = randomView(shape, kind);
      if (op === "pow") {
        for (let i = 0; i < a.data.length; i++) a.data[i] = Math.abs(a.data[i]!) + 0.5;
        if (kind === "i32") for (let i = 0; i < b.data.length; i++) b.data[i] = Math.abs(b.data[i]!) % 4;
      }
      if (op === "div" && kind === "i32") for (let i = 0; i < b.data.length; i++) if (b.data[i] === 0) b.data[i] = 3;
      if (rand() < 0.3 && kind === "f32") {
        // equal elements so eq/le/ge see ties
        for (let i = 0; i < Math.min(a.data.length, b.data.length); i += 2) b.data[i] = a.data[i]!;
      }
      const outKind = kind === "i32" ? (rand() < 0.5 ? "i32" : "f32") : rand() < 0.15 ? "i32" : "f32";
      if (outKind === "i32" && kind === "f32" && !op!.match(/^(eq|ne|lt|le|gt|ge)$/)) continue;
      const n = numel(shape);
      const out = outKind === "f32" ? new Float32Array(n) : new Int32Array(n);
      B!.binary(op!, a, b, out);
      const av = read(a);
      const bv = read(b);
      const exp = av.map((x, i) => BINARY_JS[op!](x, bv[i]!));
      const expTyped = outKind === "f32" ? Float32Array.from(exp) : Int32Array.from(exp);
      close(out, expTyped, op === "pow" ? 3e-6 : 0, 0, `binary ${op} ${kind}->${outKind} ${shape}`);
    }
  });

  it("binary NaN semantics for maximum/minimum and comparisons", (t) => {
    if (!maybe(t)) return;
    const a = Float32Array.from([NaN, 1, NaN, -0, 2]);
    const b = Float32Array.from([1, NaN, NaN, 0, 2]);
    const va = { data: a, shape: [5], strides: [1], offset: 0 };
    const vb = { data: b, shape: [5], strides: [1], offset: 0 };
    const out = new Float32Array(5);
    for (const op of ["maximum", "minimum", "eq", "ne", "lt", "ge"] as const) {
      B!.binary(op, va, vb, out);
      close(out, Float32Array.from(Array.from(a, (x, i) => BINARY_JS[op](x, b[i]!))), 0, 0, `nan ${op}`);
    }
  });

  it("where with float and int32 conditions and values", (t) => {
    if (!maybe(t)) return;
    for (let it = 0; it < 200; it++) {
      const shape = randomShape();
      const kind = it % 3 === 2 ? "i32" : "f32";
      const c = randomView(shape, it % 2 ? "i32" : "f32");
      for (let i = 0; i < c.data.length; i++) c.data[i] = rand() < 0.5 ? 0 : c.data[i]!;
      const a = randomView(shape, kind);
      const b = randomView(shape, kind);
      const n = numel(shape);
      const out = kind === "f32" ? new Float32Array(n) : new Int32Array(n);
      B!.where(c, a, b, out);
      const cv = read(c);
      const av = read(a);
      const bv = read(b);
      close(
        out,
        cv.map((x, i) => (x !== 0 ? av[i]! : bv[i]!)),
        0,
        0,
        `where ${shape}`,
      );
    }
  });

  it("copy between any strides, with int32<->float32 casts", (t) => {
    if (!maybe(t)) return;
    for (let it = 0; it < 300; it++) {
      const shape = randomShape();
      const sk = pick(["f32", "i32"] as const);
      const dk = pick(["f32", "i32"] as const);
      const src = randomView(shape, sk, true, 1e3);
      const dst = randomView(shape, dk, false);
      if (sk === "f32" && rand() < 0.2) for (let i = 0; i < src.data.length; i += 3) src.data[i] = pick([NaN, -2.9, 2.9, -0.5, 3e9, -3e9]);
      const before = Array.from(dst.data);
      B!.copy(src, dst);
      const so = offsets(src);
      const dOff = offsets(dst);
      const expected = before.slice();
      const conv = (v: number): number => (dk === "i32" ? v | 0 : Math.fround(v));
      for (let i = 0; i < so.length; i++) expected[dOff[i]!] = conv(src.data[so[i]!]!);
      close(dst.data, expected, 0, 0, `copy ${sk}->${dk} ${shape}`);
    }
    // a big transposed copy (threaded)
    const r = 513;
    const c = 300;
    const src = { data: randn(r * c), shape: [c, r], strides: [1, c], offset: 0 };
    const dst = { data: new Float32Array(r * c), shape: [c, r], strides: [r, 1], offset: 0 };
    B!.copy(src, dst);
    for (let i = 0; i < c; i += 7) for (let j = 0; j < r; j += 11) assert.equal(dst.data[i * r + j], src.data[j * c + i]);
  });

  it("reduce sum and max over any axes of strided views", (t) => {
    if (!maybe(t)) return;
    for (const threads of [1, 2]) {
      withThreads(threads, () => {
        for (let it = 0; it < 300; it++) {
          const shape = it % 50 === 0 ? [pick([1, 3, 600]), 257, pick([1, 129])] : randomShape();
          const kind = it % 6 === 5 ? "i32" : "f32";
          const x = randomView(shape, kind);
          const axes = shape.map((_, i) => i).filter(() => rand() < 0.5);
          const op = it % 2 ? "max" : "sum";
          const outShape = shape.filter((_, i) => !axes.includes(i));
          const out = new Float32Array(numel(outShape));
          if (op === "max" && axes.some((a) => shape[a] === 0)) continue;
          B!.reduce(op, x, axes, out);
          const exp = new Float64Array(out.length).fill(op === "max" ? -Infinity : 0);
          const xo = offsets(x);
          const nd = shape.length;
          const idx = new Array<number>(nd).fill(0);
          for (let i = 0; i < xo.length; i++) {
            let o = 0;
            for (let d = 0; d < nd; d++) if (!axes.includes(d)) o = o * shape[d]! + idx[d]!;
            const v = x.data[xo[i]!];
            exp[o] = op === "max" ? Math.max(exp[o]!, v!) : exp[o]! + v!;
            for (let d = nd - 1; d >= 0; d--) {
              if (++idx[d]! < shape[d]!) break;
              idx[d] = 0;
            }
          }
          close(out, Float32Array.from(exp), 1e-6, 1e-5, `reduce ${op} ${shape} axes ${axes}`);
        }
      });
    }
    const x = { data: Float32Array.from([1, NaN, 3, 4]), shape: [2, 2], strides: [2, 1], offset: 0 };
    const out = new Float32Array(2);
    B!.reduce("max", x, [1], out);
    assert.ok(Number.isNaN(out[0]));
    assert.equal(out[1], 4);
  });

  function refMatmul(a: MatView, b: MatView, batch: number, m: number, n: number, k: number): Float64Array {
    const out = new Float64Array(batch * m * n);
    for (let bi = 0; bi < batch; bi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++)
            s +=
              a.data[a.offset + bi * a.batchStride + i * a.rowStride + p * a.colStride]! *
              b.data[b.offset + bi * b.batchStride + p * b.rowStride + j * b.colStride]!;
          out[(bi * m + i) * n + j] = s;
        }
    return out;
  }

  function randomMat(batch: number, rows: number, cols: number, shareBatch: boolean): MatView {
    const layout = randInt(0, 3); // 0 row-major, 1 transposed, 2 strided rows, 3 arbitrary strides
    let rowStride: number;
    let colStride: number;
    let span: number;
    if (layout === 0) {
      rowStride = cols + (rand() < 0.3 ? randInt(1, 5) : 0);
      colStride = 1;
      span = rows * rowStride;
    } else if (layout === 1) {
      colStride = rows + (rand() < 0.3 ? randInt(1, 5) : 0);
      rowStride = 1;
      span = cols * colStride;
    } else if (layout === 2) {
      rowStride = 2 * cols + 1;
      colStride = 2;
      span = rows * rowStride;
    } else {
      colStride = 3;
      rowStride = 3 * cols + 2;
      span = rows * rowStride;
    }
    const batchStride = shareBatch ? 0 : span + randInt(0, 4);
    const offset = randInt(0, 5);
    const len = offset + (shareBatch ? span : batch * batchStride) + 8;
    return { data: randn(len), offset, batchStride, rowStride, colStride };
  }

  function checkMatmulRandom(iters: number, label: string): void {
    const dims = [1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 64, 97];
    for (let it = 0; it < iters; it++) {
      const batch = pick([1, 1, 1, 2, 3]);
      const m = pick(dims);
      const n = pick(dims);
      const k = it % 17 === 0 ? 0 : pick([...dims, 300]);
      const a = randomMat(batch, m, k, batch > 1 && rand() < 0.3);
      const b = randomMat(batch, k, n, batch > 1 && rand() < 0.3);
      const out = new Float32Array(batch * m * n).fill(NaN);
      B!.matmul(a, b, out, batch, m, n, k);
      close(out, refMatmul(a, b, batch, m, n, k), 1e-4, 1e-4 * Math.sqrt(k + 1), `${label} matmul b${batch} ${m}x${n}x${k}`);
    }
  }

  for (const isa of ["avx512", "avx2", "neon", "generic"] as const) {
    it(`matmul (${isa} kernels): every layout, edge tiles, batches incl. stride 0`, (t) => {
      if (!maybe(t)) return;
      const before = nativeInfo().isa;
      if (!nativeTesting.setIsa(isa)) {
        t.skip(`this CPU lacks ${isa}`);
        return;
      }
      try {
        checkMatmulRandom(150, isa);
        // larger products: cache blocking, tall folded batches, threading
        withThreads(2, () => {
          for (const [batch, m, n, k, share] of [
            [1, 257, 131, 300, false],
            [1, 64, 770, 513, false],
            [3, 67, 45, 129, true],
            [4, 33, 200, 64, false],
            [1, 600, 40, 270, false],
          ] as const) {
            const a = randomMat(batch, m, k, false);
            const b = randomMat(batch, k, n, share);
            const out = new Float32Array(batch * m * n);
            B!.matmul(a, b, out, batch, m, n, k);
            close(out, refMatmul(a, b, batch, m, n, k), 1e-4, 1e-4 * Math.sqrt(k), `${isa} big ${batch}x${m}x${n}x${k}`);
          }
        });
      } finally {
        nativeTesting.setIsa(before as "avx512");
      }
    });
  }

  /** Row-major (k, n) B ("nn") or the nn.Linear weight layout (n, k) used as Wᵀ ("nt"). */
  function weightMat(k: number, n: number, layout: "nn" | "nt", batch = 1): MatView {
    const span = k * n + 3;
    const data = randn(batch * span + 2);
    return layout === "nn"
      ? { data, offset: 2, batchStride: batch > 1 ? span : 0, rowStride: n, colStride: 1 }
      : { data, offset: 2, batchStride: batch > 1 ? span : 0, rowStride: 1, colStride: k };
  }

  for (const isa of ["avx512", "avx2", "neon", "generic"] as const) {
    it(`matmul (${isa}): matrix-vector (m = 1, n = 1) and small-m paths, odd sizes, threads`, (t) => {
      if (!maybe(t)) return;
      const before = nativeInfo().isa;
      if (!nativeTesting.setIsa(isa)) {
        t.skip(`this CPU lacks ${isa}`);
        return;
      }
      try {
        for (const threads of [1, 2, 3]) {
          withThreads(threads, () => {
            // m = 1: x @ W (nn) and x @ Wᵀ (nt), x contiguous or strided, batched
            for (const [n, k, batch] of [
              [1, 1, 1],
              [5, 3, 1],
              [17, 33, 2],
              [31, 1, 1],
              [1031, 77, 1],
              [300, 1029, 1],
              [2051, 300, 3],
              [64, 16, 5],
            ] as const) {
              for (const layout of ["nn", "nt"] as const) {
                const xs = rand() < 0.5 ? 1 : 3;
                const a: MatView = { data: randn(batch * k * xs + 4), offset: 1, batchStride: k * xs, rowStride: k * xs, colStride: xs };
                const b = weightMat(k, n, layout, batch);
                const out = new Float32Array(batch * n).fill(NaN);
                B!.matmul(a, b, out, batch, 1, n, k);
                close(
                  out,
                  refMatmul(a, b, batch, 1, n, k),
                  1e-4,
                  1e-4 * Math.sqrt(k),
                  `${isa} gemv ${layout} b${batch} 1x${n}x${k} t${threads}`,
                );
              }
            }
            // n = 1: A @ v with A row-major or transposed
            for (const [m, k] of [
              [1, 1],
              [7, 13],
              [1500, 301],
              [33, 2049],
            ] as const) {
              for (const trans of [false, true]) {
                const a: MatView = trans
                  ? { data: randn(m * k + 1), offset: 1, batchStride: 0, rowStride: 1, colStride: m }
                  : { data: randn(m * k + 1), offset: 1, batchStride: 0, rowStride: k, colStride: 1 };
                const b: MatView = { data: randn(2 * k), offset: 0, batchStride: 0, rowStride: 2, colStride: 1 };
                const out = new Float32Array(m).fill(NaN);
                B!.matmul(a, b, out, 1, m, 1, k);
                close(out, refMatmul(a, b, 1, m, 1, k), 1e-4, 1e-4 * Math.sqrt(k), `${isa} gemv n=1 ${m}x${k} trans=${trans}`);
              }
            }
            // small m: A·Wᵀ over W's rows in place (m <= 16), B panels packed on the fly (k beyond one
            // cache block, n beyond one nc block)
            for (const [m, n, k] of [
              [2, 45, 7],
              [6, 5, 1],
              [3, 97, 300],
              [16, 130, 35],
              [13, 67, 129],
              [9, 33, 513],
              [17, 800, 257],
              [64, 131, 600],
              [95, 3100, 40],
            ] as const) {
              for (const layout of ["nn", "nt"] as const) {
                const a: MatView = { data: randn(m * k), offset: 0, batchStride: 0, rowStride: k, colStride: 1 };
                const b = weightMat(k, n, layout);
                const out = new Float32Array(m * n).fill(NaN);
                B!.matmul(a, b, out, 1, m, n, k);
                close(out, refMatmul(a, b, 1, m, n, k), 1e-4, 1e-4 * Math.sqrt(k), `${isa} small-m ${layout} ${m}x${n}x${k} t${threads}`);
              }
            }
          });
        }
      } finally {
        nativeTesting.setIsa(before as "avx512");
      }
    });
  }

  it("MOXING_ISA and MOXING_THREADS select the path in a fresh process", (t) => {
    if (!maybe(t)) return;
    const here = fileURLToPath(import.meta.url);
    const mod = new URL("../../src/backends/native/index.ts", import.meta.url).href;
    for (const isa of nativeInfo().available) {
      const code = `import(${JSON.stringify(mod)}).then((m) => {
        const B = m.nativeBackend; const a = new Float32Array([1,2,3,4,5,6]); const out = new Float32Array(4);
        B.matmul({data:a,offset:0,batchStride:0,rowStride:3,colStride:1},{data:a,offset:0,batchStride:0,rowStride:1,colStride:3},out,1,2,2,3);
        console.log(JSON.stringify({ info: m.nativeInfo(), out: Array.from(out) }));
      })`;
      const r = spawnSync(process.execPath, ["--import", "tsx", "-e", code], {
        env: { ...process.env, MOXING_ISA: isa, MOXING_THREADS: "3" },
        encoding: "utf8",
        cwd: new URL("../..", `file://${here}`).pathname,
      });
      assert.equal(r.status, 0, r.stderr);
      const res = JSON.parse(r.stdout.trim().split("\n").pop() as string);
      assert.equal(res.info.threads, 3);
      for (const f of FAMILIES) assert.equal(res.info.kernels[f], isa, `${isa} ${f}`);
      assert.deepEqual(res.out, [14, 32, 32, 77]);
    }
  });

  it("MOXING_ISA naming a set this CPU lacks, or no set at all, is refused with the sets it runs", (t) => {
    if (!maybe(t)) return;
    const lacking = (["avx512", "avx2", "neon"] as const).filter((i) => !nativeInfo().available.includes(i));
    const cwd = new URL("../..", import.meta.url).pathname;
    const code = "import('./src/index.ts').then(m => console.log(m.getBackend().name, m.tensor([1, 2]).add(1).toArray().join(',')))";
    for (const isa of [...lacking, "sse9"]) {
      // The default backend says once why native is unavailable and runs on the reference backend ...
      const r = spawnSync(process.execPath, ["--import", "tsx", "-e", code], {
        env: { ...process.env, MOXING_ISA: isa, MOXING_BACKEND: "", MOXING_QUIET: "" },
        encoding: "utf8",
        cwd,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), "reference 2,3");
      assert.match(r.stderr, new RegExp(`native backend is unavailable: MOXING_ISA=${isa} .*${nativeInfo().available.join(",")}`));
      // ... and asking for the native backend fails with that message.
      const forced = spawnSync(process.execPath, ["--import", "tsx", "-e", code], {
        env: { ...process.env, MOXING_ISA: isa, MOXING_BACKEND: "native" },
        encoding: "utf8",
        cwd,
      });
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, new RegExp(`MOXING_ISA=${isa} (asks for an instruction set this CPU lacks|is not an instruction set)`));
    }
  });

  it("gather and indexAdd (repeated indices)", (t) => {
    if (!maybe(t)) return;
    for (const [V, C, n] of [
      [5, 1, 7],
      [50, 33, 20],
      [1000, 768, 300],
    ]) {
      const table = randn(V! * C!);
      const idx = Int32Array.from({ length: n! }, () => randInt(0, V! - 1));
      const out = new Float32Array(n! * C!);
      B!.gather(table, idx, out, C!);
      for (let r = 0; r < n!; r++) for (let c = 0; c < C!; c++) assert.equal(out[r * C! + c], table[idx[r]! * C! + c]);
      const dst = randn(V! * C!);
      const exp = Float64Array.from(dst);
      const src = randn(n! * C!);
      for (let r = 0; r < n!; r++) for (let c = 0; c < C!; c++) exp[idx[r]! * C! + c]! += src[r * C! + c]!;
      B!.indexAdd(dst, idx, src, C!);
      close(dst, exp, 1e-6, 1e-6, "indexAdd");
    }
    assert.throws(() => B!.gather(new Float32Array(4), Int32Array.from([2]), new Float32Array(2), 2), RangeError);
  });

  it("rejects out-of-bounds views instead of reading past a buffer", (t) => {
    if (!maybe(t)) return;
    const x = { data: new Float32Array(4), shape: [2, 3], strides: [3, 1], offset: 0 };
    assert.throws(() => B!.unary("exp", x, new Float32Array(6)), RangeError);
    // Each operand of every view op is checked, the error naming which one.
    const ok = { data: new Float32Array(6), shape: [2, 3], strides: [3, 1], offset: 0 };
    const out = new Float32Array(6);
    assert.throws(() => B!.binary("add", ok, x, out), /binary input b out of bounds/);
    assert.throws(() => B!.binary("add", x, ok, out), /binary input a out of bounds/);
    assert.throws(() => B!.where(ok, ok, x, out), /where input b out of bounds/);
    assert.throws(() => B!.where(x, ok, ok, out), /where cond out of bounds/);
    assert.throws(() => B!.copy(ok, x), /copy destination out of bounds/);
    assert.throws(() => B!.reduce("sum", x, [1], new Float32Array(2)), /reduce input out of bounds/);
    const a = { data: new Float32Array(4), offset: 0, batchStride: 0, rowStride: 2, colStride: 1 };
    assert.throws(() => B!.matmul(a, a, new Float32Array(9), 1, 3, 3, 2), RangeError);
  });

  // ---- fused kernels --------------------------------------------------------------------------

  const rowShapes: [number, number][] = [
    [1, 1],
    [3, 7],
    [5, 31],
    [17, 100],
    [64, 1000],
    [300, 257],
  ];

  function softmaxRef(x: Float32Array, rows: number, cols: number, log: boolean): Float64Array {
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let m = -Infinity;
      for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
      let s = 0;
      for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
      for (let c = 0; c < cols; c++) {
        const v = x[r * cols + c]! - m;
        out[r * cols + c] = log ? v - Math.log(s) : Math.exp(v) / s;
      }
    }
    return out;
  }

  it("softmax / log_softmax forward and backward", (t) => {
    if (!maybe(t)) return;
    for (const [rows, cols] of rowShapes) {
      for (const log of [false, true]) {
        const x = randn(rows * cols, 8);
        const out = new Float32Array(rows * cols);
        B!.fused!.softmax!(x, out, rows, cols, log);
        const ref = softmaxRef(x, rows, cols, log);
        close(out, ref, 1e-5, log ? 1e-5 : 1e-7, `softmax log=${log} ${rows}x${cols}`);
        const dy = randn(rows * cols);
        const dx = new Float32Array(rows * cols);
        B!.fused!.softmaxBackward!(out, dy, dx, rows, cols, log);
        const exp = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += log ? dy[r * cols + c]! : dy[r * cols + c]! * out[r * cols + c]!;
          for (let c = 0; c < cols; c++) {
            const i = r * cols + c;
            exp[i] = log ? dy[i]! - Math.exp(out[i]!) * s : out[i]! * (dy[i]! - s);
          }
        }
        close(dx, exp, 1e-4, 1e-5, `softmaxBackward log=${log} ${rows}x${cols}`);
      }
    }
    const x = Float32Array.from([1, NaN, 2, -Infinity, 0, 1]);
    const out = new Float32Array(6);
    B!.fused!.softmax!(x, out, 2, 3, false);
    assert.ok(out.slice(0, 3).every(Number.isNaN));
    close(out.slice(3), softmaxRef(x.slice(3), 1, 3, false), 1e-6, 1e-7, "softmax -inf");
  });

  it("layerNorm forward and backward, with and without affine", (t) => {
    if (!maybe(t)) return;
    for (const [rows, cols] of rowShapes) {
      for (const affine of [true, false]) {
        const x = randn(rows * cols, 3);
        for (let i = 0; i < x.length; i++) x[i]! += 5;
        const w = affine ? randn(cols) : null;
        const b = affine ? randn(cols) : null;
        const out = new Float32Array(rows * cols);
        const mean = new Float32Array(rows);
        const rstd = new Float32Array(rows);
        const eps = 1e-5;
        B!.fused!.layerNorm!(x, w, b, out, mean, rstd, rows, cols, eps);
        const eo = new Float64Array(rows * cols);
        const em = new Float64Array(rows);
        const er = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += x[r * cols + c]!;
          const mu = s / cols;
          let v = 0;
          for (let c = 0; c < cols; c++) v += (x[r * cols + c]! - mu) ** 2;
          const rs = 1 / Math.sqrt(v / cols + eps);
          em[r] = mu;
          er[r] = rs;
          for (let c = 0; c < cols; c++) eo[r * cols + c] = (x[r * cols + c]! - mu) * rs * (w ? w[c]! : 1) + (b ? b[c]! : 0);
        }
        close(mean, em, 1e-6, 1e-6, "ln mean");
        close(rstd, er, 1e-5, 1e-6, "ln rstd");
        close(out, eo, 1e-4, 1e-4, `ln out ${rows}x${cols}`);
        const dy = randn(rows * cols);
        const dx = new Float32Array(rows * cols);
        const dw = affine ? randn(cols) : null;
        const db = affine ? randn(cols) : null;
        const edw = dw ? Float64Array.from(dw) : null;
        const edb = db ? Float64Array.from(db) : null;
        B!.fused!.layerNormBackward!(x, w, mean, rstd, dy, dx, dw, db, rows, cols);
        const edx = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          let sg = 0;
          let sgx = 0;
          for (let c = 0; c < cols; c++) {
            const i = r * cols + c;
            const xh = (x[i]! - mean[r]!) * rstd[r]!;
            const g = dy[i]! * (w ? w[c]! : 1);
            sg += g;
            sgx += g * xh;
            if (edw) edw[c]! += dy[i]! * xh;
            if (edb) edb[c]! += dy[i]!;
          }
          for (let c = 0; c < cols; c++) {
            const i = r * cols + c;
            const xh = (x[i]! - mean[r]!) * rstd[r]!;
            const g = dy[i]! * (w ? w[c]! : 1);
            edx[i] = rstd[r]! * (g - sg / cols - (xh * sgx) / cols);
          }
        }
        close(dx, edx, 1e-3, 1e-4, `ln dx ${rows}x${cols}`);
        if (dw && edw) close(dw, edw, 1e-4, 1e-4, "ln dw");
        if (db && edb) close(db, edb, 1e-4, 1e-4, "ln db");
      }
    }
  });

  it("gelu (tanh and exact) forward and backward", (t) => {
    if (!maybe(t)) return;
    for (const n of [1, 7, 100, 100_003]) {
      const x = randn(n, 6);
      x[0] = n > 1 ? -12 : x[0]!;
      const dy = randn(n);
      for (const approx of ["tanh", "none"] as const) {
        const out = new Float32Array(n);
        B!.fused!.gelu!(x, out, approx);
        const dx = new Float32Array(n);
        B!.fused!.geluBackward!(x, dy, dx, approx);
        const eo = new Float64Array(n);
        const ed = new Float64Array(n);
        const k0 = Math.sqrt(2 / Math.PI);
        for (let i = 0; i < n; i++) {
          const v = x[i];
          if (approx === "tanh") {
            const u = k0 * (v! + 0.044715 * v! ** 3);
            const th = Math.tanh(u);
            eo[i] = 0.5 * v! * (1 + th);
            ed[i] = dy[i]! * (0.5 * (1 + th) + 0.5 * v! * (1 - th * th) * k0 * (1 + 3 * 0.044715 * v! * v!));
          } else {
            const cdf = 0.5 * (1 + erf(v! / Math.SQRT2));
            eo[i] = v! * cdf;
            ed[i] = dy[i]! * (cdf + (v! * Math.exp(-0.5 * v! * v!)) / Math.sqrt(2 * Math.PI));
          }
        }
        close(out, eo, 1e-5, 1e-6, `gelu ${approx} ${n}`);
        close(dx, ed, 1e-5, 1e-5, `geluBackward ${approx} ${n}`);
      }
    }
  });

  it("crossEntropy forward and backward with ignoreIndex and label smoothing", (t) => {
    if (!maybe(t)) return;
    for (const [rows, cols] of rowShapes) {
      for (const ls of [0, 0.1]) {
        const ignore = -100;
        const logits = randn(rows * cols, 5);
        const targets = Int32Array.from({ length: rows }, (_, r) => (r % 4 === 3 ? ignore : randInt(0, cols - 1)));
        const losses = new Float32Array(rows);
        const lse = new Float32Array(rows);
        B!.fused!.crossEntropy!(logits, targets, losses, lse, rows, cols, ignore, ls);
        const el = new Float64Array(rows);
        const elseRef = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          let m = -Infinity;
          for (let c = 0; c < cols; c++) m = Math.max(m, logits[r * cols + c]!);
          let s = 0;
          let sx = 0;
          for (let c = 0; c < cols; c++) {
            s += Math.exp(logits[r * cols + c]! - m);
            sx += logits[r * cols + c]!;
          }
          const l = m + Math.log(s);
          elseRef[r] = targets[r] === ignore ? 0 : l; // ignored rows: no log-sum-exp (0)
          el[r] = targets[r] === ignore ? 0 : (1 - ls) * (l - logits[r * cols + targets[r]!]!) + ls * (l - sx / cols);
        }
        close(lse, elseRef, 1e-6, 1e-5, "ce lse");
        close(losses, el, 1e-5, 1e-5, `ce loss ${rows}x${cols} ls=${ls}`);
        const dl = randn(rows);
        const dlogits = new Float32Array(rows * cols).fill(NaN);
        B!.fused!.crossEntropyBackward!(logits, targets, lse, dl, dlogits, rows, cols, ignore, ls);
        const ed = new Float64Array(rows * cols);
        const ep = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          if (targets[r] === ignore) continue;
          for (let c = 0; c < cols; c++) {
            const p = Math.exp(logits[r * cols + c]! - elseRef[r]!);
            ep[r * cols + c] = p;
            ed[r * cols + c] = dl[r]! * (p - ls / cols - (c === targets[r] ? 1 - ls : 0));
          }
        }
        close(dlogits, ed, 1e-4, 1e-6, `ce backward ${rows}x${cols} ls=${ls}`);
        // With probs: the forward also writes the softmax of every kept row (ignored rows' are
        // unspecified), and the backward from it, in place over it, gives the same gradient.
        const probs = new Float32Array(rows * cols).fill(NaN);
        const losses2 = new Float32Array(rows);
        B!.fused!.crossEntropy!(logits, targets, losses2, lse, rows, cols, ignore, ls, probs);
        close(losses2, el, 1e-5, 1e-5, `ce loss with probs ${rows}x${cols} ls=${ls}`);
        for (let r = 0; r < rows; r++) {
          if (targets[r] === ignore) probs.fill(0, r * cols, (r + 1) * cols);
        }
        close(probs, ep, 1e-5, 1e-7, `ce probs ${rows}x${cols} ls=${ls}`);
        B!.fused!.crossEntropyBackward!(probs, targets, lse, dl, probs, rows, cols, ignore, ls, true);
        close(probs, ed, 1e-4, 1e-6, `ce backward from probs ${rows}x${cols} ls=${ls}`);
      }
    }
  });

  // ---- attention -------------------------------------------------------------------------------

  /** Double-precision attention: out, lse and (given dout) dq, dk, dv, from explicit weights. */
  function attentionRef(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dout: Float32Array | null,
    bh: number,
    T: number,
    S: number,
    hs: number,
    scale: number,
    causal: boolean,
  ) {
    const out = new Float64Array(bh * T * hs);
    const lse = new Float64Array(bh * T);
    const dq = new Float64Array(bh * T * hs);
    const dk = new Float64Array(bh * S * hs);
    const dv = new Float64Array(bh * S * hs);
    const off = S - T;
    const p = new Float64Array(S);
    const dp = new Float64Array(S);
    for (let b = 0; b < bh; b++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * hs;
        const nv = causal ? Math.min(S, i + off + 1) : S;
        if (nv <= 0) {
          for (let d = 0; d < hs; d++) out[qi + d] = NaN;
          lse[b * T + i] = -Infinity;
          continue;
        }
        let m = -Infinity;
        for (let j = 0; j < nv; j++) {
          let s = 0;
          for (let d = 0; d < hs; d++) s += q[qi + d]! * k[(b * S + j) * hs + d]!;
          p[j] = s * scale;
          m = Math.max(m, p[j]!);
        }
        let sum = 0;
        for (let j = 0; j < nv; j++) sum += p[j] = Math.exp(p[j]! - m);
        for (let j = 0; j < nv; j++) p[j]! /= sum;
        lse[b * T + i] = m + Math.log(sum);
        for (let d = 0; d < hs; d++) {
          let o = 0;
          for (let j = 0; j < nv; j++) o += p[j]! * v[(b * S + j) * hs + d]!;
          out[qi + d] = o;
        }
        if (!dout) continue;
        let D = 0;
        for (let j = 0; j < nv; j++) {
          let s = 0;
          for (let d = 0; d < hs; d++) s += dout[qi + d]! * v[(b * S + j) * hs + d]!;
          dp[j] = s;
          D += p[j]! * s;
        }
        for (let j = 0; j < nv; j++) {
          const ds = p[j]! * (dp[j]! - D);
          const kj = (b * S + j) * hs;
          for (let d = 0; d < hs; d++) {
            dq[qi + d]! += scale * ds * k[kj + d]!;
            dk[kj + d]! += scale * ds * q[qi + d]!;
            dv[kj + d]! += p[j]! * dout[qi + d]!;
          }
        }
      }
    }
    return { out, lse, dq, dk, dv };
  }

  /** Element-wise check with an absolute floor relative to the largest reference magnitude. */
  function closeNorm(actual: Float32Array, expected: Float64Array, rtol: number, what: string): void {
    let mx = 0;
    for (const e of expected) if (Number.isFinite(e)) mx = Math.max(mx, Math.abs(e));
    close(actual, expected, rtol, rtol * mx + 1e-6, what);
  }

  function checkAttention(bh: number, T: number, S: number, hs: number, causal: boolean, backward = true): void {
    const what = `attention bh=${bh} T=${T} S=${S} hs=${hs} causal=${causal}`;
    const q = randn(bh * T * hs, 2);
    const k = randn(bh * S * hs, 2);
    const v = randn(bh * S * hs);
    const scale = 1 / Math.sqrt(hs);
    const out = new Float32Array(bh * T * hs).fill(NaN);
    const lse = new Float32Array(bh * T).fill(NaN);
    B!.fused!.attention!(q, k, v, out, lse, bh, T, S, hs, scale, causal);
    const dout = backward ? randn(bh * T * hs) : null;
    const ref = attentionRef(q, k, v, dout, bh, T, S, hs, scale, causal);
    closeNorm(out, ref.out, 2e-5, `${what} out`);
    close(lse, ref.lse, 1e-5, 1e-5, `${what} lse`);
    if (!dout) return;
    const dq = new Float32Array(bh * T * hs).fill(NaN);
    const dk = new Float32Array(bh * S * hs).fill(NaN);
    const dv = new Float32Array(bh * S * hs).fill(NaN);
    B!.fused!.attentionBackward!(q, k, v, out, lse, dout, dq, dk, dv, bh, T, S, hs, scale, causal);
    closeNorm(dq, ref.dq, 3e-5, `${what} dq`);
    closeNorm(dk, ref.dk, 3e-5, `${what} dk`);
    closeNorm(dv, ref.dv, 3e-5, `${what} dv`);
  }

  it("attention forward and backward: causal offsets, T=1 generation, odd head sizes", (t) => {
    if (!maybe(t)) return;
    // fixed edge cases: one row, KV-cache offsets, head sizes 1 / odd / 64, bh 1 / 7
    const cases: [number, number, number, number, boolean][] = [
      [1, 1, 1, 1, true],
      [1, 1, 1, 1, false],
      [7, 1, 256, 64, true],
      [7, 1, 37, 13, false],
      [3, 2, 5, 16, true],
      [1, 64, 64, 64, true],
      [2, 33, 70, 7, true],
      [7, 40, 40, 1, false],
      [1, 100, 257, 64, true],
      [2, 65, 129, 48, false],
      [1, 5, 3, 4, true], // S < T: the first rows see no key
      [2, 40, 300, 128, true], // wide heads, several key tiles per row
      [1, 3, 1000, 96, false], // long context, few rows
    ];
    for (const [bh, T, S, hs, causal] of cases) checkAttention(bh, T, S, hs, causal);
    for (let it = 0; it < 25; it++) {
      const T = pick([1, 1, 2, 3, 17, 31, 32, 33, 64, 65, 100]);
      const S = T + pick([0, 0, 0, 1, 5, 31, 64, 70]);
      checkAttention(pick([1, 2, 7]), T, S, pick([1, 3, 8, 13, 16, 31, 32, 64]), rand() < 0.6);
    }
    // threads: row groups / key groups split one batch-head entry, and the generation path over bh
    for (const threads of [1, 2, 3]) {
      withThreads(threads, () => {
        checkAttention(1, 200, 200, 32, true);
        checkAttention(2, 96, 160, 64, false);
        checkAttention(48, 1, 130, 64, true, false);
      });
    }
  });

  it("adamw matches torch.optim.AdamW", (t) => {
    if (!maybe(t)) return;
    for (const n of [1, 13, 100_001]) {
      const p = randn(n);
      const g = randn(n);
      const m = randn(n, 0.1);
      const v = Float32Array.from(randn(n, 0.1), Math.abs);
      const [lr, b1, b2, eps, wd, step] = [1e-3, 0.9, 0.999, 1e-8, 0.01, 7];
      const bc1 = 1 - b1 ** step;
      const bc2 = 1 - b2 ** step;
      const ep = Float64Array.from(p);
      const em = Float64Array.from(m);
      const ev = Float64Array.from(v);
      for (let i = 0; i < n; i++) {
        ep[i]! -= lr * wd * ep[i]!;
        em[i] = b1 * em[i]! + (1 - b1) * g[i]!;
        ev[i] = b2 * ev[i]! + (1 - b2) * g[i]! * g[i]!;
        ep[i]! -= (lr * (em[i]! / bc1)) / (Math.sqrt(ev[i]! / bc2) + eps);
      }
      B!.fused!.adamw!(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
      close(m, em, 1e-5, 1e-7, "adamw m");
      close(v, ev, 1e-5, 1e-9, "adamw v");
      close(p, ep, 1e-5, 1e-7, "adamw p");
    }
  });
});

describe("fallback when the addon is absent", () => {
  it("moxing says once that native is unavailable and runs on the reference backend", () => {
    const script =
      "import('./src/index.ts').then(m => { const a = m.tensor([1, 2]).add(1); m.tensor([3]).mul(2); console.log(m.getBackend().name, a.toArray().join(',')); })";
    const r = spawnSync(process.execPath, ["--import", "tsx", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, MOXING_NATIVE_ADDON: "/nonexistent/moxing_native.node", MOXING_BACKEND: "", MOXING_QUIET: "" },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "reference 2,3");
    const warnings = r.stderr.split("\n").filter((l) => l.includes("native backend is unavailable"));
    assert.equal(warnings.length, 1, `expected one warning, got: ${r.stderr}`);
    assert.match(warnings[0] as string, /npm run build:native/);
    const forced = spawnSync(process.execPath, ["--import", "tsx", "-e", "import('./src/index.ts').then(m => m.tensor([1]).add(1))"], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, MOXING_NATIVE_ADDON: "/nonexistent/moxing_native.node", MOXING_BACKEND: "native" },
      encoding: "utf8",
    });
    assert.notEqual(forced.status, 0);
    assert.match(forced.stderr, /the native backend is unavailable: its addon did not load/);
  });
});
