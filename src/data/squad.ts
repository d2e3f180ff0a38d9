// Extractive question answering in the SQuAD v1.1 format (Rajpurkar et al. 2016): reading the
// JSON, turning examples into model windows with a document stride, turning the model's start and
// end logits back into answer text, and the official v1.1 evaluation (exact match and F1).
//
// The JSON: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
// "answers": [{"text", "answer_start"}]}]}]}]}. Every answer must lie in its context at
// answer_start (the text there must be the answer text), else reading fails naming the question.
//
// Windows (as Hugging Face's run_qa.py makes them): [CLS] question [SEP] context-window [SEP], the
// context cut into windows of what fits in maxLength with `docStride` tokens shared by consecutive
// windows. A window's training target is the answer's first and last token, or [CLS] (position 0)
// when the answer is not wholly inside it. Answers are read back by taking, over all windows of an
// example, the best start + end logit sum among spans inside the context, end >= start, at most
// maxAnswerLength tokens, and slicing the original context at those tokens' character offsets.

import { parseJSON } from "../io/files.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { DataError, readTextFile } from "./text.js";

export interface QaAnswer {
  text: string;
  /** Character offset of the answer in the context. */
  answerStart: number;
}

export interface QaExample {
  id: string;
  title?: string;
  question: string;
  context: string;
  answers: QaAnswer[];
}

const isRec = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Check that every answer lies in its context; `where` names the data in errors. */
export function checkAnswers(ex: QaExample, where: string): void {
  for (const a of ex.answers) {
    const end = a.answerStart + a.text.length;
    if (!Number.isInteger(a.answerStart) || a.answerStart < 0 || end > ex.context.length) {
      throw new DataError(
        `${where}: question '${ex.id}': the answer '${a.text}' at ${a.answerStart}..${end} is outside its context (${ex.context.length} characters)`,
      );
    }
    const found = ex.context.slice(a.answerStart, end);
    if (found !== a.text) {
      throw new DataError(`${where}: question '${ex.id}': the context at ${a.answerStart} reads '${found}', not the answer '${a.text}'`);
    }
  }
}

/** SQuAD v1.1 JSON (parsed) -> examples, each answer checked against its context. */
export function parseSquad(json: unknown, source = "squad"): QaExample[] {
  if (!isRec(json) || !Array.isArray(json.data)) throw new DataError(`${source}: expected SQuAD JSON: {"data": [{"paragraphs": [...]}]}`);
  const out: QaExample[] = [];
  json.data.forEach((article, ai) => {
    if (!isRec(article) || !Array.isArray(article.paragraphs)) throw new DataError(`${source}: data[${ai}] has no "paragraphs" list`);
    const title = typeof article.title === "string" ? article.title : undefined;
    article.paragraphs.forEach((p, pi) => {
      const at = `${source}: data[${ai}].paragraphs[${pi}]`;
      if (!isRec(p) || typeof p.context !== "string" || !Array.isArray(p.qas)) throw new DataError(`${at}: needs "context" and "qas"`);
      const context = p.context;
      p.qas.forEach((q, qi) => {
        if (!isRec(q) || typeof q.question !== "string") throw new DataError(`${at}.qas[${qi}]: needs a "question"`);
        const id = typeof q.id === "string" || typeof q.id === "number" ? String(q.id) : `${ai}-${pi}-${qi}`;
        if (!Array.isArray(q.answers)) throw new DataError(`${at}.qas[${qi}] ('${id}'): needs an "answers" list`);
        const answers = q.answers.map((a, k) => {
          if (!isRec(a) || typeof a.text !== "string" || typeof a.answer_start !== "number") {
            throw new DataError(`${at}.qas[${qi}] ('${id}'): answers[${k}] needs "text" and "answer_start"`);
          }
          return { text: a.text, answerStart: a.answer_start };
        });
        const ex: QaExample = { id, title, question: q.question, context, answers };
        checkAnswers(ex, source);
        out.push(ex);
      });
    });
  });
  return out;
}

export function readSquadFile(path: string): QaExample[] {
  let json: unknown;
  try {
    json = parseJSON(readTextFile(path), path, DataError);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`${path}: ${(e as Error).message}`);
  }
  const ex = parseSquad(json, path);
  if (ex.length === 0) throw new DataError(`${path}: no questions in the file`);
  return ex;
}

