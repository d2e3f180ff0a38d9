// Marian: the original Transformer encoder-decoder (Vaswani et al. 2017) in Hugging Face's MarianMT
// layout, all of it in this file. A bidirectional encoder reads the source; a decoder with causal
// self-attention and cross-attention to the encoder's output writes the target one token at a time.
// Token embeddings (optionally scaled by √d_model) plus fixed sinusoidal positions go into post-LN
// layers (x = LN(x + sublayer(x)), as in the paper); the decoder's output, through a head tied to
// its embedding plus final_logits_bias, gives next-token logits. Source and target may share one
// vocabulary (share_encoder_decoder_embeddings, the default) or have their own.
//
// Config keys and parameter names are MarianConfig's and MarianMTModel's (model.shared.weight,
// model.encoder.layers.0.self_attn.k_proj.weight, ..., model.decoder.layers.0.encoder_attn.q_proj,
// lm_head.weight, final_logits_bias), so a Marian checkpoint loads (src/io/marian.ts) and the logits
// equal those of transformers' modeling_marian.py (test/models/marian.test.ts, fixture written by
// tools/hf_marian.py). Generation (greedy, sampling, beam search) is in src/generate/seq2seq.ts.

import { KVCache } from "../nn/attention.js";
import { Embedding, LayerNorm, Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { type Packing, pack, packing, unpack } from "../nn/packing.js";
import type { ParamGroup } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { empty } from "../tensor/creation.js";
import {
  add,
  crossEntropy,
  dropout,
  eq,
  gelu,
  index,
  linear,
  mul,
  relu,
  reshape,
  scaledDotProductAttention,
  silu,
  slice,
  transpose,
} from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

export type MarianActivation = "swish" | "silu" | "gelu" | "gelu_new" | "relu";

/** MarianConfig's keys (the ones that shape the model or its defaults for generation). */
export interface MarianConfig {
  vocab_size: number;
  /** Target vocabulary size when source and target have their own (else = vocab_size). */
  decoder_vocab_size: number;
  d_model: number;
  encoder_layers: number;
  decoder_layers: number;
  encoder_attention_heads: number;
  decoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_ffn_dim: number;
  /** Longest source or target sequence (rows of the sinusoid table). */
  max_position_embeddings: number;
  activation_function: MarianActivation;
  dropout: number;
  attention_dropout: number;
  activation_dropout: number;
  /** Multiply token embeddings by √d_model (Marian's checkpoints do). */
  scale_embedding: boolean;
  /** One embedding table for source, target and the output head. */
  share_encoder_decoder_embeddings: boolean;
  /** The output head is the decoder's embedding table. */
  tie_word_embeddings: boolean;
  init_std: number;
  pad_token_id: number;
  eos_token_id: number;
  /** The first decoder input (Marian uses the pad id). */
  decoder_start_token_id: number;
  /** Forced at the last position a generation may fill (null: none). */
  forced_eos_token_id: number | null;
  /** Generation defaults, as config.json carries them. */
  max_length: number;
  num_beams: number;
  bad_words_ids: number[][] | null;
}

export const MARIAN_DEFAULTS: MarianConfig = {
  vocab_size: 8000,
  decoder_vocab_size: 8000,
  d_model: 256,
  encoder_layers: 3,
  decoder_layers: 3,
  encoder_attention_heads: 4,
  decoder_attention_heads: 4,
  encoder_ffn_dim: 1024,
  decoder_ffn_dim: 1024,
  max_position_embeddings: 256,
  activation_function: "swish",
  dropout: 0.1,
  attention_dropout: 0,
  activation_dropout: 0,
  scale_embedding: true,
  share_encoder_decoder_embeddings: true,
  tie_word_embeddings: true,
  init_std: 0.02,
  pad_token_id: 0,
  eos_token_id: 2,
  decoder_start_token_id: 0,
  forced_eos_token_id: 2,
  max_length: 128,
  num_beams: 4,
  bad_words_ids: null,
};

const ACTIVATIONS: readonly MarianActivation[] = ["swish", "silu", "gelu", "gelu_new", "relu"];

/** Check a config, with errors that name the field and the fix. */
export function validateMarianConfig(c: MarianConfig): void {
  for (const k of [
    "vocab_size",
    "decoder_vocab_size",
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "max_position_embeddings",
    "max_length",
    "num_beams",
  ] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`Marian config: ${k} must be a positive integer (got ${c[k]})`);
  }
  for (const side of ["encoder", "decoder"] as const) {
    const h = c[`${side}_attention_heads`];
    if (c.d_model % h !== 0) throw new Error(`Marian config: d_model (${c.d_model}) must be divisible by ${side}_attention_heads (${h})`);
  }
  if (c.d_model % 2 !== 0) throw new Error(`Marian config: d_model must be even for the sinusoidal positions (got ${c.d_model})`);
  for (const k of ["dropout", "attention_dropout", "activation_dropout"] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) throw new Error(`Marian config: ${k} must be in [0, 1) (got ${c[k]})`);
  }
  if (!ACTIVATIONS.includes(c.activation_function))
    throw new Error(`Marian config: activation_function must be one of ${ACTIVATIONS.join(", ")} (got ${c.activation_function})`);
  if (c.share_encoder_decoder_embeddings && c.decoder_vocab_size !== c.vocab_size) {
    throw new Error(
      `Marian config: a shared vocabulary needs decoder_vocab_size = vocab_size (got ${c.decoder_vocab_size} and ${c.vocab_size}); set share_encoder_decoder_embeddings false for two vocabularies`,
    );
  }
  for (const k of ["pad_token_id", "eos_token_id", "decoder_start_token_id"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] >= c.decoder_vocab_size)
      throw new Error(`Marian config: ${k} must be a token id below decoder_vocab_size ${c.decoder_vocab_size} (got ${c[k]})`);
  }
}

