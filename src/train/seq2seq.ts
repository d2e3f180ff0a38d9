// Training an encoder-decoder (Marian) on parallel text: translation (source and target sentences)
// or summarisation (documents and their summaries), on the shared training loop (loop.ts).
//
// A new run trains one joint byte-level BPE tokenizer on both sides (so source and target share
// one vocabulary and the embedding table, as Marian's shared-vocabulary models do), then a Marian
// model from scratch; `init` continues from an existing Marian directory instead. Each example is
// source ids + </s> -> target ids + </s>; each epoch is a seeded shuffle, cut into batches of pairs of
// similar length (pools of `bucket` batches sorted by length, the batches shuffled: fairseq's and
// Marian's batching, so a step is mostly tokens rather than padding), each padded to its longest row
// (rounded up to a multiple of 8, so the memory arena sees few shapes). The loss is label-smoothed cross-entropy
// (Szegedy et al. 2016; 0.1 as in Vaswani et al. 2017). Evaluation reports the held-out loss and,
// on the first evalSamples pairs, BLEU and chrF of greedy output as sacreBLEU computes them (plus
// ROUGE-L for summarisation). Checkpoints hold the model, optimizer and trainer state (with the data's
// digest and every random state), so `resume` continues exactly where a run stopped.

import { join } from "node:path";
import { DataError, textDigest } from "../data/text.js";
import { generateTexts } from "../generate/seq2seq.js";
import { writeFileAtomic } from "../io/atomic.js";
import { loadMarian, marianModelFiles } from "../io/marian.js";
import { corpusBleu } from "../metrics/bleu.js";
import { corpusChrf } from "../metrics/chrf.js";
import { corpusRougeL } from "../metrics/rouge.js";
import { IGNORE_INDEX, type MarianConfig, MarianMTModel } from "../models/marian.js";
import { AdamW } from "../optim/adamw.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { ByteLevelBPE } from "../tokenizers/bpe.js";
import type { MarianTokenizer } from "../tokenizers/marian.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type LoopHooks, type Metrics, runLoop } from "./loop.js";
import { RunDirectory, type SavedState } from "./run.js";

export const EOS_TOKEN = "</s>";
export const PAD_TOKEN = "<pad>";

export type Seq2SeqTask = "translation" | "summarization";

/** Parallel text: source[i] goes with target[i]. */
export interface ParallelData {
  source: string[];
  target: string[];
}

export interface Seq2SeqTrainOptions {
  out: string;
  train: ParallelData;
  valid?: ParallelData;
  task?: Seq2SeqTask;
  /** Notes saved in config.json (where the data came from, the languages). */
  notes?: Record<string, unknown>;
  /** Continue from this Marian directory (its tokenizer and weights) instead of a new model. */
  init?: string;
  /** Model shape for a new model (MarianConfig keys). */
  model?: Partial<MarianConfig>;
  vocabSize?: number;
  /** Longest source and target, in tokens (</s> included); longer ones are cut. */
  maxLength?: number;
  batchSize?: number;
  maxSteps?: number;
  learningRate?: number;
  warmupSteps?: number;
  weightDecay?: number;
  gradClip?: number;
  labelSmoothing?: number;
  seed?: number;
  evalInterval?: number;
  checkpointInterval?: number;
  /** Held-out pairs decoded for BLEU / chrF at each evaluation. */
  evalSamples?: number;
  /** Batches of pairs of similar length (pools of this many batches sorted by length, as fairseq
   *  and Marian batch), so little of a step is padding; 0 draws rows at random. */
  bucket?: number;
  resume?: boolean;
  overwrite?: boolean;
}

export const SEQ2SEQ_DEFAULTS = {
  task: "translation" as Seq2SeqTask,
  vocabSize: 8000,
  maxLength: 128,
  batchSize: 32,
  maxSteps: 2000,
  learningRate: 5e-4,
  warmupSteps: 200,
  weightDecay: 0.01,
  gradClip: 1,
  labelSmoothing: 0.1,
  seed: 42,
  evalSamples: 100,
  bucket: 100,
};

type Args = Omit<Required<Seq2SeqTrainOptions>, "train" | "valid" | "notes" | "init" | "model" | "resume" | "overwrite" | "out"> & {
  init: string | null;
};

const STATE_FORMAT = "moxing-seq2seq-state";

