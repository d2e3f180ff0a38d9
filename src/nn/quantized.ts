// Layers whose weights may be quantised: QLinear and QEmbedding hold either a float32 parameter
// (trainable, as Linear and Embedding) or a QuantizedTensor, the GGML blocks of a GGUF file kept
// as they are in memory. A backend with quantised kernels (the native one: native/quant.cc) computes
// on the blocks directly; elsewhere a quantised weight decodes a few rows at a time into a small
// float32 buffer that the backend's matrix product reads. Either way a 4-bit model stays about a
// quarter of its float32 size while it runs.
//
// Both layers are built from tensors handed to them, so a loader creates each weight once, in its
// final memory, with no random initialisation first; `ParamFactory` is how a model asks for them.

import { GGML_TYPE, QuantizedTensor, roundActivations } from "../quant/ggml.js";
import { isGradEnabled, noGrad } from "../tensor/autograd.js";
import { getBackend } from "../tensor/backend.js";
import { empty, full, tensor, zeros } from "../tensor/creation.js";
import { add, broadcastView, contiguous, embedding, linear } from "../tensor/ops.js";
import type { Generator } from "../tensor/random.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LinearAdapter } from "./layers.js";
import { Module } from "./module.js";

export type AnyWeight = Tensor | QuantizedTensor;

/** How a fresh weight is initialised: N(0, std²), ones (norm gains) or zeros (biases). */
export type Init = { normal: number } | "ones" | "zeros";

/** Hands a layer its weight `name` of row-major `shape`: a loader returns the file's tensor (float32
 *  or quantised), a fresh model a newly initialised one. */
export type ParamFactory = (name: string, shape: number[], init: Init) => AnyWeight;

/** A factory that initialises every weight afresh from a seeded generator. */
export function randomParams(generator: Generator): ParamFactory {
  return (_name, shape, init) => {
    if (init === "ones") return full(shape, 1);
    if (init === "zeros") return zeros(shape);
    return empty(shape).normal_({ std: init.normal, generator });
  };
}

/** The same factory with `prefix.` in front of every name (a submodule's view of its parent's). */
export function prefixed(f: ParamFactory, prefix: string): ParamFactory {
  return (name, shape, init) => f(`${prefix}.${name}`, shape, init);
}

