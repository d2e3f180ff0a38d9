// Llama: the decoder-only transformer of Llama 2 and 3 (Touvron et al. 2023), and of the models
// built the same way: Mistral, Qwen2 / Qwen2.5, Qwen3, SmolLM2. All of it in this file.
//
//   x = embed_tokens(ids)                                     (B, T, C)
//   for each layer:  x = x + self_attn(input_layernorm(x))     RMSNorm, grouped-query attention, RoPE
//                    x = x + mlp(post_attention_layernorm(x))  RMSNorm, SwiGLU
//   logits = lm_head(norm(x))                                 (B, T, vocab), lm_head tied to embed_tokens or not
//
// Compared with GPT-2: RMSNorm instead of LayerNorm, rotary positions instead of learned ones,
// SwiGLU instead of a GELU MLP, fewer key/value heads than query heads, no biases (Qwen2 has them
// on q, k and v), and per-head q/k RMSNorm in Qwen3. The config uses Hugging Face's names
// (LlamaConfig, Qwen2Config, Qwen3Config, MistralConfig) and the parameters have Hugging Face's
// names (model.layers.0.self_attn.q_proj.weight, ...), so a checkpoint's state dict loads as it is.
// Weights may be float32 (trainable: it is built from engine ops, so backward works) or, read
// from a GGUF file, quantised (frozen: inference, or LoRA adapters trained over them; see
// nn/quantized.ts). It implements models/causal.ts's LanguageModel, which every trainer takes.

import { KVCache } from "../nn/attention.js";
import { GroupedQueryAttention } from "../nn/gqa.js";
import { Module, ModuleList } from "../nn/module.js";
import { type Packing, pack, packing, packTargets, unpack } from "../nn/packing.js";
import { type AnyWeight, asFloat, type ParamFactory, prefixed, QEmbedding, QLinear, quantizedLinear } from "../nn/quantized.js";
import { RMSNorm } from "../nn/rmsnorm.js";
import { type RopeScaling, RotaryEmbedding } from "../nn/rotary.js";
import { SwiGLU } from "../nn/swiglu.js";
import type { ParamGroup } from "../optim/adamw.js";
import { QuantizedTensor } from "../quant/ggml.js";
import { isGradEnabled, noGrad } from "../tensor/autograd.js";
import { empty } from "../tensor/creation.js";
import { scopedTensor } from "../tensor/memory.js";
import { crossEntropy, linear, slice } from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkFits, estimate, type MemoryEstimate } from "./budget.js";

/** The Hugging Face model types this file implements. */
export const LLAMA_MODEL_TYPES = ["llama", "mistral", "qwen2", "qwen3"] as const;
export type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];

export interface LlamaConfig {
  /** Which family: decides q/k/v biases (qwen2) and q/k norms (qwen3). */
  model_type: LlamaModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Size of one attention head (hidden_size / num_attention_heads unless given, as in Qwen3). */
  head_dim: number;
  /** Longest context the model attends over. */
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** Biases on all four attention projections (Llama, Mistral, Qwen3); Qwen2 always has q/k/v biases and no o bias. */
  attention_bias: boolean;
  tie_word_embeddings: boolean;
  /** std of freshly initialised weights (Hugging Face's _init_weights). */
  initializer_range: number;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  /** Sliding-window attention's window (Mistral v0.1), or null. Within it attention is full, so the
   *  model attends over at most this many positions. */
  sliding_window: number | null;
}

export const LLAMA_DEFAULTS: LlamaConfig = {
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 32,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  rope_scaling: null,
  attention_bias: false,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  bos_token_id: 1,
  eos_token_id: 2,
  sliding_window: null,
};

