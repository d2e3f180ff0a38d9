// A hierarchical attention network (Yang et al. 2016, "Hierarchical Attention Networks for Document
// Classification"), all of it in this file: words -> sentence vectors -> a document vector, with
// attention at both levels, then a classifier.
//
//   word level      h_it = BiGRU(embedding(w_it))            u_it = tanh(W_w h_it + b_w)
//                   α_it = softmax_t(u_itᵀ u_w)               s_i = Σ_t α_it h_it
//   sentence level  h_i = BiGRU(s_i)                          u_i = tanh(W_s h_i + b_s)
//                   α_i = softmax_i(u_iᵀ u_s)                 v = Σ_i α_i h_i
//   classifier      p = softmax(W_c v + b_c)
//
// u_w and u_s are learned context vectors ("which words / sentences matter"). Batched: every
// sentence of every document goes through the word GRU at once (packed by length); padding gets no
// attention. `attention` returns both levels' weights of a document for printing.

import { Embedding, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { GRU } from "../nn/rnn.js";
import { randn } from "../tensor/creation.js";
import { crossEntropy, eq, index, maskedFill, matmul, mul, reshape, softmax, sum, tanh, unsqueeze } from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

export interface HANConfig {
  vocab_size: number;
  embed_dim: number;
  /** GRU size per direction (the paper: 50). */
  hidden_size: number;
  num_labels: number;
}

/** A document as sentences of word ids. */
export type Document = readonly (readonly number[])[];

export interface HANOutput {
  logits: Tensor; // (D, num_labels)
  loss: Tensor | null;
  /** Word attention (sentences of all documents, W) and sentence attention (D, S). */
  wordAttention: Tensor;
  sentenceAttention: Tensor;
}

/** Additive attention with a learned context vector; masked positions get weight 0. */
class AttentionPool extends Module {
  readonly proj: Linear;
  readonly context: Tensor;
  constructor(size: number, g: Generator) {
    super();
    this.proj = this.module("proj", new Linear(size, size, { generator: g }));
    this.context = this.param("context", randn([size], { generator: g, std: 1 / Math.sqrt(size) }));
  }
  /** h (N, T, C), mask (N, T) 1 for real -> pooled (N, C) and weights (N, T). */
  forward(h: Tensor, mask: Tensor): { pooled: Tensor; weights: Tensor } {
    const u = tanh(this.proj.forward(h)); // (N, T, C)
    const scores = matmul(u, this.context); // (N, T)
    const weights = softmax(maskedFill(scores, eq(mask, 0), Number.NEGATIVE_INFINITY), -1);
    return { pooled: sum(mul(h, unsqueeze(weights, -1)), 1), weights };
  }
}

export class HierarchicalAttentionNetwork extends Module {
  readonly config: HANConfig;
  readonly embedding: Embedding;
  readonly word_encoder: GRU;
  readonly word_attention: AttentionPool;
  readonly sentence_encoder: GRU;
  readonly sentence_attention: AttentionPool;
  readonly classifier: Linear;

  constructor(config: HANConfig, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    for (const k of ["vocab_size", "embed_dim", "hidden_size", "num_labels"] as const) {
      if (!Number.isInteger(config[k]) || config[k] < 1) throw new Error(`HAN config: ${k} must be a positive integer (got ${config[k]})`);
    }
    this.config = config;
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    const H = config.hidden_size;
    this.embedding = this.module("embedding", new Embedding(config.vocab_size, config.embed_dim, { generator: g }));
    this.word_encoder = this.module("word_encoder", new GRU(config.embed_dim, H, { bidirectional: true, batchFirst: true, generator: g }));
    this.word_attention = this.module("word_attention", new AttentionPool(2 * H, g));
    this.sentence_encoder = this.module("sentence_encoder", new GRU(2 * H, H, { bidirectional: true, batchFirst: true, generator: g }));
    this.sentence_attention = this.module("sentence_attention", new AttentionPool(2 * H, g));
    this.classifier = this.module("classifier", new Linear(2 * H, config.num_labels, { generator: g }));
  }

  forward(docs: readonly Document[], labels: Tensor | null = null): HANOutput {
    if (docs.length === 0) throw new Error("HAN: give at least one document");
    const V = this.config.vocab_size;
    // Every sentence of every document (an empty one reads as one padding token, masked out below).
    const sents = docs.flatMap((d) => (d.length ? d : [[]]));
    const W = Math.max(1, ...sents.map((s) => s.length));
    const ids = new Int32Array(sents.length * W);
    const wmask = new Float32Array(sents.length * W);
    sents.forEach((s, i) => {
      s.forEach((w, t) => {
        if (!Number.isInteger(w) || w < 0 || w >= V) throw new Error(`HAN: word id ${w} is outside the vocabulary of ${V}`);
        ids[i * W + t] = w;
        wmask[i * W + t] = 1;
      });
      if (s.length === 0) wmask[i * W] = 1; // attend to the padding token rather than to nothing
    });
    const wordLengths = sents.map((s) => Math.max(1, s.length));
    const { output: hw } = this.word_encoder.forward(this.embedding.forward(new Tensor(ids, [sents.length, W])), { lengths: wordLengths });
    const word = this.word_attention.forward(hw, new Tensor(wmask, [sents.length, W]));
    // Sentence vectors back into documents: (D, S, 2H), padded.
    const S = Math.max(...docs.map((d) => Math.max(1, d.length)));
    const D = docs.length;
    const rows = new Int32Array(D * S);
    const smask = new Float32Array(D * S);
    let at = 0;
    docs.forEach((d, i) => {
      const n = Math.max(1, d.length);
      for (let j = 0; j < S; j++) rows[i * S + j] = at + Math.min(j, n - 1);
      smask.fill(1, i * S, i * S + n);
      at += n;
    });
    const sv = reshape(index(word.pooled, new Tensor(rows, [D * S])), [D, S, -1]);
    const { output: hs } = this.sentence_encoder.forward(sv, { lengths: docs.map((d) => Math.max(1, d.length)) });
    const doc = this.sentence_attention.forward(hs, new Tensor(smask, [D, S]));
    const logits = this.classifier.forward(doc.pooled);
    return { logits, loss: labels ? crossEntropy(logits, labels) : null, wordAttention: word.weights, sentenceAttention: doc.weights };
  }

  /** One document's attention: each sentence's weight and its words' weights, for printing. */
  attention(doc: Document): { sentence: number; words: number[] }[] {
    const wasTraining = this.training;
    this.eval();
    try {
      const out = this.forward([doc]);
      const ws = out.wordAttention.toArray();
      const ss = out.sentenceAttention.toArray();
      const W = out.wordAttention.shape[1] as number;
      return doc.map((s, i) => ({ sentence: ss[i] as number, words: s.map((_, t) => ws[i * W + t] as number) }));
    } finally {
      this.train(wasTraining);
    }
  }
}
