// Fine-tuning a pretrained BERT for a task, and evaluating it, as Hugging Face's run_glue.py,
// run_ner.py and run_qa.py do:
//
//   text-classification   [CLS] text [SEP] -> pooler -> classifier; accuracy and macro F1
//   token-classification  words split into WordPiece pieces, each word labelled on its first piece
//                         (the others -100); entity-level precision / recall / F1 as seqeval computes
//                         them, predictions written back as CoNLL
//   question-answering    [CLS] question [SEP] context window [SEP] with a document stride; start and
//                         end logits; exact match and F1 as the official SQuAD v1.1 script computes them
//
// The model directory's encoder is loaded and the task's head starts fresh (or continues, when the
// directory already holds a model of the task with the same labels). Training is the shared loop
// (loop.ts): AdamW with no decay on biases and LayerNorms, linear warmup (10% of the steps by default)
// then cosine decay, clipping at 1.0, shuffled batches each epoch; evaluation after every epoch.
// The result is a model directory whose config.json names the labels and where the data came from.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { getEntities, type SeqevalReport, seqevalScores, type TaggedSentence } from "../data/conll.js";
import { checkLabels, type DataProvenance, type LabeledText, labelSet } from "../data/labeled.js";
import { bestAnswer, type QaExample, type QaFeature, qaFeatures, squadEvaluate } from "../data/squad.js";
import { DataError, textDigest } from "../data/text.js";
import { writeFileAtomic } from "../io/atomic.js";
import { bertModelFiles, loadBert, readBertTrainerState } from "../io/bert.js";
import { type Bert, checkBertTrainingMemory } from "../models/bert.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { type LoopHooks, type Metrics, runLoop } from "./loop.js";
import { IGNORE_INDEX } from "./mlm.js";
import { RunDirectory } from "./run.js";

export type FinetuneTask = "text-classification" | "token-classification" | "question-answering";

/** Task names the CLI and pipelines accept, and what they mean. */
export const TASK_ALIASES: Record<string, FinetuneTask> = {
  "text-classification": "text-classification",
  "sentiment-analysis": "text-classification",
  "token-classification": "token-classification",
  ner: "token-classification",
  "question-answering": "question-answering",
  qa: "question-answering",
};

export function resolveTask(name: string): FinetuneTask {
  const t = Object.hasOwn(TASK_ALIASES, name) ? TASK_ALIASES[name] : undefined;
  if (!t) throw new Error(`unknown task '${name}'; choose one of ${Object.keys(TASK_ALIASES).join(", ")}`);
  return t;
}

export type TaskData =
  | { task: "text-classification"; examples: LabeledText[] }
  | { task: "token-classification"; examples: TaggedSentence[] }
  | { task: "question-answering"; examples: QaExample[] };

// ---- features and batches --------------------------------------------------------------------------

/** One model input row with its targets. */
export interface Feature {
  inputIds: number[];
  tokenTypeIds: number[];
  /** text: the class id; tokens: a label per position (-100 ignored); QA: [start, end]. */
  target: number | number[];
}

/** Round a length up to a multiple of 8: batches then come in few shapes, which the memory arena reuses. */
const bucket = (n: number, max: number) => Math.min(max, Math.ceil(n / 8) * 8);

export function collate(rows: readonly Feature[], padId: number, maxLength: number) {
  const B = rows.length;
  const T = bucket(Math.max(...rows.map((r) => r.inputIds.length)), Math.max(maxLength, ...rows.map((r) => r.inputIds.length)));
  const ids = new Int32Array(B * T).fill(padId);
  const types = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  const tokenLabels = new Int32Array(B * T).fill(IGNORE_INDEX);
  rows.forEach((r, b) => {
    ids.set(r.inputIds, b * T);
    types.set(r.tokenTypeIds, b * T);
    mask.fill(1, b * T, b * T + r.inputIds.length);
    if (Array.isArray(r.target) && r.target.length === r.inputIds.length) tokenLabels.set(r.target, b * T);
  });
  return {
    inputs: { inputIds: new Tensor(ids, [B, T]), tokenTypeIds: new Tensor(types, [B, T]), attentionMask: new Tensor(mask, [B, T]) },
    tokenLabels: new Tensor(tokenLabels, [B, T]),
    T,
    tokens: B * T,
  };
}

