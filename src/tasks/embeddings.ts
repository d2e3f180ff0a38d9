// Embeddings from a BERT: sentence vectors (the mean of the last hidden states over the real
// tokens, as sentence-transformers pools), cosine similarity, and word vectors for nearest
// neighbours and analogies (a - b + c, Mikolov et al. 2013).
//
// Word vectors come from one of two places:
//   "input"       the word-embedding table (a word of several pieces: the mean of its pieces' rows),
//                 the static vectors the model learned; cheap
//   "contextual"  the word run alone through the encoder ([CLS] word [SEP]), mean of its pieces'
//                 last hidden states
// The candidate words are the vocabulary's whole-word tokens (no "##" pieces, no special tokens,
// at least one letter).

import type { Bert } from "../models/bert.js";
import { noGrad } from "../tensor/autograd.js";
import { Tensor } from "../tensor/tensor.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";

export type Pooling = "mean" | "cls" | "none";

/** Run fn with the model in eval mode (no dropout), restoring its mode after: a model straight from
 *  pretrainMlm or finetune is still in training mode, and embeddings must not be random. */
function inEvalMode<T>(model: Bert, fn: () => T): T {
  const was = model.training;
  model.eval();
  try {
    return noGrad(fn);
  } finally {
    model.train(was);
  }
}