/** trainer_state.json's trainer part: with the data's digest and every random state, a resumed run
 *  continues with the batches, dropout masks and losses of an uninterrupted one. */
interface TrainerState extends SavedState {
  args: Args & Record<string, unknown>;
  data: { sha256: string; train: number; valid: number };
  rng: { model: ReturnType<Generator["getState"]>; batches: ReturnType<Generator["getState"]> };
  order: number[];
  cursor: number;
}

/** One training example as ids. */
export interface Example {
  src: number[];
  tgt: number[];
}

/** Source and target ids, each cut to maxLength - 1 tokens and ended by eos. */
export function encodePairs(tokenizer: Tokenizer, data: ParallelData, eos: number, maxLength: number): Example[] {
  if (data.source.length !== data.target.length) {
    throw new DataError(`the source has ${data.source.length} lines but the target has ${data.target.length}; they must be parallel`);
  }
  const cut = (ids: number[]) => [...ids.slice(0, maxLength - 1), eos];
  // A tokenizer with its own target side (Marian's SentencePiece pair) encodes targets with it.
  const target = (tokenizer as Partial<Pick<MarianTokenizer, "encodeTarget">>).encodeTarget?.bind(tokenizer);
  return data.source.map((s, i) => ({
    src: cut(tokenizer.encode(s, { disallowedSpecial: [] })),
    tgt: cut((target ?? tokenizer.encode.bind(tokenizer))(data.target[i] as string, { disallowedSpecial: [] })),
  }));
}

const round8 = (n: number) => Math.ceil(n / 8) * 8;

/** A padded batch: input ids and mask (B, S), labels (B, T) with -100 at padding. */
export function collatePairs(rows: readonly Example[], pad: number, maxLength: number) {
  const B = rows.length;
  const S = Math.min(round8(Math.max(...rows.map((r) => r.src.length))), maxLength);
  const T = Math.min(round8(Math.max(...rows.map((r) => r.tgt.length))), maxLength);
  const ids = new Int32Array(B * S).fill(pad);
  const mask = new Int32Array(B * S);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  let tokens = 0;
  rows.forEach((r, b) => {
    ids.set(r.src, b * S);
    mask.fill(1, b * S, b * S + r.src.length);
    labels.set(r.tgt, b * T);
    tokens += r.tgt.length;
  });
  return { inputIds: new Tensor(ids, [B, S]), attentionMask: new Tensor(mask, [B, S]), labels: new Tensor(labels, [B, T]), tokens };
}

/** One epoch's order of examples: a seeded permutation; with bucket > 0, pools of bucket batches of
 *  it are sorted by length and cut into batches, and the batches shuffled (a partial last batch
 *  stays last), so consecutive runs of batchSize indices are batches of similar lengths. */
export function epochOrder(examples: readonly Example[], batchSize: number, bucket: number, rng: Generator): number[] {
  const perm = shuffled(examples.length, rng);
  if (!(bucket > 0)) return perm;
  const len = (i: number) => {
    const e = examples[i] as Example;
    return Math.max(e.src.length, e.tgt.length);
  };
  const pool = bucket * batchSize;
  const batches: number[][] = [];
  for (let s = 0; s < perm.length; s += pool) {
    const chunk = perm.slice(s, s + pool).sort((a, b) => len(a) - len(b));
    for (let j = 0; j < chunk.length; j += batchSize) batches.push(chunk.slice(j, j + batchSize));
  }
  const last = (batches[batches.length - 1] as number[]).length < batchSize ? batches.pop() : undefined;
  const out = shuffled(batches.length, rng).flatMap((b) => batches[b] as number[]);
  return last ? [...out, ...last] : out;
}

