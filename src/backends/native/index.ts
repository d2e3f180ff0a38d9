// The native CPU backend: a thin wrapper over the N-API addon built from native/ (binding.gyp).
//
// Scalars (op codes, shapes, strides, offsets, sizes, hyper-parameters) are written into a shared
// Float64Array parameter block owned by the addon, and only typed arrays are passed as arguments,
// so a call costs well under a microsecond of overhead. Parameter layouts (must match binding.cc):
//   view ops  P[0]=op, P[1]=nd, P[2..2+nd)=shape, then nd strides per operand, then one offset per operand
//             (reduce appends an nd-long axis mask after the offset).
//   matmul    P[0..12) = aOffset, aBatchStride, aRowStride, aColStride, bOffset, bBatchStride,
//             bRowStride, bColStride, batch, m, n, k
//   others    documented at each call below.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Backend,
  BINARY_OPS,
  type BinaryOp,
  type FusedKernels,
  type MatView,
  type ReduceOp,
  registerBackend,
  reportUnavailable,
  type TypedArray,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "../../tensor/backend.js";

interface Addon {
  params: Float64Array;
  maxDims: number;
  unary(x: TypedArray, out: Float32Array): void;
  binary(a: TypedArray, b: TypedArray, out: TypedArray): void;
  where(c: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void;
  copy(src: TypedArray, dst: TypedArray): void;
  reduce(x: TypedArray, out: Float32Array): void;
  matmul(a: Float32Array, b: Float32Array, out: Float32Array): void;
  gather(table: Float32Array, idx: Int32Array, out: Float32Array): void;
  indexAdd(dst: Float32Array, idx: Int32Array, src: Float32Array): void;
  softmax(x: Float32Array, out: Float32Array): void;
  softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  layerNorm(
    x: Float32Array,
    w: Float32Array | null,
    b: Float32Array | null,
    out: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
  ): void;
  layerNormBackward(
    x: Float32Array,
    w: Float32Array | null,
    mean: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array | null,
    db: Float32Array | null,
  ): void;
  /** Added with interface revision 3 (absent from older builds). */
  rmsNorm?(x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array): void;
  rmsNormBackward?(
    x: Float32Array,
    w: Float32Array | null,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array | null,
  ): void;
  silu?(x: Float32Array, out: Float32Array): void;
  siluBackward?(x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  swiglu?(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  swigluBackward?(gate: Float32Array, up: Float32Array, dy: Float32Array, dgate: Float32Array, dup: Float32Array): void;
  rope?(x: Float32Array, cos: Float32Array, sin: Float32Array, out: Float32Array): void;
  gelu(x: Float32Array, out: Float32Array): void;
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  biasGelu?(x: Float32Array, bias: Float32Array, out: Float32Array): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, probs?: Float32Array): void;
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, dlosses: Float32Array, dlogits: Float32Array): void;
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array): void;
  attentionBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    dout: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
  ): void;
  info(): AddonInfo;
  setIsa(name: string): boolean;
  setThreads(n: number): void;
  alloc?(bytes: number): ArrayBuffer | null;
  /** Quantised products (native/quant.cc); P[0] GGML type, P[1] N, P[2] K, P[3] M. */
  quantMatmul?(w: Uint8Array, x: Float32Array, y: Float32Array): void;
  /** (w_0..w_{n-1}, x, y_0..y_{n-1}); P[0] GGML type, P[1] K, P[2] M, P[3] n, P[4 + i] N_i. */
  quantMatmulMany?(...args: (Uint8Array | Float32Array)[]): void;
  quantInfo?(): { isa: string; types: number[] };
  mapFile?(path: string): ArrayBuffer | null;
  /** Interface revision (absent before 2). */
  abi?: number;
}

/** Kernel families, each served by the instruction set chosen for it when the addon loads. */
export type KernelFamily =
  | "gemm"
  | "gemv"
  | "elementwise"
  | "softmax"
  | "layerNorm"
  | "gelu"
  | "crossEntropy"
  | "adamw"
  | "attention"
  | "attentionBackward";

/** An instruction set the native kernels are built for. */
export type Isa = "avx512" | "avx2" | "neon" | "generic";