/** Check a config, with errors that name the field and the fix. */
export function validateLlamaConfig(c: LlamaConfig): void {
  const ints = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
  ] as const;
  for (const k of ints) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`Llama config: ${k} must be a positive integer (got ${c[k]})`);
  }
  if (!(LLAMA_MODEL_TYPES as readonly string[]).includes(c.model_type)) {
    throw new Error(`Llama config: model_type must be one of ${LLAMA_MODEL_TYPES.join(", ")} (got ${c.model_type})`);
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new Error(
      `Llama config: num_attention_heads (${c.num_attention_heads}) must be a multiple of num_key_value_heads (${c.num_key_value_heads})`,
    );
  }
  if (c.head_dim % 2 !== 0) throw new Error(`Llama config: head_dim must be even for rotary positions (got ${c.head_dim})`);
  if (!(c.rms_norm_eps > 0)) throw new Error(`Llama config: rms_norm_eps must be > 0 (got ${c.rms_norm_eps})`);
  if (!(c.rope_theta > 0)) throw new Error(`Llama config: rope_theta must be > 0 (got ${c.rope_theta})`);
}

/** Exact parameter count of a config (equal to `new Llama(c).numParameters()`). */
export function llamaParameterCount(c: LlamaConfig): number {
  const C = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const bias = attentionBiases(c);
  const attention =
    2 * C * q + 2 * C * kv + (bias.qkv ? q + 2 * kv : 0) + (bias.o ? C : 0) + (c.model_type === "qwen3" ? 2 * c.head_dim : 0);
  const layer = attention + 3 * C * c.intermediate_size + 2 * C;
  return c.vocab_size * C + c.num_hidden_layers * layer + C + (c.tie_word_embeddings ? 0 : c.vocab_size * C);
}

/** A training run's sizes, for estimateLlamaMemory. */
export interface LlamaTrainingSizes {
  batch_size: number;
  /** Micro-batches per optimizer step; all of them are drawn before the step. */
  grad_accum: number;
}

/**
 * The memory a float32 config needs, in bytes, as estimateGPTMemory counts it for a GPT. Without
 * `training`: the weights, the rotary tables and one sequence's KV cache and activations. With it:
 * also gradients and AdamW's two moments (3x the weights again), the activations a micro-batch
 * keeps for backward (per token and layer: about 10 floats per channel, the projections' outputs,
 * 5 per SwiGLU unit, the attention weights twice) and the micro-batches of token ids drawn per step.
 * An estimate for refusing what cannot fit, not a promise.
 */
export function estimateLlamaMemory(c: LlamaConfig, training?: LlamaTrainingSizes): MemoryEstimate {
  const P = llamaParameterCount(c);
  const C = c.hidden_size;
  const T = c.max_position_embeddings;
  const V = c.vocab_size;
  const H = c.num_attention_heads;
  const q = H * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const I = c.intermediate_size;
  const largest = 4 * Math.max(V * C, I * C, q * C, T * c.head_dim);
  const tables = 4 * T * c.head_dim;
  if (!training) {
    return estimate(
      P,
      {
        weights: 4 * P,
        "rotary tables": tables,
        "KV cache": 4 * 2 * c.num_hidden_layers * T * kv,
        activations: 4 * T * (6 * C + 3 * I + H * T + V),
      },
      largest,
    );
  }
  const B = training.batch_size;
  const perToken = c.num_hidden_layers * (10 * C + 3 * q + 4 * kv + 5 * I + 2 * H * T) + 3 * V + 4 * C;
  return estimate(
    P,
    {
      weights: 4 * P,
      "gradients and optimizer state": 12 * P,
      "rotary tables": tables,
      activations: 4 * B * T * perToken,
      "batches of token ids": 8 * training.grad_accum * B * T,
    },
    largest,
  );
}

/** The sizes of LLAMA_DEFAULTS, the fields checkFits may blame. */
function sizeDefaults(): Partial<LlamaConfig> {
  const d = LLAMA_DEFAULTS;
  return {
    vocab_size: d.vocab_size,
    hidden_size: d.hidden_size,
    intermediate_size: d.intermediate_size,
    num_hidden_layers: d.num_hidden_layers,
    num_attention_heads: d.num_attention_heads,
    num_key_value_heads: d.num_key_value_heads,
    head_dim: d.head_dim,
    max_position_embeddings: d.max_position_embeddings,
  };
}

/** Refuse a training run (config, batch size, accumulation) that cannot fit in memory before the
 *  model is built, naming the field (as `label` spells it: the trainer passes its flags). */