/** Fisher-Yates permutation of 0..n-1. */
function shuffled(n: number, rng: Generator): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.randint(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

/** A new joint tokenizer for both sides of the data: byte-level BPE with </s> and <pad>. */
export function trainJointTokenizer(data: ParallelData, vocabSize: number): ByteLevelBPE {
  return ByteLevelBPE.train([...data.source, ...data.target], { vocabSize, specialTokens: [EOS_TOKEN, PAD_TOKEN] });
}

/** Held-out loss and the quality of greedy output on the first `samples` pairs. */
export function evaluateSeq2Seq(
  model: MarianMTModel,
  tokenizer: Tokenizer,
  data: ParallelData,
  o: { maxLength: number; batchSize: number; samples: number; task: Seq2SeqTask },
): Metrics {
  const { pad_token_id: pad, eos_token_id: eos } = model.config;
  const examples = encodePairs(tokenizer, data, eos, o.maxLength);
  let total = 0;
  let count = 0;
  for (let i = 0; i < examples.length; i += o.batchSize) {
    // Each batch's tensors go back to the arena before the next: memory is that of one batch.
    const [sum, n] = scoped(() => {
      const b = collatePairs(examples.slice(i, i + o.batchSize), pad, o.maxLength);
      return [(model.forward(b, { labelledOnly: true }).loss as Tensor).item() * b.tokens, b.tokens] as const;
    });
    total += sum;
    count += n;
  }
  const m: Metrics = { loss: total / Math.max(1, count) };
  const n = Math.min(o.samples, data.source.length);
  if (n > 0) {
    const hyps = generateTexts(model, tokenizer, data.source.slice(0, n), {
      numBeams: 1,
      maxLength: o.maxLength,
      maxSourceLength: o.maxLength,
    });
    const refs = data.target.slice(0, n);
    m.bleu = corpusBleu(hyps, [refs]).score;
    m.chrf = corpusChrf(hyps, [refs]).score;
    if (o.task === "summarization") m.rougeL = corpusRougeL(hyps, refs).fmeasure;
  }
  return m;
}

export interface Seq2SeqTrainResult {
  status: "completed" | "interrupted";
  step: number;
  trainLoss: number | null;
  eval: Metrics | null;
  model: MarianMTModel;
  tokenizer: Tokenizer;
}

/** Train (or continue training) an encoder-decoder on parallel text; see the file comment. */
export async function trainSeq2Seq(opts: Seq2SeqTrainOptions, hooks: LoopHooks = {}): Promise<Seq2SeqTrainResult> {
  const emit = hooks.onLog ?? (() => {});
  const run = RunDirectory.open({
    out: opts.out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: STATE_FORMAT,
    kind: "seq2seq training run",
  });
  const saved = run.saved as TrainerState | null;
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<Seq2SeqTrainOptions>;
  const o = {
    ...SEQ2SEQ_DEFAULTS,
    ...given,
    ...(saved ? { ...saved.args, bucket: saved.args.bucket ?? 0, maxSteps: opts.maxSteps ?? saved.args.maxSteps } : {}),
  } as typeof SEQ2SEQ_DEFAULTS & Seq2SeqTrainOptions;
  for (const [k, min] of [
    ["batchSize", 1],
    ["maxLength", 4],
    ["maxSteps", 0],
    ["vocabSize", 258],
  ] as const) {
    if (!Number.isInteger(o[k]) || o[k] < min) throw new Error(`train-seq2seq: ${k} must be an integer >= ${min} (got ${o[k]})`);
  }
  if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1))
    throw new Error(`train-seq2seq: labelSmoothing must be in [0, 1) (got ${o.labelSmoothing})`);
  if (o.train.source.length === 0) throw new DataError("train-seq2seq: the training data is empty");
  const digest = textDigest(JSON.stringify([o.train, o.valid ?? null]));
  run.checkData(digest, "the data", "--source/--target and --valid-source/--valid-target files");

  // ---- tokenizer and model
  const modelRng = new Generator(o.seed);
  let model: MarianMTModel;
  let tokenizer: Tokenizer;
  const from = saved ? o.out : (o.init ?? null);
  if (from) {
    const loaded = loadMarian(from, { generator: modelRng });
    if (!loaded.tokenizer) throw new Error(`'${from}' has no tokenizer.json; a model to continue from needs its tokenizer`);
    ({ model, tokenizer } = loaded);
  } else {
    emit({ type: "info", message: `training a joint byte-level BPE tokenizer (${o.vocabSize} tokens) on both sides` });
    tokenizer = trainJointTokenizer(o.train, o.vocabSize);
    const eos = tokenizer.specialTokens.get(EOS_TOKEN) as number;
    const pad = tokenizer.specialTokens.get(PAD_TOKEN) as number;
    model = new MarianMTModel(
      {
        ...o.model,
        vocab_size: tokenizer.vocabSize,
        decoder_vocab_size: tokenizer.vocabSize,
        max_position_embeddings: Math.max(o.maxLength, o.model?.max_position_embeddings ?? 0),
        max_length: o.maxLength,
        pad_token_id: pad,
        decoder_start_token_id: pad,
        eos_token_id: eos,
        forced_eos_token_id: eos,
        bad_words_ids: [[pad]],
      },
      { generator: modelRng },
    );
  }
  const { pad_token_id: pad, eos_token_id: eos } = model.config;
  const maxLength = Math.min(o.maxLength, model.config.max_position_embeddings);
  const examples = encodePairs(tokenizer, o.train, eos, maxLength);
  const stepsPerEpoch = Math.ceil(examples.length / o.batchSize);
  const evalInterval = o.evalInterval ?? Math.max(1, Math.min(stepsPerEpoch, 500));
  const checkpointInterval = o.checkpointInterval ?? evalInterval;
  const args: Args = {
    task: o.task,
    vocabSize: o.vocabSize,
    maxLength: o.maxLength,
    batchSize: o.batchSize,
    maxSteps: o.maxSteps,
    learningRate: o.learningRate,
    warmupSteps: o.warmupSteps,
    weightDecay: o.weightDecay,
    gradClip: o.gradClip,
    labelSmoothing: o.labelSmoothing,
    seed: o.seed,
    evalInterval,
    checkpointInterval,
    evalSamples: o.evalSamples,
    bucket: o.bucket,
    init: o.init ?? null,
  };

  // ---- batches: a fresh seeded permutation each epoch (length-bucketed unless bucket is 0)
  const rng = new Generator(o.seed + 1);
  let order: number[] = [];
  let cursor = 0;
  if (saved) {
    modelRng.setState(saved.rng.model);
    rng.setState(saved.rng.batches);
    order = [...saved.order];
    cursor = saved.cursor;
  }
  const nextBatch = (): Example[] => {
    const rows: Example[] = [];
    while (rows.length < o.batchSize) {
      if (cursor >= order.length) {
        if (rows.length) break;
        order = epochOrder(examples, o.batchSize, o.bucket, rng);
        cursor = 0;
      }
      rows.push(examples[order[cursor++] as number] as Example);
    }
    return rows;
  };

  const optimizer = new AdamW(model.optimGroups(o.weightDecay), { lr: o.learningRate, betas: [0.9, 0.98], eps: 1e-9 });
  const notes = { task: o.task, ...(o.notes ?? {}) };
  let lastEval: Metrics | null = null;
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: { lr: o.learningRate, minLr: o.learningRate / 10, warmupSteps: o.warmupSteps, decaySteps: o.maxSteps },
      maxSteps: o.maxSteps,
      gradClip: o.gradClip,
      title:
        `training a Marian encoder-decoder (${o.task}): ${(model.numParameters() / 1e6).toFixed(2)}M parameters, ` +
        `${examples.length} training pairs${o.valid ? `, ${o.valid.source.length} held out` : ""}, vocabulary ${tokenizer.vocabSize}; ${o.maxSteps} steps of ${o.batchSize}`,
      trainStep: () => {
        const b = collatePairs(nextBatch(), pad, maxLength);
        return { loss: model.forward(b, { labelSmoothing: o.labelSmoothing, labelledOnly: true }).loss as Tensor, tokens: b.tokens };
      },
      evaluate: o.valid
        ? () => {
            lastEval = evaluateSeq2Seq(model, tokenizer, o.valid as ParallelData, {
              maxLength,
              batchSize: o.batchSize,
              samples: o.evalSamples,
              task: o.task,
            });
            return lastEval;
          }
        : undefined,
      evalInterval,
      checkpointInterval,
      bestMetric: o.valid ? "loss" : undefined,
      modelFiles: () => marianModelFiles(model, tokenizer, notes),
      state: () => ({
        format: STATE_FORMAT,
        args,
        data: { sha256: digest, train: o.train.source.length, valid: o.valid?.source.length ?? 0 },
        rng: { model: modelRng.getState(), batches: rng.getState() },
        order,
        cursor,
      }),
    },
    hooks,
  );
  if (lastEval)
    writeFileAtomic(
      join(o.out, "eval_results.json"),
      `${JSON.stringify({ task: o.task, step: result.step, ...(lastEval as Metrics) }, null, 2)}\n`,
    );
  return { status: result.status, step: result.step, trainLoss: result.lastLoss, eval: lastEval, model, tokenizer };
}
