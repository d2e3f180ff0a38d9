// "Inside the model": what the studio draws, computed on the loaded model and the user's own text.
//
//   embeddings   words' vectors from the token-embedding table (a word of several tokens: the mean of
//                its tokens' rows) projected to 2-D by PCA or t-SNE, with cosine similarities and the
//                analogy king - man + woman (Mikolov et al. 2013)
//   positions    the positional encoding: the sinusoidal table, the learned position embeddings, or
//                RoPE's cos table, and the cosine similarity between positions
//   attention    every layer's and head's attention weights over the text's tokens
// The next-token distribution at each generated step is the public API's logprobs (top_logprobs).

import { ropeTables, sinusoidalTable } from "../nn/positional.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { invalidRequest } from "./errors.js";
import type { ServedModel } from "./models.js";

/** The seed's examples: cat and dog close, hamburger far; king - man + woman near queen. */
export const SEED_WORDS = [
  "猫",
  "狗",
  "汉堡",
  "king",
  "queen",
  "man",
  "woman",
  "cat",
  "dog",
  "hamburger",
  "apple",
  "paris",
  "france",
  "london",
  "england",
];
const ANALOGIES: [string, string, string, string][] = [
  ["king", "man", "woman", "queen"],
  ["paris", "france", "england", "london"],
];
const PAIRS: [string, string][] = [
  ["猫", "狗"],
  ["猫", "汉堡"],
  ["狗", "汉堡"],
  ["cat", "dog"],
  ["cat", "hamburger"],
];

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The token-embedding table (V, C). */
function embeddingTable(m: ServedModel): Tensor {
  return m.kind === "gpt" ? m.model.transformer.wte.weight : m.model.bert.embeddings.word_embeddings.weight;
}

/** A word's token ids, or null when the vocabulary cannot spell it (unknown characters, [UNK]). */
function wordIds(m: ServedModel, word: string): number[] | null {
  try {
    if (m.tokenizer instanceof WordPieceTokenizer) {
      const ids = m.tokenizer.encode(word, { disallowedSpecial: [] });
      const unk = m.tokenizer.tokenToId(m.tokenizer.unkToken);
      return ids.length && !ids.includes(unk as number) ? ids : null;
    }
    const ids = m.tokenizer.encode(word);
    return ids.length ? ids : null;
  } catch {
    return null;
  }
}

function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

export interface EmbeddingView {
  method: "pca" | "tsne";
  words: string[];
  /** Tokens each word became (so a user sees when a word is several tokens). */
  tokens: string[][];
  points: [number, number][];
  missing: string[];
  similarities: { a: string; b: string; cosine: number }[];
  analogies: { a: string; b: string; c: string; expected: string; nearest: { word: string; cosine: number }[] }[];
}

export function embeddingView(m: ServedModel, words: readonly string[] | undefined, method: "pca" | "tsne"): EmbeddingView {
  const asked = [...new Set((words?.length ? words : SEED_WORDS).map((w) => w.trim()).filter(Boolean))];
  if (asked.length > 300) throw invalidRequest(`words: ${asked.length} words; at most 300`, "words");
  const table = embeddingTable(m);
  const [V, C] = table.shape as [number, number];
  const data = table.contiguousData() as Float32Array;
  const kept: string[] = [];
  const tokens: string[][] = [];
  const vectors: Float64Array[] = [];
  const missing: string[] = [];
  for (const w of asked) {
    const ids = wordIds(m, w);
    if (!ids || ids.some((id) => id >= V)) {
      missing.push(w);
      continue;
    }
    const v = new Float64Array(C);
    for (const id of ids) for (let c = 0; c < C; c++) v[c] = (v[c] as number) + (data[id * C + c] as number) / ids.length;
    kept.push(w);
    tokens.push(
      m.tokenizer instanceof WordPieceTokenizer ? m.tokenizer.convertIdsToTokens(ids) : ids.map((id) => m.tokenizer.decode([id])),
    );
    vectors.push(v);
  }
  if (kept.length < 3) {
    throw invalidRequest(
      `words: only ${kept.length} of the words are in this model's vocabulary (${missing.slice(0, 5).join(", ")} are not); give at least 3 it can spell`,
      "words",
    );
  }
  const points = method === "pca" ? pca2(vectors) : tsne2(vectors, new Generator(0));
  const vec = new Map(kept.map((w, i) => [w, vectors[i] as Float64Array]));
  const similarities = PAIRS.filter(([a, b]) => vec.has(a) && vec.has(b)).map(([a, b]) => ({
    a,
    b,
    cosine: round(cosine(vec.get(a) as Float64Array, vec.get(b) as Float64Array)),
  }));
  const analogies = ANALOGIES.filter((q) => q.every((w) => vec.has(w))).map(([a, b, c, expected]) => {
    const [va, vb, vc] = [a, b, c].map((w) => vec.get(w) as Float64Array) as [Float64Array, Float64Array, Float64Array];
    const target = va.map((x, i) => x - (vb[i] as number) + (vc[i] as number));
    const nearest = kept
      .filter((w) => w !== a && w !== b && w !== c)
      .map((w) => ({ word: w, cosine: round(cosine(target, vec.get(w) as Float64Array)) }))
      .sort((x, y) => y.cosine - x.cosine)
      .slice(0, 5);
    return { a, b, c, expected, nearest };
  });
  return { method, words: kept, tokens, points: points.map(([x, y]) => [round(x), round(y)]), missing, similarities, analogies };
}

