// Tensor: an n-dimensional view (shape, strides, offset) of a flat typed-array buffer, plus the
// autograd bookkeeping (requiresGrad, grad, and the node that produced it).
//
// Views (reshape of a contiguous tensor, transpose, permute, slice, expand) share the buffer and
// copy nothing. Every op is a function in ops.ts; the methods here are thin conveniences so code
// reads like PyTorch: `x.matmul(w).add(b).relu()`.

import type { Node } from "./autograd.js";
import type { DType, TypedArray, View } from "./backend.js";
import * as ops from "./ops.js";
import { defaultGenerator, type Generator } from "./random.js";
import { checkView, contiguousStrides, fmtShape, isContiguous, numel, type Shape } from "./shape.js";

export type Scalar = number;
export type TensorLike = Tensor | number;
export type NestedArray = number | NestedArray[];

export class Tensor {
  /** The buffer this tensor views. Views share it with the tensor they came from. */
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** Accumulated gradient after `backward()`, for tensors with requiresGrad. */
  grad: Tensor | null = null;
  /** The op that produced this tensor (null for leaves and once the graph is released). */
  _node: Node | null = null;
  /** Set once backward() has freed the node that produced this tensor. */
  _released = false;
  private _requiresGrad = false;
  /** Optional name, used by Module for parameters and by error messages. */
  name?: string;

  constructor(data: TypedArray, shape: Shape, strides?: Shape, offset = 0) {
    this.data = data;
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    this.dtype = data instanceof Int32Array ? "int32" : "float32";
    // A malformed view is refused here, in core, so every backend sees only views inside their
    // buffers and every backend gives the same error (the reference backend used to read NaN or
    // loop for ever; the native one to read out of bounds or wrap its element count).
    checkView("Tensor", data.length, this.shape, this.strides, offset);
  }

  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(v: boolean) {
    if (v && this.dtype !== "float32") {
      throw new Error(`requiresGrad: only float32 tensors can require gradients (this one is ${this.dtype})`);
    }
    this._requiresGrad = v;
  }

  /** Mark this tensor as a leaf that gradients should reach (like torch's requires_grad_()). */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  numel(): number {
    return numel(this.shape);
  }

  isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** The kernel-facing description of this tensor's memory. */
  view(): View {
    return this;
  }

  /** A contiguous Float32Array/Int32Array of exactly this tensor's elements (no copy if already contiguous). */
  contiguousData(): TypedArray {
    const t = this.contiguous();
    if (t.offset === 0 && t.data.length === t.size) return t.data;
    return t.data.subarray(t.offset, t.offset + t.size);
  }

  /** Plain JS numbers (a copy), row-major. */
  toArray(): number[] {
    return Array.from(this.contiguousData());
  }

  /** Nested JS arrays in this tensor's shape (a copy), like torch's tolist(). */
  tolist(): NestedArray {
    const flat = this.toArray();
    let i = 0;
    const build = (d: number): NestedArray => {
      if (d === this.ndim) return flat[i++] as number;
      return Array.from({ length: this.shape[d] as number }, () => build(d + 1));
    };
    return build(0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) {
      throw new Error(`item: tensor has ${this.size} elements (shape ${fmtShape(this.shape)}); only one-element tensors have an item`);
    }
    return this.data[this.offset] as number;
  }

