// A sentence autoencoder with a bottleneck, and its variational form (Bowman et al. 2016,
// "Generating Sentences from a Continuous Space"), all of it in this file. An LSTM encoder reads
// the sentence both ways; its final states become a code z of latent_size numbers (the
// bottleneck); an LSTM decoder, whose first state is computed from z and which sees z beside every
// input word, writes the sentence back word by word.
//
//   autoencoder   z = W h_enc + b
//   VAE           μ = W_μ h_enc, log σ² = W_σ h_enc, z = μ + σ ⊙ ε (ε ~ N(0, I), the
//                 reparameterisation trick); loss = reconstruction + β · KL(q(z|x) ‖ N(0, I))
//
// Bowman et al.'s two remedies against the decoder ignoring z ("posterior collapse"): KL annealing
// (β rises from 0 to 1 along a logistic curve over training, klWeight) and word dropout (during
// training each decoder input word is replaced by <unk> with probability word_dropout, so the
// decoder must lean on z). Reconstruction accuracy decodes greedily from μ; `interpolate` decodes
// the points on the line between two sentences' codes (the paper's homotopies).

import { Embedding, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { LSTM } from "../nn/rnn.js";
import { noGrad } from "../tensor/autograd.js";
import { randn } from "../tensor/creation.js";
import { add, cat, crossEntropy, exp, index, mul, sub, sum } from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

export const PAD = "<pad>";
export const BOS = "<s>";
export const EOS = "</s>";
export const UNK = "<unk>";

/** Words <-> ids: the special tokens, then the most frequent words of the training sentences. */
export class WordVocab {
  readonly index = new Map<string, number>();
  constructor(readonly words: readonly string[]) {
    words.forEach((w, i) => {
      this.index.set(w, i);
    });
    for (const s of [PAD, BOS, EOS, UNK]) if (!this.index.has(s)) throw new Error(`WordVocab: the vocabulary lacks ${s}`);
  }
  /** The maxSize - 4 most frequent words of the sentences (ties by first appearance), plus the specials. */
  static build(sentences: readonly string[], maxSize: number): WordVocab {
    const counts = new Map<string, number>();
    for (const s of sentences) for (const w of tokenizeWords(s)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, Math.max(0, maxSize - 4));
    return new WordVocab([PAD, BOS, EOS, UNK, ...top.map(([w]) => w)]);
  }
  get size(): number {
    return this.words.length;
  }
  id(w: string): number {
    return this.index.get(w) ?? (this.index.get(UNK) as number);
  }
  encode(s: string): number[] {
    return tokenizeWords(s).map((w) => this.id(w));
  }
  decode(ids: readonly number[]): string {
    return ids.map((i) => this.words[i] ?? UNK).join(" ");
  }
}

/** Lowercased words, punctuation split off (a PTB-like tokenisation). */
export function tokenizeWords(s: string): string[] {
  return s
    .toLowerCase()
    .replace(/([.,;:!?()"])/g, " $1 ")
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

export interface SentenceVAEConfig {
  vocab_size: number;
  embed_dim: number;
  hidden_size: number;
  latent_size: number;
  /** false: a plain autoencoder (deterministic code). */
  variational: boolean;
  word_dropout: number;
  /** Longest sentence (words, </s> included). */
  max_length: number;
  /**
   * z is also concatenated to every decoder input word (not only turned into the first state).
   * Through the first state alone the encoder's gradient is 100-1,000x smaller than the decoder's, and a
   * decoder trained with teacher forcing learns the sentences from their own first words and
   * ignores z (measured: 256 sentences memorised to 10 nats while every code decoded to the
   * same sentence). Directories written before this option existed load with false.
   */
  feed_latent: boolean;
  /**
   * The encoder reads the sentence both ways and the code sees both final states, so the first
   * words (the ones the decoder writes first) are as close to the code as the last ones.
   * Directories written before this option existed load with false.
   */
  bidirectional: boolean;
}

export const SENTENCE_VAE_DEFAULTS: SentenceVAEConfig = {
  vocab_size: 5000,
  embed_dim: 128,
  hidden_size: 256,
  latent_size: 128, // 32 reached 119 nats per held-out sentence at 1,000 steps, 128 (with lr 3e-3) 106
  variational: true,
  word_dropout: 0.25,
  max_length: 32,
  feed_latent: true,
  bidirectional: true,
};

/** Bowman et al.'s logistic KL annealing: β = 1 / (1 + exp(-k (step - x0))). */
export function klWeight(step: number, k = 0.0025, x0 = 2500): number {
  return 1 / (1 + Math.exp(-k * (step - x0)));
}

export interface VAEOutput {
  logits: Tensor; // (B, T, V)
  mu: Tensor; // (B, Z)
  logvar: Tensor | null;
  z: Tensor;
  /** Mean over sentences of the summed token cross-entropy. */
  reconstruction: Tensor;
  /** Mean over sentences of KL(q(z|x) ‖ N(0, I)); zero for the plain autoencoder. */
  kl: Tensor;
}

export class SentenceVAE extends Module {
  readonly config: SentenceVAEConfig;
  readonly embedding: Embedding;
  readonly encoder: LSTM;
  readonly to_mu: Linear;
  readonly to_logvar: Linear | null;
  readonly latent_to_hidden: Linear;
  readonly decoder: LSTM;
  readonly output: Linear;
  readonly generator: Generator;

  constructor(config: Partial<SentenceVAEConfig> = {}, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    const c = { ...SENTENCE_VAE_DEFAULTS, ...config };
    for (const k of ["vocab_size", "embed_dim", "hidden_size", "latent_size", "max_length"] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`SentenceVAE config: ${k} must be a positive integer (got ${c[k]})`);
    }
    if (!(c.word_dropout >= 0 && c.word_dropout < 1))
      throw new Error(`SentenceVAE config: word_dropout must be in [0, 1) (got ${c.word_dropout})`);
    this.config = c;
    const g = opts.generator ?? (opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator);
    this.generator = g;
    this.embedding = this.module("embedding", new Embedding(c.vocab_size, c.embed_dim, { generator: g }));
    this.encoder = this.module(
      "encoder",
      new LSTM(c.embed_dim, c.hidden_size, { batchFirst: true, bidirectional: c.bidirectional, generator: g }),
    );
    const encoded = c.hidden_size * (c.bidirectional ? 2 : 1);
    this.to_mu = this.module("to_mu", new Linear(encoded, c.latent_size, { generator: g }));
    this.to_logvar = c.variational ? this.module("to_logvar", new Linear(encoded, c.latent_size, { generator: g })) : null;
    this.latent_to_hidden = this.module("latent_to_hidden", new Linear(c.latent_size, c.hidden_size, { generator: g }));
    const decoderInput = c.embed_dim + (c.feed_latent ? c.latent_size : 0);
    this.decoder = this.module("decoder", new LSTM(decoderInput, c.hidden_size, { batchFirst: true, generator: g }));
    this.output = this.module("output", new Linear(c.hidden_size, c.vocab_size, { generator: g }));
  }

  /** The code's mean and log-variance (B, Z) of sentences given as word ids. */
  encode(sentences: readonly (readonly number[])[]): { mu: Tensor; logvar: Tensor | null } {
    const { ids, lengths } = pad(sentences, 0, this.config.max_length);
    const { h_n } = this.encoder.forward(this.embedding.forward(ids), { lengths });
    // (B, H) or, both ways, (B, 2H): the final state after the last word and after the first
    const h = this.config.bidirectional ? cat([index(h_n, 0), index(h_n, 1)], 1) : index(h_n, 0);
    return { mu: this.to_mu.forward(h), logvar: this.to_logvar ? this.to_logvar.forward(h) : null };
  }

  /** The decoder's input vectors (B, T, E [+ Z]) for words (B, T) given codes z (B, Z). */
  private decoderInputs(z: Tensor, words: Tensor): Tensor {
    const x = this.embedding.forward(words); // (B, T, E)
    if (!this.config.feed_latent) return x;
    const [B, T] = words.shape as [number, number];
    return cat([x, z.unsqueeze(1).expand(B, T, this.config.latent_size)], 2);
  }

  /** Decoder logits (B, T, V) for inputs (B, T) given codes z (B, Z). */
  decodeLogits(z: Tensor, inputs: Tensor, lengths: number[]): Tensor {
    const h0 = this.latent_to_hidden.forward(z).unsqueeze(0); // (1, B, H)
    const { output } = this.decoder.forward(this.decoderInputs(z, inputs), { h0, lengths });
    return this.output.forward(output);
  }

  /** Reconstruct a batch of sentences (word ids, without <s> and </s>). */
  forward(sentences: readonly (readonly number[])[]): VAEOutput {
    const c = this.config;
    const { mu, logvar } = this.encode(sentences);
    let z = mu;
    let kl = sum(mul(mu, 0)); // 0, connected to the graph
    const B = sentences.length;
    if (logvar) {
      const eps = noGrad(() => randn(mu.shape as number[], { generator: this.generator }));
      z = this.training ? add(mu, mul(exp(mul(logvar, 0.5)), eps)) : mu;
      // KL(N(μ, σ²) ‖ N(0, 1)) = -½ Σ (1 + log σ² - μ² - σ²)
      kl = mul(sum(sub(add(mul(mu, mu), exp(logvar)), add(logvar, 1))), 0.5 / B);
    }
    const bos = 1;
    const eos = 2;
    const unk = 3;
    const rows = sentences.map((s) => s.slice(0, c.max_length - 1));
    // Decoder inputs: <s> w1 .. wn, each word replaced by <unk> with probability word_dropout in training.
    const inputs = rows.map((s) => [
      bos,
      ...s.map((w) => (this.training && c.word_dropout > 0 && this.generator.random() < c.word_dropout ? unk : w)),
    ]);
    const targets = rows.map((s) => [...s, eos]);
    const { ids, lengths } = pad(inputs, 0, c.max_length);
    const tgt = pad(targets, -100, c.max_length).ids;
    const logits = this.decodeLogits(z, ids, lengths);
    const reconstruction = mul(crossEntropy(logits, tgt, { reduction: "sum" }), 1 / B);
    return { logits, mu, logvar, z, reconstruction, kl };
  }

  /** Greedy decoding from codes z (B, Z): word ids up to </s> (or max_length). */
  generate(z: Tensor): number[][] {
    return noGrad(() => {
      const B = z.shape[0] as number;
      let h = this.latent_to_hidden.forward(z).unsqueeze(0);
      let cState: Tensor | null = null;
      let last = new Array<number>(B).fill(1);
      const out: number[][] = Array.from({ length: B }, () => []);
      const done = new Array<boolean>(B).fill(false);
      for (let t = 0; t < this.config.max_length && !done.every((d) => d); t++) {
        const x = this.decoderInputs(z, new Tensor(Int32Array.from(last), [B, 1]));
        const r = this.decoder.forward(x, { h0: h, c0: cState });
        h = r.h_n;
        cState = r.c_n;
        const logits = this.output.forward(r.output).contiguousData() as Float32Array; // (B, 1, V)
        const V = this.config.vocab_size;
        last = last.map((_, b) => {
          let best = 0;
          for (let v = 1; v < V; v++) if ((logits[b * V + v] as number) > (logits[b * V + best] as number)) best = v;
          if (!done[b]) {
            if (best === 2) done[b] = true;
            else (out[b] as number[]).push(best);
          }
          return best;
        });
      }
      return out;
    });
  }

  /** Greedy reconstructions from μ: each sentence's words as the model writes them back. */
  reconstruct(sentences: readonly (readonly number[])[]): number[][] {
    const wasTraining = this.training;
    this.eval();
    try {
      return this.generate(noGrad(() => this.encode(sentences)).mu);
    } finally {
      this.train(wasTraining);
    }
  }

  /** Token and whole-sentence accuracy of greedy reconstructions from μ (word t against word t). */
  reconstructionAccuracy(
    sentences: readonly (readonly number[])[],
    got: readonly (readonly number[])[] = this.reconstruct(sentences),
  ): { token_accuracy: number; sentence_accuracy: number } {
    let right = 0;
    let total = 0;
    let exact = 0;
    sentences.forEach((s, i) => {
      const want = [...s.slice(0, this.config.max_length - 1), 2];
      const g = [...(got[i] as number[]), 2];
      want.forEach((w, t) => {
        if (g[t] === w) right++;
      });
      total += want.length;
      if (g.length === want.length && g.every((w, t) => w === want[t])) exact++;
    });
    return { token_accuracy: right / Math.max(1, total), sentence_accuracy: exact / Math.max(1, sentences.length) };
  }

  /** Sentences decoded at `steps` evenly spaced points from a's code to b's (both ends included). */
  interpolate(a: readonly number[], b: readonly number[], steps: number): number[][] {
    if (!Number.isInteger(steps) || steps < 2) throw new Error(`interpolate: steps must be an integer >= 2 (got ${steps})`);
    const wasTraining = this.training;
    this.eval();
    try {
      const { mu } = noGrad(() => this.encode([a, b]));
      const za = index(mu, 0);
      const zb = index(mu, 1);
      const points = noGrad(() =>
        Array.from({ length: steps }, (_, i) => {
          const t = i / (steps - 1);
          return add(mul(za, 1 - t), mul(zb, t)).unsqueeze(0);
        }),
      );
      const z = noGrad(() => cat(points, 0)); // (steps, Z)
      return this.generate(z);
    } finally {
      this.train(wasTraining);
    }
  }
}

/** Rows padded to the longest (cut at maxLength), with their lengths (at least 1). */
function pad(rows: readonly (readonly number[])[], fill: number, maxLength: number): { ids: Tensor; lengths: number[] } {
  const lengths = rows.map((r) => Math.max(1, Math.min(r.length, maxLength)));
  const T = Math.max(...lengths);
  const ids = new Int32Array(rows.length * T).fill(fill);
  rows.forEach((r, b) => {
    ids.set(r.slice(0, T), b * T);
    if (r.length === 0) ids[b * T] = fill === -100 ? -100 : 3; // an empty sentence reads as <unk>
  });
  return { ids: new Tensor(ids, [rows.length, T]), lengths };
}
