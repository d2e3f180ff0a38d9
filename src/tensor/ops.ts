// Every tensor op: primitives dispatched to the active backend, and composites built on them.
//
// A primitive allocates its output, calls one backend kernel and records a node for autograd;
// its gradient rule lives in autograd.ts (GRAD_RULES). A composite (softmax, layer_norm, gelu,
// cross_entropy, attention...) is written with primitives and so gets its gradient for free;
// when the backend offers a fused kernel for it, the fused kernel runs instead and is recorded
// as one node whose rule is also in GRAD_RULES. The composite stays the specification: the
// conformance suite checks every fused kernel against it.

import type { BinaryOp, DType, FusedKernels, MatView, UnaryOp, View } from "./backend.js";
import { getBackend } from "./backend.js";
import { arange, empty } from "./creation.js";
import { defaultGenerator, type Generator } from "./random.js";
import { broadcastShapes, checkView, contiguousStrides, fmtShape, normAxes, normAxis, numel, type Shape, sameShape } from "./shape.js";
import { bumpVersion, isGradEnabled, noGrad, record } from "./tape.js";
import { Tensor, type TensorLike } from "./tensor.js";

export { noGrad };

// ---- helpers --------------------------------------------------------------------------------

/** A fused kernel pair, only when the backend has both directions (a forward without its
 *  backward would leave autograd without a rule). */
function fusedPair<F extends keyof FusedKernels, B extends keyof FusedKernels>(
  fwd: F,
  bwd: B,
): (Pick<FusedKernels, F | B> & FusedKernels) | null {
  const f = getBackend().fused;
  return f?.[fwd] && f[bwd] ? (f as FusedKernels) : null;
}

function flat(t: Tensor): Float32Array {
  return t.contiguousData() as Float32Array;
}

function scalarLike(v: number, dtype: DType): Tensor {
  const t = empty([], dtype);
  t.data[0] = v;
  return t;
}

/** Scalars become 0-d tensors; mixed int32/float32 (or a fractional scalar) promote to float32. */
function dtypeOf(x: TensorLike): DType {
  return x instanceof Tensor ? x.dtype : Number.isInteger(x) ? "int32" : "float32";
}

function operands(a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  let ta = a instanceof Tensor ? a : null;
  let tb = b instanceof Tensor ? b : null;
  const dt: DType = (ta ?? tb)?.dtype === "int32" && dtypeOf(a) === "int32" && dtypeOf(b) === "int32" ? "int32" : "float32";
  ta = ta ? (ta.dtype === dt ? ta : cast(ta, dt)) : scalarLike(a as number, dt);
  tb = tb ? (tb.dtype === dt ? tb : cast(tb, dt)) : scalarLike(b as number, dt);
  return [ta, tb];
}

/** A view of t broadcast to shape: new leading dims and expanded size-1 dims get stride 0. */
export function broadcastView(t: Tensor, shape: Shape): View {
  if (sameShape(t.shape, shape)) return t;
  const lead = shape.length - t.ndim;
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const td = t.shape[i - lead] as number;
    return td === 1 && d !== 1 ? 0 : (t.strides[i - lead] as number);
  });
  return { data: t.data, shape, strides, offset: t.offset };
}

/** Sum a broadcast gradient back down to the shape of the input it came from. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(g, axes, true), shape);
}

// ---- elementwise ------------------------------------------------------------------------------

function unary(op: UnaryOp, x: Tensor): Tensor {
  if (x.dtype !== "float32") x = cast(x, "float32");
  const out = empty(x.shape);
  getBackend().unary(op, x, out.data as Float32Array);
  return record(op, [x], out);
}

export const neg = (x: Tensor) => unary("neg", x);
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const sqrt = (x: Tensor) => unary("sqrt", x);
export const tanh = (x: Tensor) => unary("tanh", x);
export const sigmoid = (x: Tensor) => unary("sigmoid", x);
export const relu = (x: Tensor) => unary("relu", x);
export const erf = (x: Tensor) => unary("erf", x);
export const abs = (x: Tensor) => unary("abs", x);
export const sin = (x: Tensor) => unary("sin", x);
export const cos = (x: Tensor) => unary("cos", x);

type Comparison = "eq" | "ne" | "lt" | "le" | "gt" | "ge";
const COMPARISONS = new Set<BinaryOp>(["eq", "ne", "lt", "le", "gt", "ge"] satisfies Comparison[]);

function binary(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  let [ta, tb] = operands(a, b);
  // True division and real powers of integers are float, as in PyTorch.
  if ((op === "div" || op === "pow") && ta.dtype === "int32") [ta, tb] = [cast(ta, "float32"), cast(tb, "float32")];
  const shape = broadcastShapes(op, ta.shape, tb.shape);
  const out = empty(shape, ta.dtype);
  getBackend().binary(op, broadcastView(ta, shape), broadcastView(tb, shape), out.data);
  return COMPARISONS.has(op) ? out : record(op as Exclude<BinaryOp, Comparison>, [ta, tb], out);
}

export const add = (a: TensorLike, b: TensorLike) => binary("add", a, b);
export const sub = (a: TensorLike, b: TensorLike) => binary("sub", a, b);
export const mul = (a: TensorLike, b: TensorLike) => binary("mul", a, b);
export const div = (a: TensorLike, b: TensorLike) => binary("div", a, b);
export const pow = (a: TensorLike, b: TensorLike) => binary("pow", a, b);
export const maximum = (a: TensorLike, b: TensorLike) => binary("maximum", a, b);
export const minimum = (a: TensorLike, b: TensorLike) => binary("minimum", a, b);
/** Comparisons return 1/0 masks (float32 for float inputs) and carry no gradient. */
export const eq = (a: TensorLike, b: TensorLike) => binary("eq", a, b);
export const ne = (a: TensorLike, b: TensorLike) => binary("ne", a, b);
export const lt = (a: TensorLike, b: TensorLike) => binary("lt", a, b);
export const le = (a: TensorLike, b: TensorLike) => binary("le", a, b);
export const gt = (a: TensorLike, b: TensorLike) => binary("gt", a, b);
export const ge = (a: TensorLike, b: TensorLike) => binary("ge", a, b);

