// The position-wise feed-forward network and the transformer block that stacks attention and
// feed-forward with residual connections and layer norms, as GPT-2 has them (pre-LN, GELU with the
// tanh approximation, a 4x wide hidden layer). Models with another block (BERT's post-LN layers with
// Hugging Face's names) build it in their own file from the same nn layers.

import { dropout } from "../tensor/ops.js";
import { defaultGenerator, type Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { type AttentionCall, MultiHeadAttention } from "./attention.js";
import { LayerNorm, Linear } from "./layers.js";
import { Module } from "./module.js";

export interface BlockConfig {
  n_embd: number;
  n_head: number;
  /** Width of the feed-forward layer (GPT2Config's n_inner); default 4 * n_embd. */
  n_inner?: number;
  dropout?: number;
  bias?: boolean;
  causal?: boolean;
  layer_norm_epsilon?: number;
  generator?: Generator;
}

/** FFN(x) = GELU(x·W1 + b1)·W2 + b2 (GELU's tanh approximation, as GPT-2), applied to each position. */
export class FeedForward extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  constructor(
    nEmbd: number,
    nInner: number,
    readonly opts: { bias?: boolean; dropout?: number; generator?: Generator } = {},
  ) {
    super();
    this.c_fc = this.module("c_fc", new Linear(nEmbd, nInner, { bias: opts.bias, generator: opts.generator }));
    this.c_proj = this.module("c_proj", new Linear(nInner, nEmbd, { bias: opts.bias, generator: opts.generator }));
  }
  forward(x: Tensor): Tensor {
    const h = this.c_fc.forward(x, "gelu_tanh"); // (B, T, 4C)
    return dropout(this.c_proj.forward(h), this.opts.dropout ?? 0, this.training, this.opts.generator ?? defaultGenerator);
  }
}

/** x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) (pre-LN: normalise before each sublayer). */
export class TransformerBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: FeedForward;

  constructor(cfg: BlockConfig) {
    super();
    const common = { bias: cfg.bias, dropout: cfg.dropout, generator: cfg.generator };
    const eps = cfg.layer_norm_epsilon ?? 1e-5;
    this.ln_1 = this.module("ln_1", new LayerNorm(cfg.n_embd, eps, { bias: cfg.bias }));
    this.attn = this.module("attn", new MultiHeadAttention(cfg.n_embd, cfg.n_head, { ...common, causal: cfg.causal ?? true }));
    this.ln_2 = this.module("ln_2", new LayerNorm(cfg.n_embd, eps, { bias: cfg.bias }));
    this.mlp = this.module("mlp", new FeedForward(cfg.n_embd, cfg.n_inner ?? 4 * cfg.n_embd, common));
  }

  forward(x: Tensor, call: AttentionCall = {}): Tensor {
    x = x.add(this.attn.forward(this.ln_1.forward(x), call));
    return x.add(this.mlp.forward(this.ln_2.forward(x)));
  }
}
