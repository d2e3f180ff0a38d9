// The reference backend: plain TypeScript loops over strided views. It is the specification
// every faster backend must match, runs anywhere JavaScript runs (Node and browsers), and
// favours being obviously right over being fast. Arithmetic happens in JS doubles and is
// rounded to float32 when stored.

import {
  type Backend,
  type BinaryOp,
  type MatView,
  type ReduceOp,
  registerBackend,
  type TypedArray,
  type UnaryOp,
  type View,
} from "../../tensor/backend.js";
import { numel, type Shape, viewProblem } from "../../tensor/shape.js";

// The specification checks its operands as the native kernels do: a view that leaves its buffer
// (or an output too small for the result) is a RangeError naming the operand, never NaN read from
// past the end or a loop over a wrapped-around element count. Core refuses such views before they
// get here (Tensor's constructor), so these checks guard direct callers of the backend.
function operand(op: string, name: string, v: View, shape: Shape): void {
  const p = viewProblem(v.data.length, shape, v.strides, v.offset);
  if (p !== null) throw new RangeError(`reference ${op} ${name} out of bounds: ${p}`);
}

function output(op: string, out: TypedArray, n: number): void {
  if (out.length < n) throw new RangeError(`reference ${op} output too small (${out.length} elements for ${n})`);
}

function matOperand(name: string, v: MatView, batch: number, rows: number, cols: number): void {
  const p = viewProblem(v.data.length, [batch, rows, cols], [v.batchStride, v.rowStride, v.colStride], v.offset);
  if (p !== null) throw new RangeError(`reference matmul operand ${name} out of bounds: ${p}`);
}

function rowIndices(op: string, idx: Int32Array, rows: number, cols: number, other: number, otherName: string): void {
  if (!Number.isSafeInteger(cols) || cols < 0) throw new RangeError(`reference ${op}: cols must be a non-negative integer (got ${cols})`);
  if (other < idx.length * cols)
    throw new RangeError(`reference ${op} ${otherName} too small (${other} elements for ${idx.length} rows of ${cols})`);
  if (cols === 0) return; // rows of width 0: nothing is read or written
  for (let r = 0; r < idx.length; r++) {
    const i = idx[r] as number;
    if (i < 0 || i >= rows) throw new RangeError(`reference ${op}: index out of range (${i} at position ${r}; ${rows} rows)`);
  }
}

/** Calls visit(bases, n) for every row of the last dim of `shape`, with the row's starting
 *  offset in each operand; each operand's inner stride is its last stride. */
function forEachRow(
  shape: readonly number[],
  views: readonly { strides: readonly number[]; offset: number }[],
  visit: (bases: number[], n: number) => void,
): void {
  const nd = shape.length;
  const bases = views.map((v) => v.offset);
  if (nd === 0) {
    visit(bases, 1);
    return;
  }
  for (const d of shape) if (d === 0) return;
  const n = shape[nd - 1] as number;
  const counter = new Array<number>(nd - 1).fill(0);
  for (;;) {
    visit(bases, n);
    // Odometer increment over the outer dims, updating every operand's base offset.
    let d = nd - 2;
    for (; d >= 0; d--) {
      const size = shape[d] as number;
      counter[d] = (counter[d] as number) + 1;
      for (let k = 0; k < views.length; k++) bases[k] = (bases[k] as number) + ((views[k] as View).strides[d] as number);
      if ((counter[d] as number) < size) break;
      for (let k = 0; k < views.length; k++) bases[k] = (bases[k] as number) - size * ((views[k] as View).strides[d] as number);
      counter[d] = 0;
    }
    if (d < 0) return;
  }
}

const lastStride = (v: { strides: readonly number[] }) => (v.strides.length ? (v.strides[v.strides.length - 1] as number) : 0);