/** The WordPiece ids of each word (a word with no pieces, e.g. a control character, becomes [UNK]). */
export function wordPieces(tokenizer: WordPieceTokenizer, words: readonly string[]): number[][] {
  const unk = tokenizer.tokenToId(tokenizer.unkToken) as number;
  return words.map((w) => {
    const ids = tokenizer.encode(w, { disallowedSpecial: [] });
    return ids.length ? ids : [unk];
  });
}

/** [CLS] pieces [SEP] cut to maxLength, with each word's first-piece position (-1 for words cut off). */
export function tokenFeature(
  tokenizer: WordPieceTokenizer,
  words: readonly string[],
  maxLength: number,
  wordLabels?: readonly number[],
): { feature: Feature; firstPiece: number[] } {
  const cls = tokenizer.tokenToId(tokenizer.clsToken) as number;
  const sep = tokenizer.tokenToId(tokenizer.sepToken) as number;
  const ids = [cls];
  const labels = [IGNORE_INDEX];
  const firstPiece: number[] = [];
  wordPieces(tokenizer, words).forEach((pieces, w) => {
    if (ids.length + pieces.length > maxLength - 1) {
      firstPiece.push(-1);
      return;
    }
    firstPiece.push(ids.length);
    pieces.forEach((id, k) => {
      ids.push(id);
      labels.push(k === 0 && wordLabels ? (wordLabels[w] as number) : IGNORE_INDEX);
    });
  });
  ids.push(sep);
  labels.push(IGNORE_INDEX);
  return { feature: { inputIds: ids, tokenTypeIds: ids.map(() => 0), target: labels }, firstPiece };
}

export function textFeature(tokenizer: WordPieceTokenizer, text: string, maxLength: number, label = -1): Feature {
  const e = tokenizer.encodePair(text, null, { maxLength, disallowedSpecial: [] });
  return { inputIds: e.inputIds, tokenTypeIds: e.tokenTypeIds, target: label };
}

function qaFeature(f: QaFeature): Feature {
  // Padding is redone per batch: keep the real tokens only.
  const n = f.attentionMask.reduce((a, b) => a + b, 0);
  return { inputIds: f.inputIds.slice(0, n), tokenTypeIds: f.tokenTypeIds.slice(0, n), target: [f.startPosition, f.endPosition] };
}

/** The model's loss on a batch of features. */
export function batchLoss(model: Bert, rows: readonly Feature[], padId: number, maxLength: number): { loss: Tensor; tokens: number } {
  const b = collate(rows, padId, maxLength);
  const int = (xs: number[]) => new Tensor(Int32Array.from(xs), [xs.length]);
  let out: ReturnType<Bert["forward"]>;
  if (model.task === "text-classification") out = model.forward(b.inputs, { labels: int(rows.map((r) => r.target as number)) });
  else if (model.task === "token-classification") out = model.forward(b.inputs, { labels: b.tokenLabels });
  else {
    const t = rows.map((r) => r.target as number[]);
    out = model.forward(b.inputs, { startPositions: int(t.map((x) => x[0] as number)), endPositions: int(t.map((x) => x[1] as number)) });
  }
  return { loss: out.loss as Tensor, tokens: b.tokens };
}

// ---- prediction -------------------------------------------------------------------------------------

/** Softmax rows of a (N, C) array. */
function softmaxRows(x: Float32Array, C: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c] as number);
    let z = 0;
    for (let c = 0; c < C; c++) z += Math.exp((x[r * C + c] as number) - m);
    for (let c = 0; c < C; c++) out[r * C + c] = Math.exp((x[r * C + c] as number) - m) / z;
  }
  return out;
}

