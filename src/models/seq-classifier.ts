// Sequence classifiers: token ids -> one label, read left to right by an LSTM or all at once by a
// small Transformer encoder, all of it in this file. They are the flat baselines the recursive and
// hierarchical models are measured against (ListOps beside the Tree-LSTM, Nangia and Bowman 2018).
//
//   lstm         embedding -> LSTM (packed by length) -> the last layer's final hidden state -> linear
//   transformer  embedding + sinusoidal positions -> n_layer pre-LN blocks, bidirectional with
//                padding masked -> LayerNorm -> the mean over the real positions -> linear

import { Embedding, LayerNorm, Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { sinusoidalTable } from "../nn/positional.js";
import { LSTM } from "../nn/rnn.js";
import { TransformerBlock } from "../nn/transformer.js";
import { add, crossEntropy, div, index, mul, reshape, slice, sum } from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

export type SequenceEncoder = "lstm" | "transformer";

export interface SequenceClassifierConfig {
  encoder: SequenceEncoder;
  vocab_size: number;
  embed_dim: number;
  /** LSTM hidden size, or the Transformer's width (embed_dim is then the same). */
  hidden_size: number;
  num_layers: number;
  /** Transformer only. */
  num_heads: number;
  /** Transformer only: the feed-forward width. */
  ffn_dim: number;
  /** Transformer only: the longest input (rows of the position table). */
  max_length: number;
  num_labels: number;
  dropout: number;
  /** The id padded rows are filled with (never attended to, never read by the LSTM). */
  pad_token_id: number;
}

export const SEQUENCE_CLASSIFIER_DEFAULTS: Omit<SequenceClassifierConfig, "encoder" | "vocab_size" | "num_labels"> = {
  embed_dim: 64,
  hidden_size: 64,
  num_layers: 1,
  num_heads: 4,
  ffn_dim: 128,
  max_length: 512,
  dropout: 0,
  pad_token_id: 0,
};

export function validateSequenceClassifierConfig(c: SequenceClassifierConfig): void {
  if (c.encoder !== "lstm" && c.encoder !== "transformer")
    throw new Error(`SequenceClassifier config: encoder must be lstm or transformer (got ${c.encoder})`);
  for (const k of ["vocab_size", "embed_dim", "hidden_size", "num_layers", "num_heads", "ffn_dim", "max_length", "num_labels"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`SequenceClassifier config: ${k} must be a positive integer (got ${c[k]})`);
  }
  if (c.encoder === "transformer" && c.hidden_size % c.num_heads !== 0)
    throw new Error(`SequenceClassifier config: hidden_size (${c.hidden_size}) must be divisible by num_heads (${c.num_heads})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`SequenceClassifier config: dropout must be in [0, 1) (got ${c.dropout})`);
  if (!Number.isInteger(c.pad_token_id) || c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw new Error(`SequenceClassifier config: pad_token_id must be a token id below vocab_size (got ${c.pad_token_id})`);
}

export class SequenceClassifier extends Module {
  readonly config: SequenceClassifierConfig;
  readonly embedding: Embedding;
  readonly lstm: LSTM | null = null;
  readonly layers: ModuleList<TransformerBlock> | null = null;
  readonly ln_f: LayerNorm | null = null;
  readonly classifier: Linear;
  private readonly positions: Tensor | null = null;

  constructor(config: SequenceClassifierConfig, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    validateSequenceClassifierConfig(config);
    this.config = config;
    const c = config;
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    const width = c.encoder === "transformer" ? c.hidden_size : c.embed_dim;
    this.embedding = this.module("embedding", new Embedding(c.vocab_size, width, { generator: g }));
    if (c.encoder === "lstm") {
      this.lstm = this.module(
        "lstm",
        new LSTM(c.embed_dim, c.hidden_size, { numLayers: c.num_layers, batchFirst: true, dropout: c.dropout, generator: g }),
      );
    } else {
      const blocks = Array.from(
        { length: c.num_layers },
        () =>
          new TransformerBlock({
            n_embd: c.hidden_size,
            n_head: c.num_heads,
            n_inner: c.ffn_dim,
            dropout: c.dropout,
            causal: false,
            generator: g,
          }),
      );
      this.layers = this.module("layers", new ModuleList(blocks));
      this.ln_f = this.module("ln_f", new LayerNorm(c.hidden_size));
      this.positions = sinusoidalTable(c.max_length, c.hidden_size);
    }
    this.classifier = this.module("classifier", new Linear(c.hidden_size, c.num_labels, { generator: g }));
  }

  /** Logits (B, num_labels) for sequences of token ids; with labels (B), the cross-entropy too. */
  forward(seqs: readonly (readonly number[])[], labels: Tensor | null = null): { logits: Tensor; loss: Tensor | null } {
    const c = this.config;
    if (seqs.length === 0) throw new Error("SequenceClassifier: give at least one sequence");
    const lengths = seqs.map((s) => s.length);
    if (lengths.some((n) => n < 1)) throw new Error("SequenceClassifier: a sequence is empty; each needs at least one token");
    const T = Math.max(...lengths);
    if (c.encoder === "transformer" && T > c.max_length)
      throw new Error(`SequenceClassifier: a sequence has ${T} tokens but max_length is ${c.max_length}`);
    const B = seqs.length;
    const ids = new Int32Array(B * T).fill(c.pad_token_id);
    const mask = new Int32Array(B * T);
    seqs.forEach((s, b) => {
      s.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0 || t >= c.vocab_size)
          throw new Error(`SequenceClassifier: token id ${t} is outside the vocabulary of ${c.vocab_size}`);
        ids[b * T + i] = t;
      });
      mask.fill(1, b * T, b * T + s.length);
    });
    const x = this.embedding.forward(new Tensor(ids, [B, T])); // (B, T, C)
    let pooled: Tensor; // (B, H)
    if (this.lstm) {
      const { h_n } = this.lstm.forward(x, { lengths });
      pooled = index(h_n, new Tensor(Int32Array.of(c.num_layers - 1), [1])); // (1, B, H): the top layer
      pooled = reshape(pooled, [B, c.hidden_size]);
    } else {
      let h = add(x, slice(this.positions as Tensor, 0, 0, T)); // + (T, C)
      const paddingMask = new Tensor(mask, [B, T]);
      for (const block of (this.layers as ModuleList<TransformerBlock>).items) h = block.forward(h, { paddingMask });
      h = (this.ln_f as LayerNorm).forward(h);
      const m = new Tensor(Float32Array.from(mask), [B, T, 1]);
      pooled = div(sum(mul(h, m), 1), new Tensor(Float32Array.from(lengths), [B, 1])); // mean over real positions
    }
    const logits = this.classifier.forward(pooled);
    return { logits, loss: labels ? crossEntropy(logits, labels) : null };
  }
}
