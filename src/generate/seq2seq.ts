// Generation for encoder-decoder models (Marian), as Hugging Face's generate() does it (v4.31):
// the source is encoded once; the decoder starts from decoder_start_token_id and adds one token per
// step, reading its own past from a KV cache and the source through cross-attention keys and values
// computed once. Three searches:
//
//   greedy       the most likely next token (numBeams 1, doSample false)
//   sampling     from the warped distribution: temperature, top-k (HF's default 50), top-p
//   beam search  numBeams hypotheses kept by total log-probability; finished ones (ended by eos)
//                ranked by score / length^lengthPenalty; earlyStopping true stops when numBeams are
//                finished, false when no running beam can still beat the worst finished one (HF's
//                heuristic), "never" by the exact bound
//
// Logits processors in HF's order: repetition penalty, no-repeat n-gram, bad words, minimum length,
// forced eos at the last position. Beam search works on log-softmax scores and never picks the pad
// token (MarianMTModel.adjust_logits_during_generation). Returned sequences are HF's: the start
// token first, eos at the end when it fits, rows padded with pad_token_id to one length.

import type { MarianMTModel } from "../models/marian.js";
import { noGrad } from "../tensor/autograd.js";
import { MemoryArena } from "../tensor/memory.js";
import { index } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { sampleNext } from "./index.js";

export interface Seq2SeqGenerateOptions {
  /** Longest output, counting the decoder start token (HF's max_length); default config.max_length. */
  maxLength?: number;
  /** Instead of maxLength: at most this many tokens after the start token. */
  maxNewTokens?: number;
  /** eos is suppressed until the output (start token included) is this long. */
  minLength?: number;
  /** 1: greedy or sampling; more: beam search. Default config.num_beams. */
  numBeams?: number;
  /** Finished beams are ranked by logprob / length^lengthPenalty (> 1 favours longer ones). */
  lengthPenalty?: number;
  earlyStopping?: boolean | "never";
  /** No n-gram of this size occurs twice in an output. */
  noRepeatNgramSize?: number;
  repetitionPenalty?: number;
  /** Token sequences never generated (single tokens are suppressed; longer ones banned at their last token). */
  badWordsIds?: number[][] | null;
  doSample?: boolean;
  temperature?: number;
  /** Sampling only; default 50 as in HF. 0 keeps every token. */
  topK?: number;
  topP?: number;
  seed?: number;
  generator?: Generator;
}

interface Resolved {
  maxLength: number;
  minLength: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | "never";
  noRepeatNgramSize: number;
  repetitionPenalty: number;
  badWordsIds: number[][];
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  pad: number;
  eos: number;
  start: number;
  forcedEos: number | null;
}

function resolve(model: MarianMTModel, o: Seq2SeqGenerateOptions): Resolved {
  const c = model.config;
  const r: Resolved = {
    maxLength: o.maxNewTokens !== undefined ? o.maxNewTokens + 1 : (o.maxLength ?? c.max_length),
    minLength: o.minLength ?? 0,
    numBeams: o.numBeams ?? c.num_beams,
    lengthPenalty: o.lengthPenalty ?? 1,
    earlyStopping: o.earlyStopping ?? false,
    noRepeatNgramSize: o.noRepeatNgramSize ?? 0,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    badWordsIds: o.badWordsIds ?? c.bad_words_ids ?? [],
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 50,
    topP: o.topP ?? 1,
    pad: c.pad_token_id,
    eos: c.eos_token_id,
    start: c.decoder_start_token_id,
    forcedEos: c.forced_eos_token_id,
  };
  const bad = (msg: string): never => {
    throw new Error(`generate: ${msg}`);
  };
  if (!Number.isInteger(r.maxLength) || r.maxLength < 2)
    bad(`maxLength must be an integer >= 2 (got ${r.maxLength}); it counts the start token`);
  if (r.maxLength > c.max_position_embeddings)
    bad(`maxLength ${r.maxLength} exceeds the model's max_position_embeddings ${c.max_position_embeddings}`);
  if (!Number.isInteger(r.numBeams) || r.numBeams < 1) bad(`numBeams must be a positive integer (got ${r.numBeams})`);
  if (r.numBeams > 1 && r.doSample) bad("beam sampling is not supported; use numBeams 1 with doSample, or numBeams > 1 without");
  if (!Number.isInteger(r.noRepeatNgramSize) || r.noRepeatNgramSize < 0)
    bad(`noRepeatNgramSize must be a non-negative integer (got ${r.noRepeatNgramSize})`);
  if (!(r.repetitionPenalty > 0)) bad(`repetitionPenalty must be > 0 (got ${r.repetitionPenalty})`);
  if (!(r.temperature > 0)) bad(`temperature must be > 0 (got ${r.temperature}); for the most likely tokens use doSample false`);
  if (!(r.topP > 0 && r.topP <= 1)) bad(`topP must be in (0, 1] (got ${r.topP})`);
  if (!Number.isInteger(r.topK) || r.topK < 0) bad(`topK must be a non-negative integer (got ${r.topK})`);
  if (!Number.isFinite(r.lengthPenalty)) bad(`lengthPenalty must be a number (got ${r.lengthPenalty})`);
  return r;
}

