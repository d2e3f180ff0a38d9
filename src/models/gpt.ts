// GPT: a decoder-only transformer language model (Radford et al. 2018, 2019). This file is the
// model: its config, how the layers stack, its initialisation and its Hugging Face weight names;
// the layers themselves are nn's (TransformerBlock with causal MultiHeadAttention and FeedForward,
// Embedding, LayerNorm; positional tables in nn/positional.ts). Token embeddings plus positional
// information go through n_layer pre-LN transformer blocks; a final LayerNorm and a linear head
// (tied to the token embedding) give next-token logits. Names follow nanoGPT's config and Hugging
// Face's GPT-2 parameters (transformer.wte, transformer.h.0.attn.c_attn, ...), so both carry over.

import { KVCache } from "../nn/attention.js";
import { Dropout, Embedding, LayerNorm } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { type Packing, pack, packing, packTargets, unpack } from "../nn/packing.js";
import { ropeTables, sinusoidalTable } from "../nn/positional.js";
import { exportNamedWeights, loadNamedWeights, type WeightNames, type WeightTensor } from "../nn/state-dict.js";
import { TransformerBlock } from "../nn/transformer.js";
import type { ParamGroup } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { arange, tensor, zeros } from "../tensor/creation.js";
import { add, crossEntropy, embedding, linear, slice } from "../tensor/ops.js";

export type { WeightTensor } from "../nn/state-dict.js";

import { defaultGenerator, Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkFits, estimate, type MemoryEstimate } from "./budget.js";

export type PositionalEncoding = "learned" | "sinusoidal" | "rope";

export interface GPTConfig {
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** Longest context the model attends over. */
  block_size: number;
  vocab_size: number;
  dropout: number;
  /** Biases in Linear and LayerNorm layers (GPT-2 has them). */
  bias: boolean;
  /** Share the token embedding with the output head (GPT-2 does). */
  tie_weights: boolean;
  pos_encoding: PositionalEncoding;
}

/** GPT-2's LayerNorm epsilon; moxing's GPT uses it and no other (config.json and GGUF say so). */
export const GPT2_LAYER_NORM_EPS = 1e-5;

export const GPT_DEFAULTS: GPTConfig = {
  n_layer: 4,
  n_head: 4,
  n_embd: 128,
  block_size: 64,
  vocab_size: 65,
  dropout: 0,
  bias: true,
  tie_weights: true,
  pos_encoding: "learned",
};