/** Examples back to SQuAD v1.1 JSON (one article per title). */
export function toSquadJson(examples: readonly QaExample[], version = "1.1"): object {
  const byTitle = new Map<string, Map<string, QaExample[]>>();
  for (const e of examples) {
    const t = e.title ?? "untitled";
    let paras = byTitle.get(t);
    if (!paras) {
      paras = new Map();
      byTitle.set(t, paras);
    }
    const list = paras.get(e.context);
    if (list) list.push(e);
    else paras.set(e.context, [e]);
  }
  return {
    version,
    data: [...byTitle].map(([title, paras]) => ({
      title,
      paragraphs: [...paras].map(([context, qs]) => ({
        context,
        qas: qs.map((q) => ({
          id: q.id,
          question: q.question,
          answers: q.answers.map((a) => ({ text: a.text, answer_start: a.answerStart })),
        })),
      })),
    })),
  };
}

// ---- the official v1.1 evaluation ---------------------------------------------------------------------

// Python's string.punctuation.
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** The v1.1 script's normalize_answer: lower-case, drop punctuation, drop a/an/the, collapse white space. */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  const noPunc = [...lower].filter((ch) => !PUNCTUATION.has(ch)).join("");
  // Python's \b is Unicode-aware: a word character is a letter, a digit or "_".
  const noArticles = noPunc.replace(/(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu, " ");
  return noArticles.split(/\s+/).filter(Boolean).join(" ");
}

export function exactMatch(prediction: string, truth: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(truth) ? 1 : 0;
}