/** HF's logits processors, in its order, on one row of scores (changed in place). */
function processRow(scores: Float32Array, ids: readonly number[], r: Resolved): void {
  const curLen = ids.length;
  if (r.repetitionPenalty !== 1) {
    for (const id of new Set(ids)) {
      const v = scores[id] as number;
      scores[id] = v < 0 ? v * r.repetitionPenalty : v / r.repetitionPenalty;
    }
  }
  const n = r.noRepeatNgramSize;
  if (n > 0 && curLen + 1 >= n) {
    // Ban every token that would complete an n-gram already in ids (fairseq's rule, as HF).
    const prefix = ids.slice(curLen + 1 - n).join(",");
    for (let i = 0; i + n <= curLen; i++) {
      if (ids.slice(i, i + n - 1).join(",") === prefix) scores[ids[i + n - 1] as number] = Number.NEGATIVE_INFINITY;
    }
  }
  for (const seq of r.badWordsIds) {
    const last = seq[seq.length - 1] as number;
    const head = seq.slice(0, -1);
    if (head.length <= curLen && head.every((t, i) => ids[curLen - head.length + i] === t)) scores[last] = Number.NEGATIVE_INFINITY;
  }
  if (curLen < r.minLength) scores[r.eos] = Number.NEGATIVE_INFINITY;
  if (r.forcedEos !== null && curLen === r.maxLength - 1) {
    scores.fill(Number.NEGATIVE_INFINITY);
    scores[r.forcedEos] = 0;
  }
}

/** log_softmax of one row in float32, as torch computes it. */
function logSoftmaxRow(x: Float32Array): Float32Array {
  let m = Number.NEGATIVE_INFINITY;
  for (const v of x) if (v > m) m = v;
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const lse = Math.log(s);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] as number) - m - lse;
  return out;
}

/** Encode the source and run `step` with next-token logits per row until it says stop. */
function decodeLoop(
  model: MarianMTModel,
  inputIds: Tensor,
  attentionMask: Tensor | null,
  rowsPerSource: number,
  maxLength: number,
  step: (logits: Float32Array[], curLen: number) => { tokens: number[]; rows: number[] | null; stop: boolean },
  start: number,
): void {
  const wasTraining = model.training;
  model.eval();
  const arena = new MemoryArena();
  try {
    noGrad(() => {
      const B = inputIds.shape[0] as number;
      let enc = model.encode(inputIds, attentionMask);
      let mask = attentionMask;
      if (rowsPerSource > 1) {
        // Each source row repeated for its beams (HF's _expand_inputs_for_generation).
        const rows = new Tensor(
          Int32Array.from({ length: B * rowsPerSource }, (_, i) => Math.floor(i / rowsPerSource)),
          [B * rowsPerSource],
        );
        enc = index(enc, rows);
        if (mask) mask = index(mask.float(), rows);
      }
      const cache = model.newCache(enc, mask, maxLength);
      let last = new Array<number>(B * rowsPerSource).fill(start);
      for (let curLen = 1; curLen < maxLength; curLen++) {
        const out = arena.run(() => {
          const ids = new Tensor(Int32Array.from(last), [last.length, 1]);
          const logits = model.decode(ids, enc, mask, { cache, lastOnly: true }).contiguousData() as Float32Array;
          const V = logits.length / last.length;
          const rows = last.map((_, r) => logits.slice(r * V, (r + 1) * V));
          const res = step(rows, curLen);
          if (res.rows) cache.reorder(res.rows);
          return res;
        });
        arena.reset();
        last = out.tokens;
        if (out.stop) break;
      }
    });
  } finally {
    model.train(wasTraining);
  }
}