interface AddonInfo {
  isa: string;
  threads: number;
  /** Absent before the per-family kernel tables (an older build). */
  kernels?: Record<KernelFamily, string>;
  available?: string;
  isaError?: string;
}

/** The directory holding moxing's package.json (works from src/ under tsx and from dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "moxing") return dir;
    } catch {
      // no package.json here; keep walking up
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the moxing package root (package.json with name 'moxing')");
    dir = up;
  }
}

function load(): { addon: Addon | null; error: string | null } {
  try {
    // MOXING_NATIVE_ADDON points at another build (or at nothing, to test the fallback).
    const file = process.env.MOXING_NATIVE_ADDON || join(packageRoot(), "build", "Release", "moxing_native.node");
    const require = createRequire(import.meta.url);
    return { addon: require(file) as Addon, error: null };
  } catch (e) {
    return { addon: null, error: e instanceof Error ? e.message : String(e) };
  }
}

const UNARY_CODE = Object.fromEntries(UNARY_OPS.map((op, i) => [op, i])) as Record<UnaryOp, number>;
const BINARY_CODE = Object.fromEntries(BINARY_OPS.map((op, i) => [op, i])) as Record<BinaryOp, number>;

function makeBackend(A: Addon): Backend {
  const P = A.params;
  const maxDims = A.maxDims;

  function dims(nd: number, op: string): void {
    if (nd > maxDims) throw new RangeError(`native ${op}: ${nd} dimensions exceed the supported ${maxDims}`);
  }

  // The view-op layout: P[0] = op, P[1] = nd, the shared shape (v0's), each operand's strides, then
  // each operand's offset. Operands are separate parameters, not an array, so a call allocates
  // nothing. Returns the index after the offsets.
  function putViews(name: string, op: number, v0: View, v1?: View, v2?: View): number {
    const shape = v0.shape;
    const nd = shape.length;
    dims(nd, name);
    P[0] = op;
    P[1] = nd;
    for (let i = 0; i < nd; i++) P[2 + i] = shape[i] as number;
    let k = putStrides(2 + nd, v0.strides, nd);
    if (v1) k = putStrides(k, v1.strides, nd);
    if (v2) k = putStrides(k, v2.strides, nd);
    P[k++] = v0.offset;
    if (v1) P[k++] = v1.offset;
    if (v2) P[k++] = v2.offset;
    return k;
  }

  function putStrides(at: number, strides: readonly number[], nd: number): number {
    for (let i = 0; i < nd; i++) P[at + i] = strides[i] as number;
    return at + nd;
  }

  const fused: Partial<FusedKernels> = {
    softmax(x, out, rows, cols, log) {
      P[0] = rows;
      P[1] = cols;
      P[2] = log ? 1 : 0;
      A.softmax(x, out);
    },
    softmaxBackward(y, dy, dx, rows, cols, log) {
      P[0] = rows;
      P[1] = cols;
      P[2] = log ? 1 : 0;
      A.softmaxBackward(y, dy, dx);
    },
    layerNorm(x, weight, bias, out, mean, rstd, rows, cols, eps) {
      P[0] = rows;
      P[1] = cols;
      P[2] = eps;
      A.layerNorm(x, weight, bias, out, mean, rstd);
    },
    layerNormBackward(x, weight, mean, rstd, dy, dx, dweight, dbias, rows, cols) {
      P[0] = rows;
      P[1] = cols;
      A.layerNormBackward(x, weight, mean, rstd, dy, dx, dweight, dbias);
    },
    // rmsNorm: P[0..3) = rows, cols, eps
    rmsNorm(x, weight, out, rstd, rows, cols, eps) {
      P[0] = rows;
      P[1] = cols;
      P[2] = eps;
      (A.rmsNorm as NonNullable<Addon["rmsNorm"]>)(x, weight, out, rstd);
    },
    rmsNormBackward(x, weight, rstd, dy, dx, dweight, rows, cols) {
      P[0] = rows;
      P[1] = cols;
      (A.rmsNormBackward as NonNullable<Addon["rmsNormBackward"]>)(x, weight, rstd, dy, dx, dweight);
    },
    // silu, swiglu and their backward: P[0] = elements
    silu(x, out, n) {
      P[0] = n;
      (A.silu as NonNullable<Addon["silu"]>)(x, out);
    },
    siluBackward(x, dy, dx, n) {
      P[0] = n;
      (A.siluBackward as NonNullable<Addon["siluBackward"]>)(x, dy, dx);
    },
    swiglu(gate, up, out, n) {
      P[0] = n;
      (A.swiglu as NonNullable<Addon["swiglu"]>)(gate, up, out);
    },
    swigluBackward(gate, up, dy, dgate, dup, n) {
      P[0] = n;
      (A.swigluBackward as NonNullable<Addon["swigluBackward"]>)(gate, up, dy, dgate, dup);
    },
    // rope: P[0..5) = n, T, H, hs, inverse
    rope(x, cos, sin, out, n, T, H, hs, inverse) {
      P[0] = n;
      P[1] = T;
      P[2] = H;
      P[3] = hs;
      P[4] = inverse ? 1 : 0;
      (A.rope as NonNullable<Addon["rope"]>)(x, cos, sin, out);
    },
    gelu(x, out, approximate) {
      P[0] = approximate === "tanh" ? 1 : 0;
      A.gelu(x, out);
    },
    geluBackward(x, dy, dx, approximate) {
      P[0] = approximate === "tanh" ? 1 : 0;
      A.geluBackward(x, dy, dx);
    },
    biasGelu(x, bias, out, rows, cols, approximate) {
      P[0] = rows;
      P[1] = cols;
      P[2] = approximate === "tanh" ? 1 : 0;
      (A.biasGelu as NonNullable<Addon["biasGelu"]>)(x, bias, out);
    },
    // crossEntropy: P[0..5) = rows, cols, ignoreIndex, labelSmoothing, 1 when probs is given
    crossEntropy(logits, targets, losses, lse, rows, cols, ignoreIndex, labelSmoothing, probs) {
      P[0] = rows;
      P[1] = cols;
      P[2] = ignoreIndex;
      P[3] = labelSmoothing;
      P[4] = probs ? 1 : 0;
      if (probs) A.crossEntropy(logits, targets, losses, lse, probs);
      else A.crossEntropy(logits, targets, losses, lse);
    },
    // crossEntropyBackward: P[4] = 1 when `logits` holds the forward's softmax
    crossEntropyBackward(logits, targets, lse, dlosses, dlogits, rows, cols, ignoreIndex, labelSmoothing, fromProbs) {
      P[0] = rows;
      P[1] = cols;
      P[2] = ignoreIndex;
      P[3] = labelSmoothing;
      P[4] = fromProbs ? 1 : 0;
      A.crossEntropyBackward(logits, targets, lse, dlosses, dlogits);
    },
    adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
      P[0] = lr;
      P[1] = beta1;
      P[2] = beta2;
      P[3] = eps;
      P[4] = weightDecay;
      P[5] = bc1;
      P[6] = bc2;
      A.adamw(param, grad, m, v);
    },
    // attention: P[0..7) = bh, T, S, hs, scale, causal, kvStride (0: contiguous)
    attention(q, k, v, out, lse, bh, T, S, hs, scale, causal, kvStride) {
      P[0] = bh;
      P[1] = T;
      P[2] = S;
      P[3] = hs;
      P[4] = scale;
      P[5] = causal ? 1 : 0;
      P[6] = kvStride ?? 0;
      A.attention(q, k, v, out, lse);
    },
    attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, bh, T, S, hs, scale, causal, kvStride) {
      P[0] = bh;
      P[1] = T;
      P[2] = S;
      P[3] = hs;
      P[4] = scale;
      P[5] = causal ? 1 : 0;
      P[6] = kvStride ?? 0;
      A.attentionBackward(q, k, v, out, lse, dout, dq, dk, dv);
    },
  };

  // An addon built before the attention kernels existed, or before interface revision 2 (when the
  // kernel learned attention's kvStride and would otherwise read a KV cache as if it were
  // contiguous), still loads: core then composes attention from primitives.
  if (typeof A.attention !== "function" || typeof A.attentionBackward !== "function" || !((A.abi ?? 1) >= 2)) {
    const partial: Partial<FusedKernels> = fused;
    delete partial.attention;
    delete partial.attentionBackward;
  }
  if (typeof A.biasGelu !== "function") delete (fused as Partial<FusedKernels>).biasGelu;
  // An addon built before these kernels (interface revision 3): core composes them from primitives.
  for (const k of ["rmsNorm", "rmsNormBackward", "silu", "siluBackward", "swiglu", "swigluBackward", "rope"] as const) {
    if (typeof A[k] !== "function") delete (fused as Partial<FusedKernels>)[k];
  }
  // An addon built before alloc existed leaves core with plain buffers, as MOXING_HUGE_PAGES=0 does.
  const alloc = typeof A.alloc === "function" && process.env.MOXING_HUGE_PAGES !== "0" ? A.alloc.bind(A) : null;

  // GGML types with a native kernel (the generic table has every type quant.cc knows).
  const quantTypes = new Set(typeof A.quantMatmul === "function" && A.quantInfo ? [1, 2, 6, 8, 12, 13, 14, 30] : []);
  // Rows must be whole blocks of the type (32 values, 256 for the K-quants).
  const quantBlock = (t: number) => (t === 12 || t === 13 || t === 14 ? 256 : t === 1 || t === 30 ? 1 : 32);

  let threadCount = A.info().threads;
  refreshThreads = () => {
    threadCount = A.info().threads;
  };

  return {
    name: "native",
    unary(op: UnaryOp, x: View, out: Float32Array): void {
      putViews("unary", UNARY_CODE[op], x);
      A.unary(x.data, out);
    },
    binary(op: BinaryOp, a: View, b: View, out: TypedArray): void {
      putViews("binary", BINARY_CODE[op], a, b);
      A.binary(a.data, b.data, out);
    },
    where(cond: View, a: View, b: View, out: TypedArray): void {
      putViews("where", 0, cond, a, b);
      A.where(cond.data, a.data, b.data, out);
    },
    copy(src: View, dst: View): void {
      putViews("copy", 0, src, dst);
      A.copy(src.data, dst.data);
    },
    reduce(op: ReduceOp, x: View, axes: readonly number[], out: Float32Array): void {
      const mask = putViews("reduce", op === "max" ? 1 : 0, x);
      const nd = x.shape.length;
      for (let i = 0; i < nd; i++) P[mask + i] = 0;
      for (let i = 0; i < axes.length; i++) P[mask + (axes[i] as number)] = 1;
      A.reduce(x.data, out);
    },
    matmul(a: MatView, b: MatView, out: Float32Array, batch: number, m: number, n: number, k: number): void {
      P[0] = a.offset;
      P[1] = a.batchStride;
      P[2] = a.rowStride;
      P[3] = a.colStride;
      P[4] = b.offset;
      P[5] = b.batchStride;
      P[6] = b.rowStride;
      P[7] = b.colStride;
      P[8] = batch;
      P[9] = m;
      P[10] = n;
      P[11] = k;
      A.matmul(a.data, b.data, out);
    },
    gather(table: Float32Array, idx: Int32Array, out: Float32Array, cols: number): void {
      P[0] = cols;
      A.gather(table, idx, out);
    },
    indexAdd(dst: Float32Array, idx: Int32Array, src: Float32Array, cols: number): void {
      P[0] = cols;
      A.indexAdd(dst, idx, src);
    },
    fused,
    threads(): number {
      return threadCount;
    },
    allocate(bytes: number): ArrayBuffer | null {
      return alloc ? alloc(bytes) : null;
    },
    quantMatmul(ggmlType: number, w: Uint8Array, x: Float32Array, y: Float32Array, M: number, N: number, K: number): boolean {
      if (!quantTypes.has(ggmlType) || K % quantBlock(ggmlType) !== 0) return false;
      P[0] = ggmlType;
      P[1] = N;
      P[2] = K;
      P[3] = M;
      (A.quantMatmul as NonNullable<Addon["quantMatmul"]>)(w, x, y);
      return true;
    },
    quantMatmulMany(ggmlType, ws, x, ys, M, Ns, K): boolean {
      const n = ws.length;
      if (!A.quantMatmulMany || n < 1 || n > 4 || ys.length !== n || Ns.length !== n) return false;
      if (!quantTypes.has(ggmlType) || K % quantBlock(ggmlType) !== 0) return false;
      P[0] = ggmlType;
      P[1] = K;
      P[2] = M;
      P[3] = n;
      for (let i = 0; i < n; i++) P[4 + i] = Ns[i] as number;
      if (n === 2) A.quantMatmulMany(ws[0] as Uint8Array, ws[1] as Uint8Array, x, ys[0] as Float32Array, ys[1] as Float32Array);
      else if (n === 3) {
        A.quantMatmulMany(
          ws[0] as Uint8Array,
          ws[1] as Uint8Array,
          ws[2] as Uint8Array,
          x,
          ys[0] as Float32Array,
          ys[1] as Float32Array,
          ys[2] as Float32Array,
        );
      } else A.quantMatmulMany(...ws, x, ...ys);
      return true;
    },
  };
}

let refreshThreads: () => void = () => {};

const loaded = load();
// MOXING_ISA naming a set this CPU lacks (or no set at all) is refused by the addon's CPU detection;
// the backend then does not load, and says why (with the sets this CPU runs) where it is chosen.
const isaError = loaded.addon ? (loaded.addon.info().isaError ?? null) : null;
const addon = isaError ? null : loaded.addon;

/** The native backend, or null when the addon could not be loaded (see nativeLoadError). */
export const nativeBackend: Backend | null = addon ? makeBackend(addon) : null;
/** Why the addon could not be loaded, or null when it was. */
export const nativeLoadError: string | null = isaError ?? loaded.error;

