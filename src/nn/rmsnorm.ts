// RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"): LayerNorm without the
// mean subtraction and the bias, y = x / sqrt(mean(x²) + eps) · g. Llama, Qwen and Mistral use it
// before every sublayer, and Qwen3 also on each attention head's queries and keys.

import { full } from "../tensor/creation.js";
import { add, div, mean, mul, sqrt } from "../tensor/ops.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";

/** x (..., C) normalised by its root mean square over the last dim, times weight (C). Written with
 *  primitives, so its gradient comes from theirs (as Hugging Face's LlamaRMSNorm computes it in float32). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const C = x.shape[x.ndim - 1] as number;
  if (weight && (weight.ndim !== 1 || weight.shape[0] !== C)) {
    throw new Error(`rmsNorm: weight has shape ${fmtShape(weight.shape)} but the normalised dim has size ${C}`);
  }
  const ms = mean(mul(x, x), -1, true); // (..., 1)
  const y = mul(x, div(1, sqrt(add(ms, eps))));
  return weight ? mul(y, weight) : y;
}

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
