// BERT: a bidirectional transformer encoder (Devlin et al. 2019), all of it in this file.
//
//   embeddings  word + position + segment (token type) embeddings, LayerNorm (eps 1e-12), dropout
//   encoder     N post-LN layers: self-attention over every position (padding masked out), then
//               LayerNorm(x + attention); a GELU (exact, erf) feed-forward, then LayerNorm(x + ffn)
//   pooler      dense + tanh on the first token ([CLS]): the sentence vector classifiers use
//   heads       masked-LM (dense, GELU, LayerNorm, then a decoder tied to the word embeddings plus
//               its own bias), sequence classification, token classification, extractive QA
//
// Module and parameter names are Hugging Face's (bert.embeddings.word_embeddings.weight,
// bert.encoder.layer.0.attention.self.query.weight, cls.predictions.transform.dense.weight, ...), so
// a state dict moves between moxing and transformers unchanged; src/io/bert.ts reads and writes
// model directories. The attention has separate query/key/value projections, as BERT's does.

import { LayerNorm } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import type { ParamGroup } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { arange, zeros } from "../tensor/creation.js";
import {
  add,
  crossEntropy,
  dropout,
  embedding,
  eq,
  linear,
  reshape,
  scaledDotProductAttention,
  slice,
  squeeze,
  tanh,
  transpose,
} from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { checkFits, estimate, type MemoryEstimate } from "./budget.js";

/** Hugging Face's BertConfig fields (the ones that shape the model), with its names. */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  /** Longest input, in tokens (the size of the position table). */
  max_position_embeddings: number;
  /** Number of segments (token type ids): 2 for BERT's sentence A / sentence B. */
  type_vocab_size: number;
  layer_norm_eps: number;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  /** Standard deviation of the normal initialisation. */
  initializer_range: number;
  pad_token_id: number;
}

export const BERT_DEFAULTS: BertConfig = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  initializer_range: 0.02,
  pad_token_id: 0,
};

/** The sizes Google released (Turc et al. 2019 for the small ones): layers, hidden width, heads;
 *  the feed-forward is 4x the width. With vocab_size 30522 these are bert-base-uncased etc. */
export const BERT_PRESETS = {
  tiny: { num_hidden_layers: 2, hidden_size: 128, num_attention_heads: 2, intermediate_size: 512 },
  mini: { num_hidden_layers: 4, hidden_size: 256, num_attention_heads: 4, intermediate_size: 1024 },
  small: { num_hidden_layers: 4, hidden_size: 512, num_attention_heads: 8, intermediate_size: 2048 },
  medium: { num_hidden_layers: 8, hidden_size: 512, num_attention_heads: 8, intermediate_size: 2048 },
  base: { num_hidden_layers: 12, hidden_size: 768, num_attention_heads: 12, intermediate_size: 3072 },
  large: { num_hidden_layers: 24, hidden_size: 1024, num_attention_heads: 16, intermediate_size: 4096 },
} as const satisfies Record<string, Partial<BertConfig>>;

export type BertPreset = keyof typeof BERT_PRESETS;

/** A full config from a preset name and overrides (e.g. a smaller vocabulary). */
export function bertConfig(preset: BertPreset, overrides: Partial<BertConfig> = {}): BertConfig {
  const p = BERT_PRESETS[preset];
  if (!p) throw new Error(`unknown BERT size '${preset}'; choose one of ${Object.keys(BERT_PRESETS).join(", ")}`);
  return { ...BERT_DEFAULTS, ...p, ...overrides };
}

/** Check a config, with errors that name the field. */
export function validateBertConfig(c: BertConfig): void {
  for (const k of [
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
  ] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`BERT config: ${k} must be a positive integer (got ${c[k]})`);
  }
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new Error(`BERT config: hidden_size (${c.hidden_size}) must be divisible by num_attention_heads (${c.num_attention_heads})`);
  }
  for (const k of ["hidden_dropout_prob", "attention_probs_dropout_prob"] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) throw new Error(`BERT config: ${k} must be in [0, 1) (got ${c[k]})`);
  }
  if (!(c.layer_norm_eps > 0)) throw new Error(`BERT config: layer_norm_eps must be > 0 (got ${c.layer_norm_eps})`);
  if (!Number.isInteger(c.pad_token_id) || c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) {
    throw new Error(`BERT config: pad_token_id ${c.pad_token_id} is not a token id (vocab_size ${c.vocab_size})`);
  }
  // Before anything is allocated (num_hidden_layers: 1e5 used to run until V8's heap gave up).
  checkFits("BERT config", c, BERT_DEFAULTS, (x) => estimateBertMemory(x));
}