export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  let y = x;
  if (min !== undefined) y = maximum(y, min);
  if (max !== undefined) y = minimum(y, max);
  return y;
}

/** cond ? a : b elementwise, with broadcasting; cond is any tensor, non-zero meaning true. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = operands(a, b);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, ta.shape), tb.shape);
  const out = empty(shape, ta.dtype);
  getBackend().where(broadcastView(cond, shape), broadcastView(ta, shape), broadcastView(tb, shape), out.data);
  return record("where", [ta, tb], out, { cond });
}

export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  broadcastShapes("maskedFill", mask.shape, x.shape);
  return where(mask, value, x);
}

// ---- layout: views, copies, casts ------------------------------------------------------------

export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  const out = empty(x.shape, x.dtype);
  getBackend().copy(x, out);
  return record("copy", [x], out);
}

export function clone(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype);
  getBackend().copy(x, out);
  return record("copy", [x], out);
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = empty(x.shape, dtype);
  getBackend().copy(x, out);
  return out;
}

function inferShape(fn: string, x: Tensor, shape: readonly number[]): number[] {
  const known = shape.filter((d) => d !== -1);
  const infer = shape.length - known.length;
  const size = numel(known);
  const out = [...shape];
  if (infer > 1) throw new Error(`${fn}: only one dimension can be -1 (got ${fmtShape(shape)})`);
  if (infer === 1) {
    if (size === 0 || x.size % size !== 0) {
      throw new Error(`${fn}: cannot reshape tensor of shape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
    }
    out[out.indexOf(-1)] = x.size / size;
  }
  if (numel(out) !== x.size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${fn}: cannot reshape tensor of shape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
  }
  return out;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape("reshape", x, shape);
  if (sameShape(target, x.shape)) return x;
  // A view when the memory layout allows it (as torch.view); otherwise a copy (as torch.reshape).
  const strides = x.isContiguous() ? contiguousStrides(target) : viewStrides(x.shape, x.strides, target);
  const src = strides ? x : contiguous(x);
  const out = new Tensor(src.data, target, strides ?? contiguousStrides(target), src.offset);
  return record("reshape", [src], out);
}

/** Strides that let `newShape` view a tensor of (oldShape, oldStrides) without copying, or null.
 *  Groups of old dims that are contiguous with each other may be split or merged freely
 *  (the algorithm of PyTorch's computeStride). */
function viewStrides(oldShape: Shape, oldStrides: Shape, newShape: Shape): number[] | null {
  if (oldShape.length === 0 || numel(oldShape) === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length);
  let viewD = newShape.length - 1;
  let chunkBase = oldStrides[oldStrides.length - 1] as number;
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = oldShape.length - 1; d >= 0; d--) {
    tensorNumel *= oldShape[d] as number;
    const chunkEnds = d === 0 || (oldShape[d - 1] !== 1 && oldStrides[d - 1] !== tensorNumel * chunkBase);
    if (!chunkEnds) continue;
    while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
      out[viewD] = viewNumel * chunkBase;
      viewNumel *= newShape[viewD] as number;
      viewD--;
    }
    if (viewNumel !== tensorNumel) return null;
    if (d > 0) {
      chunkBase = oldStrides[d - 1] as number;
      tensorNumel = 1;
      viewNumel = 1;
    }
  }
  return viewD === -1 ? out : null;
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis("flatten", startDim, x.ndim);
  const e = normAxis("flatten", endDim, x.ndim);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const nd = dims.map((d) => normAxis("permute", d, x.ndim));
  if (nd.length !== x.ndim || new Set(nd).size !== x.ndim) {
    throw new Error(`permute: dims ${JSON.stringify(dims)} must be a permutation of 0..${x.ndim - 1} for shape ${fmtShape(x.shape)}`);
  }
  const out = new Tensor(
    x.data,
    nd.map((d) => x.shape[d] as number),
    nd.map((d) => x.strides[d] as number),
    x.offset,
  );
  return record("permute", [x], out, { dims: nd });
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normAxis("transpose", dim0, x.ndim);
  const b = normAxis("transpose", dim1, x.ndim);
  const dims = Array.from({ length: x.ndim }, (_, i) => (i === a ? b : i === b ? a : i));
  return permute(x, dims);
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new Error(`expand: target ${fmtShape(shape)} has fewer dims than the tensor ${fmtShape(x.shape)}`);
  const target = shape.map((d, i) => (d === -1 && i >= lead ? (x.shape[i - lead] as number) : d));
  for (let i = 0; i < x.ndim; i++) {
    const d = x.shape[i] as number;
    if (d !== 1 && d !== target[i + lead]) {
      throw new Error(`expand: cannot expand shape ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i} is ${d}; only size-1 dims expand)`);
    }
  }
  if (sameShape(target, x.shape)) return x;
  const v = broadcastView(x, target);
  checkView("expand", x.data.length, target, v.strides, x.offset);
  return record("expand", [x], new Tensor(x.data, target, v.strides, x.offset));
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normAxis("unsqueeze", dim, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  const strides = [...x.strides];
  strides.splice(d, 0, d < x.ndim ? (x.strides[d] as number) * (x.shape[d] as number) : 1);
  return record("reshape", [x], new Tensor(x.data, shape, strides, x.offset));
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  const drop = dim === undefined ? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : [normAxis("squeeze", dim, x.ndim)];
  const keep = x.shape.map((_, i) => i).filter((i) => !(drop.includes(i) && x.shape[i] === 1));
  if (keep.length === x.ndim) return x;
  const out = new Tensor(
    x.data,
    keep.map((i) => x.shape[i] as number),
    keep.map((i) => x.strides[i] as number),
    x.offset,
  );
  return record("reshape", [x], out);
}