/** The top two principal components' coordinates of the rows of X (through the n x n Gram matrix). */
export function pca2(X: readonly Float64Array[]): [number, number][] {
  const n = X.length;
  const d = X[0]?.length ?? 0;
  const mean = new Float64Array(d);
  for (const x of X) for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[j] as number) / n;
  const Z = X.map((x) => x.map((v, j) => v - (mean[j] as number)));
  const G = Array.from({ length: n }, (_, i) =>
    Float64Array.from({ length: n }, (_, k) => dot(Z[i] as Float64Array, Z[k] as Float64Array)),
  );
  const comps: Float64Array[] = [];
  const vals: number[] = [];
  for (let c = 0; c < 2; c++) {
    // Power iteration, deflating the components found before.
    let v = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1 + c));
    let lambda = 0;
    for (let it = 0; it < 300; it++) {
      const w = new Float64Array(n);
      for (let i = 0; i < n; i++) w[i] = dot(G[i] as Float64Array, v);
      comps.forEach((u, k) => {
        const p = dot(u, v) * (vals[k] as number);
        for (let i = 0; i < n; i++) w[i] = (w[i] as number) - p * (u[i] as number);
      });
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      lambda = norm;
      v = w.map((x) => x / norm);
    }
    comps.push(v);
    vals.push(lambda);
  }
  return Array.from({ length: n }, (_, i) => [
    ((comps[0] as Float64Array)[i] as number) * Math.sqrt(vals[0] as number),
    ((comps[1] as Float64Array)[i] as number) * Math.sqrt(vals[1] as number),
  ]);
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

/**
 * Exact t-SNE (van der Maaten & Hinton 2008) to 2-D for a few hundred points: Gaussian affinities
 * at a set perplexity, Student-t similarities in the map, gradient descent with momentum and early
 * exaggeration, started from the PCA coordinates (deterministic, and it keeps the global layout).
 */
export function tsne2(X: readonly Float64Array[], g: Generator, iterations = 500): [number, number][] {
  const n = X.length;
  const perplexity = Math.max(1, Math.min(30, (n - 1) / 3));
  const D = X.map((a) => X.map((b) => a.reduce((s, v, j) => s + (v - (b[j] as number)) ** 2, 0)));
  const P = Array.from({ length: n }, () => new Float64Array(n));
  const target = Math.log(perplexity);
  for (let i = 0; i < n; i++) {
    // Binary search for the precision beta that gives row i the wanted entropy.
    let [lo, hi, beta] = [0, Number.POSITIVE_INFINITY, 1];
    const Di = D[i] as number[];
    const row = P[i] as Float64Array;
    for (let it = 0; it < 60; it++) {
      let sum = 0;
      let h = 0;
      for (let j = 0; j < n; j++) {
        const p = j === i ? 0 : Math.exp(-(Di[j] as number) * beta);
        row[j] = p;
        sum += p;
      }
      sum ||= 1e-12;
      for (let j = 0; j < n; j++) {
        row[j] = (row[j] as number) / sum;
        h += (Di[j] as number) * beta * (row[j] as number);
      }
      h += Math.log(sum);
      if (Math.abs(h - target) < 1e-5) break;
      if (h > target) {
        lo = beta;
        beta = hi === Number.POSITIVE_INFINITY ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (beta + lo) / 2;
      }
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const p = Math.max(((P[i] as Float64Array)[j] as number) + ((P[j] as Float64Array)[i] as number), 1e-12) / (2 * n);
      (P[i] as Float64Array)[j] = p;
      (P[j] as Float64Array)[i] = p;
    }
  }
  // Start from PCA, scaled to a small spread; a little noise breaks ties between equal points.
  const init = pca2(X);
  const sd = Math.sqrt(init.reduce((s, [x]) => s + x * x, 0) / n) || 1;
  const Y = init.map(([x, y]) => [(x / sd) * 1e-2 + g.random() * 1e-4, (y / sd) * 1e-2 + g.random() * 1e-4]);
  const vel = Y.map(() => [0, 0]);
  const lr = Math.max(n / 12, 50);
  for (let it = 0; it < iterations; it++) {
    const exaggeration = it < 100 ? 12 : 1;
    const momentum = it < 250 ? 0.5 : 0.8;
    const num = Array.from({ length: n }, () => new Float64Array(n));
    let z = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = (Y[i] as number[])[0]! - (Y[j] as number[])[0]!;
        const dy = (Y[i] as number[])[1]! - (Y[j] as number[])[1]!;
        const q = 1 / (1 + dx * dx + dy * dy);
        (num[i] as Float64Array)[j] = q;
        (num[j] as Float64Array)[i] = q;
        z += 2 * q;
      }
    }
    for (let i = 0; i < n; i++) {
      let gx = 0;
      let gy = 0;
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const q = (num[i] as Float64Array)[j] as number;
        const f = (exaggeration * ((P[i] as Float64Array)[j] as number) - q / z) * q;
        gx += 4 * f * ((Y[i] as number[])[0]! - (Y[j] as number[])[0]!);
        gy += 4 * f * ((Y[i] as number[])[1]! - (Y[j] as number[])[1]!);
      }
      const v = vel[i] as number[];
      v[0] = momentum * v[0]! - lr * gx;
      v[1] = momentum * v[1]! - lr * gy;
    }
    for (let i = 0; i < n; i++) {
      (Y[i] as number[])[0]! += (vel[i] as number[])[0]!;
      (Y[i] as number[])[1]! += (vel[i] as number[])[1]!;
    }
  }
  return Y.map(([x, y]) => [x as number, y as number]);
}

