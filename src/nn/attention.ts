// Multi-head self-attention (Vaswani et al. 2017, "Attention Is All You Need"): every position
// looks at every (earlier, when causal) position through nh heads of size hs = C / nh, each
// computing softmax(q·kᵀ/√hs)·v; the heads are concatenated and projected back to C.
// splitHeads / mergeHeads / keyPaddingMask are the steps every model's attention shares (BERT's,
// with its separate query, key and value projections, uses them too); MultiHeadAttention's
// parameter names follow GPT-2 (c_attn holds q, k and v stacked; c_proj is the output).

import { noGrad } from "../tensor/autograd.js";
import { empty } from "../tensor/creation.js";
import { persistent } from "../tensor/memory.js";
import { cat, dropout, eq, reshape, scaledDotProductAttention, slice, transpose } from "../tensor/ops.js";
import { defaultGenerator, type Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { Linear } from "./layers.js";
import { Module } from "./module.js";
import { type Packing, pack, unpack } from "./packing.js";
import { applyRope } from "./positional.js";

/** Keys and values of past positions for one layer, so generation computes each token once.
 *  Preallocated (B, nh, maxLen, hs); attention reads the filled prefix as a strided view. */
export class KVCache {
  readonly k: Tensor;
  readonly v: Tensor;
  length = 0;
  constructor(
    readonly batch: number,
    readonly nHead: number,
    readonly maxLen: number,
    readonly headSize: number,
  ) {
    // A cache outlives any training-step arena it may be created in.
    [this.k, this.v] = persistent(() => [empty([batch, nHead, maxLen, headSize]), empty([batch, nHead, maxLen, headSize])]);
  }
  /** Store k and v (B, nh, T, hs) after the cached ones; return all keys and values so far. */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const T = k.shape[2] as number;
    if (this.length + T > this.maxLen) {
      throw new Error(`KVCache: ${this.length} cached + ${T} new positions exceed the cache size ${this.maxLen}`);
    }
    noGrad(() => {
      slice(this.k, 2, this.length, this.length + T).copy_(k);
      slice(this.v, 2, this.length, this.length + T).copy_(v);
    });
    this.length += T;
    return { k: slice(this.k, 2, 0, this.length), v: slice(this.v, 2, 0, this.length) };
  }
}

/** (B, T, C) -> (B, nh, T, hs): the heads side by side become a dimension of their own. */
export function splitHeads(t: Tensor, nHead: number): Tensor {
  const [B, T, C] = t.shape as [number, number, number];
  return transpose(reshape(t, [B, T, nHead, C / nHead]), 1, 2);
}

/** (B, nh, T, hs) -> (B, T, C): the heads side by side again. */
export function mergeHeads(y: Tensor): Tensor {
  const [B, nh, T, hs] = y.shape as [number, number, number, number];
  return reshape(transpose(y, 1, 2), [B, T, nh * hs]);
}

/** The attention mask of a padding mask: (B, S) with 1 for real tokens and 0 for padding ->
 *  (B, 1, 1, S), non-zero at padded keys, which broadcasts over heads and queries. */
export function keyPaddingMask(paddingMask: Tensor): Tensor {
  const [B, S] = paddingMask.shape as [number, number];
  return eq(reshape(paddingMask, [B, 1, 1, S]), 0);
}

export interface AttentionOptions {
  bias?: boolean;
  dropout?: number;
  /** Causal: position t attends only to positions <= t (GPT). Bidirectional otherwise (BERT). */
  causal?: boolean;
  generator?: Generator;
}

export interface AttentionCall {
  /** (B, S) with 1 for real tokens and 0 for padding; padded keys get no attention. */
  paddingMask?: Tensor | null;
  cache?: KVCache | null;
  /** Continuous batching: row b of the batch has its own cache rowCaches[b] (batch 1), filled to its
   *  own length, so each row is at its own position; attention runs row by row over each row's past.
   *  The projections before and after attention still run on the whole batch at once. */
  rowCaches?: readonly KVCache[] | null;
  rope?: { cos: Tensor; sin: Tensor } | null;
  /** x is the packed (N, C) rows of this padded batch (padding-free training, nn/packing.ts):
   *  unpacked to (B, T, C) for attention only. */
  packed?: Packing | null;
}