/** A training run's sizes, for estimateBertMemory. */
export interface BertTrainingSizes {
  batch_size: number;
  /** Tokens per sequence. */
  seq_len: number;
}

/**
 * The memory a BERT config needs, in bytes: the encoder's weights with the pooler and the largest
 * head (the masked-LM head), and the activations of one full-length sequence (about 16 floats per
 * token and channel per layer plus the attention weights). With `training`: also gradients and
 * AdamW's moments (3x the weights) and a batch's activations kept for backward (about 34 floats
 * per token and channel per layer, the attention weights twice, the masked-LM logits). An estimate
 * for refusing what cannot fit, not a promise.
 */
export function estimateBertMemory(c: BertConfig, training?: BertTrainingSizes): MemoryEstimate {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const T = c.max_position_embeddings;
  const embeddings = (c.vocab_size + T + c.type_vocab_size) * H + 2 * H;
  const layer = 4 * H * H + 4 * H + 2 * I * H + I + H + 4 * H; // attention, its LayerNorm, feed-forward, LayerNorm
  const heads = H * H + H + H * H + 3 * H + c.vocab_size; // pooler; MLM transform, LayerNorm, decoder bias
  const P = embeddings + c.num_hidden_layers * layer + heads;
  const largest = 4 * Math.max(c.vocab_size * H, I * H);
  if (training) {
    const { batch_size: B, seq_len: S } = training;
    const perToken = c.num_hidden_layers * (34 * H + 4 * c.num_attention_heads * S) + c.vocab_size;
    return estimate(P, { weights: 4 * P, "gradients and optimizer state": 12 * P, activations: 4 * B * S * perToken }, largest);
  }
  const activations = 4 * T * (c.num_hidden_layers * (16 * H + 2 * c.num_attention_heads * T) + c.vocab_size);
  return estimate(P, { weights: 4 * P, activations }, largest);
}

/** Refuse a BERT training run (config, batch size, sequence length) that cannot fit in memory,
 *  naming the field as `label` spells it (a trainer passes its command-line flags). */
export function checkBertTrainingMemory(c: BertConfig, sizes: BertTrainingSizes, label?: (field: string) => string): void {
  checkFits("BERT training", { ...c, ...sizes }, { ...BERT_DEFAULTS, batch_size: 16, seq_len: 128 }, (x) => estimateBertMemory(x, x), {
    purpose: " to train",
    ...(label ? { label } : {}),
  });
}

/** How a model is built: `init` "normal" gives Hugging Face's initialisation (N(0, initializer_range)
 *  weights, zero biases, unit LayerNorms); "none" leaves zeros, for weights about to be loaded
 *  (building bert-large that way takes no time). */
export interface BertBuildOptions {
  seed?: number;
  generator?: Generator;
  init?: "normal" | "none";
}

// ---- layers -----------------------------------------------------------------------------------------
//
// Dense and Table are torch's Linear and Embedding, created as zeros: BERT's own initialisation
// (initWeights below) then fills them once, instead of after a default init nobody uses.

class Dense extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(inFeatures: number, outFeatures: number) {
    super();
    this.weight = this.param("weight", zeros([outFeatures, inFeatures]));
    this.bias = this.param("bias", zeros([outFeatures]));
  }
  forward(x: Tensor, activation: "none" | "gelu" = "none"): Tensor {
    return linear(x, this.weight, this.bias, activation);
  }
}