export function checkLlamaTrainingMemory(c: LlamaConfig, sizes: LlamaTrainingSizes, label?: (field: string) => string): void {
  checkFits("Llama training", { ...c, ...sizes }, { ...sizeDefaults(), batch_size: 12, grad_accum: 1 }, (x) => estimateLlamaMemory(x, x), {
    purpose: " to train",
    ...(label ? { label } : {}),
  });
}

/** Refuse evaluating batches of `batch_size` windows of `block_size` tokens (with no gradients;
 *  there are only `windows` in the data) when the weights (`weightBytes`, which are smaller than
 *  float32's when quantised) and one batch's activations and logits cannot fit in memory. */
export function checkLlamaEvalMemory(
  c: LlamaConfig,
  sizes: { batch_size: number; block_size: number },
  windows: number,
  weightBytes: number,
  label?: (field: string) => string,
): void {
  const of = (x: LlamaConfig & { batch_size: number; block_size: number }) => {
    const T = x.block_size;
    const perToken = 6 * x.hidden_size + 3 * x.intermediate_size + x.num_attention_heads * T + 3 * x.vocab_size;
    const rows = Math.min(x.batch_size, windows);
    return estimate(llamaParameterCount(x), { weights: weightBytes, activations: 4 * rows * T * perToken }, 4 * rows * T * x.vocab_size);
  };
  checkFits("Llama evaluation", { ...c, ...sizes }, { batch_size: 16, block_size: 1024 }, of, {
    purpose: " to evaluate",
    ...(label ? { label } : {}),
  });
}

/** The Qwen2 convention: biases on q, k, v; else attention_bias puts them on all four projections. */
export function attentionBiases(c: LlamaConfig): { qkv: boolean; o: boolean } {
  return c.model_type === "qwen2" ? { qkv: true, o: false } : { qkv: c.attention_bias, o: c.attention_bias };
}

export class LlamaDecoderLayer extends Module {
  readonly input_layernorm: RMSNorm;
  readonly self_attn: GroupedQueryAttention;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: SwiGLU;
  constructor(c: LlamaConfig, params: ParamFactory) {
    super();
    const norm = (name: string) => new RMSNorm(c.hidden_size, c.rms_norm_eps, asFloat(params(`${name}.weight`, [c.hidden_size], "ones")));
    const bias = attentionBiases(c);
    const std = c.initializer_range;
    this.input_layernorm = this.module("input_layernorm", norm("input_layernorm"));
    this.self_attn = this.module(
      "self_attn",
      new GroupedQueryAttention(
        {
          hidden_size: c.hidden_size,
          num_attention_heads: c.num_attention_heads,
          num_key_value_heads: c.num_key_value_heads,
          head_dim: c.head_dim,
          qkv_bias: bias.qkv,
          o_bias: bias.o,
          qk_norm_eps: c.model_type === "qwen3" ? c.rms_norm_eps : null,
          std,
        },
        prefixed(params, "self_attn"),
      ),
    );
    this.post_attention_layernorm = this.module("post_attention_layernorm", norm("post_attention_layernorm"));
    this.mlp = this.module("mlp", new SwiGLU(c.hidden_size, c.intermediate_size, prefixed(params, "mlp"), { std }));
  }
  /** (B, T, C) -> (B, T, C), or packed (N, C) -> (N, C) with a packing. */
  forward(x: Tensor, rope: RotaryEmbedding, cache: KVCache | null, packed: Packing | null = null): Tensor {
    x = x.add(this.self_attn.forward(this.input_layernorm.forward(x), rope, cache, packed));
    return x.add(this.mlp.forward(this.post_attention_layernorm.forward(x)));
  }
}

export class LlamaModel extends Module {
  readonly embed_tokens: QEmbedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: LlamaConfig, params: ParamFactory) {
    super();
    this.embed_tokens = this.module(
      "embed_tokens",
      QEmbedding.create(prefixed(params, "embed_tokens"), c.vocab_size, c.hidden_size, c.initializer_range),
    );
    const layers = Array.from({ length: c.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(c, prefixed(params, `layers.${i}`)));
    this.layers = this.module("layers", new ModuleList(layers));
    this.norm = this.module("norm", new RMSNorm(c.hidden_size, c.rms_norm_eps, asFloat(params("norm.weight", [c.hidden_size], "ones"))));
  }
}