/** A strided view selecting start..end by step along dim (Python slice semantics, clamped). */
export function slice(x: Tensor, dim: number, start?: number, end?: number, step = 1): Tensor {
  const d = normAxis("slice", dim, x.ndim);
  if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer (got ${step})`);
  const size = x.shape[d] as number;
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
  const s = clampIdx(start ?? 0);
  const e = Math.max(s, clampIdx(end ?? size));
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[d] = len;
  const strides = [...x.strides];
  strides[d] = (x.strides[d] as number) * step;
  const out = new Tensor(x.data, shape, strides, x.offset + s * (x.strides[d] as number));
  return record("slice", [x], out, { dim: d, start: s, step });
}

/** x[i] for a number (a view of one entry of dim 0) or x[idx] for an int32 tensor of row indices. */
export function index(x: Tensor, i: number | Tensor): Tensor {
  if (x.ndim === 0) throw new Error("index: cannot index a 0-d tensor");
  if (typeof i === "number") {
    const n = x.shape[0] as number;
    if (!Number.isInteger(i) || i < -n || i >= n) throw new Error(`index: index ${i} is out of range for dim 0 of size ${n}`);
    const j = i < 0 ? i + n : i;
    return squeeze(slice(x, 0, j, j + 1), 0);
  }
  const rows = reshape(x, [x.shape[0] as number, -1]);
  const picked = embedding(rows, i);
  return reshape(picked, [...i.shape, ...x.shape.slice(1)]);
}

export function split(x: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normAxis("split", dim, x.ndim);
  const total = x.shape[d] as number;
  let sizes: number[];
  if (typeof sizeOrSizes === "number") {
    if (!(sizeOrSizes > 0)) throw new Error(`split: split size must be positive (got ${sizeOrSizes})`);
    sizes = [];
    for (let s = 0; s < total; s += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, total - s));
  } else {
    sizes = [...sizeOrSizes];
    const sumSizes = sizes.reduce((p, c) => p + c, 0);
    if (sumSizes !== total) throw new Error(`split: sizes ${JSON.stringify(sizes)} sum to ${sumSizes}, but dim ${dim} has size ${total}`);
  }
  let at = 0;
  return sizes.map((n) => {
    const part = slice(x, d, at, at + n);
    at += n;
    return part;
  });
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const d = normAxis("chunk", dim, x.ndim);
  return split(x, Math.ceil((x.shape[d] as number) / chunks), d);
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error("cat: expects a non-empty list of tensors");
  const first = tensors[0] as Tensor;
  const d = normAxis("cat", dim, first.ndim);
  const dtype = first.dtype;
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new Error(`cat: shapes ${fmtShape(first.shape)} and ${fmtShape(t.shape)} differ outside dim ${dim}`);
    }
    if (t.dtype !== dtype) throw new Error(`cat: all tensors must share a dtype (found ${dtype} and ${t.dtype})`);
  }
  const sizes = tensors.map((t) => t.shape[d] as number);
  const shape = [...first.shape];
  shape[d] = sizes.reduce((p, c) => p + c, 0);
  const out = empty(shape, dtype);
  const be = getBackend();
  let at = 0;
  noGrad(() => {
    for (const t of tensors) {
      be.copy(t, slice(out, d, at, at + (t.shape[d] as number)));
      at += t.shape[d] as number;
    }
  });
  return record("cat", [...tensors], out, { dim: d, sizes });
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error("stack: expects a non-empty list of tensors");
  const d = normAxis("stack", dim, (tensors[0] as Tensor).ndim + 1);
  return cat(
    tensors.map((t) => unsqueeze(t, d)),
    d,
  );
}

/** In-place copy of src (broadcast to dst's shape) into dst's memory; not recorded by autograd. */
export function copyInto(dst: Tensor, src: TensorLike): void {
  if (dst.requiresGrad && !dst._node && isGradEnabled()) {
    throw new Error("copy_: a leaf tensor that requires grad cannot be modified in place; wrap the update in noGrad(() => ...)");
  }
  const s = src instanceof Tensor ? src : scalarLike(src, dst.dtype);
  broadcastShapes("copy_", s.shape, dst.shape);
  if (s.ndim > dst.ndim || s.shape.some((d, i) => d !== 1 && d !== dst.shape[dst.ndim - s.ndim + i])) {
    throw new Error(`copy_: source shape ${fmtShape(s.shape)} does not broadcast to destination ${fmtShape(dst.shape)}`);
  }
  getBackend().copy(broadcastView(s, dst.shape), dst);
  bumpVersion(dst);
}

// ---- reductions ----------------------------------------------------------------------------------

function reduced(x: Tensor, axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
}

export function sum(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  if (x.dtype !== "float32") x = cast(x, "float32");
  const axes = normAxes("sum", dim, x.ndim);
  const out = empty(reduced(x, axes, keepdim));
  getBackend().reduce("sum", x, axes, out.data as Float32Array);
  return record("sum", [x], out, { axes });
}

export function mean(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const axes = normAxes("mean", dim, x.ndim);
  const n = numel(axes.map((a) => x.shape[a] as number));
  return mul(sum(x, axes, keepdim), 1 / n);
}

/** amax: the maximum over dims; the gradient is shared equally among tied maxima (like torch.amax). */
export function max(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  if (x.dtype !== "float32") x = cast(x, "float32");
  const axes = normAxes("max", dim, x.ndim);
  if (axes.some((a) => x.shape[a] === 0)) throw new Error(`max: cannot reduce an empty dimension of shape ${fmtShape(x.shape)}`);
  const out = empty(reduced(x, axes, keepdim));
  getBackend().reduce("max", x, axes, out.data as Float32Array);
  return record("max", [x], out, { axes });
}

export function min(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return neg(max(neg(x), dim, keepdim));
}

export function variance(x: Tensor, dim?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  const axes = normAxes("var", dim, x.ndim);
  const n = numel(axes.map((a) => x.shape[a] as number));
  const d = sub(x, mean(x, axes, true));
  return div(sum(mul(d, d), axes, keepdim), Math.max(0, n - correction));
}

/** Index of the maximum along dim (first one on ties), int32; no gradient. */
export function argmax(x: Tensor, dim = -1, keepdim = false): Tensor {
  const d = normAxis("argmax", dim, x.ndim);
  const n = x.shape[d] as number;
  if (n === 0) throw new Error("argmax: cannot take argmax over an empty dimension");
  // Move dim last: rows then run over the other dims in their original order.
  const order = [...x.shape.keys()].filter((i) => i !== d).concat(d);
  const src = noGrad(() => permute(x, order)).contiguousData();
  const out = empty(reduced(x, [d], keepdim), "int32");
  for (let r = 0; r < src.length / n; r++) {
    let best = 0;
    let bv = src[r * n] as number;
    for (let j = 1; j < n; j++) {
      const v = src[r * n + j] as number;
      if (v > bv || (Number.isNaN(v) && !Number.isNaN(bv))) {
        bv = v;
        best = j;
      }
    }
    out.data[r] = best;
  }
  return out;
}

// ---- products and lookups ---------------------------------------------------------------------------

/** Collapse a tensor's batch dims (all but the last two) into one stride, or null if impossible. */
function matView(v: View, batchDims: number): MatView | null {
  let batchStride = 0;
  let expect = -1;
  for (let i = batchDims - 1; i >= 0; i--) {
    const d = v.shape[i] as number;
    const s = v.strides[i] as number;
    if (d === 1) continue;
    if (expect === -1) batchStride = s;
    else if (s !== expect) return null;
    expect = s * d;
  }
  return {
    data: v.data as Float32Array,
    offset: v.offset,
    batchStride,
    rowStride: v.strides[batchDims] as number,
    colStride: v.strides[batchDims + 1] as number,
  };
}

/** Matrix product with batch dims and broadcasting, like torch.matmul (1-D operands included). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error("matmul: both operands need at least one dimension");
  if (a.dtype !== "float32" || b.dtype !== "float32") {
    throw new Error(`matmul: expected float32 operands, got ${a.dtype} and ${b.dtype}; call .float() first`);
  }
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), b.ndim === 1 ? -1 : -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) {
    throw new Error(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} are not aligned (inner dims ${k} and ${k2} differ)`);
  }
  const batchShape = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const nb = batchShape.length;
  const batch = numel(batchShape);
  const view = (t: Tensor, r: number, c: number): MatView => {
    const v = broadcastView(t, [...batchShape, r, c]);
    return (
      matView(v, nb) ??
      (matView(
        noGrad(() => contiguous(new Tensor(v.data, v.shape, v.strides, v.offset))),
        nb,
      ) as MatView)
    );
  };
  let am = view(a, m, k);
  const bm = view(b, k, n);
  const out = empty([...batchShape, m, n]);
  let [B, M] = [batch, m];
  // A weight shared across the batch: fold the batch into M and run one large GEMM.
  if (batch > 1 && bm.batchStride === 0 && am.batchStride === m * am.rowStride) {
    [B, M] = [1, batch * m];
    am = { ...am, batchStride: 0 };
  }
  getBackend().matmul(am, bm, out.data as Float32Array, B, M, n, k);
  return record("matmul", [a, b], out);
}