class Table extends Module {
  readonly weight: Tensor;
  constructor(rows: number, dim: number) {
    super();
    this.weight = this.param("weight", zeros([rows, dim]));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** Dropout with the model's generator, a no-op in eval mode. */
function drop(m: Module, x: Tensor, p: number, g: Generator): Tensor {
  return dropout(x, p, m.training, g);
}

export class BertEmbeddings extends Module {
  readonly word_embeddings: Table;
  readonly position_embeddings: Table;
  readonly token_type_embeddings: Table;
  readonly LayerNorm: LayerNorm;
  constructor(
    readonly c: BertConfig,
    readonly g: Generator,
  ) {
    super();
    this.word_embeddings = this.module("word_embeddings", new Table(c.vocab_size, c.hidden_size));
    this.position_embeddings = this.module("position_embeddings", new Table(c.max_position_embeddings, c.hidden_size));
    this.token_type_embeddings = this.module("token_type_embeddings", new Table(c.type_vocab_size, c.hidden_size));
    this.LayerNorm = this.module("LayerNorm", new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  /** ids and token types (B, T) int32 -> (B, T, C). */
  forward(ids: Tensor, tokenTypeIds: Tensor): Tensor {
    const T = ids.shape[1] as number;
    let x = this.word_embeddings.forward(ids);
    x = add(x, this.token_type_embeddings.forward(tokenTypeIds));
    x = add(x, this.position_embeddings.forward(arange(0, T))); // (T, C) broadcasts over the batch
    return drop(this, this.LayerNorm.forward(x), this.c.hidden_dropout_prob, this.g);
  }
}

/** Multi-head self-attention with BERT's separate query, key and value projections. */
export class BertSelfAttention extends Module {
  readonly query: Dense;
  readonly key: Dense;
  readonly value: Dense;
  /** Set true to keep the last forward's attention weights (B, nh, T, T). */
  storeAttention = false;
  attentionWeights: Tensor | null = null;
  constructor(
    readonly c: BertConfig,
    readonly g: Generator,
  ) {
    super();
    this.query = this.module("query", new Dense(c.hidden_size, c.hidden_size));
    this.key = this.module("key", new Dense(c.hidden_size, c.hidden_size));
    this.value = this.module("value", new Dense(c.hidden_size, c.hidden_size));
  }
  /** x (B, T, C); mask (B, 1, 1, T), non-zero at padded keys, or null. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const nh = this.c.num_attention_heads;
    const hs = C / nh;
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, nh, hs]), 1, 2); // (B, nh, T, hs)
    const { out, weights } = scaledDotProductAttention(
      heads(this.query.forward(x)),
      heads(this.key.forward(x)),
      heads(this.value.forward(x)),
      {
        causal: false,
        attnMask: mask,
        dropout: this.c.attention_probs_dropout_prob,
        training: this.training,
        generator: this.g,
        needWeights: this.storeAttention,
      },
    );
    if (this.storeAttention) this.attentionWeights = weights ? weights.detach() : null;
    return reshape(transpose(out, 1, 2), [B, T, C]); // the heads side by side again
  }
}

/** dense, dropout, then LayerNorm of the residual sum: the "add & norm" after a sublayer. */
class AddNorm extends Module {
  readonly dense: Dense;
  readonly LayerNorm: LayerNorm;
  constructor(
    inFeatures: number,
    readonly c: BertConfig,
    readonly g: Generator,
  ) {
    super();
    this.dense = this.module("dense", new Dense(inFeatures, c.hidden_size));
    this.LayerNorm = this.module("LayerNorm", new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(add(drop(this, this.dense.forward(h), this.c.hidden_dropout_prob, this.g), residual));
  }
}

class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: AddNorm;
  constructor(c: BertConfig, g: Generator) {
    super();
    this.self = this.module("self", new BertSelfAttention(c, g));
    this.output = this.module("output", new AddNorm(c.hidden_size, c, g));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, mask), x);
  }
}

class BertIntermediate extends Module {
  readonly dense: Dense;
  constructor(c: BertConfig) {
    super();
    this.dense = this.module("dense", new Dense(c.hidden_size, c.intermediate_size));
  }
  forward(x: Tensor): Tensor {
    return this.dense.forward(x, "gelu");
  }
}

/** One encoder layer (post-LN): x = LN(x + attention(x)); x = LN(x + W2·GELU(W1·x)). */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: AddNorm;
  constructor(c: BertConfig, g: Generator) {
    super();
    this.attention = this.module("attention", new BertAttention(c, g));
    this.intermediate = this.module("intermediate", new BertIntermediate(c));
    this.output = this.module("output", new AddNorm(c.intermediate_size, c, g));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.attention.forward(x, mask);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  constructor(c: BertConfig, g: Generator) {
    super();
    this.layer = this.module("layer", new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new BertLayer(c, g))));
  }
}

/** tanh(W·h[CLS] + b): the sentence vector of the next-sentence and classification heads. */
class BertPooler extends Module {
  readonly dense: Dense;
  constructor(c: BertConfig) {
    super();
    this.dense = this.module("dense", new Dense(c.hidden_size, c.hidden_size));
  }
  forward(hidden: Tensor): Tensor {
    const first = squeeze(slice(hidden, 1, 0, 1), 1); // (B, C): the [CLS] position
    return tanh(this.dense.forward(first));
  }
}

export interface BertInputs {
  /** (B, T) int32 token ids. */
  inputIds: Tensor;
  /** (B, T) int32 segment ids; zeros when absent. */
  tokenTypeIds?: Tensor | null;
  /** (B, T), 1 for real tokens and 0 for padding; all ones when absent. */
  attentionMask?: Tensor | null;
}

export interface BertOutput {
  /** (B, T, C): the last layer's hidden states. */
  lastHiddenState: Tensor;
  /** (B, C): the pooler's tanh(dense(h[CLS])), or null for a model without a pooler. */
  poolerOutput: Tensor | null;
  /** With outputHiddenStates: the embeddings' output, then each layer's (num_hidden_layers + 1 tensors). */
  hiddenStates?: Tensor[];
}

/** The encoder alone (Hugging Face's BertModel): embeddings, layers, and optionally the pooler. */
export class BertModel extends Module {
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler: BertPooler | null;
  constructor(
    readonly config: BertConfig,
    g: Generator,
    opts: { addPoolingLayer?: boolean } = {},
  ) {
    super();
    this.embeddings = this.module("embeddings", new BertEmbeddings(config, g));
    this.encoder = this.module("encoder", new BertEncoder(config, g));
    this.pooler = opts.addPoolingLayer === false ? null : this.module("pooler", new BertPooler(config));
  }