function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cosineSimilarity: vectors of ${a.length} and ${b.length} dimensions`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

/** Encode texts as a padded batch: [CLS] text [SEP], cut to maxLength. */
export function encodeBatch(tokenizer: WordPieceTokenizer, texts: readonly string[], maxLength: number) {
  const encs = texts.map((t) => tokenizer.encodePair(t, null, { maxLength, disallowedSpecial: [] }));
  const T = Math.max(...encs.map((e) => e.inputIds.length));
  const pad = tokenizer.tokenToId(tokenizer.padToken) as number;
  const ids = new Int32Array(texts.length * T).fill(pad);
  const mask = new Int32Array(texts.length * T);
  encs.forEach((e, b) => {
    ids.set(e.inputIds, b * T);
    mask.fill(1, b * T, b * T + e.inputIds.length);
  });
  return { ids: new Tensor(ids, [texts.length, T]), mask: new Tensor(mask, [texts.length, T]), T, encs };
}

/** Hidden states of texts: (B, T, H) with pooling "none", else (B, H); L2-normalised rows with `normalize`. */
export function embedTexts(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  texts: readonly string[],
  o: { pooling?: Pooling; normalize?: boolean; maxLength?: number } = {},
): Tensor {
  const pooling = o.pooling ?? "mean";
  const maxLength = Math.min(o.maxLength ?? 512, model.config.max_position_embeddings);
  if (texts.length === 0) throw new Error("embedTexts: no texts given");
  return inEvalMode(model, () => {
    const { ids, mask, T } = encodeBatch(tokenizer, texts, maxLength);
    const h = model.bert.forward({ inputIds: ids, attentionMask: mask }).lastHiddenState;
    const H = model.config.hidden_size;
    const data = h.contiguousData() as Float32Array;
    if (pooling === "none") {
      if (!o.normalize) return new Tensor(Float32Array.from(data), [texts.length, T, H]);
      const out = new Float32Array(data.length);
      for (let r = 0; r < texts.length * T; r++) out.set(l2normalize(data.subarray(r * H, (r + 1) * H)), r * H);
      return new Tensor(out, [texts.length, T, H]);
    }
    const out = new Float32Array(texts.length * H);
    const m = mask.contiguousData();
    for (let b = 0; b < texts.length; b++) {
      const v = new Float32Array(H);
      if (pooling === "cls") v.set(data.subarray(b * T * H, b * T * H + H));
      else {
        let n = 0;
        for (let t = 0; t < T; t++) {
          if (!m[b * T + t]) continue;
          n++;
          for (let c = 0; c < H; c++) v[c] = (v[c] as number) + (data[(b * T + t) * H + c] as number);
        }
        for (let c = 0; c < H; c++) v[c] = (v[c] as number) / n;
      }
      out.set(o.normalize ? l2normalize(v) : v, b * H);
    }
    return new Tensor(out, [texts.length, H]);
  });
}

/** Mean-pooled sentence embeddings, one Float32Array per text (L2-normalised by default). */
export function sentenceEmbeddings(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  texts: readonly string[],
  o: { normalize?: boolean; batchSize?: number } = {},
): Float32Array[] {
  const bs = o.batchSize ?? 32;
  const out: Float32Array[] = [];
  const H = model.config.hidden_size;
  for (let i = 0; i < texts.length; i += bs) {
    const t = embedTexts(model, tokenizer, texts.slice(i, i + bs), { pooling: "mean", normalize: o.normalize ?? true });
    const d = t.contiguousData() as Float32Array;
    for (let r = 0; r < t.shape[0]!; r++) out.push(d.slice(r * H, (r + 1) * H));
  }
  return out;
}

export interface Neighbour {
  word: string;
  score: number;
}

/** Word vectors over a model's vocabulary, for nearest neighbours and analogies (see the file comment). */
export class WordVectors {
  readonly words: string[];
  private readonly vectors: Float32Array[]; // L2-normalised
  private readonly index = new Map<string, number>();

  constructor(
    readonly model: Bert,
    readonly tokenizer: WordPieceTokenizer,
    readonly source: "input" | "contextual" = "input",
    opts: { maxWords?: number } = {},
  ) {
    const specials = new Set(tokenizer.specialTokens.keys());
    const words: string[] = [];
    for (const [token] of tokenizer.vocabEntries()) {
      if (specials.has(token) || token.startsWith(tokenizer.continuingSubwordPrefix) || !/\p{L}/u.test(token)) continue;
      words.push(token);
      if (opts.maxWords !== undefined && words.length >= opts.maxWords) break;
    }
    this.words = words;
    this.vectors = this.vectorsOf(words);
    words.forEach((w, i) => {
      this.index.set(w, i);
    });
  }

  /** Vectors (L2-normalised) of any words, in- or out-of-vocabulary. */
  vectorsOf(words: readonly string[]): Float32Array[] {
    const H = this.model.config.hidden_size;
    if (this.source === "input") {
      const E = this.model.bert.embeddings.word_embeddings.weight.contiguousData() as Float32Array;
      return words.map((w) => {
        const ids = this.tokenizer.encode(w, { disallowedSpecial: [] });
        if (ids.length === 0) throw new Error(`'${w}' has no tokens in this vocabulary`);
        const v = new Float32Array(H);
        for (const id of ids) for (let c = 0; c < H; c++) v[c] = (v[c] as number) + (E[id * H + c] as number) / ids.length;
        return l2normalize(v);
      });
    }
    const out: Float32Array[] = [];
    for (let i = 0; i < words.length; i += 64) {
      const chunk = words.slice(i, i + 64);
      const { ids, mask, T } = encodeBatch(this.tokenizer, chunk, 32);
      const h = inEvalMode(
        this.model,
        () => this.model.bert.forward({ inputIds: ids, attentionMask: mask }).lastHiddenState.contiguousData() as Float32Array,
      );
      const m = mask.contiguousData();
      chunk.forEach((_, b) => {
        const v = new Float32Array(H);
        let n = 0;
        // The word's pieces: every real token but [CLS] (first) and [SEP] (last).
        const len = (m as Int32Array).subarray(b * T, (b + 1) * T).reduce((a, x) => a + x, 0);
        for (let t = 1; t < len - 1; t++, n++) for (let c = 0; c < H; c++) v[c] = (v[c] as number) + (h[(b * T + t) * H + c] as number);
        out.push(l2normalize(n ? v.map((x) => x / n) : v));
      });
    }
    return out;
  }

  private rank(query: Float32Array, exclude: ReadonlySet<string>, k: number): Neighbour[] {
    const q = l2normalize(query);
    const scored: Neighbour[] = [];
    this.vectors.forEach((v, i) => {
      const word = this.words[i] as string;
      if (exclude.has(word)) return;
      let dot = 0;
      for (let c = 0; c < v.length; c++) dot += (v[c] as number) * (q[c] as number);
      scored.push({ word, score: dot });
    });
    return scored.sort((a, b) => b.score - a.score).slice(0, k);
  }

  private vector(word: string): Float32Array {
    const i = this.index.get(this.tokenizer.basic.tokenize(word).join(" ") || word);
    return i !== undefined ? (this.vectors[i] as Float32Array) : (this.vectorsOf([word])[0] as Float32Array);
  }

  /** The k words whose vectors are closest (cosine) to the word's. */
  nearest(word: string, k = 10): Neighbour[] {
    return this.rank(this.vector(word), new Set([word.toLowerCase(), word]), k);
  }

  /** a - b + c: "king" - "man" + "woman" should be near "queen" (the three inputs excluded). */
  analogy(a: string, b: string, c: string, k = 10): Neighbour[] {
    const [va, vb, vc] = [this.vector(a), this.vector(b), this.vector(c)];
    const q = va.map((x, i) => x - (vb[i] as number) + (vc[i] as number));
    return this.rank(q, new Set([a, b, c, a.toLowerCase(), b.toLowerCase(), c.toLowerCase()]), k);
  }

  similarity(a: string, b: string): number {
    return cosineSimilarity(this.vector(a), this.vector(b));
  }
}
