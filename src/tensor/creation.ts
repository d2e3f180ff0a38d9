// Creating tensors: from JS arrays and typed arrays, constants, ranges and seeded random numbers.

import type { DType, TypedArray } from "./backend.js";
import { allocData } from "./memory.js";
import { defaultGenerator, type Generator } from "./random.js";
import { fmtShape, numel, type Shape } from "./shape.js";
import { type NestedArray, Tensor } from "./tensor.js";

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

/** A new contiguous tensor whose contents are undefined (zero outside a MemoryArena); every
 *  kernel output is allocated this way and fully written by the kernel. */
export function empty(shape: Shape, dtype: DType = "float32"): Tensor {
  return new Tensor(allocData(dtype, numel(shape)), shape);
}

function checkShape(fn: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`${fn}: shape ${fmtShape(shape)} must contain non-negative integers`);
    }
  }
}

function finish(t: Tensor, opts?: CreateOptions): Tensor {
  if (opts?.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Build a tensor from nested arrays, a flat array with a shape, or a typed array (used without copying). */
export function tensor(values: NestedArray | TypedArray | number[], opts: CreateOptions & { shape?: Shape } = {}): Tensor {
  if (values instanceof Float32Array || values instanceof Int32Array) {
    const shape = opts.shape ?? [values.length];
    if (numel(shape) !== values.length) {
      throw new Error(`tensor: shape ${fmtShape(shape)} needs ${numel(shape)} values but the array has ${values.length}`);
    }
    const wanted = opts.dtype ?? (values instanceof Int32Array ? "int32" : "float32");
    const data =
      (wanted === "int32") === values instanceof Int32Array
        ? values
        : wanted === "int32"
          ? new Int32Array(values.length)
          : new Float32Array(values.length);
    if (data !== values) data.set(values);
    return finish(new Tensor(data, shape), opts);
  }
  const shape: number[] = [];
  let probe: NestedArray = values as NestedArray;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as NestedArray;
  }
  const flat: unknown[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) walk(e);
    else flat.push(v);
  };
  walk(values);
  if (flat.length !== numel(shape)) {
    throw new Error(
      `tensor: nested arrays are ragged (expected ${numel(shape)} numbers for shape ${fmtShape(shape)}, found ${flat.length})`,
    );
  }
  for (const v of flat) {
    if (typeof v !== "number") throw new Error(`tensor: expected numbers, found ${typeof v} (${String(v)})`);
  }
  const finalShape = opts.shape ?? shape;
  if (numel(finalShape) !== flat.length) {
    throw new Error(`tensor: shape ${fmtShape(finalShape)} needs ${numel(finalShape)} values but ${flat.length} were given`);
  }
  const data = allocData(opts.dtype ?? "float32", flat.length);
  data.set(flat as number[]);
  return finish(new Tensor(data, finalShape), opts);
}

export function full(shape: Shape, value: number, opts?: CreateOptions): Tensor {
  checkShape("full", shape);
  const t = empty(shape, opts?.dtype);
  t.data.fill(value); // an arena buffer may hold old values, so even zeros are written
  return finish(t, opts);
}

export function zeros(shape: Shape, opts?: CreateOptions): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts?: CreateOptions): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor, opts?: CreateOptions): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, ...opts });
}

export function onesLike(t: Tensor, opts?: CreateOptions): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, ...opts });
}

/** Values start, start+step, ... below end (like torch.arange); int32 unless a bound is fractional. */
export function arange(start: number, end?: number, step = 1, opts?: CreateOptions): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new Error("arange: step must be non-zero");
  const n = Math.max(0, Math.ceil((end - start) / step));
  const integral = Number.isInteger(start) && Number.isInteger(step);
  const t = empty([n], opts?.dtype ?? (integral ? "int32" : "float32"));
  for (let i = 0; i < n; i++) t.data[i] = start + i * step;
  return finish(t, opts);
}

/** Standard normal samples times std plus mean, from a seedable generator. */
export function randn(shape: Shape, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  checkShape("randn", shape);
  const g = opts.generator ?? defaultGenerator;
  const t = empty(shape);
  const { mean = 0, std = 1 } = opts;
  for (let i = 0; i < t.data.length; i++) t.data[i] = mean + std * g.normal();
  return finish(t, opts);
}

/** Uniform samples in [low, high). */
export function rand(shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  checkShape("rand", shape);
  const g = opts.generator ?? defaultGenerator;
  const t = empty(shape);
  const { low = 0, high = 1 } = opts;
  for (let i = 0; i < t.data.length; i++) t.data[i] = low + (high - low) * g.random();
  return finish(t, opts);
}

/** Integers uniform in [low, high), int32. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  checkShape("randint", shape);
  if (!(high > low)) throw new Error(`randint: high (${high}) must be greater than low (${low})`);
  const g = opts.generator ?? defaultGenerator;
  const t = empty(shape, "int32");
  for (let i = 0; i < t.data.length; i++) t.data[i] = low + g.randint(high - low);
  return t;
}