/** Rows of a (V, C) table picked by int32 indices of any shape: out (...idx.shape, C). */
export function embedding(weight: Tensor, idx: Tensor): Tensor {
  if (idx.dtype !== "int32")
    throw new Error(`embedding: indices must be int32 (got ${idx.dtype}); use .int() or tensor(..., {dtype: 'int32'})`);
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D (V, C), got shape ${fmtShape(weight.shape)}`);
  const [V, C] = weight.shape as [number, number];
  const ids = idx.contiguousData() as Int32Array;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    if (id < 0 || id >= V) throw new Error(`embedding: index ${id} is out of range for a table of ${V} rows`);
  }
  const out = empty([...idx.shape, C]);
  getBackend().gather(flat(weight), ids, out.data as Float32Array, C);
  return record("gather", [weight], out, { ids, rows: V });
}

// ---- composites (fused when the backend can) -------------------------------------------------------

export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl(x, dim, false);
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl(x, dim, true);
}

function softmaxImpl(x: Tensor, dim: number, log: boolean): Tensor {
  const d = normAxis(log ? "logSoftmax" : "softmax", dim, x.ndim);
  const f = fusedPair("softmax", "softmaxBackward");
  if (f && d === x.ndim - 1 && x.size > 0) {
    const xc = contiguous(x);
    const cols = x.shape[d] as number;
    const out = empty(x.shape);
    f.softmax(flat(xc), out.data as Float32Array, xc.size / cols, cols, log);
    return record(log ? "log_softmax" : "softmax", [xc], out);
  }
  // Subtracting the max keeps exp from overflowing; it is a constant shift, so no gradient is needed.
  const shifted = sub(
    x,
    noGrad(() => max(x, d, true)),
  );
  if (log) return sub(shifted, log_(sum(exp(shifted), d, true)));
  const e = exp(shifted);
  return div(e, sum(e, d, true));
}
const log_ = log;

/** Layer normalisation over the last dim (Ba et al. 2016), with biased variance like PyTorch. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const C = x.shape[x.ndim - 1] as number;
  for (const [name, p] of [
    ["weight", weight],
    ["bias", bias],
  ] as const) {
    if (p && (p.ndim !== 1 || p.shape[0] !== C)) {
      throw new Error(`layerNorm: ${name} has shape ${fmtShape(p.shape)} but the normalised dim has size ${C}`);
    }
  }
  const f = fusedPair("layerNorm", "layerNormBackward");
  if (f && x.size > 0) {
    const xc = contiguous(x);
    const rows = xc.size / C;
    const out = empty(x.shape);
    const meanBuf = new Float32Array(rows);
    const rstd = new Float32Array(rows);
    f.layerNorm(flat(xc), weight && flat(weight), bias && flat(bias), out.data as Float32Array, meanBuf, rstd, rows, C, eps);
    const inputs = [xc, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
    return record("layer_norm", inputs, out, { mean: meanBuf, rstd, weight, bias });
  }
  const mu = mean(x, -1, true);
  const xc = sub(x, mu);
  const v = mean(mul(xc, xc), -1, true);
  let y = mul(xc, div(1, sqrt(add(v, eps))));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** RMSNorm over the last dim (Zhang & Sennrich 2019): x / sqrt(mean(x²) + eps) · weight, LayerNorm
 *  without the mean subtraction and the bias. The composition below is the specification (it is
 *  Hugging Face's LlamaRMSNorm in float32); the fused kernel is one pass per row. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const C = x.shape[x.ndim - 1] as number;
  if (weight && (weight.ndim !== 1 || weight.shape[0] !== C)) {
    throw new Error(`rmsNorm: weight has shape ${fmtShape(weight.shape)} but the normalised dim has size ${C}`);
  }
  const f = fusedPair("rmsNorm", "rmsNormBackward");
  if (f && x.size > 0 && x.dtype === "float32") {
    const xc = contiguous(x);
    const rows = xc.size / C;
    const out = empty(x.shape);
    const rstd = new Float32Array(rows);
    f.rmsNorm(flat(xc), weight && flat(weight), out.data as Float32Array, rstd, rows, C, eps);
    return record("rms_norm", weight ? [xc, weight] : [xc], out, { rstd, weight });
  }
  const ms = mean(mul(x, x), -1, true); // (..., 1)
  const y = mul(x, div(1, sqrt(add(ms, eps))));
  return weight ? mul(y, weight) : y;
}

/** SiLU (swish, Elfwing et al. 2017; Ramachandran et al. 2017): x · σ(x). */
export function silu(x: Tensor): Tensor {
  const f = fusedPair("silu", "siluBackward");
  if (f && x.size > 0 && x.dtype === "float32") {
    const xc = contiguous(x);
    const out = empty(x.shape);
    f.silu(flat(xc), out.data as Float32Array, xc.size);
    return record("silu", [xc], out);
  }
  return mul(x, sigmoid(x));
}

/** SwiGLU's gating (Shazeer 2020): silu(gate) · up, for gate and up of one shape. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape)) {
    throw new Error(`swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have the same shape`);
  }
  const f = fusedPair("swiglu", "swigluBackward");
  if (f && gate.size > 0 && gate.dtype === "float32" && up.dtype === "float32") {
    const [g, u] = [contiguous(gate), contiguous(up)];
    const out = empty(gate.shape);
    f.swiglu(flat(g), flat(u), out.data as Float32Array, g.size);
    return record("swiglu", [g, u], out);
  }
  return mul(silu(gate), up);
}

/**
 * Rotary position embeddings in the rotate-half layout (GPT-NeoX, Llama): x·cos + rotate_half(x)·sin,
 * rotate_half(x) = [-x2, x1] over each head's halves. cos and sin are (T, hs), the rows of the T
 * positions x holds. x is (..., T, hs), or with `headsLast` (..., T, H, hs): the heads after the
 * positions, as projections produce them, so the rotation needs no transposed copy.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, headsLast = false): Tensor {
  const hs = x.shape[x.ndim - 1] as number;
  const tDim = x.ndim - (headsLast ? 3 : 2);
  const T = x.shape[tDim] as number;
  if (tDim < 0 || hs % 2 !== 0) throw new Error(`rope: x ${fmtShape(x.shape)} needs (..., T, ${headsLast ? "H, " : ""}hs) with hs even`);
  for (const [name, t] of [
    ["cos", cos],
    ["sin", sin],
  ] as const) {
    if (t.ndim !== 2 || t.shape[0] !== T || t.shape[1] !== hs) {
      throw new Error(`rope: ${name} has shape ${fmtShape(t.shape)}; x ${fmtShape(x.shape)} needs [${T}, ${hs}]`);
    }
  }
  // The fused op differentiates x only: tables that need a gradient take the composition.
  const f = fusedPair("rope", "rope");
  if (f && x.size > 0 && x.dtype === "float32" && !(isGradEnabled() && (cos.requiresGrad || sin.requiresGrad))) {
    const xc = contiguous(x);
    const H = headsLast ? (x.shape[x.ndim - 2] as number) : 1;
    const n = xc.size / (T * H * hs);
    const out = empty(x.shape);
    const [c, s] = [flat(contiguous(cos)), flat(contiguous(sin))];
    f.rope(flat(xc), c, s, out.data as Float32Array, n, T, H, hs, false);
    return record("rope", [xc], out, { cos: c, sin: s, n, T, H, hs });
  }
  // Tables broadcast over the heads: (T, hs) -> (T, 1, hs).
  const [cb, sb] = headsLast ? [reshape(cos, [T, 1, hs]), reshape(sin, [T, 1, hs])] : [cos, sin];
  const x1 = slice(x, -1, 0, hs / 2);
  const x2 = slice(x, -1, hs / 2, hs);
  const rotated = cat([neg(x2), x1], x.ndim - 1);
  return add(mul(x, cb), mul(rotated, sb));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU (Hendrycks & Gimpel 2016): exact x·Φ(x) with erf, or GPT-2's tanh approximation. */
export function gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  const f = fusedPair("gelu", "geluBackward");
  if (f && x.size > 0) {
    const xc = contiguous(x);
    const out = empty(x.shape);
    f.gelu(flat(xc), out.data as Float32Array, approximate);
    return record("gelu", [xc], out, { approximate });
  }
  const inner = approximate === "tanh" ? tanh(mul(add(x, mul(pow(x, 3), 0.044715)), SQRT_2_OVER_PI)) : erf(mul(x, Math.SQRT1_2));
  return mul(mul(x, 0.5), add(inner, 1));
}

export interface CrossEntropyOptions {
  /** Target value whose rows contribute nothing (PyTorch's default is -100). */
  ignoreIndex?: number;
  /** Mix the one-hot target with a uniform distribution (Szegedy et al. 2016). */
  labelSmoothing?: number;
  reduction?: "mean" | "sum" | "none";
}

/** Cross-entropy of logits (..., C) against int32 class targets (...), like F.cross_entropy. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = "mean" } = opts;
  if (targets.dtype !== "int32") throw new Error(`crossEntropy: targets must be int32 class indices (got ${targets.dtype})`);
  const C = logits.shape[logits.ndim - 1] as number;
  if (!sameShape(logits.shape.slice(0, -1), targets.shape)) {
    throw new Error(
      `crossEntropy: logits ${fmtShape(logits.shape)} need targets of shape ${fmtShape(logits.shape.slice(0, -1))}, got ${fmtShape(targets.shape)}`,
    );
  }
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1))
    throw new Error(`crossEntropy: labelSmoothing must be in [0, 1] (got ${labelSmoothing})`);
  const t = targets.contiguousData() as Int32Array;
  let count = 0;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as number;
    if (v === ignoreIndex) continue;
    if (v < 0 || v >= C) throw new Error(`crossEntropy: target ${v} at position ${i} is out of range for ${C} classes`);
    count++;
  }
  const rows = t.length;
  const x2 = reshape(logits, [rows, C]);
  let losses: Tensor;
  const f = fusedPair("crossEntropy", "crossEntropyBackward");
  if (f && rows > 0) {
    const xc = contiguous(x2);
    losses = empty([rows]);
    const lse = new Float32Array(rows);
    // When a backward will follow, the forward also keeps the softmax it computes anyway, and the
    // backward turns it into the gradient in place instead of computing every exponential again.
    const probs = isGradEnabled() && xc.requiresGrad ? empty([rows, C]) : null;
    f.crossEntropy(
      flat(xc),
      t,
      losses.data as Float32Array,
      lse,
      rows,
      C,
      ignoreIndex,
      labelSmoothing,
      probs?.data as Float32Array | undefined,
    );
    losses = record("cross_entropy", [xc], losses, { targets: t, lse, ignoreIndex, labelSmoothing, probs: probs ?? undefined });
  } else {
    const logp = logSoftmax(x2, -1);
    const tt = new Tensor(t, [rows, 1]);
    const onehot = eq(arange(C), tt); // (rows, C); all zero on ignored rows
    const valid = ne(tt, ignoreIndex).float(); // (rows, 1)
    const nll = neg(sum(mul(logp, onehot.float()), -1, true));
    const smooth = neg(mean(logp, -1, true));
    losses = reshape(mul(add(mul(nll, 1 - labelSmoothing), mul(smooth, labelSmoothing)), valid), [rows]);
  }
  if (reduction === "none") return reshape(losses, targets.shape);
  const total = sum(losses);
  return reduction === "sum" ? total : div(total, count);
}

/** Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout). */
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: probability must be in [0, 1] (got ${p})`);
  if (!training || p === 0) return x;
  const mask = empty(x.shape);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  generator.fillBernoulli(mask.data as Float32Array, p, scale);
  return mul(x, mask);
}

