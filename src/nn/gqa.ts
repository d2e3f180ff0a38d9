// Grouped-query attention (Ainslie et al. 2023, "GQA"): nh query heads share nkv key/value heads,
// nh / nkv queries to each, so the KV cache is nh / nkv times smaller than multi-head attention's
// (nkv = nh is multi-head attention, nkv = 1 multi-query). Positions enter by rotating queries and
// keys (RoPE). As in Hugging Face's LlamaAttention: q_proj, k_proj, v_proj and o_proj, with
// optional q/k/v biases (Qwen2) and an RMSNorm over each head's queries and keys before the
// rotation (Qwen3's q_norm and k_norm). Query head h reads key/value head floor(h / (nh / nkv)).

import { isGradEnabled } from "../tensor/autograd.js";
import { expand, reshape, scaledDotProductAttention, transpose, unsqueeze } from "../tensor/ops.js";
import type { Tensor } from "../tensor/tensor.js";
import type { KVCache } from "./attention.js";
import { Module } from "./module.js";
import { type Packing, pack, unpack } from "./packing.js";
import { asFloat, type ParamFactory, prefixed, QLinear, qlinearMany } from "./quantized.js";
import { RMSNorm } from "./rmsnorm.js";
import type { RotaryEmbedding } from "./rotary.js";

export interface GQAConfig {
  hidden_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  /** Biases on q, k and v (Qwen2, or attention_bias in Llama and Qwen3). */
  qkv_bias: boolean;
  /** A bias on o_proj (attention_bias in Llama and Qwen3; never in Qwen2). */
  o_bias: boolean;
  /** RMSNorm on each head's queries and keys (Qwen3), with this epsilon; null for none. */
  qk_norm_eps: number | null;
  /** std of the weights of a freshly initialised layer. */
  std: number;
}

export class GroupedQueryAttention extends Module {
  readonly q_proj: QLinear;
  readonly k_proj: QLinear;
  readonly v_proj: QLinear;
  readonly o_proj: QLinear;
  readonly q_norm: RMSNorm | null;
  readonly k_norm: RMSNorm | null;
  readonly nHead: number;
  readonly nKV: number;
  readonly headDim: number;

  constructor(cfg: GQAConfig, params: ParamFactory) {
    super();
    const { hidden_size: C, num_attention_heads: nh, num_key_value_heads: nkv, head_dim: hs } = cfg;
    if (nh % nkv !== 0)
      throw new Error(`GroupedQueryAttention: num_attention_heads (${nh}) must be a multiple of num_key_value_heads (${nkv})`);
    [this.nHead, this.nKV, this.headDim] = [nh, nkv, hs];
    const lin = (name: string, inF: number, outF: number, bias: boolean) =>
      this.module(name, QLinear.create(prefixed(params, name), inF, outF, { bias, std: cfg.std }));
    this.q_proj = lin("q_proj", C, nh * hs, cfg.qkv_bias);
    this.k_proj = lin("k_proj", C, nkv * hs, cfg.qkv_bias);
    this.v_proj = lin("v_proj", C, nkv * hs, cfg.qkv_bias);
    this.o_proj = lin("o_proj", nh * hs, C, cfg.o_bias);
    const norm = (name: string) =>
      cfg.qk_norm_eps === null
        ? null
        : this.module(name, new RMSNorm(hs, cfg.qk_norm_eps, asFloat(params(`${name}.weight`, [hs], "ones"))));
    this.q_norm = norm("q_norm");
    this.k_norm = norm("k_norm");
  }

  /** x (B, T, C) at positions cache.length .. + T - 1 -> (B, T, C); or, with a packing (padding-free
   *  training, nn/packing.ts), the packed (N, C) rows of a padded batch -> (N, C), unpacked to
   *  (B, T, ...) for attention only. */
  forward(x: Tensor, rope: RotaryEmbedding, cache: KVCache | null = null, packed: Packing | null = null): Tensor {
    const [B, T] = packed ? [packed.B, packed.T] : (x.shape as [number, number, number]);
    const [nh, nkv, hs] = [this.nHead, this.nKV, this.headDim];
    // q, k and v from one call where the weights allow (nn/quantized.ts's qlinearMany).
    const [pq, pk, pv] = qlinearMany(x, [this.q_proj, this.k_proj, this.v_proj]).map((y) => (packed ? unpack(y, packed) : y)) as [
      Tensor,
      Tensor,
      Tensor,
    ]; // (B, T, n·hs)
    let q = reshape(pq, [B, T, nh, hs]);
    let k = reshape(pk, [B, T, nkv, hs]);
    let v = transpose(reshape(pv, [B, T, nkv, hs]), 1, 2); // (B, nkv, T, hs)
    if (this.q_norm && this.k_norm) {
      q = this.q_norm.forward(q);
      k = this.k_norm.forward(k);
    }
    const start = cache?.length ?? 0;
    // Rotated as the projections lay them out (B, T, n, hs), then viewed heads-first.
    q = transpose(rope.apply(q, start, true), 1, 2); // (B, nh, T, hs)
    k = transpose(rope.apply(k, start, true), 1, 2); // (B, nkv, T, hs)
    if (cache) ({ k, v } = cache.append(k, v)); // (B, nkv, S, hs)
    const S = k.shape[2] as number;
    const g = nh / nkv;
    let y: Tensor;
    if (g > 1 && T === 1 && !(isGradEnabled() && (q.requiresGrad || k.requiresGrad))) {
      // One new token: the g queries of a group are g rows against the same keys, all of which
      // they may see, so the cache is read in place instead of copied g times.
      const qg = reshape(q, [B, nkv, g, hs]);
      y = reshape(scaledDotProductAttention(qg, k, v, { causal: false }).out, [B, nh, 1, hs]);
    } else {
      if (g > 1) {
        // repeat_kv: (B, nkv, S, hs) -> (B, nkv, g, S, hs) -> (B, nh, S, hs)
        const rep = (t: Tensor) => reshape(expand(unsqueeze(t, 2), [B, nkv, g, S, hs]), [B, nh, S, hs]);
        [k, v] = [rep(k), rep(v)];
      }
      y = scaledDotProductAttention(q, k, v, { causal: true }).out; // (B, nh, T, hs)
    }
    const merged = reshape(transpose(y, 1, 2), [B, T, nh * hs]);
    return this.o_proj.forward(packed ? pack(merged, packed) : merged);
  }
}