/** Greedy decoding or sampling for each source row. */
function greedyOrSample(model: MarianMTModel, inputIds: Tensor, attentionMask: Tensor | null, r: Resolved, g: Generator): number[][] {
  const B = inputIds.shape[0] as number;
  const seqs = Array.from({ length: B }, () => [r.start]);
  const unfinished = new Array<boolean>(B).fill(true);
  decodeLoop(
    model,
    inputIds,
    attentionMask,
    1,
    r.maxLength,
    (rows) => {
      const tokens = rows.map((scores, b) => {
        const ids = seqs[b] as number[];
        processRow(scores, ids, r);
        let t: number;
        if (!r.doSample) t = argmax(scores);
        else t = sampleNext(scores, ids, { temperature: r.temperature, topK: r.topK, topP: r.topP }, g);
        if (!unfinished[b]) t = r.pad;
        ids.push(t);
        if (t === r.eos) unfinished[b] = false;
        return t;
      });
      return { tokens, rows: null, stop: !unfinished.some((u) => u) };
    },
    r.start,
  );
  return seqs;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

/** The finished hypotheses of one source (HF's BeamHypotheses). */
class BeamHypotheses {
  readonly beams: { score: number; ids: number[] }[] = [];
  worstScore = 1e9;
  constructor(
    readonly numBeams: number,
    readonly lengthPenalty: number,
    readonly earlyStopping: boolean | "never",
    readonly maxLength: number,
  ) {}
  add(ids: number[], sumLogprobs: number): void {
    const score = sumLogprobs / ids.length ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, ids });
      if (this.beams.length > this.numBeams) {
        const sorted = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice((sorted[0] as readonly [number, number])[1], 1);
        this.worstScore = (sorted[1] as readonly [number, number])[0];
      } else this.worstScore = Math.min(score, this.worstScore);
    }
  }
  isDone(bestSumLogprobs: number, curLen: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    const len = this.earlyStopping === "never" && this.lengthPenalty > 0 ? this.maxLength : curLen;
    return this.worstScore >= bestSumLogprobs / len ** this.lengthPenalty;
  }
}

/** Beam search (HF's beam_search with BeamSearchScorer). */
function beamSearch(model: MarianMTModel, inputIds: Tensor, attentionMask: Tensor | null, r: Resolved): number[][] {
  const B = inputIds.shape[0] as number;
  const K = r.numBeams;
  const hyps = Array.from({ length: B }, () => new BeamHypotheses(K, r.lengthPenalty, r.earlyStopping, r.maxLength));
  const done = new Array<boolean>(B).fill(false);
  let seqs = Array.from({ length: B * K }, () => [r.start]);
  // Only the first beam of each source is live at the start; the others would duplicate it.
  let beamScores = Float32Array.from({ length: B * K }, (_, i) => (i % K === 0 ? 0 : -1e9));
  decodeLoop(
    model,
    inputIds,
    attentionMask,
    K,
    r.maxLength,
    (rows) => {
      const V = (rows[0] as Float32Array).length;
      const nextScores = new Float32Array(B * K);
      const nextTokens = new Array<number>(B * K);
      const nextRows = new Array<number>(B * K);
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          for (let j = 0; j < K; j++) {
            nextScores[b * K + j] = 0;
            nextTokens[b * K + j] = r.pad;
            nextRows[b * K + j] = 0;
          }
          continue;
        }
        // Scores of every (beam, token) continuation; the best 2K of them.
        const cand: { s: number; beam: number; tok: number }[] = [];
        for (let j = 0; j < K; j++) {
          const row = b * K + j;
          const logits = rows[row] as Float32Array;
          logits[r.pad] = Number.NEGATIVE_INFINITY; // never predict pad
          const lp = logSoftmaxRow(logits);
          processRow(lp, seqs[row] as number[], r);
          const base = beamScores[row] as number;
          for (let t = 0; t < V; t++) {
            const s = Math.fround((lp[t] as number) + base);
            if (cand.length < 2 * K || s > (cand[cand.length - 1] as { s: number }).s) insertSorted(cand, { s, beam: j, tok: t }, 2 * K);
          }
        }
        let filled = 0;
        for (let rank = 0; rank < cand.length; rank++) {
          const { s, beam, tok } = cand[rank] as { s: number; beam: number; tok: number };
          const row = b * K + beam;
          if (tok === r.eos) {
            if (rank >= K) continue; // an eos below the top K does not finish a hypothesis
            (hyps[b] as BeamHypotheses).add([...(seqs[row] as number[])], s);
          } else {
            nextScores[b * K + filled] = s;
            nextTokens[b * K + filled] = tok;
            nextRows[b * K + filled] = row;
            filled++;
          }
          if (filled === K) break;
        }
        const curLen = (seqs[0] as number[]).length + 1;
        const best = Math.max(...cand.map((c) => c.s));
        done[b] = (hyps[b] as BeamHypotheses).isDone(best, curLen);
      }
      seqs = nextRows.map((row, i) => [...(seqs[row] as number[]), nextTokens[i] as number]);
      beamScores = nextScores;
      const stop = done.every((d) => d) || (seqs[0] as number[]).length >= r.maxLength;
      return { tokens: nextTokens, rows: nextRows, stop };
    },
    r.start,
  );
  // Sources still running at the end: their live beams compete with the finished ones.
  const out: number[][] = [];
  for (let b = 0; b < B; b++) {
    const h = hyps[b] as BeamHypotheses;
    if (!done[b]) for (let j = 0; j < K; j++) h.add(seqs[b * K + j] as number[], beamScores[b * K + j] as number);
    // Python's sorted() is stable and pop() takes the last: among equal scores the last added wins.
    const sorted = h.beams.map((x, i) => [x, i] as const).sort((p, q) => p[0].score - q[0].score || p[1] - q[1]);
    out.push([...(sorted[sorted.length - 1] as readonly [{ ids: number[] }, number])[0].ids]);
  }
  const maxLen = Math.min(Math.max(...out.map((s) => s.length)) + 1, r.maxLength);
  return out.map((s) => {
    const row = [...s];
    if (row.length < maxLen) row.push(r.eos);
    while (row.length < maxLen) row.push(r.pad);
    return row;
  });
}