/** y = x · Wᵀ + b with W stored (out_features, in_features) as in torch.nn.Linear.
 *  One GEMM over all leading dims with the bias added in place, recorded as one node: the same
 *  as matmul(x, Wᵀ) + b, without keeping the product before the bias alive for backward. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, activation: "none" | "gelu" | "gelu_tanh" = "none"): Tensor {
  const [N, K] = weight.shape as [number, number];
  if (weight.ndim !== 2 || x.shape[x.ndim - 1] !== K) {
    throw new Error(`linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(weight.shape)} (in_features ${K})`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) throw new Error(`linear: bias ${fmtShape(bias.shape)} should be [${N}]`);
  if (x.dtype !== "float32") throw new Error(`linear: expected a float32 input, got ${x.dtype}`);
  const x2 = contiguous(x);
  const M = x2.size / K;
  const out = empty([...x.shape.slice(0, -1), N]);
  const o = out.data as Float32Array;
  const be = getBackend();
  const w = weight.isContiguous() ? weight : contiguous(weight);
  be.matmul(
    { data: x2.data as Float32Array, offset: x2.offset, batchStride: 0, rowStride: K, colStride: 1 },
    { data: w.data as Float32Array, offset: w.offset, batchStride: 0, rowStride: 1, colStride: K }, // Wᵀ as a view
    o,
    1,
    M,
    N,
    K,
  );
  const approximate = activation === "gelu_tanh" ? "tanh" : "none";
  const f = fusedPair("biasGelu", "geluBackward");
  if (activation !== "none" && bias && f) {
    // Fused epilogue: the GEMM output becomes the pre-activation (bias added in place) and the
    // GELU goes to a second buffer, so backward has both without another pass over memory.
    const act = empty(out.shape);
    f.biasGelu(o, flat(bias), act.data as Float32Array, M, N, approximate);
    return record("linear_gelu", [x2, w, bias], act, { pre: out, approximate });
  }
  if (bias) be.binary("add", out, broadcastView(bias, out.shape), o);
  const y = record("linear", bias ? [x2, w, bias] : [x2, w], out);
  return activation === "none" ? y : gelu(y, approximate);
}

export interface AttentionOptions {
  causal?: boolean;
  /** Broadcasts to (..., T, S); non-zero entries are masked out (e.g. padding). */
  attnMask?: Tensor | null;
  scale?: number;
  /** Dropout on the attention weights (training only). */
  dropout?: number;
  training?: boolean;
  generator?: Generator;
  /** Also return the attention weights (..., T, S) for inspection; rules out the fused kernel. */
  needWeights?: boolean;
  /** Right padding as lengths: for each entry b of q's first (batch) dim, keys at positions >=
   *  keyLengths[b] get no attention. The same as an attnMask (B, 1, ..., 1, S) of those keys
   *  (torch's key_padding_mask), but the fused kernel runs it, one batch entry at a time. */
  keyLengths?: readonly number[] | Int32Array | null;
}

