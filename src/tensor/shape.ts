// Shape arithmetic shared by every op: sizes, row-major strides, NumPy broadcasting, axis lists.

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C order) strides of a contiguous tensor of this shape. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i] as number;
  }
  return s;
}

export function isContiguous(shape: Shape, strides: Shape): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i] as number;
    // A dimension of size 1 can have any stride without changing the memory order.
    if (d !== 1 && strides[i] !== acc) return false;
    acc *= d;
  }
  return true;
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting: align trailing dims; each pair must be equal or contain a 1. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together ` +
          `(dimension ${i - n} is ${da} vs ${db}; each pair must match or be 1)`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Turn a possibly negative axis into 0..ndim-1, naming the op when it is out of range. */
export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) {
    throw new Error(`${op}: dim ${axis} is out of range for a tensor with ${ndim} dimension(s)`);
  }
  return a;
}

/** Sorted, distinct, non-negative axes; `undefined` means all axes. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, ndim)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new Error(`${op}: repeated dim in ${JSON.stringify(list)}`);
  return out;
}

/** The most elements a tensor may have: every index must be exact in a JS number. */
export const MAX_NUMEL = Number.MAX_SAFE_INTEGER;

/**
 * Check that a strided view (shape, strides, offset) of a buffer of `length` elements is well
 * formed and stays inside the buffer: non-negative integer sizes, integer strides, an integer
 * offset, at most MAX_NUMEL elements, and every element it addresses in [0, length). Returns
 * null when it is, else what is wrong, so each caller words its own error.
 */
export function viewProblem(length: number, shape: Shape, strides: Shape, offset: number): string | null {
  const nd = shape.length;
  if (strides.length !== nd) return `strides ${fmtShape(strides)} do not match shape ${fmtShape(shape)} (${nd} dims)`;
  let n = 1;
  let lo = offset;
  let hi = offset;
  for (let i = 0; i < nd; i++) {
    const d = shape[i] as number;
    const s = strides[i] as number;
    if (!Number.isInteger(d) || d < 0) return `shape ${fmtShape(shape)} must contain non-negative integers`;
    if (!Number.isSafeInteger(s)) return `strides ${fmtShape(strides)} must be integers`;
    n *= d;
    const e = (d - 1) * s;
    if (d > 0 && e < 0) lo += e;
    else if (d > 0) hi += e;
  }
  if (!Number.isSafeInteger(offset) || offset < 0) return `offset ${offset} must be a non-negative integer`;
  if (n > MAX_NUMEL || (n > 0 && shape.some((d) => d > MAX_NUMEL)))
    return `shape ${fmtShape(shape)} has ${n.toPrecision(3)} elements, more than the 2^53 a tensor can index`;
  if (n > 0 && (lo < 0 || hi >= length || !Number.isSafeInteger(hi) || !Number.isSafeInteger(lo))) {
    const reach = lo < 0 ? `element ${lo}` : `element ${hi}`;
    return `a view of shape ${fmtShape(shape)} (strides ${fmtShape(strides)}, offset ${offset}) reaches ${reach} of a buffer of ${length} elements`;
  }
  return null;
}

/** viewProblem as an error named after the function `fn`. */
export function checkView(fn: string, length: number, shape: Shape, strides: Shape, offset: number): void {
  const problem = viewProblem(length, shape, strides, offset);
  if (problem !== null) throw new RangeError(`${fn}: ${problem}`);
}
