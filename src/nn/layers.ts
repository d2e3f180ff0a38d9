// The basic layers, named and initialised as in torch.nn: Linear, Embedding, LayerNorm, Dropout.

import { full, rand, randn, zeros } from "../tensor/creation.js";
import { add, dropout, embedding, gelu, layerNorm, linear } from "../tensor/ops.js";
import { defaultGenerator, type Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";

/** What Linear.forward adds to its output when set: (..., in) -> (..., out). */
export interface LinearAdapter {
  /** false: the layer computes its base output only (e.g. a DPO reference without a weight copy). */
  readonly enabled: boolean;
  forward(x: Tensor): Tensor;
}

/** y = x · Wᵀ + b; W is (out_features, in_features), initialised U(-1/√in, 1/√in) like PyTorch. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; generator?: Generator } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    const g = opts.generator ?? defaultGenerator;
    this.weight = this.param("weight", rand([outFeatures, inFeatures], { low: -bound, high: bound, generator: g }));
    this.bias = opts.bias === false ? null : this.param("bias", rand([outFeatures], { low: -bound, high: bound, generator: g }));
  }
  /** A low-rank adapter (LoRA, see lora.ts) whose output is added before the activation. Not a
   *  submodule: the layer's own parameters and names stay the base model's. */
  adapter: LinearAdapter | null = null;
  /** (..., in) -> (..., out); an activation fuses into the bias add when the backend can. */
  forward(x: Tensor, activation: "none" | "gelu" | "gelu_tanh" = "none"): Tensor {
    if (!this.adapter?.enabled) return linear(x, this.weight, this.bias, activation);
    const y = add(linear(x, this.weight, this.bias), this.adapter.forward(x));
    return activation === "none" ? y : gelu(y, activation === "gelu_tanh" ? "tanh" : "none");
  }
}

/** A lookup table of vectors, one row per token id: word embeddings. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: { generator?: Generator } = {},
  ) {
    super();
    this.weight = this.param("weight", randn([numEmbeddings, embeddingDim], { generator: opts.generator }));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids); // (...) int32 -> (..., C)
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly normalizedShape: number,
    readonly eps = 1e-5,
    opts: { bias?: boolean } = {},
  ) {
    super();
    this.weight = this.param("weight", full([normalizedShape], 1));
    this.bias = opts.bias === false ? null : this.param("bias", zeros([normalizedShape]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(
    readonly p: number,
    readonly generator: Generator = defaultGenerator,
  ) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: probability must be in [0, 1] (got ${p})`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}
