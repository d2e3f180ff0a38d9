// What the trainers of src/train and src/rlhf need of a decoder-only language model, whichever file
// implements it (GPT in gpt.ts, the Llama family in llama.ts): the causal forward with its loss, the
// trunk's hidden states and the head apart (reward models and PPO's value head read the hidden
// states), KV caches for sampling, and AdamW's parameter groups. Code written against this
// interface trains any of them; the GPT-only paths stay in the files that need GPT-2's layout.

import type { KVCache } from "../nn/attention.js";
import type { Module } from "../nn/module.js";
import type { Packing } from "../nn/packing.js";
import type { ParamGroup } from "../optim/adamw.js";
import type { Tensor } from "../tensor/tensor.js";

export interface LanguageModel extends Module {
  /** Longest context the model attends over. */
  readonly blockSize: number;
  /** Rows of the token embedding (and of the head). */
  readonly vocabSize: number;
  /** Width of the hidden states (GPT's n_embd, Llama's hidden_size). */
  readonly hiddenSize: number;
  /** idx (B, T) int32 -> logits (B, T, V); with targets (B, T), the mean cross-entropy too.
   *  lengths: the batch is right-padded and row b is lengths[b] tokens long; the padding is skipped
   *  (padding-free, nn/packing.ts) and its logits are unspecified. */
  forward(
    idx: Tensor,
    opts?: { targets?: Tensor | null; caches?: KVCache[] | null; lastOnly?: boolean; lengths?: ArrayLike<number> | null },
  ): { logits: Tensor; loss: Tensor | null };
  /** The trunk without the head: idx (B, T) -> final hidden states (B, T, C), after the last norm. */
  hiddenStates(idx: Tensor): Tensor;
  /** hiddenStates of a right-padded batch whose row b is lengths[b] tokens long, padding-free:
   *  (N, C) for the N real positions, row by row (nn/packing.ts), and their packing. */
  packedHiddenStates(idx: Tensor, lengths: ArrayLike<number>): { h: Tensor; packing: Packing };
  /** The head: hidden states (B, T, C) -> logits (B, T, V). */
  logitsFromHidden(h: Tensor): Tensor;
  /** One cache per layer, for sampling with the KV cache. */
  newCaches(batch: number, maxLen?: number): KVCache[];
  /** Parameters in AdamW's two groups (matrices decay; norms, biases and embeddings do not). */
  optimGroups(weightDecay: number): ParamGroup[];
}