export interface PositionView {
  kind: "learned" | "sinusoidal" | "rope";
  /** (positions, dims) values, at most 128 x 128 (evenly subsampled dims beyond that). */
  table: number[][];
  dims: number[];
  /** Cosine similarity between the positions' vectors. */
  similarity: number[][];
}

export function positionView(m: ServedModel): PositionView {
  let kind: PositionView["kind"];
  let t: Tensor;
  if (m.kind === "bert") {
    kind = "learned";
    t = m.model.bert.embeddings.position_embeddings.weight;
  } else {
    const c = m.model.config;
    kind = c.pos_encoding;
    if (kind === "learned") t = (m.model.transformer.wpe as { weight: Tensor }).weight;
    else if (kind === "sinusoidal") t = sinusoidalTable(c.block_size, c.n_embd);
    else t = ropeTables(c.block_size, c.n_embd / c.n_head).cos;
  }
  const [T, C] = t.shape as [number, number];
  const d = t.contiguousData() as Float32Array;
  const P = Math.min(T, 128);
  const dims = C <= 128 ? Array.from({ length: C }, (_, i) => i) : Array.from({ length: 128 }, (_, i) => Math.floor((i * C) / 128));
  const rows = Array.from({ length: P }, (_, p) => Float64Array.from(d.subarray(p * C, (p + 1) * C)));
  return {
    kind,
    dims,
    table: rows.map((r) => dims.map((j) => round(r[j] as number))),
    similarity: rows.map((a) => rows.map((b) => round(cosine(a, b)))),
  };
}

export interface AttentionView {
  tokens: string[];
  /** weights[layer][head][query][key] */
  weights: number[][][][];
}

/** The attention weights of every layer and head over the text (at most the model's context). */
export function attentionView(m: ServedModel, text: string): AttentionView {
  if (text.length === 0) throw invalidRequest("text is empty", "text");
  let ids: number[];
  try {
    ids =
      m.tokenizer instanceof WordPieceTokenizer
        ? m.tokenizer.encodePair(text, null, { disallowedSpecial: [] }).inputIds
        : m.tokenizer.encode(text);
  } catch (e) {
    throw invalidRequest(`text cannot be encoded by this model's tokenizer: ${(e as Error).message}`, "text");
  }
  const max = m.kind === "gpt" ? m.model.config.block_size : m.model.config.max_position_embeddings;
  if (ids.length > 64 || ids.length > max)
    throw invalidRequest(`text is ${ids.length} tokens; the attention view takes at most ${Math.min(64, max)}`, "text");
  if (ids.length === 0) throw invalidRequest("text has no tokens", "text");
  const attns =
    m.kind === "gpt" ? m.model.transformer.h.items.map((b) => b.attn) : [...m.model.bert.encoder.layer].map((l) => l.attention.self);
  const was = m.model.training;
  m.model.eval();
  try {
    for (const a of attns) a.storeAttention = true;
    noGrad(() => {
      const x = tensor([ids], { dtype: "int32" });
      if (m.kind === "gpt") m.model.hiddenStates(x);
      else m.model.bert.forward({ inputIds: x });
    });
    const T = ids.length;
    const weights = attns.map((a) => {
      const w = (a.attentionWeights as Tensor).contiguousData() as Float32Array; // (1, nh, T, T)
      const nh = w.length / (T * T);
      return Array.from({ length: nh }, (_, h) =>
        Array.from({ length: T }, (_, q) => Array.from({ length: T }, (_, k) => round(w[(h * T + q) * T + k] as number))),
      );
    });
    // WordPiece shows its pieces as written ("[CLS]", "##ing"); decoding would drop or join them.
    const tokens =
      m.tokenizer instanceof WordPieceTokenizer ? m.tokenizer.convertIdsToTokens(ids) : ids.map((id) => m.tokenizer.decode([id]));
    return { tokens, weights };
  } finally {
    for (const a of attns) {
      a.storeAttention = false;
      a.attentionWeights = null;
    }
    m.model.train(was);
  }
}