/** Class probabilities (N, labels) of texts, in batches, without gradients. */
export function classifyTexts(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  texts: readonly string[],
  o: { maxLength?: number; batchSize?: number } = {},
): Float32Array[] {
  const maxLength = o.maxLength ?? Math.min(512, model.config.max_position_embeddings);
  const bs = o.batchSize ?? 32;
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const out: Float32Array[] = [];
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < texts.length; i += bs) {
      scoped(() => {
        const rows = texts.slice(i, i + bs).map((t) => textFeature(tokenizer, t, maxLength));
        const logits = model.forward(collate(rows, padId, maxLength).inputs).logits.contiguousData() as Float32Array;
        const p = softmaxRows(logits, model.numLabels);
        rows.forEach((_, r) => {
          out.push(p.slice(r * model.numLabels, (r + 1) * model.numLabels));
        });
      });
    }
  });
  return out;
}

/** Per-word label ids and probabilities of tagged or untagged sentences (word = first piece's prediction;
 *  words cut off by maxLength get label -1). */
export function tagWords(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  sentences: readonly (readonly string[])[],
  o: { maxLength?: number; batchSize?: number } = {},
): { labels: number[]; scores: number[] }[] {
  const maxLength = o.maxLength ?? Math.min(512, model.config.max_position_embeddings);
  const bs = o.batchSize ?? 32;
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const L = model.numLabels;
  const out: { labels: number[]; scores: number[] }[] = [];
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < sentences.length; i += bs) {
      scoped(() => {
        const enc = sentences.slice(i, i + bs).map((words) => tokenFeature(tokenizer, words, maxLength));
        const b = collate(
          enc.map((e) => e.feature),
          padId,
          maxLength,
        );
        const p = softmaxRows(model.forward(b.inputs).logits.contiguousData() as Float32Array, L);
        enc.forEach((e, r) => {
          const labels: number[] = [];
          const scores: number[] = [];
          for (const pos of e.firstPiece) {
            if (pos < 0) {
              labels.push(-1);
              scores.push(0);
              continue;
            }
            const base = (r * b.T + pos) * L;
            let best = 0;
            for (let c = 1; c < L; c++) if ((p[base + c] as number) > (p[base + best] as number)) best = c;
            labels.push(best);
            scores.push(p[base + best] as number);
          }
          out.push({ labels, scores });
        });
      });
    }
  });
  return out;
}

/** Answers to QA examples: the best span over each example's windows. */
export function answerQuestions(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  examples: readonly QaExample[],
  o: { maxLength?: number; docStride?: number; maxAnswerLength?: number; batchSize?: number } = {},
): { text: string; score: number; start: number; end: number }[] {
  const maxLength = o.maxLength ?? Math.min(384, model.config.max_position_embeddings);
  const feats = qaFeatures(tokenizer, examples, { maxLength, docStride: o.docStride ?? 128 });
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const bs = o.batchSize ?? 16;
  const windows: { offsets: ([number, number] | null)[]; start: Float32Array; end: Float32Array }[][] = examples.map(() => []);
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < feats.length; i += bs) {
      scoped(() => {
        const chunk = feats.slice(i, i + bs);
        const b = collate(chunk.map(qaFeature), padId, maxLength);
        const logits = model.forward(b.inputs).logits.contiguousData() as Float32Array; // (B, T, 2)
        chunk.forEach((f, r) => {
          const n = f.attentionMask.reduce((a, c) => a + c, 0);
          const start = new Float32Array(n);
          const end = new Float32Array(n);
          for (let t = 0; t < n; t++) {
            start[t] = logits[(r * b.T + t) * 2] as number;
            end[t] = logits[(r * b.T + t) * 2 + 1] as number;
          }
          windows[f.exampleIndex]?.push({ offsets: f.offsets.slice(0, n), start, end });
        });
      });
    }
  });
  return examples.map((ex, i) => bestAnswer(ex.context, windows[i] ?? [], { maxAnswerLength: o.maxAnswerLength }));
}

// ---- evaluation ------------------------------------------------------------------------------------