export class MultiHeadAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly headSize: number;
  readonly causal: boolean;
  readonly dropoutP: number;
  readonly generator: Generator;
  /** Set true to keep the last forward's attention weights (B, nh, T, S) in `attentionWeights`. */
  storeAttention = false;
  attentionWeights: Tensor | null = null;

  constructor(
    readonly nEmbd: number,
    readonly nHead: number,
    opts: AttentionOptions = {},
  ) {
    super();
    if (nEmbd % nHead !== 0) throw new Error(`MultiHeadAttention: n_embd (${nEmbd}) must be divisible by n_head (${nHead})`);
    this.headSize = nEmbd / nHead;
    this.causal = opts.causal ?? true;
    this.dropoutP = opts.dropout ?? 0;
    this.generator = opts.generator ?? defaultGenerator;
    this.c_attn = this.module("c_attn", new Linear(nEmbd, 3 * nEmbd, { bias: opts.bias, generator: opts.generator }));
    this.c_proj = this.module("c_proj", new Linear(nEmbd, nEmbd, { bias: opts.bias, generator: opts.generator }));
  }

  forward(x: Tensor, call: AttentionCall = {}): Tensor {
    const C = this.nEmbd;
    const nh = this.nHead;
    const p = call.packed ?? null;
    const qkv = p ? unpack(this.c_attn.forward(x), p) : this.c_attn.forward(x); // (B, T, 3C)
    const q = splitHeads(slice(qkv, 2, 0, C), nh); // (B, nh, T, hs)
    const k = splitHeads(slice(qkv, 2, C, 2 * C), nh);
    const v = splitHeads(slice(qkv, 2, 2 * C, 3 * C), nh);
    let y: Tensor;
    if (call.rowCaches) {
      const rows = call.rowCaches;
      const B = qkv.shape[0] as number;
      if (rows.length !== B) throw new Error(`MultiHeadAttention: ${rows.length} row caches for a batch of ${B}`);
      const row = (t: Tensor, b: number) => slice(t, 0, b, b + 1); // (1, nh, T, hs)
      y = cat(
        rows.map((cache, b) => this.attend(row(q, b), row(k, b), row(v, b), { cache, rope: call.rope }).y),
        0,
      ); // (B, nh, T, hs)
      if (this.storeAttention) this.attentionWeights = null; // rows attend over different lengths
    } else {
      const r = this.attend(q, k, v, call);
      y = r.y;
      if (this.storeAttention) this.attentionWeights = r.weights ? r.weights.detach() : null;
    }
    const merged = mergeHeads(y); // (B, T, C)
    return dropout(this.c_proj.forward(p ? pack(merged, p) : merged), this.dropoutP, this.training, this.generator);
  }

  /** softmax(q·kᵀ/√hs)·v for q, k, v (B, nh, T, hs), after rotating them (RoPE) and appending k and v
   *  to the cache, at the positions after the cached ones. */
  private attend(q: Tensor, k: Tensor, v: Tensor, call: AttentionCall): { y: Tensor; weights: Tensor | null } {
    const start = call.cache?.length ?? 0;
    if (call.rope) {
      q = applyRope(q, call.rope, start);
      k = applyRope(k, call.rope, start);
    }
    if (call.cache) ({ k, v } = call.cache.append(k, v));
    const attnMask = call.paddingMask ? keyPaddingMask(call.paddingMask) : null; // padded keys get no attention
    const { out, weights } = scaledDotProductAttention(q, k, v, {
      causal: this.causal,
      attnMask,
      dropout: this.dropoutP,
      training: this.training,
      generator: this.generator,
      needWeights: this.storeAttention,
    }); // (B, nh, T, hs)
    return { y: out, weights };
  }
}