/** Marian's sinusoid table (XLM's, not interleaved): sin(pos / 10000^(2i/d)) in column i and
 *  cos(...) in column d/2 + i, for i < d/2; computed in float64 as numpy does, then rounded. */
export function marianSinusoids(nPos: number, dim: number): Tensor {
  const t = empty([nPos, dim]);
  const d = t.data as Float32Array;
  const half = dim / 2;
  for (let pos = 0; pos < nPos; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos / 10000 ** ((2 * i) / dim);
      d[pos * dim + i] = Math.sin(angle);
      d[pos * dim + half + i] = Math.cos(angle);
    }
  }
  return t;
}

function activate(x: Tensor, fn: MarianActivation): Tensor {
  if (fn === "swish" || fn === "silu") return silu(x);
  if (fn === "relu") return relu(x);
  return gelu(x, fn === "gelu_new" ? "tanh" : "none");
}

/** Padded source positions: the (B, S) mask (1 for real tokens) and, when every row is real tokens
 *  then padding (right padding, as batches are made), each row's length, which lets attention run
 *  the fused kernel instead of materialising masked (B, nh, T, S) scores. */
export interface KeyPadding {
  mask: Tensor;
  lengths: Int32Array | null;
}

/** Keys and values of the encoder output for one decoder layer's cross-attention, computed once. */
export interface CrossKV {
  k: Tensor; // (B, nh, S, hs)
  v: Tensor;
}