/** Token-overlap F1 of the normalised answers (the v1.1 script's f1_score). */
export function answerF1(prediction: string, truth: string): number {
  const p = normalizeAnswer(prediction).split(" ").filter(Boolean);
  const t = normalizeAnswer(truth).split(" ").filter(Boolean);
  const counts = new Map<string, number>();
  for (const w of t) counts.set(w, (counts.get(w) ?? 0) + 1);
  let same = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      same++;
      counts.set(w, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / t.length;
  return (2 * precision * recall) / (precision + recall);
}

/** {exact_match, f1} in percent over the examples, each the best over its gold answers (v1.1's evaluate()).
 *  An example without a prediction scores 0, as in the script. */
export function squadEvaluate(
  examples: readonly QaExample[],
  predictions: ReadonlyMap<string, string> | Record<string, string>,
): { exact_match: number; f1: number } {
  const get = (id: string) => (predictions instanceof Map ? predictions.get(id) : (predictions as Record<string, string>)[id]);
  let em = 0;
  let f1 = 0;
  for (const ex of examples) {
    const pred = get(ex.id);
    if (pred === undefined) continue;
    const truths = ex.answers.map((a) => a.text);
    em += Math.max(0, ...truths.map((t) => exactMatch(pred, t)));
    f1 += Math.max(0, ...truths.map((t) => answerF1(pred, t)));
  }
  const n = examples.length || 1;
  return { exact_match: (100 * em) / n, f1: (100 * f1) / n };
}

// ---- windows and answers -------------------------------------------------------------------------------

export interface QaFeature {
  exampleIndex: number;
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
  /** Character offsets into the context for context tokens; null elsewhere. */
  offsets: ([number, number] | null)[];
  /** Training targets: the answer's first and last token, or 0 and 0 ([CLS]) when it is not in the window. */
  startPosition: number;
  endPosition: number;
}

export interface QaWindowOptions {
  /** Tokens per window, special tokens included (run_qa.py: 384). */
  maxLength: number;
  /** Tokens shared by consecutive windows of a long context (run_qa.py: 128). */
  docStride: number;
  /** Longer questions are cut to this many tokens (default 64). */
  maxQuestionLength?: number;
}

/** Model windows of each example (see the file comment). */
export function qaFeatures(tokenizer: WordPieceTokenizer, examples: readonly QaExample[], o: QaWindowOptions): QaFeature[] {
  const maxQ = o.maxQuestionLength ?? 64;
  const features: QaFeature[] = [];
  examples.forEach((ex, exampleIndex) => {
    // The question alone is cut first (at most maxQ tokens), so the context always gets room.
    let question = ex.question.trimStart();
    const q = tokenizer.encodeWithOffsets(question, { disallowedSpecial: [] });
    if (q.ids.length > maxQ) question = question.slice(0, (q.offsets[maxQ - 1] as [number, number])[1]);
    const qLen = Math.min(q.ids.length, maxQ);
    const room = o.maxLength - qLen - 3;
    if (room < 1) throw new DataError(`question '${ex.id}' leaves no room for the context in ${o.maxLength} tokens; raise the max length`);
    const enc = tokenizer.encodePair(question, ex.context, {
      maxLength: o.maxLength,
      truncation: "only_second",
      stride: Math.min(o.docStride, room - 1),
      returnOverflowing: true,
      padding: "max_length",
      disallowedSpecial: [],
    });
    const answer = ex.answers[0];
    for (const w of [enc, ...(enc.overflowing ?? [])]) {
      const offsets = w.offsets.map((off, i) => (w.sequenceIds[i] === 1 ? off : null));
      let startPosition = 0;
      let endPosition = 0;
      if (answer) {
        const a0 = answer.answerStart;
        const a1 = a0 + answer.text.length;
        const ctx = offsets.map((off, i) => (off ? i : -1)).filter((i) => i >= 0);
        const first = ctx[0];
        const last = ctx[ctx.length - 1];
        if (first !== undefined && last !== undefined) {
          const f = offsets[first] as [number, number];
          const l = offsets[last] as [number, number];
          if (f[0] <= a0 && l[1] >= a1) {
            let s = first;
            while (s <= last && (offsets[s] as [number, number])[1] <= a0) s++;
            let e = last;
            while (e >= first && (offsets[e] as [number, number])[0] >= a1) e--;
            if (s <= e) [startPosition, endPosition] = [s, e];
          }
        }
      }
      features.push({
        exampleIndex,
        inputIds: w.inputIds,
        tokenTypeIds: w.tokenTypeIds,
        attentionMask: w.attentionMask,
        offsets,
        startPosition,
        endPosition,
      });
    }
  });
  return features;
}

export interface QaPrediction {
  text: string;
  score: number;
  start: number;
  end: number;
}

/** The best answer span of one example over its windows' logits (see the file comment).
 *  `score` is the softmax probability of the span's start times its end within the best window. */
export function bestAnswer(
  context: string,
  windows: readonly { offsets: readonly ([number, number] | null)[]; start: ArrayLike<number>; end: ArrayLike<number> }[],
  o: { maxAnswerLength?: number; nBest?: number } = {},
): QaPrediction {
  const maxLen = o.maxAnswerLength ?? 30;
  const nBest = o.nBest ?? 20;
  let best: QaPrediction & { logit: number } = { text: "", score: 0, start: 0, end: 0, logit: Number.NEGATIVE_INFINITY };
  const top = (xs: ArrayLike<number>) =>
    Array.from({ length: xs.length }, (_, i) => i)
      .sort((a, b) => (xs[b] as number) - (xs[a] as number))
      .slice(0, nBest);
  const softmax = (xs: ArrayLike<number>, mask: readonly unknown[]) => {
    let m = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < xs.length; i++) if (mask[i]) m = Math.max(m, xs[i] as number);
    let z = 0;
    for (let i = 0; i < xs.length; i++) if (mask[i]) z += Math.exp((xs[i] as number) - m);
    return (i: number) => Math.exp((xs[i] as number) - m) / z;
  };
  for (const w of windows) {
    const ps = softmax(w.start, w.offsets);
    const pe = softmax(w.end, w.offsets);
    for (const s of top(w.start)) {
      for (const e of top(w.end)) {
        const os = w.offsets[s];
        const oe = w.offsets[e];
        if (!os || !oe || e < s || e - s + 1 > maxLen) continue;
        const logit = (w.start[s] as number) + (w.end[e] as number);
        if (logit > best.logit) best = { text: context.slice(os[0], oe[1]), score: ps(s) * pe(e), start: os[0], end: oe[1], logit };
      }
    }
  }
  const { logit: _l, ...pred } = best;
  return pred;
}
