// RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"): LayerNorm without the
// mean subtraction and the bias, y = x / sqrt(mean(x²) + eps) · g. Llama, Qwen and Mistral use it
// before every sublayer, and Qwen3 also on each attention head's queries and keys.

import { full } from "../tensor/creation.js";
import { rmsNorm } from "../tensor/ops.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";

// One op (tensor/ops.ts): a fused kernel forward and backward where the backend has it, else the
// composition of primitives that specifies it.
export { rmsNorm };

export class RMSNorm extends Module {
  readonly weight: Tensor;
  /** A gain of ones, or the given tensor (a loader's). */
  constructor(
    readonly normalizedShape: number,
    readonly eps = 1e-6,
    weight?: Tensor,
  ) {
    super();
    if (weight && (weight.ndim !== 1 || weight.shape[0] !== normalizedShape)) {
      throw new Error(`RMSNorm: weight has shape ${fmtShape(weight.shape)}, expected [${normalizedShape}]`);
    }
    this.weight = this.param("weight", weight ?? full([normalizedShape], 1));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