/** Multi-head attention with separate q, k, v projections (MarianAttention / BartAttention). */
export class MarianAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly headDim: number;
  /** Set true to keep the last forward's attention weights (B, nh, T, S) in `attentionWeights`. */
  storeAttention = false;
  attentionWeights: Tensor | null = null;
  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    readonly dropoutP: number,
    readonly generator: Generator,
  ) {
    super();
    this.headDim = embedDim / numHeads;
    const o = { generator };
    this.k_proj = this.module("k_proj", new Linear(embedDim, embedDim, o));
    this.v_proj = this.module("v_proj", new Linear(embedDim, embedDim, o));
    this.q_proj = this.module("q_proj", new Linear(embedDim, embedDim, o));
    this.out_proj = this.module("out_proj", new Linear(embedDim, embedDim, o));
  }

  /** (B, T, C) -> (B, nh, T, hs) */
  heads(x: Tensor): Tensor {
    const [B, T] = x.shape as [number, number];
    return transpose(reshape(x, [B, T, this.numHeads, this.headDim]), 1, 2);
  }

  /** Keys and values of `kv` (B, S, C), or packed (N, C) with its packing, for cross-attention. */
  keysValues(kv: Tensor, packed: Packing | null = null): CrossKV {
    const proj = (l: Linear) => (packed ? unpack(l.forward(kv), packed) : l.forward(kv));
    return { k: this.heads(proj(this.k_proj)), v: this.heads(proj(this.v_proj)) };
  }

  /**
   * x (B, T, C) attends to itself (self-attention; causal in the decoder, with an optional KV cache)
   * or to precomputed keys and values (cross-attention); padded keys get no attention.
   */
  forward(
    x: Tensor,
    o: { causal?: boolean; keyPadding?: KeyPadding | null; cache?: KVCache | null; cross?: CrossKV | null; packed?: Packing | null },
  ): Tensor {
    // Packed rows (N, C) are unpacked to (B, T, C) for attention and packed again after it.
    const p = o.packed ?? null;
    const proj = (l: Linear) => (p ? unpack(l.forward(x), p) : l.forward(x));
    const q = this.heads(proj(this.q_proj));
    const [B, , T] = q.shape as [number, number, number];
    const C = this.embedDim;
    let k: Tensor;
    let v: Tensor;
    if (o.cross) ({ k, v } = o.cross);
    else {
      k = this.heads(proj(this.k_proj));
      v = this.heads(proj(this.v_proj));
      if (o.cache) ({ k, v } = o.cache.append(k, v));
    }
    const S = k.shape[2] as number;
    // Padded keys get no attention: as lengths when the padding is on the right (the fused kernel
    // runs it), else as a mask (B, S) -> (B, 1, 1, S) that broadcasts over heads and queries.
    const pad = o.keyPadding ?? null;
    const keyLengths = pad?.lengths ?? null;
    const attnMask = pad && !keyLengths ? eq(reshape(pad.mask, [B, 1, 1, S]), 0) : null;
    const { out, weights } = scaledDotProductAttention(q, k, v, {
      causal: o.causal ?? false,
      attnMask,
      keyLengths,
      dropout: this.dropoutP,
      training: this.training,
      generator: this.generator,
      needWeights: this.storeAttention,
    }); // (B, nh, T, hs)
    if (this.storeAttention) this.attentionWeights = weights ? weights.detach() : null;
    const merged = reshape(transpose(out, 1, 2), [B, T, C]);
    return this.out_proj.forward(p ? pack(merged, p) : merged);
  }
}

class EncoderLayer extends Module {
  readonly self_attn: MarianAttention;
  readonly self_attn_layer_norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly final_layer_norm: LayerNorm;
  constructor(
    readonly c: MarianConfig,
    readonly g: Generator,
  ) {
    super();
    this.self_attn = this.module("self_attn", new MarianAttention(c.d_model, c.encoder_attention_heads, c.attention_dropout, g));
    this.self_attn_layer_norm = this.module("self_attn_layer_norm", new LayerNorm(c.d_model));
    this.fc1 = this.module("fc1", new Linear(c.d_model, c.encoder_ffn_dim, { generator: g }));
    this.fc2 = this.module("fc2", new Linear(c.encoder_ffn_dim, c.d_model, { generator: g }));
    this.final_layer_norm = this.module("final_layer_norm", new LayerNorm(c.d_model));
  }
  /** x (B, S, C), or packed (N, C) with its packing. */
  forward(x: Tensor, padding: KeyPadding | null, packed: Packing | null = null): Tensor {
    const drop = (t: Tensor, p: number) => dropout(t, p, this.training, this.g);
    x = this.self_attn_layer_norm.forward(add(x, drop(this.self_attn.forward(x, { keyPadding: padding, packed }), this.c.dropout)));
    const h = drop(activate(this.fc1.forward(x), this.c.activation_function), this.c.activation_dropout);
    return this.final_layer_norm.forward(add(x, drop(this.fc2.forward(h), this.c.dropout)));
  }
}