  forward(inputs: BertInputs, opts: { outputHiddenStates?: boolean } = {}): BertOutput {
    const { inputIds } = inputs;
    const c = this.config;
    if (inputIds.ndim !== 2 || inputIds.dtype !== "int32") {
      throw new Error(`BERT: input ids must be a (batch, length) int32 tensor (got ${inputIds.dtype} ${fmtShape(inputIds.shape)})`);
    }
    const [B, T] = inputIds.shape as [number, number];
    if (T > c.max_position_embeddings) {
      throw new Error(`BERT: a sequence of ${T} tokens is longer than max_position_embeddings (${c.max_position_embeddings}); truncate it`);
    }
    for (const [name, t] of [
      ["token type ids", inputs.tokenTypeIds],
      ["attention mask", inputs.attentionMask],
    ] as const) {
      if (t && (t.ndim !== 2 || t.shape[0] !== B || t.shape[1] !== T)) {
        throw new Error(`BERT: the ${name} have shape ${fmtShape(t.shape)} but the input ids have ${fmtShape(inputIds.shape)}`);
      }
    }
    const types = inputs.tokenTypeIds ? inputs.tokenTypeIds.int() : zeros([B, T], { dtype: "int32" });
    // Padded keys get no attention: (B, T) -> (B, 1, 1, T) broadcasts over heads and queries.
    const mask = inputs.attentionMask ? eq(reshape(inputs.attentionMask, [B, 1, 1, T]), 0) : null;
    let x = this.embeddings.forward(inputIds, types);
    const hiddenStates = opts.outputHiddenStates ? [x] : undefined;
    for (const layer of this.encoder.layer) {
      x = layer.forward(x, mask);
      hiddenStates?.push(x);
    }
    return { lastHiddenState: x, poolerOutput: this.pooler ? this.pooler.forward(x) : null, hiddenStates };
  }
}

// ---- heads --------------------------------------------------------------------------------------------

/** dense, GELU, LayerNorm: the transform before the masked-LM decoder. */
class BertPredictionHeadTransform extends Module {
  readonly dense: Dense;
  readonly LayerNorm: LayerNorm;
  constructor(c: BertConfig) {
    super();
    this.dense = this.module("dense", new Dense(c.hidden_size, c.hidden_size));
    this.LayerNorm = this.module("LayerNorm", new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.dense.forward(x, "gelu"));
  }
}

/** cls.predictions: transform, then logits = h · Eᵀ + bias with E the (tied) word embeddings. */
class BertLMPredictionHead extends Module {
  readonly transform: BertPredictionHeadTransform;
  readonly bias: Tensor;
  constructor(
    c: BertConfig,
    readonly decoderWeight: Tensor,
  ) {
    super();
    this.transform = this.module("transform", new BertPredictionHeadTransform(c));
    this.bias = this.param("bias", zeros([c.vocab_size]));
  }
  forward(x: Tensor): Tensor {
    return linear(this.transform.forward(x), this.decoderWeight, this.bias);
  }
}

class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;
  constructor(c: BertConfig, wordEmbeddings: Tensor) {
    super();
    this.predictions = this.module("predictions", new BertLMPredictionHead(c, wordEmbeddings));
  }
}