export interface LlamaOutput {
  logits: Tensor; // (B, T, vocab_size), or (B, 1, vocab_size) with lastOnly
  loss: Tensor | null;
}

export interface LlamaOptions {
  seed?: number;
  generator?: Generator;
  /** Where the weights come from (a loader); without it every weight is initialised afresh. */
  params?: ParamFactory;
  /** Per-frequency divisors of the rotary frequencies (a GGUF file's rope_freqs tensor). */
  ropeFreqFactors?: Float32Array;
}

/** A factory of uninitialised float32 weights (zero-filled memory the OS has not yet handed out). */
const placeholders: ParamFactory = (_name, shape) => empty(shape);

export class Llama extends Module {
  readonly config: LlamaConfig;
  readonly model: LlamaModel;
  /** The output head; null when it is tied to embed_tokens. */
  readonly lm_head: QLinear | null;
  readonly rotary: RotaryEmbedding;

  constructor(config: Partial<LlamaConfig> = {}, opts: LlamaOptions = {}) {
    super();
    const c = { ...LLAMA_DEFAULTS, ...config };
    if (config.head_dim === undefined) c.head_dim = c.hidden_size / c.num_attention_heads;
    validateLlamaConfig(c);
    this.config = c;
    const params = opts.params ?? placeholders;
    this.model = this.module("model", new LlamaModel(c, prefixed(params, "model")));
    this.lm_head = c.tie_word_embeddings
      ? null
      : this.module("lm_head", QLinear.create(prefixed(params, "lm_head"), c.hidden_size, c.vocab_size, { std: c.initializer_range }));
    this.rotary = new RotaryEmbedding(c.head_dim, c.rope_theta, c.rope_scaling, opts.ropeFreqFactors);
    // Packed first, so the initialisation (or a loader) writes straight into the final memory.
    this.packParameters();
    if (!opts.params) this.initWeights(opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator));
  }

  /** Hugging Face's _init_weights: N(0, initializer_range²) for projections and embeddings, zero
   *  biases, RMSNorm gains of one. */
  private initWeights(g: Generator): void {
    const std = this.config.initializer_range;
    noGrad(() => {
      for (const [name, p] of this.namedParameters()) {
        if (name.endsWith(".bias")) p.zero_();
        else if (name.endsWith("norm.weight")) p.fill_(1);
        else p.normal_({ std, generator: g });
      }
    });
  }

  /** Longest context the model attends over (max_position_embeddings, or the sliding window). */
  get blockSize(): number {
    return Math.min(this.config.max_position_embeddings, this.config.sliding_window ?? Number.POSITIVE_INFINITY);
  }

  /** The head's weight: lm_head's, or the token embedding's when they are tied. */
  get headWeight(): AnyWeight {
    return this.lm_head ? this.lm_head.weight : this.model.embed_tokens.weight;
  }

  /** idx (B, T) int32 token ids -> logits; with targets (B, T), also the mean cross-entropy loss. */
  forward(
    idx: Tensor,
    opts: { targets?: Tensor | null; caches?: KVCache[] | null; lastOnly?: boolean; lengths?: ArrayLike<number> | null } = {},
  ): LlamaOutput {
    const T = idx.shape[1] as number;
    if (opts.lengths && !opts.caches && !opts.lastOnly) return this.forwardPacked(idx, opts.lengths, opts.targets ?? null);
    let x = this.hiddenStates(idx, opts.caches ?? null); // (B, T, C)
    if (opts.lastOnly && !opts.targets) x = slice(x, 1, T - 1, T); // (B, 1, C): only the next token is needed
    const logits = this.logitsFromHidden(x); // (B, T, vocab_size)
    const loss = opts.targets ? crossEntropy(logits, opts.targets) : null;
    return { logits, loss };
  }

  /** forward for a right-padded batch whose row b is lengths[b] tokens long: every position-wise op
   *  runs on the real positions only (nn/packing.ts). The logits (B, T, V) at padded positions are
   *  unspecified; the loss counts real positions only. */
  private forwardPacked(idx: Tensor, lengths: ArrayLike<number>, targets: Tensor | null): LlamaOutput {
    const { h, packing: p } = this.packedHiddenStates(idx, lengths);
    const logits = this.logitsFromHidden(h); // (N, vocab_size)
    const loss = targets ? crossEntropy(logits, packTargets(targets, p)) : null;
    return { logits: unpack(logits, p), loss };
  }

  /** hiddenStates for a right-padded batch whose row b is lengths[b] tokens long, padding-free: the
   *  final hidden states (N, C) of the N real positions, row by row, and their packing. */
  packedHiddenStates(idx: Tensor, lengths: ArrayLike<number>): { h: Tensor; packing: Packing } {
    const [B, T] = idx.shape as [number, number];
    if (lengths.length !== B) throw new Error(`Llama: ${lengths.length} lengths for a batch of ${B}`);
    if (T > this.blockSize) {
      throw new Error(`Llama: cannot forward a sequence of length ${T}; the model attends over at most ${this.blockSize} positions`);
    }
    const p = packing(lengths, T);
    let x = pack(this.model.embed_tokens.forward(idx), p); // (N, C)
    for (const layer of this.model.layers.items) x = layer.forward(x, this.rotary, null, p);
    return { h: this.model.norm.forward(x), packing: p };
  }

  /** The trunk without the head: idx (B, T) -> the final hidden states (B, T, C) after the last
   *  RMSNorm (what a reward model's or value head's scalar is computed from). */
  hiddenStates(idx: Tensor, caches: KVCache[] | null = null): Tensor {
    const T = idx.shape[1] as number;
    const start = caches?.[0]?.length ?? 0;
    if (start + T > this.blockSize) {
      throw new Error(
        `Llama: cannot forward a sequence of length ${start + T}; the model attends over at most ${this.blockSize} positions`,
      );
    }
    let x = this.model.embed_tokens.forward(idx); // (B, T, C)
    // Without gradients (generation), each layer's temporaries go back to the arena as soon as the
    // layer is done (a 128-token prompt through SmolLM2-135M's 30 layers otherwise holds 300 MB).
    const scoped = !isGradEnabled();
    this.model.layers.items.forEach((layer, i) => {
      const run = () => layer.forward(x, this.rotary, caches?.[i] ?? null);
      x = scoped ? scopedTensor(run, x) : run();
    });
    return this.model.norm.forward(x);
  }

  /** The head: hidden states (B, T, C) -> logits (B, T, vocab_size). */
  logitsFromHidden(h: Tensor): Tensor {
    const w = this.headWeight;
    return w instanceof QuantizedTensor ? quantizedLinear(h, w) : linear(h, w);
  }

  get vocabSize(): number {
    return this.config.vocab_size;
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  /** Whether any weight is quantised (such a model trains only through LoRA adapters). */
  get quantized(): boolean {
    for (const [, m] of this.namedModules()) {
      if ((m instanceof QLinear || m instanceof QEmbedding) && m.weight instanceof QuantizedTensor) return true;
    }
    return false;
  }

  /** One cache per layer, for generation, holding up to maxLen positions (default: the whole context). */
  newCaches(batch: number, maxLen = this.blockSize): KVCache[] {
    const c = this.config;
    return Array.from({ length: c.num_hidden_layers }, () => new KVCache(batch, c.num_key_value_heads, maxLen, c.head_dim));
  }

  /** Parameters in two AdamW groups: projection matrices decay; norms, biases and embeddings do not. */
  optimGroups(weightDecay: number): ParamGroup[] {
    const decay: Tensor[] = [];
    const noDecay: Tensor[] = [];
    for (const [name, p] of this.namedParameters()) {
      const matrix = p.ndim === 2 && name.endsWith("_proj.weight");
      (matrix || name === "lm_head.weight" ? decay : noDecay).push(p);
    }
    return [
      { params: decay, weightDecay },
      { params: noDecay, weightDecay: 0 },
    ];
  }

  /** Number of values in every weight, quantised ones included (a tied head counted once). */
  paramCount(): number {
    let n = 0;
    const seen = new Set<AnyWeight>();
    for (const [, m] of this.namedModules()) {
      if (m instanceof QLinear || m instanceof QEmbedding) {
        if (!seen.has(m.weight) && m.weight instanceof QuantizedTensor) n += m.weight.size;
        seen.add(m.weight);
      }
    }
    return n + this.numParameters();
  }
}