class DecoderLayer extends Module {
  readonly self_attn: MarianAttention;
  readonly self_attn_layer_norm: LayerNorm;
  readonly encoder_attn: MarianAttention;
  readonly encoder_attn_layer_norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly final_layer_norm: LayerNorm;
  constructor(
    readonly c: MarianConfig,
    readonly g: Generator,
  ) {
    super();
    const nh = c.decoder_attention_heads;
    this.self_attn = this.module("self_attn", new MarianAttention(c.d_model, nh, c.attention_dropout, g));
    this.self_attn_layer_norm = this.module("self_attn_layer_norm", new LayerNorm(c.d_model));
    this.encoder_attn = this.module("encoder_attn", new MarianAttention(c.d_model, nh, c.attention_dropout, g));
    this.encoder_attn_layer_norm = this.module("encoder_attn_layer_norm", new LayerNorm(c.d_model));
    this.fc1 = this.module("fc1", new Linear(c.d_model, c.decoder_ffn_dim, { generator: g }));
    this.fc2 = this.module("fc2", new Linear(c.decoder_ffn_dim, c.d_model, { generator: g }));
    this.final_layer_norm = this.module("final_layer_norm", new LayerNorm(c.d_model));
  }
  /** x (B, T, C), or packed (N, C) with its packing (whose padded positions come after every kept one). */
  forward(x: Tensor, cross: CrossKV, sourcePadding: KeyPadding | null, cache: KVCache | null, packed: Packing | null = null): Tensor {
    const drop = (t: Tensor, p: number) => dropout(t, p, this.training, this.g);
    x = this.self_attn_layer_norm.forward(add(x, drop(this.self_attn.forward(x, { causal: true, cache, packed }), this.c.dropout)));
    const attended = this.encoder_attn.forward(x, { cross, keyPadding: sourcePadding, packed });
    x = this.encoder_attn_layer_norm.forward(add(x, drop(attended, this.c.dropout)));
    const h = drop(activate(this.fc1.forward(x), this.c.activation_function), this.c.activation_dropout);
    return this.final_layer_norm.forward(add(x, drop(this.fc2.forward(h), this.c.dropout)));
  }
}

/** Embeddings (scaled) + sinusoidal positions, as MarianEncoder and MarianDecoder begin. */
function embed(tokens: Embedding, table: Tensor, ids: Tensor, start: number, c: MarianConfig): Tensor {
  const T = ids.shape[1] as number;
  if (start + T > c.max_position_embeddings) {
    throw new Error(`Marian: cannot embed a sequence of length ${start + T}; max_position_embeddings is ${c.max_position_embeddings}`);
  }
  const x = tokens.forward(ids); // (B, T, C)
  const scaled = c.scale_embedding ? mul(x, Math.sqrt(c.d_model)) : x;
  return add(scaled, slice(table, 0, start, start + T)); // + (T, C)
}

class MarianEncoder extends Module {
  readonly layers: ModuleList<EncoderLayer>;
  constructor(
    readonly c: MarianConfig,
    readonly embed_tokens: Embedding,
    readonly positions: Tensor,
    readonly g: Generator,
  ) {
    super();
    this.module("embed_tokens", embed_tokens);
    this.layers = this.module("layers", new ModuleList(Array.from({ length: c.encoder_layers }, () => new EncoderLayer(c, g))));
  }
  /** (B, S, C), or packed (N, C) when given a packing of the source. */
  forward(ids: Tensor, padding: KeyPadding | null, packed: Packing | null = null): Tensor {
    let x = embed(this.embed_tokens, this.positions, ids, 0, this.c);
    x = dropout(packed ? pack(x, packed) : x, this.c.dropout, this.training, this.g);
    for (const layer of this.layers) x = layer.forward(x, padding, packed);
    return x;
  }
}

class MarianDecoder extends Module {
  readonly layers: ModuleList<DecoderLayer>;
  constructor(
    readonly c: MarianConfig,
    readonly embed_tokens: Embedding,
    readonly positions: Tensor,
    readonly g: Generator,
  ) {
    super();
    this.module("embed_tokens", embed_tokens);
    this.layers = this.module("layers", new ModuleList(Array.from({ length: c.decoder_layers }, () => new DecoderLayer(c, g))));
  }
  /** (B, T, C), or packed (N, C) when given a packing of the target. */
  forward(
    ids: Tensor,
    cross: CrossKV[],
    sourcePadding: KeyPadding | null,
    cache: MarianCache | null,
    packed: Packing | null = null,
  ): Tensor {
    const start = cache?.self[0]?.length ?? 0;
    let x = embed(this.embed_tokens, this.positions, ids, start, this.c);
    x = dropout(packed ? pack(x, packed) : x, this.c.dropout, this.training, this.g);
    this.layers.items.forEach((layer, i) => {
      x = layer.forward(x, cross[i] as CrossKV, sourcePadding, cache?.self[i] ?? null, packed);
    });
    return x;
  }
}