function checkShape(where: string, w: AnyWeight, shape: readonly number[]): void {
  if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${where}: weight has shape ${fmtShape(w.shape)} but the layer needs ${fmtShape(shape)}`);
  }
}

/** A float32 tensor of a weight: itself, or a quantised one decoded (for small weights such as norm gains). */
export function asFloat(w: AnyWeight): Tensor {
  return w instanceof QuantizedTensor ? tensor(w.toFloat32(), { shape: [...w.shape] }) : w;
}

// Decoded rows of a quantised weight, reused from call to call (JavaScript runs one call at a time).
let scratch = new Float32Array(0);
/** About this many bytes of float32 rows are decoded per backend matmul: small enough to stay in cache. */
const CHUNK_BYTES = 1 << 20;

/**
 * y = x · Wᵀ + b for a quantised W (N, K), computed as llama.cpp's CPU backend does: x is rounded to
 * the weight type's dot-product type (Q8_0 blocks for Q8_0/Q4_0, Q8_K for K-quants, float16 for F16;
 * quant/ggml.ts roundActivations), then multiplied with W's blocks. A backend with `quantMatmul`
 * (native) does both steps itself, in integer dot products per block; otherwise rows of W are decoded
 * in chunks, each multiplied by the backend's matmul straight into its columns of y (the reference
 * that the native kernels are tested against). When x needs a gradient (an adapter trained on a
 * quantised model), the whole of W is decoded and the ordinary `linear` records the step, on x as it is.
 */
export function quantizedLinear(x: Tensor, w: QuantizedTensor, bias: Tensor | null = null): Tensor {
  const [N, K] = [w.rows, w.cols];
  if (x.shape[x.ndim - 1] !== K) throw new Error(`quantizedLinear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(w.shape)}`);
  if (isGradEnabled() && x.requiresGrad) return linear(x, tensor(w.toFloat32(), { shape: [N, K] }), bias);
  const x2 = contiguous(x);
  const M = x2.size / K;
  const be = getBackend();
  if (be.quantMatmul && M > 0 && N > 0) {
    const out = empty([...x.shape.slice(0, -1), N]);
    const o = out.data as Float32Array;
    const xs = (x2.data as Float32Array).subarray(x2.offset, x2.offset + x2.size);
    if (be.quantMatmul(GGML_TYPE[w.type], w.data, xs, o, M, N, K)) {
      if (bias) be.binary("add", out, broadcastView(bias, out.shape), o);
      return out;
    }
  }
  const xr = (x2.data as Float32Array).slice(x2.offset, x2.offset + x2.size);
  for (let m = 0; m < M; m++) roundActivations(w.type, xr, m * K, K);
  const out = empty([...x.shape.slice(0, -1), N]);
  const o = out.data as Float32Array;
  const R = Math.max(1, Math.min(N, Math.floor(CHUNK_BYTES / (4 * K))));
  if (scratch.length < R * K) scratch = new Float32Array(R * K);
  const tmp = M > 1 ? new Float32Array(M * R) : null;
  const xv = { data: xr, offset: 0, batchStride: 0, rowStride: K, colStride: 1 };
  for (let r0 = 0; r0 < N; r0 += R) {
    const rr = Math.min(R, N - r0);
    w.dequantizeRows(r0, r0 + rr, scratch);
    const wv = { data: scratch, offset: 0, batchStride: 0, rowStride: 1, colStride: K }; // (K, rr) = the rows, transposed
    if (!tmp) {
      be.matmul(xv, wv, o.subarray(r0, r0 + rr), 1, 1, rr, K);
      continue;
    }
    be.matmul(xv, wv, tmp, 1, M, rr, K); // (M, rr)
    for (let m = 0; m < M; m++) o.set(tmp.subarray(m * rr, (m + 1) * rr), m * N + r0);
  }
  if (bias) be.binary("add", out, broadcastView(bias, out.shape), o);
  return out;
}

/**
 * The outputs of several layers on one input, as [l.forward(x) for l of layers]: where every weight is
 * quantised in one type and nothing needs a gradient or adds an adapter, one native call quantises x
 * once and runs all the products as one job (a layer's q, k and v projections, or SwiGLU's gate and
 * up); otherwise each layer's own forward.
 */
export function qlinearMany(x: Tensor, layers: readonly QLinear[]): Tensor[] {
  const be = getBackend();
  const w0 = layers[0]?.weight;
  const K = x.shape[x.ndim - 1] as number;
  const fits =
    be.quantMatmulMany &&
    w0 instanceof QuantizedTensor &&
    layers.length >= 2 &&
    layers.length <= 4 &&
    !(isGradEnabled() && x.requiresGrad) &&
    layers.every((l) => l.weight instanceof QuantizedTensor && l.weight.type === w0.type && l.weight.cols === K && !l.adapter?.enabled);
  if (fits && x.size > 0) {
    const x2 = contiguous(x);
    const M = x2.size / K;
    const ws = layers.map((l) => l.weight as QuantizedTensor);
    const outs = ws.map((w) => empty([...x.shape.slice(0, -1), w.rows]));
    const xs = (x2.data as Float32Array).subarray(x2.offset, x2.offset + x2.size);
    const ys = outs.map((o) => o.data as Float32Array);
    const done = be.quantMatmulMany?.(
      GGML_TYPE[w0.type],
      ws.map((w) => w.data),
      xs,
      ys,
      M,
      ws.map((w) => w.rows),
      K,
    );
    if (done) {
      layers.forEach((l, i) => {
        const o = outs[i] as Tensor;
        if (l.bias) be.binary("add", o, broadcastView(l.bias, o.shape), o.data as Float32Array);
      });
      return outs;
    }
  }
  return layers.map((l) => l.forward(x));
}

/** Linear with a float32 or quantised weight (out_features, in_features), built from given tensors. */
export class QLinear extends Module {
  readonly weight: AnyWeight;
  readonly bias: Tensor | null;
  constructor(weight: AnyWeight, bias: Tensor | null = null) {
    super();
    if (weight.shape.length !== 2) throw new Error(`QLinear: weight must be 2-D (out, in), got ${fmtShape(weight.shape)}`);
    this.weight = weight instanceof QuantizedTensor ? weight : this.param("weight", weight);
    this.bias = bias ? this.param("bias", bias) : null;
  }
  /** Build from a factory: weight (outFeatures, inFeatures) ~ N(0, std²), bias zeros when asked for. */
  static create(f: ParamFactory, inFeatures: number, outFeatures: number, opts: { bias?: boolean; std: number }): QLinear {
    const w = f("weight", [outFeatures, inFeatures], { normal: opts.std });
    checkShape("QLinear", w, [outFeatures, inFeatures]);
    const b = opts.bias ? asFloat(f("bias", [outFeatures], "zeros")) : null;
    if (b) checkShape("QLinear bias", b, [outFeatures]);
    return new QLinear(w, b);
  }
  get inFeatures(): number {
    return this.weight.shape[1] as number;
  }
  get outFeatures(): number {
    return this.weight.shape[0] as number;
  }
  get quantized(): boolean {
    return this.weight instanceof QuantizedTensor;
  }
  /** A low-rank adapter (LoRA, nn/lora.ts) added to the output, as on Linear; not a submodule. On a
   *  quantised weight this is QLoRA: the blocks stay frozen and the gradient reaches the input
   *  through quantizedLinear. */
  adapter: LinearAdapter | null = null;
  /** (..., in) -> (..., out). */
  forward(x: Tensor): Tensor {
    const y = this.weight instanceof QuantizedTensor ? quantizedLinear(x, this.weight, this.bias) : linear(x, this.weight, this.bias);
    return this.adapter?.enabled ? add(y, this.adapter.forward(x)) : y;
  }
}

/** A token embedding table (V, C), float32 or quantised; a quantised one decodes only the rows looked up. */
export class QEmbedding extends Module {
  readonly weight: AnyWeight;
  constructor(weight: AnyWeight) {
    super();
    if (weight.shape.length !== 2) throw new Error(`QEmbedding: weight must be 2-D (V, C), got ${fmtShape(weight.shape)}`);
    this.weight = weight instanceof QuantizedTensor ? weight : this.param("weight", weight);
  }
  static create(f: ParamFactory, numEmbeddings: number, embeddingDim: number, std: number): QEmbedding {
    const w = f("weight", [numEmbeddings, embeddingDim], { normal: std });
    checkShape("QEmbedding", w, [numEmbeddings, embeddingDim]);
    return new QEmbedding(w);
  }
  /** (...) int32 ids -> (..., C). */
  forward(ids: Tensor): Tensor {
    const w = this.weight;
    if (!(w instanceof QuantizedTensor)) return embedding(w, ids);
    const [V, C] = [w.rows, w.cols];
    const idx = ids.contiguousData() as Int32Array;
    const out = empty([...ids.shape, C]);
    noGrad(() => {
      for (let i = 0; i < idx.length; i++) {
        const id = idx[i] as number;
        if (!(id >= 0 && id < V)) throw new Error(`embedding: index ${id} is out of range for a table of ${V} rows`);
        w.dequantizeRows(id, id + 1, out.data as Float32Array, i * C);
      }
    });
    return out;
  }
}