/** Insert into a list sorted by descending score, keeping at most `cap` entries (earlier wins ties). */
function insertSorted<T extends { s: number }>(list: T[], item: T, cap: number): void {
  let i = list.length;
  while (i > 0 && (list[i - 1] as T).s < item.s) i--;
  list.splice(i, 0, item);
  if (list.length > cap) list.pop();
}

/**
 * Generate target ids for a batch of sources (B, S) (attentionMask (B, S) when padded), as HF's
 * generate: one row per source, start token first, padded with pad_token_id to one length.
 */
export function generateSeq2Seq(
  model: MarianMTModel,
  inputIds: Tensor,
  attentionMask: Tensor | null = null,
  opts: Seq2SeqGenerateOptions = {},
): number[][] {
  const r = resolve(model, opts);
  if (inputIds.ndim !== 2 || inputIds.shape[1] === 0)
    throw new Error(`generate: inputIds must be (B, S) with S >= 1, got [${inputIds.shape.join(", ")}]`);
  if (r.numBeams > 1) return beamSearch(model, inputIds, attentionMask, r);
  const seqs = greedyOrSample(model, inputIds, attentionMask, r, opts.generator ?? new Generator(opts.seed ?? 1));
  const maxLen = Math.max(...seqs.map((s) => s.length));
  return seqs.map((s) => [...s, ...new Array<number>(maxLen - s.length).fill(r.pad)]);
}

/** The generated tokens of one output row: without the start token, and cut at the first eos. */
export function generatedTokens(row: readonly number[], model: MarianMTModel): number[] {
  const { eos_token_id: eos } = model.config;
  const body = row.slice(1);
  const end = body.indexOf(eos);
  return end >= 0 ? body.slice(0, end) : body;
}

/** Generate text for each input text (translation, summarisation): encode with the model's
 *  tokenizer plus eos, batch, generate, and decode the tokens up to eos (special tokens left out). */
export function generateTexts(
  model: MarianMTModel,
  tokenizer: Tokenizer,
  texts: readonly string[],
  opts: Seq2SeqGenerateOptions & { batchSize?: number; maxSourceLength?: number } = {},
): string[] {
  const eos = model.config.eos_token_id;
  const pad = model.config.pad_token_id;
  const maxSrc = Math.min(opts.maxSourceLength ?? model.config.max_position_embeddings, model.config.max_position_embeddings);
  const specials = new Set(tokenizer.specialTokens.values());
  const bs = opts.batchSize ?? 16;
  const out: string[] = [];
  for (let i = 0; i < texts.length; i += bs) {
    const rows = texts.slice(i, i + bs).map((t) => [...tokenizer.encode(t, { disallowedSpecial: [] }).slice(0, maxSrc - 1), eos]);
    const S = Math.max(...rows.map((r) => r.length));
    const ids = new Int32Array(rows.length * S).fill(pad);
    const mask = new Int32Array(rows.length * S);
    rows.forEach((r, b) => {
      ids.set(r, b * S);
      mask.fill(1, b * S, b * S + r.length);
    });
    const seqs = generateSeq2Seq(model, new Tensor(ids, [rows.length, S]), new Tensor(mask, [rows.length, S]), opts);
    for (const s of seqs) out.push(tokenizer.decode(generatedTokens(s, model).filter((id) => !specials.has(id))).trim());
  }
  return out;
}