class MarianModel extends Module {
  readonly shared: Embedding | null;
  readonly encoder: MarianEncoder;
  readonly decoder: MarianDecoder;
  constructor(c: MarianConfig, g: Generator) {
    super();
    const positions = marianSinusoids(c.max_position_embeddings, c.d_model);
    let encTokens: Embedding;
    let decTokens: Embedding;
    if (c.share_encoder_decoder_embeddings) {
      this.shared = this.module("shared", new Embedding(c.vocab_size, c.d_model, { generator: g }));
      encTokens = decTokens = this.shared;
    } else {
      this.shared = null;
      encTokens = new Embedding(c.vocab_size, c.d_model, { generator: g });
      decTokens = new Embedding(c.decoder_vocab_size, c.d_model, { generator: g });
    }
    this.encoder = this.module("encoder", new MarianEncoder(c, encTokens, positions, g));
    this.decoder = this.module("decoder", new MarianDecoder(c, decTokens, positions, g));
  }
}

/** The decoder's caches during generation: a KV cache per layer for self-attention, and the
 *  encoder output's keys and values per layer for cross-attention (computed once per source). */
export class MarianCache {
  constructor(
    readonly self: KVCache[],
    readonly cross: CrossKV[],
    readonly sourcePadding: KeyPadding | null,
  ) {}
  /** Keep rows `rows` of the batch, in that order (beam search moves beams between rows). */
  reorder(rows: readonly number[]): void {
    if (rows.every((r, i) => r === i)) return;
    const idx = new Tensor(Int32Array.from(rows), [rows.length]);
    noGrad(() => {
      for (const c of this.self) {
        if (c.length === 0) continue;
        for (const buf of [c.k, c.v]) {
          const filled = slice(buf, 2, 0, c.length);
          filled.copy_(index(filled, idx));
        }
      }
    });
  }
}

export interface MarianInputs {
  /** (B, S) source token ids. */
  inputIds: Tensor;
  /** (B, S): 1 for real tokens, 0 for padding. */
  attentionMask?: Tensor | null;
  /** (B, T) decoder inputs; made from labels by shifting right when omitted. */
  decoderInputIds?: Tensor | null;
  /** (B, T) target ids; -100 is ignored in the loss. */
  labels?: Tensor | null;
}

export interface MarianOutput {
  logits: Tensor; // (B, T, decoder_vocab_size); (N, decoder_vocab_size) with labelledOnly
  loss: Tensor | null;
  encoderLastHiddenState: Tensor; // (B, S, C)
}

export const IGNORE_INDEX = -100;

export class MarianMTModel extends Module {
  readonly config: MarianConfig;
  readonly model: MarianModel;
  /** The output projection (V, C): the decoder's embedding table when tied. */
  readonly lmHead: Tensor;
  readonly final_logits_bias: Tensor;
  readonly generator: Generator;

  constructor(config: Partial<MarianConfig> = {}, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    const c = { ...MARIAN_DEFAULTS, decoder_vocab_size: config.vocab_size ?? MARIAN_DEFAULTS.vocab_size, ...config };
    validateMarianConfig(c);
    this.config = c;
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    this.generator = g;
    this.model = this.module("model", new MarianModel(c, g));
    if (c.tie_word_embeddings) this.lmHead = this.model.decoder.embed_tokens.weight;
    else this.lmHead = this.module("lm_head", new Linear(c.d_model, c.decoder_vocab_size, { bias: false, generator: g })).weight;
    this.final_logits_bias = this.buffer("final_logits_bias", empty([1, c.decoder_vocab_size]).fill_(0), true);
    this.packParameters();
    this.initWeights(g);
  }

  /** Hugging Face's MarianPreTrainedModel._init_weights: N(0, init_std) for Linear and embedding
   *  weights, zero biases and padding row, LayerNorms at 1 and 0. */
  initWeights(g: Generator): void {
    const std = this.config.init_std;
    const pad = this.config.pad_token_id;
    noGrad(() => {
      for (const [name, p] of this.namedParameters()) {
        if (/layer_norm\.weight$/.test(name)) p.fill_(1);
        else if (name.endsWith(".bias")) p.zero_();
        else {
          p.normal_({ generator: g, std });
          if (/embed_tokens\.weight$|shared\.weight$/.test(name)) slice(p, 0, pad, pad + 1).zero_();
        }
      }
    });
  }

  get sourceEmbedding(): Embedding {
    return this.model.encoder.embed_tokens;
  }