/** softmax(q·kᵀ·scale + mask)·v (Vaswani et al. 2017). q (..., T, d), k and v (..., S, d).
 *  With causal, query i sees keys j <= i + (S - T): with a KV cache the queries are the last T
 *  of S positions. Runs the backend's fused kernel when the call allows it (no explicit mask,
 *  no dropout, weights not requested), which never materialises the (T, S) weights. */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): { out: Tensor; weights: Tensor | null } {
  const d = q.shape[q.ndim - 1] as number;
  const T = q.shape[q.ndim - 2] as number;
  const S = k.shape[k.ndim - 2] as number;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const causal = opts.causal ?? false;
  const p = opts.training ? (opts.dropout ?? 0) : 0;
  if (!sameShape(k.shape, v.shape) || !sameShape(q.shape.slice(0, -2), k.shape.slice(0, -2)) || k.shape[k.ndim - 1] !== d) {
    throw new Error(
      `scaledDotProductAttention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} must be (..., T, d), (..., S, d), (..., S, d)`,
    );
  }
  const f = fusedPair("attention", "attentionBackward");
  const lengths = opts.keyLengths ? keyLengthsOf(opts.keyLengths, q, S) : null;
  if (f && lengths && !causal && !opts.attnMask && p === 0 && !opts.needWeights && q.size > 0 && lengths.every((l) => l > 0)) {
    return { out: attentionByLengths(f, q, k, v, lengths, T, S, d, scale), weights: null };
  }
  if (f && !lengths && !opts.attnMask && p === 0 && !opts.needWeights && q.size > 0 && S > 0) {
    const bh = q.size / (T * d);
    const qc = contiguous(q);
    const out = empty(q.shape);
    const lse = new Float32Array(bh * T);
    // Inference on a KV cache: k and v are the first S positions of buffers with room for more.
    // The kernel reads them in place instead of copying the whole cache every token.
    const kvStride = isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad) ? null : batchStride(k, v);
    if (kvStride !== null) {
      const kd = (k.data as Float32Array).subarray(k.offset);
      const vd = (v.data as Float32Array).subarray(v.offset);
      f.attention(flat(qc), kd, vd, out.data as Float32Array, lse, bh, T, S, d, scale, causal, kvStride);
      return { out, weights: null };
    }
    const [kc, vc] = [contiguous(k), contiguous(v)];
    f.attention(flat(qc), flat(kc), flat(vc), out.data as Float32Array, lse, bh, T, S, d, scale, causal);
    return { out: record("attention", [qc, kc, vc], out, { lse, bh, T, S, d, scale, causal }), weights: null };
  }
  let att = mul(matmul(q, transpose(k, -2, -1)), scale); // (..., T, S)
  if (causal) {
    const future = gt(reshape(arange(S), [1, S]), add(reshape(arange(T), [T, 1]), S - T));
    att = maskedFill(att, future, Number.NEGATIVE_INFINITY);
  }
  if (opts.attnMask) att = maskedFill(att, opts.attnMask, Number.NEGATIVE_INFINITY);
  if (lengths) {
    // (B, 1, ..., 1, S): true at the padded keys of each batch entry.
    const pad = new Int32Array(lengths.length * S);
    lengths.forEach((l, b) => {
      pad.fill(1, b * S + l, (b + 1) * S);
    });
    const shape = [lengths.length, ...new Array<number>(q.ndim - 2).fill(1), S];
    att = maskedFill(att, new Tensor(pad, shape), Number.NEGATIVE_INFINITY);
  }
  const weights = softmax(att, -1);
  const dropped = dropout(weights, p, true, opts.generator ?? defaultGenerator);
  return { out: matmul(dropped, v), weights };
}