/** Check a config, with errors that name the field and the fix. */
export function validateGPTConfig(c: GPTConfig): void {
  for (const k of ["n_layer", "n_head", "n_embd", "block_size", "vocab_size"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`GPT config: ${k} must be a positive integer (got ${c[k]})`);
  }
  if (c.n_embd % c.n_head !== 0) throw new Error(`GPT config: n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`GPT config: dropout must be in [0, 1) (got ${c.dropout})`);
  if (!["learned", "sinusoidal", "rope"].includes(c.pos_encoding)) {
    throw new Error(`GPT config: pos_encoding must be learned, sinusoidal or rope (got ${c.pos_encoding})`);
  }
  if (c.pos_encoding === "rope" && (c.n_embd / c.n_head) % 2 !== 0)
    throw new Error("GPT config: rope needs an even head size (n_embd / n_head)");
  // Before anything is allocated: what the weights (and a generation's KV cache) need must fit.
  checkFits("GPT config", c, GPT_DEFAULTS, (x) => estimateGPTMemory(x));
}

/** A training run's sizes, for estimateGPTMemory. */
export interface GPTTrainingSizes {
  batch_size: number;
  /** Micro-batches per optimizer step; all of them are drawn before the step. */
  grad_accum: number;
}

/** Exact parameter count of a config (equal to `new GPT(c).numParameters()`). */
export function gptParameterCount(c: GPTConfig): number {
  const C = c.n_embd;
  const norm = c.bias ? 2 * C : C;
  const block = 12 * C * C + (c.bias ? 9 * C : 0) + 2 * norm; // attention 4C², MLP 8C², their biases
  return (
    c.vocab_size * C +
    (c.pos_encoding === "learned" ? c.block_size * C : 0) +
    c.n_layer * block +
    norm +
    (c.tie_weights ? 0 : c.vocab_size * C)
  );
}

/**
 * The memory a config needs, in bytes (float32 everywhere). Without `training`: the weights, the
 * position tables and one sequence's KV cache and activations (generation, evaluation of a
 * window). With it: also gradients and AdamW's two moments (3x the weights again), the activations
 * a micro-batch keeps for backward (about 34 floats per token and channel per block, the attention
 * weights, the logits three times) and the grad_accum micro-batches of token ids drawn per step.
 * An estimate for refusing what cannot fit, not a promise: real use is within a small factor.
 */
export function estimateGPTMemory(c: GPTConfig, training?: GPTTrainingSizes): MemoryEstimate {
  const P = gptParameterCount(c);
  const C = c.n_embd;
  const T = c.block_size;
  const V = c.vocab_size;
  const tables = c.pos_encoding === "sinusoidal" ? T * C : c.pos_encoding === "rope" ? T * (C / c.n_head) : 0;
  const largest = 4 * Math.max(V * C, 4 * C * C, c.pos_encoding === "learned" ? T * C : 0);
  if (!training) {
    return estimate(
      P,
      {
        weights: 4 * P,
        "position tables": 4 * tables,
        "KV cache": 4 * 2 * c.n_layer * T * C,
        activations: 4 * T * (20 * C + c.n_head * T + V),
      },
      largest,
    );
  }
  const B = training.batch_size;
  const perToken = c.n_layer * (34 * C + 2 * c.n_head * T) + 3 * V + 4 * C;
  return estimate(
    P,
    {
      weights: 4 * P,
      "gradients and optimizer state": 12 * P,
      "position tables": 4 * tables,
      activations: 4 * B * T * perToken,
      "batches of token ids": 8 * training.grad_accum * B * T,
    },
    largest,
  );
}

/** Refuse evaluating batches of `batch_size` windows (with no gradients; there are only
 *  `windows` in the data) when the weights and one batch's activations and logits cannot fit in
 *  memory, naming the field as `label` spells it. */
export function checkGPTEvalMemory(c: GPTConfig, batch_size: number, windows: number, label?: (field: string) => string): void {
  const of = (x: GPTConfig & { batch_size: number }) => {
    const P = gptParameterCount(x);
    const T = x.block_size;
    const perToken = 20 * x.n_embd + x.n_head * T + 3 * x.vocab_size;
    const rows = Math.min(x.batch_size, windows);
    return estimate(P, { weights: 4 * P, activations: 4 * rows * T * perToken }, 4 * x.vocab_size * x.n_embd);
  };
  checkFits("GPT evaluation", { ...c, batch_size }, { ...GPT_DEFAULTS, batch_size: 16 }, of, {
    purpose: " to evaluate",
    ...(label ? { label } : {}),
  });
}

/** Refuse a training run (config, batch size, accumulation) that cannot fit in memory, naming the
 *  field (as `label` spells it: the trainer passes its command-line flags). */
export function checkGPTTrainingMemory(c: GPTConfig, sizes: GPTTrainingSizes, label?: (field: string) => string): void {
  checkFits("GPT training", { ...c, ...sizes }, { ...GPT_DEFAULTS, batch_size: 12, grad_accum: 1 }, (x) => estimateGPTMemory(x, x), {
    purpose: " to train",
    ...(label ? { label } : {}),
  });
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding | null;
  readonly drop: Dropout;
  readonly h: ModuleList<TransformerBlock>;
  readonly ln_f: LayerNorm;
  constructor(c: GPTConfig, g: Generator) {
    super();
    this.wte = this.module("wte", new Embedding(c.vocab_size, c.n_embd, { generator: g }));
    this.wpe = c.pos_encoding === "learned" ? this.module("wpe", new Embedding(c.block_size, c.n_embd, { generator: g })) : null;
    this.drop = this.module("drop", new Dropout(c.dropout, g));
    const blocks = Array.from(
      { length: c.n_layer },
      () =>
        new TransformerBlock({
          n_embd: c.n_embd,
          n_head: c.n_head,
          dropout: c.dropout,
          bias: c.bias,
          causal: true,
          layer_norm_epsilon: GPT2_LAYER_NORM_EPS,
          generator: g,
        }),
    );
    this.h = this.module("h", new ModuleList(blocks));
    this.ln_f = this.module("ln_f", new LayerNorm(c.n_embd, GPT2_LAYER_NORM_EPS, { bias: c.bias }));
  }
}

export interface GPTOutput {
  logits: Tensor; // (B, T, vocab_size), or (B, 1, vocab_size) with lastOnly
  loss: Tensor | null;
}

export class GPT extends Module {
  readonly config: GPTConfig;
  readonly transformer: Transformer;
  readonly lm_head: Tensor;
  private readonly sinusoid: Tensor | null;
  private readonly rope: { cos: Tensor; sin: Tensor } | null;

  constructor(config: Partial<GPTConfig> = {}, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    const c = { ...GPT_DEFAULTS, ...config };
    validateGPTConfig(c);
    this.config = c;
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    this.transformer = this.module("transformer", new Transformer(c, g));
    this.lm_head = c.tie_weights ? this.transformer.wte.weight : this.param("lm_head.weight", zeros([c.vocab_size, c.n_embd]));
    this.sinusoid = c.pos_encoding === "sinusoidal" ? sinusoidalTable(c.block_size, c.n_embd) : null;
    this.rope = c.pos_encoding === "rope" ? ropeTables(c.block_size, c.n_embd / c.n_head) : null;
    // Packed first, so the initialisation writes straight into the final memory.
    this.packParameters();
    this.initWeights(g);
  }

  /** GPT-2 initialisation: N(0, 0.02) weights, zero biases, and the residual projections scaled
   *  by 1/√(2·n_layer) so the residual stream's variance does not grow with depth. */
  private initWeights(g: Generator): void {
    const residStd = 0.02 / Math.sqrt(2 * this.config.n_layer);
    noGrad(() => {
      for (const [name, p] of this.namedParameters()) {
        if (name.endsWith(".bias")) p.zero_();
        else if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) p.fill_(1);
        else p.normal_({ generator: g, std: name.endsWith("c_proj.weight") ? residStd : 0.02 });
      }
    });
  }

  /** idx (B, T) int32 token ids -> logits; with targets (B, T), also the mean cross-entropy loss. */
  forward(
    idx: Tensor,
    opts: {
      targets?: Tensor | null;
      caches?: KVCache[] | null;
      rowCaches?: KVCache[][] | null;
      lastOnly?: boolean;
      lengths?: ArrayLike<number> | null;
    } = {},
  ): GPTOutput {
    const T = idx.shape[1] as number;
    if (opts.lengths && !opts.caches && !opts.rowCaches && !opts.lastOnly)
      return this.forwardPacked(idx, opts.lengths, opts.targets ?? null);
    let x = this.hiddenStates(idx, opts.caches ?? null, opts.rowCaches ?? null); // (B, T, C)
    if (opts.lastOnly && !opts.targets) x = slice(x, 1, T - 1, T); // (B, 1, C): only the next token is needed
    const logits = linear(x, this.lm_head); // (B, T, vocab_size)
    const loss = opts.targets ? crossEntropy(logits, opts.targets) : null;
    return { logits, loss };
  }

  /** forward for a right-padded batch whose row b is lengths[b] tokens long: every position-wise op
   *  runs on the real positions only (nn/packing.ts). The logits (B, T, V) at padded positions are
   *  unspecified; the loss counts real positions only. */
  private forwardPacked(idx: Tensor, lengths: ArrayLike<number>, targets: Tensor | null): GPTOutput {
    const { h, packing: p } = this.packedHiddenStates(idx, lengths);
    const logits = linear(h, this.lm_head); // (N, vocab_size)
    const loss = targets ? crossEntropy(logits, packTargets(targets, p)) : null;
    return { logits: unpack(logits, p), loss };
  }

  /** hiddenStates for a right-padded batch whose row b is lengths[b] tokens long, padding-free: the
   *  final hidden states (N, C) of the N real positions, row by row, and their packing. */
  packedHiddenStates(idx: Tensor, lengths: ArrayLike<number>): { h: Tensor; packing: Packing } {
    const [B, T] = idx.shape as [number, number];
    if (lengths.length !== B) throw new Error(`GPT: ${lengths.length} lengths for a batch of ${B}`);
    if (T > this.config.block_size) {
      throw new Error(`GPT: cannot forward a sequence of length ${T}, block_size is only ${this.config.block_size}`);
    }
    const p = packing(lengths, T);
    const tr = this.transformer;
    let x = tr.wte.forward(idx); // (B, T, C)
    if (tr.wpe) x = add(x, tr.wpe.forward(arange(0, T)));
    if (this.sinusoid) x = add(x, slice(this.sinusoid, 0, 0, T));
    x = tr.drop.forward(pack(x, p)); // (N, C)
    for (const block of tr.h.items) x = block.forward(x, { rope: this.rope, packed: p });
    return { h: tr.ln_f.forward(x), packing: p };
  }

  /** The trunk without the head: idx (B, T) -> the final hidden states (B, T, C) after ln_f
   *  (what a reward model's or value head's scalar is computed from). `caches`: one per layer for the
   *  whole batch; `rowCaches[b]`: one per layer for row b alone (continuous batching, where every row
   *  has its own length and so its own positions). */
  hiddenStates(idx: Tensor, caches: KVCache[] | null = null, rowCaches: KVCache[][] | null = null): Tensor {
    const [B, T] = idx.shape as [number, number];
    const starts = rowCaches ? rowCaches.map((c) => c[0]?.length ?? 0) : [caches?.[0]?.length ?? 0];
    if (rowCaches && rowCaches.length !== B) throw new Error(`GPT: ${rowCaches.length} row caches for a batch of ${B}`);
    const longest = Math.max(...starts) + T;
    if (longest > this.config.block_size) {
      throw new Error(`GPT: cannot forward a sequence of length ${longest}, block_size is only ${this.config.block_size}`);
    }
    const tr = this.transformer;
    // Position ids: (T) shared by the batch, or (B, T) when each row starts at its own position.
    const start = starts[0] as number;
    const pos = rowCaches
      ? tensor(
          starts.map((s) => Array.from({ length: T }, (_, t) => s + t)),
          { dtype: "int32" },
        )
      : arange(start, start + T);
    let x = tr.wte.forward(idx); // (B, T, C) token embeddings
    if (tr.wpe) x = add(x, tr.wpe.forward(pos)); // + (T, C) or (B, T, C) learned positions
    if (this.sinusoid) x = add(x, rowCaches ? embedding(this.sinusoid, pos) : slice(this.sinusoid, 0, start, start + T));
    x = tr.drop.forward(x);
    tr.h.items.forEach((block, i) => {
      const rows = rowCaches ? rowCaches.map((c) => c[i] as KVCache) : null;
      x = block.forward(x, { cache: caches?.[i] ?? null, rowCaches: rows, rope: this.rope });
    });
    return tr.ln_f.forward(x);
  }

  /** Longest context the model attends over (block_size). */
  get blockSize(): number {
    return this.config.block_size;
  }

  get vocabSize(): number {
    return this.config.vocab_size;
  }

  get hiddenSize(): number {
    return this.config.n_embd;
  }

  /** The head: hidden states (B, T, C) -> logits (B, T, vocab_size). */
  logitsFromHidden(h: Tensor): Tensor {
    return linear(h, this.lm_head);
  }

  /** One cache per layer, for generation. */
  newCaches(batch: number): KVCache[] {
    const { n_layer, n_head, n_embd, block_size } = this.config;
    return Array.from({ length: n_layer }, () => new KVCache(batch, n_head, block_size, n_embd / n_head));
  }

  /** Parameters in GPT-2's two AdamW groups: matrices of Linear layers decay; biases,
   *  LayerNorm weights and embeddings (including the tied head) do not. */
  optimGroups(weightDecay: number): ParamGroup[] {
    const decay: Tensor[] = [];
    const noDecay: Tensor[] = [];
    for (const [name, p] of this.namedParameters()) {
      const isLinearWeight = p.ndim === 2 && name.endsWith(".weight") && !/\.(wte|wpe)\./.test(name);
      (isLinearWeight || name === "lm_head.weight" ? decay : noDecay).push(p);
    }
    return [
      { params: decay, weightDecay },
      { params: noDecay, weightDecay: 0 },
    ];
  }

  /** Parameter count; nanoGPT reports it without the position embedding table. */
  paramCount(): { total: number; nonEmbedding: number } {
    const total = this.numParameters();
    return { total, nonEmbedding: total - (this.transformer.wpe?.weight.size ?? 0) };
  }
}

// ---- weights in Hugging Face's GPT-2 layout ----------------------------------------------------------
//
// On disk a GPT is a GPT2LMHeadModel state dict: the same dotted names as moxing's parameters, with
// two differences. (1) GPT-2's attention and MLP projections are Conv1D modules, whose weight is
// (in, out), the transpose of a Linear's (out, in): c_attn, attn.c_proj, c_fc and mlp.c_proj of
// every block are stored transposed. (2) A tied head has no lm_head.weight (it is wte). Files from
// other writers may also name tensors without the "transformer." prefix (GPT2Model's own state
// dict, as in the gpt2 repository on the Hub) and may carry the causal-mask buffers attn.bias and
// attn.masked_bias of old transformers versions; both are accepted, the buffers ignored.
// The one named-weight loader (nn/state-dict.ts) does the loading with this map.

/** Which parameters are Conv1D (in, out) in Hugging Face's GPT-2 and Linear (out, in) in moxing. */
export function isConv1DWeight(name: string): boolean {
  return /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);
}

/** A file's tensor name as moxing names it ("h.0.ln_1.weight" -> "transformer.h.0.ln_1.weight"),
 *  or null for tensors that are not weights (GPT-2's causal-mask buffers). */
export function canonicalWeightName(name: string): string | null {
  const bare = name.startsWith("transformer.") ? name.slice("transformer.".length) : name;
  if (/^h\.\d+\.attn\.(bias|masked_bias)$/.test(bare)) return null;
  if (/^(wte|wpe|ln_f|h)\./.test(bare)) return `transformer.${bare}`;
  return name;
}

/**
 * GPT-2's names and layout for a model of this config. `layout: "linear"` reads files whose four
 * projections are stored (out, in), as moxing wrote them before it adopted Hugging Face's layout
 * (and as GGUF stores them).
 */
export function gpt2WeightNames(config: GPTConfig, opts: { layout?: "conv1d" | "linear" } = {}): WeightNames {
  const conv1d = (opts.layout ?? "conv1d") === "conv1d";
  return {
    fromFile: (n) => {
      const name = canonicalWeightName(n);
      return name === "lm_head.weight" && config.tie_weights ? null : name; // the tied head is wte
    },
    transposed: (name) => conv1d && isConv1DWeight(name),
    transposeNote: "Hugging Face's Conv1D layout: (in_features, out_features)",
    describe: `a GPT-2 model with this config (n_layer ${config.n_layer})`,
  };
}

/** The hint after "missing tensor ..." for a GPT. */
function missingHint(config: GPTConfig): (missing: readonly string[]) => string {
  return (missing) =>
    missing.includes("lm_head.weight") && !config.tie_weights
      ? "; the config says the head is not tied (tie_word_embeddings false) but the file has no lm_head.weight"
      : "; do config.json and the weights belong to the same model?";
}

/** The model's weights in Hugging Face GPT-2 layout (Conv1D weights transposed; copies). */
export function hfStateDict(model: GPT): Map<string, WeightTensor> {
  return exportNamedWeights(model, gpt2WeightNames(model.config));
}

/** Copy weights in Hugging Face GPT-2 layout (or moxing's old "linear" one) into `model`; errors
 *  name the tensor and say what was expected (see nn/state-dict.ts). */
export function loadGPTWeights(
  model: GPT,
  tensors: ReadonlyMap<string, WeightTensor>,
  opts: { layout?: "conv1d" | "linear"; names?: WeightNames } = {},
): void {
  loadNamedWeights(model, tensors, opts.names ?? gpt2WeightNames(model.config, opts), { missingHint: missingHint(model.config) });
}