  /** The encoder's output (B, S, C) for source ids (B, S). */
  encode(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    checkIds("inputIds", inputIds, this.config.vocab_size);
    return this.model.encoder.forward(inputIds, paddingOrNull(attentionMask, inputIds));
  }

  /** Cross-attention keys and values of every decoder layer for an encoder output. */
  crossKeysValues(encoderHidden: Tensor, packed: Packing | null = null): CrossKV[] {
    return this.model.decoder.layers.items.map((l) => l.encoder_attn.keysValues(encoderHidden, packed));
  }

  /** Caches for generating up to maxLen target positions for `batch` rows. */
  newCache(encoderHidden: Tensor, attentionMask: Tensor | null, maxLen: number): MarianCache {
    const B = encoderHidden.shape[0] as number;
    const { decoder_layers, decoder_attention_heads: nh, d_model } = this.config;
    const self = Array.from({ length: decoder_layers }, () => new KVCache(B, nh, maxLen, d_model / nh));
    return new MarianCache(self, this.crossKeysValues(encoderHidden), paddingOrNull(attentionMask, null));
  }

  /** Next-token logits (B, T, V) for decoder inputs (B, T), given the encoder output. */
  decode(
    decoderInputIds: Tensor,
    encoderHidden: Tensor,
    attentionMask: Tensor | null,
    opts: { cache?: MarianCache | null; lastOnly?: boolean } = {},
  ): Tensor {
    checkIds("decoderInputIds", decoderInputIds, this.config.decoder_vocab_size);
    const cache = opts.cache ?? null;
    const cross = cache?.cross ?? this.crossKeysValues(encoderHidden);
    const padding = cache ? cache.sourcePadding : paddingOrNull(attentionMask, null);
    let x = this.model.decoder.forward(decoderInputIds, cross, padding, cache);
    if (opts.lastOnly) x = slice(x, 1, (x.shape[1] as number) - 1);
    return this.head(x); // (B, T, V)
  }

  /** The output head: x (..., C) -> logits (..., V), final_logits_bias added in the same op. */
  head(x: Tensor): Tensor {
    return linear(x, this.lmHead, reshape(this.final_logits_bias, [this.config.decoder_vocab_size]));
  }

  /** Logits and, with labels, the cross-entropy (optionally label-smoothed) over non-ignored targets.
   *  With labels and `labelledOnly`, the output head runs only at the labelled positions (those not
   *  -100), and logits are (N, V) for those N positions in row-major order: the loss and gradients
   *  are the same, without the head's GEMM and softmax over padding (with length-bucketed batches
   *  about a third of the positions; the head is a step's largest GEMM). Training uses it. */
  forward(inputs: MarianInputs, opts: { labelSmoothing?: number; labelledOnly?: boolean } = {}): MarianOutput {
    const { inputIds, labels } = inputs;
    const mask = inputs.attentionMask ?? null;
    let dec = inputs.decoderInputIds ?? null;
    if (!dec) {
      if (!labels) throw new Error("Marian.forward: give decoderInputIds or labels (from which the decoder inputs are made)");
      dec = shiftTokensRight(labels, this.config.pad_token_id, this.config.decoder_start_token_id);
    }
    const smoothing = { ignoreIndex: IGNORE_INDEX, labelSmoothing: opts.labelSmoothing ?? 0 };
    if (labels && opts.labelledOnly) return this.forwardLabelled(inputIds, mask, dec, labels, smoothing);
    const encoderLastHiddenState = this.encode(inputIds, mask);
    const logits = this.decode(dec, encoderLastHiddenState, mask);
    const loss = labels ? crossEntropy(logits, labels, smoothing) : null;
    return { logits, loss, encoderLastHiddenState };
  }