/** erf with relative error below 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), enough for float32. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => Math.max(x, 0),
  erf,
  abs: Math.abs,
  sin: Math.sin,
  cos: Math.cos,
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  // NaN propagates through maximum/minimum, as in torch.maximum.
  maximum: (a, b) => (a !== a || b !== b ? Number.NaN : Math.max(a, b)),
  minimum: (a, b) => (a !== a || b !== b ? Number.NaN : Math.min(a, b)),
  eq: (a, b) => +(a === b),
  ne: (a, b) => +(a !== b),
  lt: (a, b) => +(a < b),
  le: (a, b) => +(a <= b),
  gt: (a, b) => +(a > b),
  ge: (a, b) => +(a >= b),
};

export const referenceBackend: Backend = {
  name: "reference",

  unary(op: UnaryOp, x: View, out: Float32Array): void {
    operand("unary", "input", x, x.shape);
    output("unary", out, numel(x.shape));
    const f = UNARY[op];
    const src = x.data;
    const xs = lastStride(x);
    let o = 0;
    forEachRow(x.shape, [x], ([b], n) => {
      for (let i = 0, p = b as number; i < n; i++, p += xs) out[o++] = f(src[p] as number);
    });
  },

  binary(op: BinaryOp, a: View, b: View, out: TypedArray): void {
    operand("binary", "input a", a, a.shape);
    operand("binary", "input b", b, a.shape);
    output("binary", out, numel(a.shape));
    const f = BINARY[op];
    const [ad, bd] = [a.data, b.data];
    const [as, bs] = [lastStride(a), lastStride(b)];
    const intOut = out instanceof Int32Array;
    let o = 0;
    forEachRow(a.shape, [a, b], ([pa, pb], n) => {
      for (let i = 0, p = pa as number, q = pb as number; i < n; i++, p += as, q += bs) {
        const v = f(ad[p] as number, bd[q] as number);
        // Integer division and powers truncate toward zero like C, so an int32 result is exact.
        out[o++] = intOut ? Math.trunc(v) : v;
      }
    });
  },

  where(cond: View, a: View, b: View, out: TypedArray): void {
    operand("where", "cond", cond, a.shape);
    operand("where", "input a", a, a.shape);
    operand("where", "input b", b, a.shape);
    output("where", out, numel(a.shape));
    const [cd, ad, bd] = [cond.data, a.data, b.data];
    const [cs, as, bs] = [lastStride(cond), lastStride(a), lastStride(b)];
    let o = 0;
    forEachRow(a.shape, [cond, a, b], ([pc, pa, pb], n) => {
      for (let i = 0, c = pc as number, p = pa as number, q = pb as number; i < n; i++, c += cs, p += as, q += bs) {
        out[o++] = (cd[c] as number) !== 0 ? (ad[p] as number) : (bd[q] as number);
      }
    });
  },

  copy(src: View, dst: View): void {
    operand("copy", "source", src, src.shape);
    operand("copy", "destination", dst, src.shape);
    const [sd, dd] = [src.data, dst.data];
    const [ss, ds] = [lastStride(src), lastStride(dst)];
    // Float-to-int copies truncate toward zero (C semantics), which Int32Array assignment does.
    forEachRow(src.shape, [src, dst], ([ps, pd], n) => {
      for (let i = 0, p = ps as number, q = pd as number; i < n; i++, p += ss, q += ds) dd[q] = sd[p] as number;
    });
  },

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Float32Array): void {
    operand("reduce", "input", x, x.shape);
    output("reduce", out, numel(x.shape.filter((_, i) => !axes.includes(i))));
    // Reorder dims as (kept..., reduced...) so each output element is one contiguous run of visits.
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const order = [...kept, ...axes];
    const shape = order.map((i) => x.shape[i] as number);
    const strides = order.map((i) => x.strides[i] as number);
    const inner = axes.reduce((p, a) => p * (x.shape[a] as number), 1);
    const src = x.data;
    let acc = op === "sum" ? 0 : Number.NEGATIVE_INFINITY;
    let count = 0;
    let o = 0;
    const flush = () => {
      out[o++] = acc;
      acc = op === "sum" ? 0 : Number.NEGATIVE_INFINITY;
      count = 0;
    };
    if (inner === 0) {
      out.fill(op === "sum" ? 0 : Number.NEGATIVE_INFINITY);
      return;
    }
    const s = strides.length ? (strides[strides.length - 1] as number) : 0;
    forEachRow(shape, [{ strides, offset: x.offset }], ([b], n) => {
      for (let i = 0, p = b as number; i < n; i++, p += s) {
        const v = src[p] as number;
        if (op === "sum") acc += v;
        else if (v > acc || v !== v) acc = v !== v || acc !== acc ? Number.NaN : v;
        if (++count === inner) flush();
      }
    });
  },

  matmul(a: MatView, b: MatView, out: Float32Array, batch: number, m: number, n: number, k: number): void {
    matOperand("a", a, batch, m, k);
    matOperand("b", b, batch, k, n);
    output("matmul", out, batch * m * n);
    const acc = new Float64Array(n);
    for (let bi = 0; bi < batch; bi++) {
      const ao = a.offset + bi * a.batchStride;
      const bo = b.offset + bi * b.batchStride;
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const av = a.data[ao + i * a.rowStride + p * a.colStride] as number;
          const row = bo + p * b.rowStride;
          for (let j = 0; j < n; j++) acc[j] = (acc[j] as number) + av * (b.data[row + j * b.colStride] as number);
        }
        out.set(acc, (bi * m + i) * n);
      }
    }
  },

  gather(table: Float32Array, idx: Int32Array, out: Float32Array, cols: number): void {
    rowIndices("gather", idx, cols > 0 ? Math.floor(table.length / cols) : 0, cols, out.length, "output");
    for (let r = 0; r < idx.length; r++) {
      const src = (idx[r] as number) * cols;
      out.set(table.subarray(src, src + cols), r * cols);
    }
  },

  indexAdd(dst: Float32Array, idx: Int32Array, src: Float32Array, cols: number): void {
    rowIndices("indexAdd", idx, cols > 0 ? Math.floor(dst.length / cols) : 0, cols, src.length, "source");
    for (let r = 0; r < idx.length; r++) {
      const d = (idx[r] as number) * cols;
      const s = r * cols;
      for (let c = 0; c < cols; c++) dst[d + c] = (dst[d + c] as number) + (src[s + c] as number);
    }
  },

  threads: () => 1,
};

registerBackend(referenceBackend, 0);
