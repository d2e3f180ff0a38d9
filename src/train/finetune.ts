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
import { getEntities } from "../data/conll.js";
import { checkLabels, type DataProvenance, labelSet } from "../data/labeled.js";
import { qaFeatures } from "../data/squad.js";
import { DataError, textDigest } from "../data/text.js";
import { writeFileAtomic } from "../io/atomic.js";
import { bertModelFiles, loadBert, readBertTrainerState } from "../io/bert.js";
import { type Bert, checkBertTrainingMemory } from "../models/bert.js";
import { AdamW } from "../optim/adamw.js";
import { type EvalResult, evaluateTask, type FinetuneTask, type TaskData } from "../tasks/evaluate.js";
import { collate, type Feature, qaFeature, textFeature, tokenFeature } from "../tasks/features.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { type LoopHooks, runLoop } from "./loop.js";

export { type EvalResult, evaluateTask, type FinetuneTask, resolveTask, TASK_ALIASES, type TaskData } from "../tasks/evaluate.js";

import { EpochBatches } from "./batches.js";
import { RunDirectory } from "./run.js";

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
  const batches = new EpochBatches(features, o.batchSize, rng);
  if (saved) {
    modelRng.setState(saved.rng.model);
    rng.setState(saved.rng.batches);
    batches.restore(saved);
  }

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
      trainStep: () => batchLoss(model, batches.next(), padId, maxLength),
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
        ...batches.state(),
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