  /** forward's labelledOnly path. Source positions are packed when the padding is on the right;
   *  target positions up to each row's last label always are (later ones influence no label: the
   *  decoder is causal). The head runs at the labelled rows of the packed target. The encoder output
   *  returned is then packed (N, C), the source's real tokens in row-major order. */
  private forwardLabelled(
    inputIds: Tensor,
    mask: Tensor | null,
    dec: Tensor,
    labels: Tensor,
    smoothing: { ignoreIndex: number; labelSmoothing: number },
  ): MarianOutput {
    checkIds("inputIds", inputIds, this.config.vocab_size);
    checkIds("decoderInputIds", dec, this.config.decoder_vocab_size);
    const [B, T] = dec.shape as [number, number];
    if (labels.ndim !== 2 || labels.shape[0] !== B || labels.shape[1] !== T)
      throw new Error(`Marian.forward: labels have shape [${labels.shape.join(", ")}] but the decoder inputs [${B}, ${T}]`);
    const padding = paddingOrNull(mask, inputIds);
    const source = padding?.lengths ? packing(padding.lengths, inputIds.shape[1] as number) : null;
    const enc = this.model.encoder.forward(inputIds, padding, source);
    // Target: each row up to its last label; the head's rows are the labelled ones among them.
    const l = labels.contiguousData() as Int32Array;
    const lengths = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      let n = T;
      while (n > 0 && l[b * T + n - 1] === IGNORE_INDEX) n--;
      lengths[b] = n;
    }
    const target = packing(lengths, T);
    const heads: number[] = [];
    const targets: number[] = [];
    (target.rows.data as Int32Array).forEach((pos, j) => {
      const y = l[pos] as number;
      if (y === IGNORE_INDEX) return;
      heads.push(j);
      targets.push(y);
    });
    const x = this.model.decoder.forward(dec, this.crossKeysValues(enc, source), padding, null, target); // (N, C)
    const rows = heads.length === x.shape[0] ? x : index(x, new Tensor(Int32Array.from(heads), [heads.length]));
    const logits = this.head(rows); // (labelled, V)
    const loss = crossEntropy(logits, new Tensor(Int32Array.from(targets), [targets.length]), smoothing);
    return { logits, loss, encoderLastHiddenState: enc };
  }

  /** AdamW groups: Linear weights decay; biases, LayerNorms and embeddings do not. */
  optimGroups(weightDecay: number): ParamGroup[] {
    const decay: Tensor[] = [];
    const noDecay: Tensor[] = [];
    for (const [name, p] of this.namedParameters()) {
      const isLinear = p.ndim === 2 && !/shared|embed_tokens/.test(name);
      (isLinear ? decay : noDecay).push(p);
    }
    return [
      { params: decay, weightDecay },
      { params: noDecay, weightDecay: 0 },
    ];
  }

  paramCount(): number {
    return this.numParameters();
  }
}

/** Decoder inputs from labels: start token, then the labels shifted right (-100 read as pad). */
export function shiftTokensRight(labels: Tensor, padId: number, startId: number): Tensor {
  const [B, T] = labels.shape as [number, number];
  const src = labels.contiguousData() as Int32Array;
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    out[b * T] = startId;
    for (let t = 1; t < T; t++) {
      const v = src[b * T + t - 1] as number;
      out[b * T + t] = v === IGNORE_INDEX ? padId : v;
    }
  }
  return new Tensor(out, [B, T]);
}

/** The padding of an attention mask (B, S); null when it masks nothing, so attention takes the
 *  plain fused kernel, and with row lengths when each row is ones then zeros. */
function paddingOrNull(mask: Tensor | null, ids: Tensor | null): KeyPadding | null {
  if (!mask) return null;
  if (mask.ndim !== 2 || (ids && (mask.shape[0] !== ids.shape[0] || mask.shape[1] !== ids.shape[1]))) {
    throw new Error(`Marian: attentionMask has shape [${mask.shape.join(", ")}] but inputIds has [${ids?.shape.join(", ") ?? "(B, S)"}]`);
  }
  const [B, S] = mask.shape as [number, number];
  const d = mask.contiguousData();
  const lengths = new Int32Array(B);
  let padded = false;
  let right = true;
  for (let b = 0; b < B; b++) {
    let n = 0;
    while (n < S && d[b * S + n] !== 0) n++;
    for (let j = n; j < S; j++) if (d[b * S + j] !== 0) right = false;
    lengths[b] = n;
    if (n < S) padded = true;
  }
  if (!padded) return null;
  return { mask, lengths: right && lengths.every((n) => n > 0) ? lengths : null };
}

function checkIds(name: string, ids: Tensor, vocab: number): void {
  if (ids.dtype !== "int32" || ids.ndim !== 2)
    throw new Error(`Marian: ${name} must be int32 of shape (B, T), got ${ids.dtype} [${ids.shape.join(", ")}]`);
  const d = ids.contiguousData();
  for (let i = 0; i < d.length; i++) {
    const v = d[i] as number;
    if (v < 0 || v >= vocab) throw new Error(`Marian: ${name} holds token id ${v}, outside the vocabulary of ${vocab}`);
  }
}