export interface EvalResult {
  metrics: Metrics;
  /** Per-class / per-entity-type detail. */
  detail?: unknown;
  /** NER: predicted tags per sentence; QA: answer per question id; classification: predicted labels. */
  predictions: string[][] | Record<string, string> | string[];
}

/** Accuracy and macro-averaged F1 over the labels. */
export function classificationMetrics(
  gold: readonly string[],
  pred: readonly string[],
  labels: readonly string[],
): { accuracy: number; macro_f1: number; perClass: Record<string, { precision: number; recall: number; f1: number; support: number }> } {
  let correct = 0;
  gold.forEach((g, i) => {
    if (g === pred[i]) correct++;
  });
  const perClass: Record<string, { precision: number; recall: number; f1: number; support: number }> = {};
  let sumF1 = 0;
  for (const l of labels) {
    let tp = 0;
    let np = 0;
    let nt = 0;
    gold.forEach((g, i) => {
      if (pred[i] === l) np++;
      if (g === l) nt++;
      if (g === l && pred[i] === l) tp++;
    });
    const precision = np ? tp / np : 0;
    const recall = nt ? tp / nt : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[l] = { precision, recall, f1, support: nt };
    sumF1 += f1;
  }
  return { accuracy: gold.length ? correct / gold.length : 0, macro_f1: labels.length ? sumF1 / labels.length : 0, perClass };
}

/** Evaluate a fine-tuned model on labelled data of its task. */
export function evaluateTask(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  data: TaskData,
  labels: readonly string[] | null,
  o: { maxLength?: number; docStride?: number; maxAnswerLength?: number } = {},
): EvalResult {
  if (data.task === "text-classification") {
    const ls = labels as readonly string[];
    const probs = classifyTexts(
      model,
      tokenizer,
      data.examples.map((e) => e.text),
      o,
    );
    const pred = probs.map((p) => ls[p.indexOf(Math.max(...p))] as string);
    const m = classificationMetrics(
      data.examples.map((e) => e.label),
      pred,
      ls,
    );
    return {
      metrics: { accuracy: m.accuracy, macro_f1: m.macro_f1, examples: data.examples.length },
      detail: m.perClass,
      predictions: pred,
    };
  }
  if (data.task === "token-classification") {
    const ls = labels as readonly string[];
    const tagged = tagWords(
      model,
      tokenizer,
      data.examples.map((s) => s.tokens),
      o,
    );
    const pred = tagged.map((t) => t.labels.map((l) => (l < 0 ? "O" : (ls[l] as string))));
    const r: SeqevalReport = seqevalScores(
      data.examples.map((s) => s.tags),
      pred,
    );
    return {
      metrics: { precision: r.precision, recall: r.recall, f1: r.f1, accuracy: r.accuracy, entities: r.support },
      detail: r.perType,
      predictions: pred,
    };
  }
  const answers = answerQuestions(model, tokenizer, data.examples, o);
  const byId: Record<string, string> = {};
  data.examples.forEach((e, i) => {
    byId[e.id] = answers[i]?.text ?? "";
  });
  const s = squadEvaluate(data.examples, byId);
  return { metrics: { exact_match: s.exact_match, f1: s.f1, questions: data.examples.length }, predictions: byId };
}

// ---- fine-tuning ---------------------------------------------------------------------------------------

export interface FinetuneOptions {
  task: FinetuneTask;
  /** A BERT model directory (pretrained, e.g. by pretrainMlm). */
  model: string;
  out: string;
  train: TaskData;
  eval?: TaskData;
  provenance?: { train?: DataProvenance; eval?: DataProvenance };
  epochs?: number;
  /** Overrides epochs. */
  maxSteps?: number;
  batchSize?: number;
  learningRate?: number;
  /** Fraction of the steps for linear warmup (default 0.1). */
  warmupRatio?: number;
  weightDecay?: number;
  gradClip?: number;
  maxLength?: number;
  docStride?: number;
  maxAnswerLength?: number;
  seed?: number;
  /** Evaluate every N steps (default: every epoch, and at the end). */
  evalInterval?: number;
  /** Save a resumable checkpoint (model, optimizer, trainer state) every N steps (default: evalInterval). */
  checkpointInterval?: number;
  /** Continue the run saved in `out` exactly where it stopped; the data must be the same. maxSteps
   *  or epochs may grow; the other settings come from the checkpoint. */
  resume?: boolean;
  /** Start over even if `out` holds a fine-tuning run. */
  overwrite?: boolean;
}