  toString(): string {
    const body = this.size <= 64 ? JSON.stringify(this.tolist()) : `${fmtShape(this.shape)} ...`;
    return `tensor(${body}, dtype=${this.dtype}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }

  // ---- autograd -----------------------------------------------------------------------------

  /** Backpropagate from this tensor; a non-scalar needs an explicit gradient of its shape. */
  backward(grad?: Tensor): void {
    ops.backward(this, grad);
  }

  /** Same data, cut from the graph: gradients do not flow through the result. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, this.strides, this.offset);
  }

  // ---- views and layout ---------------------------------------------------------------------

  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  clone(): Tensor {
    return ops.clone(this);
  }
  reshape(...shape: number[] | [number[]]): Tensor {
    return ops.reshape(this, flatArgs(shape));
  }
  view_(...shape: number[] | [number[]]): Tensor {
    return ops.reshape(this, flatArgs(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return ops.flatten(this, startDim, endDim);
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return ops.permute(this, flatArgs(dims));
  }
  transpose(dim0 = -2, dim1 = -1): Tensor {
    return ops.transpose(this, dim0, dim1);
  }
  /** Transpose of the last two dims (a matrix's transpose). */
  get T(): Tensor {
    return ops.transpose(this, -2, -1);
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return ops.expand(this, flatArgs(shape));
  }
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  squeeze(dim?: number): Tensor {
    return ops.squeeze(this, dim);
  }
  /** Elements start..end (exclusive) with step along dim, as a view. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return ops.slice(this, dim, start, end, step);
  }
  /** Row indexing: a number selects one entry of dim 0 (a view); an int32 tensor gathers rows. */
  index(i: number | Tensor): Tensor {
    return ops.index(this, i);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.slice(this, dim, start, start + length);
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return ops.split(this, sizeOrSizes, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return ops.chunk(this, chunks, dim);
  }
  float(): Tensor {
    return ops.cast(this, "float32");
  }
  int(): Tensor {
    return ops.cast(this, "int32");
  }
  to(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }

  // ---- elementwise --------------------------------------------------------------------------

  add(o: TensorLike): Tensor {
    return ops.add(this, o);
  }
  sub(o: TensorLike): Tensor {
    return ops.sub(this, o);
  }
  mul(o: TensorLike): Tensor {
    return ops.mul(this, o);
  }
  div(o: TensorLike): Tensor {
    return ops.div(this, o);
  }
  pow(o: TensorLike): Tensor {
    return ops.pow(this, o);
  }
  maximum(o: TensorLike): Tensor {
    return ops.maximum(this, o);
  }
  minimum(o: TensorLike): Tensor {
    return ops.minimum(this, o);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  rsqrt(): Tensor {
    return ops.div(1, ops.sqrt(this));
  }
  square(): Tensor {
    return ops.mul(this, this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  sin(): Tensor {
    return ops.sin(this);
  }
  cos(): Tensor {
    return ops.cos(this);
  }
  erf(): Tensor {
    return ops.erf(this);
  }
  clamp(min?: number, max?: number): Tensor {
    return ops.clamp(this, min, max);
  }
  eq(o: TensorLike): Tensor {
    return ops.eq(this, o);
  }
  ne(o: TensorLike): Tensor {
    return ops.ne(this, o);
  }
  lt(o: TensorLike): Tensor {
    return ops.lt(this, o);
  }
  le(o: TensorLike): Tensor {
    return ops.le(this, o);
  }
  gt(o: TensorLike): Tensor {
    return ops.gt(this, o);
  }
  ge(o: TensorLike): Tensor {
    return ops.ge(this, o);
  }
  /** Fill positions where mask is non-zero with value (mask broadcasts to this shape). */
  maskedFill(mask: Tensor, value: number): Tensor {
    return ops.maskedFill(this, mask, value);
  }

  // ---- reductions and products --------------------------------------------------------------

  sum(dim?: number | number[], keepdim = false): Tensor {
    return ops.sum(this, dim, keepdim);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return ops.mean(this, dim, keepdim);
  }
  max(dim?: number | number[], keepdim = false): Tensor {
    return ops.max(this, dim, keepdim);
  }
  min(dim?: number | number[], keepdim = false): Tensor {
    return ops.min(this, dim, keepdim);
  }
  /** Variance; correction=1 is the unbiased estimator (PyTorch's default), 0 the biased one. */
  var(dim?: number | number[], keepdim = false, correction = 1): Tensor {
    return ops.variance(this, dim, keepdim, correction);
  }
  std(dim?: number | number[], keepdim = false, correction = 1): Tensor {
    return ops.variance(this, dim, keepdim, correction).sqrt();
  }
  argmax(dim = -1, keepdim = false): Tensor {
    return ops.argmax(this, dim, keepdim);
  }
  matmul(o: Tensor): Tensor {
    return ops.matmul(this, o);
  }
  softmax(dim = -1): Tensor {
    return ops.softmax(this, dim);
  }
  logSoftmax(dim = -1): Tensor {
    return ops.logSoftmax(this, dim);
  }
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return ops.gelu(this, approximate);
  }

  // ---- in place (outside autograd: optimizers, initialisers) --------------------------------

  /** Copy src (broadcast to this shape) into this tensor's memory. */
  copy_(src: TensorLike): this {
    ops.copyInto(this, src);
    return this;
  }
  fill_(value: number): this {
    ops.copyInto(this, value);
    return this;
  }
  zero_(): this {
    return this.fill_(0);
  }
  /** Fill with N(mean, std²) samples in place: the values randn(shape, the same options) would
   *  give, without allocating a second tensor (initialising a large embedding twice over). */
  normal_(opts: { mean?: number; std?: number; generator?: Generator } = {}): this {
    const { mean = 0, std = 1, generator: g = defaultGenerator } = opts;
    if (this.dtype !== "float32" || !this.isContiguous()) {
      throw new Error(`normal_: needs a contiguous float32 tensor (this one is ${this.dtype}, shape ${fmtShape(this.shape)})`);
    }
    const d = this.data;
    for (let i = this.offset, end = this.offset + this.size; i < end; i++) d[i] = mean + std * g.normal();
    return this;
  }
}

function flatArgs(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}