if (nativeBackend) registerBackend(nativeBackend, 10);
else if (isaError) reportUnavailable("native", isaError);
else reportUnavailable("native", `its addon did not load (${(loaded.error ?? "").split("\n")[0]}); rebuild it with 'npm run build:native'`);

export interface NativeInfo {
  /** The instruction set of the GEMM kernels ("none" without the addon). */
  isa: string;
  threads: number;
  /** The instruction set serving each kernel family. */
  kernels: Partial<Record<KernelFamily, string>>;
  /** The instruction sets this CPU runs, best first (what MOXING_ISA may name). */
  available: Isa[];
  /** The set serving the quantised matrix products ("avx512vnni", "avx2", "generic"; "none" without them). */
  quant: string;
  /** The GGML type ids that set runs with its own kernels (the others by the generic set's). */
  quantTypes: number[];
}

/** Which instruction set serves each kernel family, the sets this CPU runs, and the thread count. */
export function nativeInfo(): NativeInfo {
  if (!addon) return { isa: "none", threads: 0, kernels: {}, available: [], quant: "none", quantTypes: [] };
  const i = addon.info();
  return {
    isa: i.isa,
    threads: i.threads,
    kernels: i.kernels ?? {},
    available: (i.available ?? i.isa).split(",").filter(Boolean) as Isa[],
    quant: addon.quantInfo ? addon.quantInfo().isa : "none",
    quantTypes: addon.quantInfo ? addon.quantInfo().types : [],
  };
}

/**
 * The whole of a file mapped into memory copy-on-write (the addon's mmap), or null where that is
 * not possible (no addon, no mmap, an empty file): pages are read from the page cache when touched
 * and shared with it, never written back. Views into it are bounds-checked by JavaScript against the
 * buffer, whose length is the file's size. A file truncated by another process while mapped makes
 * reading its lost pages fault (SIGBUS), as with every mapped file (llama.cpp's included).
 */
export function nativeMapFile(path: string): ArrayBuffer | null {
  if (!loaded.addon || typeof loaded.addon.mapFile !== "function" || process.env.MOXING_MMAP === "0") return null;
  return loaded.addon.mapFile(path);
}

/** Test and benchmark hooks. setIsa serves every kernel family from one instruction set and
 *  returns false (changing nothing) when the CPU lacks it. */
export const nativeTesting = {
  setIsa(name: Isa): boolean {
    return addon ? addon.setIsa(name) : false;
  },
  setThreads(n: number): void {
    if (!addon) return;
    addon.setThreads(n);
    refreshThreads();
  },
};