/** The settings a fine-tuning run is defined by, saved in its checkpoints. */
interface FinetuneArgs {
  task: FinetuneTask;
  model: string;
  maxSteps: number;
  batchSize: number;
  learningRate: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  maxLength: number;
  docStride: number;
  maxAnswerLength: number;
  seed: number;
  evalInterval: number;
  checkpointInterval: number;
}

/** trainer_state.json of a fine-tuning checkpoint: with the data's digest and every random state,
 *  a resumed run continues with exactly the batches, dropout masks and losses of an uninterrupted one. */
const STATE_FORMAT = "moxing-bert-finetune-state";

interface FinetuneState {
  format: typeof STATE_FORMAT;
  step: number;
  args: FinetuneArgs;
  data: { sha256: string; train: number; eval: number };
  rng: { model: ReturnType<Generator["getState"]>; batches: ReturnType<Generator["getState"]> };
  /** The current epoch's order of the training features and how far into it the run is. */
  order: number[];
  cursor: number;
}

/** The fine-tuning checkpoint saved in `dir`, or null when it holds none. */
function readState(dir: string): FinetuneState | null {
  const raw = existsSync(dir) ? readBertTrainerState(dir) : null;
  return raw?.format === STATE_FORMAT ? (raw as unknown as FinetuneState) : null;
}

/** The task and source model of the fine-tuning run saved in `dir`, or null when it holds none
 *  (the CLI needs the task to read the data files of a resumed run). */
export function readFinetuneCheckpoint(dir: string): { task: FinetuneTask; model: string; step: number } | null {
  const st = readState(dir);
  return st && { task: st.args.task, model: st.args.model, step: st.step };
}

function dataDigest(train: TaskData, evalData: TaskData | undefined): string {
  return textDigest(JSON.stringify([train.examples, evalData?.examples ?? null]));
}

export const FINETUNE_DEFAULTS = {
  epochs: 3,
  batchSize: 16,
  learningRate: 1e-4,
  warmupRatio: 0.1,
  weightDecay: 0.01,
  gradClip: 1,
  maxLength: 128,
  docStride: 64,
  maxAnswerLength: 30,
  seed: 42,
} as const;

export interface FinetuneResult {
  status: "completed" | "interrupted";
  step: number;
  trainLoss: number | null;
  eval: EvalResult | null;
  labels: string[] | null;
  model: Bert;
  tokenizer: WordPieceTokenizer;
  out: string;
}