/** What a BERT model is for; each is one of Hugging Face's architectures. */
export type BertTask = "feature-extraction" | "fill-mask" | "text-classification" | "token-classification" | "question-answering";

export const BERT_ARCHITECTURES: Record<BertTask, string> = {
  "feature-extraction": "BertModel",
  "fill-mask": "BertForMaskedLM",
  "text-classification": "BertForSequenceClassification",
  "token-classification": "BertForTokenClassification",
  "question-answering": "BertForQuestionAnswering",
};

export interface BertHeadOutput {
  /** fill-mask: (B, T, V) or (N, V) at `positions`; classification: (B, labels); tokens: (B, T, labels);
   *  QA: (B, T, 2) with start logits in [..., 0] and end logits in [..., 1]. */
  logits: Tensor;
  loss: Tensor | null;
  hidden: BertOutput;
}

export interface BertForwardOptions {
  /** Class ids: (B) for text classification; (B, T) with -100 for ignored tokens for fill-mask and token classification. */
  labels?: Tensor | null;
  /** QA: (B) start and end token positions of the answers. */
  startPositions?: Tensor | null;
  endPositions?: Tensor | null;
  /** fill-mask: only these flat positions (b * T + t) get logits (the masked ones, in training). */
  positions?: Tensor | null;
  outputHiddenStates?: boolean;
}

/**
 * A BERT encoder with the head of one task, named as the matching Hugging Face class names it:
 * `bert.` + the encoder, then `cls.predictions.*` (fill-mask), `classifier.*` (text and token
 * classification) or `qa_outputs.*` (question answering). "feature-extraction" is the bare encoder.
 */
export class Bert extends Module {
  readonly config: BertConfig;
  readonly task: BertTask;
  readonly numLabels: number;
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead | null = null;
  readonly classifier: Dense | null = null;
  readonly qa_outputs: Dense | null = null;
  readonly generator: Generator;

  constructor(
    config: Partial<BertConfig>,
    opts: BertBuildOptions & { task?: BertTask; numLabels?: number; addPoolingLayer?: boolean } = {},
  ) {
    super();
    const c = { ...BERT_DEFAULTS, ...config };
    validateBertConfig(c);
    this.config = c;
    this.task = opts.task ?? "fill-mask";
    if (!(this.task in BERT_ARCHITECTURES)) {
      throw new Error(`unknown BERT task '${this.task}'; choose one of ${Object.keys(BERT_ARCHITECTURES).join(", ")}`);
    }
    this.numLabels = this.task === "question-answering" ? 2 : (opts.numLabels ?? 2);
    if (!Number.isInteger(this.numLabels) || this.numLabels < 1)
      throw new Error(`BERT: numLabels must be a positive integer (got ${opts.numLabels})`);
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    this.generator = g;
    // Hugging Face's BertForMaskedLM, BertForTokenClassification and BertForQuestionAnswering have no
    // pooler; moxing keeps it by default (as BertForPreTraining does) so that a pretrained model
    // directory carries a pooler into text classification. Pass addPoolingLayer false to drop it.
    this.bert = this.module("bert", new BertModel(c, g, { addPoolingLayer: opts.addPoolingLayer ?? true }));
    if (this.task === "fill-mask") {
      this.cls = this.module("cls", new BertOnlyMLMHead(c, this.bert.embeddings.word_embeddings.weight));
    } else if (this.task === "text-classification" || this.task === "token-classification") {
      if (this.task === "text-classification" && !this.bert.pooler) throw new Error("BERT: text classification needs the pooler");
      this.classifier = this.module("classifier", new Dense(c.hidden_size, this.numLabels));
    } else if (this.task === "question-answering") {
      this.qa_outputs = this.module("qa_outputs", new Dense(c.hidden_size, 2));
    }
    // Packed first, so the initialisation writes straight into the final memory.
    this.packParameters();
    if ((opts.init ?? "normal") === "normal") this.initWeights(g);
  }

