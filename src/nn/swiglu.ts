// The SwiGLU feed-forward network (Shazeer 2020, "GLU Variants Improve Transformer"), as in Llama,
// Qwen and Mistral: FFN(x) = W_down (SiLU(W_gate x) ⊙ W_up x), three bias-free projections.
// Parameter names follow Hugging Face's LlamaMLP (gate_proj, up_proj, down_proj).

import { silu, swiglu } from "../tensor/ops.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";
import { type ParamFactory, prefixed, QLinear, qlinearMany } from "./quantized.js";

// SiLU (swish) is one op of tensor/ops.ts, as is the gating silu(gate) · up.
export { silu };

export class SwiGLU extends Module {
  readonly gate_proj: QLinear;
  readonly up_proj: QLinear;
  readonly down_proj: QLinear;
  constructor(hiddenSize: number, intermediateSize: number, params: ParamFactory, opts: { std: number; downStd?: number }) {
    super();
    this.gate_proj = this.module("gate_proj", QLinear.create(prefixed(params, "gate_proj"), hiddenSize, intermediateSize, opts));
    this.up_proj = this.module("up_proj", QLinear.create(prefixed(params, "up_proj"), hiddenSize, intermediateSize, opts));
    this.down_proj = this.module(
      "down_proj",
      QLinear.create(prefixed(params, "down_proj"), intermediateSize, hiddenSize, { std: opts.downStd ?? opts.std }),
    );
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor): Tensor {
    const [gate, up] = qlinearMany(x, [this.gate_proj, this.up_proj]) as [Tensor, Tensor]; // (B, T, I), one call where the weights allow
    return this.down_proj.forward(swiglu(gate, up));
  }
}