/** Fine-tune the model in `opts.model` on `opts.train` and save it to `opts.out`; see the file comment. */
export async function finetune(opts: FinetuneOptions, hooks: LoopHooks = {}): Promise<FinetuneResult> {
  const run = RunDirectory.open({
    out: opts.out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: STATE_FORMAT,
    kind: "fine-tuning run",
  });
  const saved = run.saved as FinetuneState | null;
  if (saved && saved.args.task !== opts.task)
    throw new Error(`the run in '${opts.out}' fine-tunes for ${saved.args.task}, not ${opts.task}`);
  // A resumed run keeps its settings; only its length (maxSteps, or epochs) may change.
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<FinetuneOptions>;
  const o = (
    saved
      ? {
          ...FINETUNE_DEFAULTS,
          ...given,
          ...saved.args,
          maxSteps: opts.maxSteps ?? (opts.epochs !== undefined ? undefined : saved.args.maxSteps),
        }
      : { ...FINETUNE_DEFAULTS, ...given }
  ) as typeof FINETUNE_DEFAULTS & FinetuneOptions;
  const emit = hooks.onLog ?? (() => {});
  const task = o.task;
  if (o.train.task !== task || (o.eval && o.eval.task !== task))
    throw new Error(`finetune: the data is for ${o.train.task}, the task is ${task}`);
  if (o.train.examples.length === 0) throw new DataError("finetune: the training data is empty");
  for (const [k, min] of [
    ["batchSize", 1],
    ["epochs", 1],
    ["maxLength", 8],
  ] as const) {
    if (!Number.isInteger(o[k]) || o[k] < min) throw new Error(`finetune: ${k} must be an integer >= ${min} (got ${o[k]})`);
  }

  // ---- labels
  let labels: string[] | null = null;
  if (o.train.task === "text-classification") labels = labelSet(o.train.examples);
  else if (o.train.task === "token-classification") {
    const tags = new Set(o.train.examples.flatMap((s) => s.tags));
    // The O tag first, then each type's B- and I- tags, so ids read naturally.
    const types = [...new Set(getEntities(o.train.examples.map((s) => s.tags)).map((e) => e[0]))].sort();
    labels = ["O", ...types.flatMap((t) => [`B-${t}`, `I-${t}`])];
    for (const t of tags) if (!labels.includes(t)) labels.push(t);
  }
  const seed = o.seed;
  const digest = dataDigest(o.train, o.eval);
  run.checkData(digest, "the data", "--train/--eval or --dataset");
  const modelRng = new Generator(seed);
  const loaded = loadBert(saved ? o.out : o.model, { task, numLabels: labels?.length ?? 2, generator: modelRng });
  const { model, tokenizer } = loaded;
  checkBertTrainingMemory(model.config, { batch_size: o.batchSize, seq_len: o.maxLength }, (f) =>
    f === "batch_size" ? "--batch-size" : f === "seq_len" ? "--max-length" : f,
  );
  if (loaded.info.task === task && loaded.info.labels && labels && loaded.info.labels.join("\u0000") !== labels.join("\u0000")) {
    throw new DataError(
      `the model in '${o.model}' was fine-tuned with the labels ${loaded.info.labels.join(", ")}, but the training data has ${labels.join(", ")}`,
    );
  }
  if (loaded.report.initialised.length && !saved) {
    emit({ type: "info", message: `new ${task} head (initialised: ${loaded.report.initialised.join(", ")}) on the encoder of ${o.model}` });
  }
  if (o.eval && labels) {
    if (o.eval.task === "text-classification") checkLabels(o.eval.examples, labels, "the evaluation data");
    else if (o.eval.task === "token-classification") {
      checkLabels(
        o.eval.examples.flatMap((s) => s.tags.map((label) => ({ label }))),
        labels,
        "the evaluation data (tags)",
      );
    }
  }
  const maxLength = Math.min(o.maxLength, model.config.max_position_embeddings);
  const labelId = new Map((labels ?? []).map((l, i) => [l, i]));

  // ---- features
  let features: Feature[];
  if (o.train.task === "text-classification") {
    features = o.train.examples.map((e) => textFeature(tokenizer, e.text, maxLength, labelId.get(e.label) as number));
  } else if (o.train.task === "token-classification") {
    features = o.train.examples.map(
      (s) =>
        tokenFeature(
          tokenizer,
          s.tokens,
          maxLength,
          s.tags.map((t) => labelId.get(t) as number),
        ).feature,
    );
  } else {
    features = qaFeatures(tokenizer, o.train.examples, { maxLength, docStride: o.docStride }).map(qaFeature);
  }
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const stepsPerEpoch = Math.ceil(features.length / o.batchSize);
  const maxSteps = o.maxSteps ?? o.epochs * stepsPerEpoch;
  const warmupSteps = saved?.args.warmupSteps ?? Math.floor(maxSteps * o.warmupRatio);
  const evalInterval = o.evalInterval ?? stepsPerEpoch;
  const checkpointInterval = o.checkpointInterval ?? evalInterval;
  for (const [k, v] of [
    ["evalInterval", evalInterval],
    ["checkpointInterval", checkpointInterval],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`finetune: ${k} must be an integer >= 1 (got ${v})`);
  }
  const args: FinetuneArgs = {
    task,
    model: o.model,
    maxSteps,
    batchSize: o.batchSize,
    learningRate: o.learningRate,
    warmupSteps,
    weightDecay: o.weightDecay,
    gradClip: o.gradClip,
    maxLength: o.maxLength,
    docStride: o.docStride,
    maxAnswerLength: o.maxAnswerLength,
    seed,
    evalInterval,
    checkpointInterval,
  };

  // Batches: each epoch a fresh seeded permutation of the features.
  const rng = new Generator(seed + 1);
  let order: number[] = [];
  let cursor = 0;
  if (saved) {
    modelRng.setState(saved.rng.model);
    rng.setState(saved.rng.batches);
    order = [...saved.order];
    cursor = saved.cursor;
  }
  const nextBatch = (): Feature[] => {
    const rows: Feature[] = [];
    while (rows.length < o.batchSize) {
      if (cursor >= order.length) {
        if (rows.length) break; // the last batch of an epoch may be short
        order = features.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.randint(i + 1);
          [order[i], order[j]] = [order[j] as number, order[i] as number];
        }
        cursor = 0;
      }
      rows.push(features[order[cursor++] as number] as Feature);
    }
    return rows;
  };

  const provenance = {
    train: o.provenance?.train ?? { name: "user data", kind: "unknown" },
    eval: o.eval ? (o.provenance?.eval ?? o.provenance?.train ?? { name: "user data", kind: "unknown" }) : null,
  };
  const notes = { finetuned_from: o.model, data: provenance };
  const evalOpts = { maxLength, docStride: o.docStride, maxAnswerLength: o.maxAnswerLength };
  let lastEval: EvalResult | null = null;
  const optimizer = new AdamW(model.optimGroups(o.weightDecay), { lr: o.learningRate, betas: [0.9, 0.999], eps: 1e-8 });
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: { lr: o.learningRate, minLr: o.learningRate / 10, warmupSteps, decaySteps: maxSteps },
      maxSteps,
      gradClip: o.gradClip,
      evalInterval,
      checkpointInterval,
      title:
        `fine-tuning ${o.model} for ${task}: ${(model.paramCount().total / 1e6).toFixed(2)}M parameters, ${o.train.examples.length} training examples ` +
        `(${features.length} inputs${labels ? `, ${labels.length} labels` : ""}, data: ${provenance.train.name}, ${provenance.train.kind})` +
        (o.eval ? `, ${o.eval.examples.length} evaluation examples` : "") +
        `; ${maxSteps} steps of ${o.batchSize}`,
      trainStep: () => batchLoss(model, nextBatch(), padId, maxLength),
      evaluate: o.eval
        ? () => {
            lastEval = evaluateTask(model, tokenizer, o.eval as TaskData, labels, evalOpts);
            return lastEval.metrics;
          }
        : undefined,
      metricsExtra: { data: provenance.train.kind },
      modelFiles: () => bertModelFiles(model, tokenizer, { labels, notes }),
      state: () => ({
        format: STATE_FORMAT,
        args,
        data: { sha256: digest, train: o.train.examples.length, eval: o.eval?.examples.length ?? 0 },
        rng: { model: modelRng.getState(), batches: rng.getState() },
        order,
        cursor,
      }),
    },
    hooks,
  );
  const ev = lastEval as EvalResult | null;
  if (ev) {
    writeFileAtomic(
      join(o.out, "eval_results.json"),
      `${JSON.stringify({ task, step: result.step, data: provenance.eval, ...ev.metrics, detail: ev.detail ?? null }, null, 2)}\n`,
    );
  }
  return { status: result.status, step: result.step, trainLoss: result.lastLoss, eval: ev, labels, model, tokenizer, out: o.out };
}