  /** Hugging Face's _init_weights: N(0, initializer_range) for dense and embedding weights (the
   *  padding row of the word embeddings zeroed), zero biases, LayerNorms at weight 1, bias 0.
   *  `only` limits it to some parameters (e.g. a new head on a loaded encoder). */
  initWeights(g: Generator = this.generator, only: (name: string) => boolean = () => true): void {
    const std = this.config.initializer_range;
    noGrad(() => {
      for (const [name, p] of this.namedParameters()) {
        if (!only(name)) continue;
        if (name.endsWith("LayerNorm.weight")) p.fill_(1);
        else if (name.endsWith("bias")) p.zero_();
        else p.normal_({ generator: g, std });
        if (name === "bert.embeddings.word_embeddings.weight") {
          const pad = this.config.pad_token_id;
          const H = this.config.hidden_size;
          (p.data as Float32Array).fill(0, pad * H, (pad + 1) * H);
        }
      }
    });
  }

  forward(inputs: BertInputs, opts: BertForwardOptions = {}): BertHeadOutput {
    const hidden = this.bert.forward(inputs, { outputHiddenStates: opts.outputHiddenStates });
    const h = hidden.lastHiddenState;
    const [B, T, C] = h.shape as [number, number, number];
    const p = this.config.hidden_dropout_prob;
    switch (this.task) {
      case "feature-extraction":
        return { logits: h, loss: null, hidden };
      case "fill-mask": {
        const head = this.cls as BertOnlyMLMHead;
        if (opts.positions) {
          // Only the masked positions need the (vocabulary-wide) decoder.
          const rows = embedding(reshape(h, [B * T, C]), opts.positions.int()); // (N, C)
          const logits = head.predictions.forward(rows);
          const loss = opts.labels ? crossEntropy(logits, opts.labels.int()) : null;
          return { logits, loss, hidden };
        }
        const logits = head.predictions.forward(h); // (B, T, V)
        return { logits, loss: opts.labels ? crossEntropy(logits, opts.labels.int()) : null, hidden };
      }
      case "text-classification": {
        const pooled = drop(this, hidden.poolerOutput as Tensor, p, this.generator);
        const logits = (this.classifier as Dense).forward(pooled); // (B, labels)
        return { logits, loss: opts.labels ? crossEntropy(logits, opts.labels.int()) : null, hidden };
      }
      case "token-classification": {
        const logits = (this.classifier as Dense).forward(drop(this, h, p, this.generator)); // (B, T, labels)
        return { logits, loss: opts.labels ? crossEntropy(logits, opts.labels.int()) : null, hidden };
      }
      case "question-answering": {
        const logits = (this.qa_outputs as Dense).forward(h); // (B, T, 2)
        let loss: Tensor | null = null;
        if (opts.startPositions && opts.endPositions) {
          // Hugging Face: the mean of the start and end cross-entropies over the T positions.
          const start = squeeze(slice(logits, 2, 0, 1), 2);
          const end = squeeze(slice(logits, 2, 1, 2), 2);
          loss = crossEntropy(start, opts.startPositions.int()).add(crossEntropy(end, opts.endPositions.int())).mul(0.5);
        }
        return { logits, loss, hidden };
      }
    }
  }

  /** AdamW groups as in Hugging Face's Trainer: no weight decay on biases and LayerNorm weights. */
  optimGroups(weightDecay: number): ParamGroup[] {
    const decay: Tensor[] = [];
    const noDecay: Tensor[] = [];
    for (const [name, p] of this.namedParameters()) (name.endsWith("bias") || name.includes("LayerNorm") ? noDecay : decay).push(p);
    return [
      { params: decay, weightDecay },
      { params: noDecay, weightDecay: 0 },
    ];
  }

  /** Parameter counts: all of them, and those of the encoder alone (bert.*, pooler included), which
   *  is what Hugging Face quotes for a checkpoint (bert-base-uncased: 109,482,240). */
  paramCount(): { total: number; encoder: number } {
    return { total: this.numParameters(), encoder: this.bert.numParameters() };
  }
}

/** A (B, T) int32 tensor from rows of ids (all the same length). */
export function idsTensor(rows: readonly (readonly number[])[]): Tensor {
  const B = rows.length;
  const T = rows[0]?.length ?? 0;
  const data = new Int32Array(B * T);
  rows.forEach((r, b) => {
    if (r.length !== T) throw new Error(`idsTensor: row ${b} has ${r.length} ids, row 0 has ${T}`);
    data.set(r, b * T);
  });
  return new Tensor(data, [B, T]);
}