/** keyLengths checked against q (B, ..., T, d) and S: one length per batch entry, in [0, S]; null when
 *  they mask nothing. */
function keyLengthsOf(keyLengths: readonly number[] | Int32Array, q: Tensor, S: number): Int32Array | null {
  if (q.ndim < 3 || keyLengths.length !== q.shape[0]) {
    throw new Error(
      `scaledDotProductAttention: keyLengths has ${keyLengths.length} entries but q ${fmtShape(q.shape)} needs one per batch entry (its first dim, of at least 3)`,
    );
  }
  for (const l of keyLengths) {
    if (!Number.isInteger(l) || l < 0 || l > S)
      throw new Error(`scaledDotProductAttention: a key length must be an integer in [0, ${S}] (got ${l})`);
  }
  return keyLengths.some((l) => l < S) ? Int32Array.from(keyLengths) : null;
}

/** Fused attention over right-padded keys: one kernel call per batch entry b, over its h heads and
 *  first lengths[b] keys (read in place with the kernel's kv stride), so padding costs nothing.
 *  The backward rule (autograd.ts, "attention" with saved lengths) splits the same way. */
function attentionByLengths(
  f: FusedKernels,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  lengths: Int32Array,
  T: number,
  S: number,
  d: number,
  scale: number,
): Tensor {
  const B = lengths.length;
  const h = q.size / (B * T * d); // heads (all dims between the batch and T)
  const [qc, kc, vc] = [contiguous(q), contiguous(k), contiguous(v)];
  const out = empty(q.shape);
  const lse = new Float32Array(B * h * T);
  const [qd, kd, vd, od] = [flat(qc), flat(kc), flat(vc), out.data as Float32Array];
  const nq = h * T * d;
  for (let b = 0; b < B; b++) {
    const ko = b * h * S * d;
    const [qb, ob] = [qd.subarray(b * nq, (b + 1) * nq), od.subarray(b * nq, (b + 1) * nq)];
    f.attention(
      qb,
      kd.subarray(ko),
      vd.subarray(ko),
      ob,
      lse.subarray(b * h * T, (b + 1) * h * T),
      h,
      T,
      lengths[b] as number,
      d,
      scale,
      false,
      S * d,
    );
  }
  return record("attention", [qc, kc, vc], out, { lse, bh: B * h, T, S, d, scale, causal: false, lengths, heads: h });
}

/** When k and v are (..., S, d) with contiguous rows and each flattened leading index a fixed
 *  stride apart, at least S·d (a KV cache's first S positions), that stride; null when they need a copy. */
function batchStride(k: Tensor, v: Tensor): number | null {
  const n = k.ndim;
  if (k.dtype !== "float32" || v.dtype !== "float32" || n < 2) return null;
  const S = k.shape[n - 2] as number;
  const d = k.shape[n - 1] as number;
  if (k.strides.some((st, i) => st !== v.strides[i])) return null;
  if (d > 1 && k.strides[n - 1] !== 1) return null;
  if (S > 1 && k.strides[n - 2] !== d) return null;
  let stride: number | null = null; // of one step of the flattened leading index
  let span = 1; // leading positions inside the current dim
  for (let i = n - 3; i >= 0; i--) {
    const size = k.shape[i] as number;
    const st = k.strides[i] as number;
    if (size > 1) {
      if (stride === null) stride = st / span;
      if (st !== stride * span) return null;
    }
    span *= size;
  }
  if (stride === null) return S * d; // a single batch-head
  return Number.isInteger(stride) && stride >= S * d ? stride : null;
}

export type { Node } from "./tape.js";
