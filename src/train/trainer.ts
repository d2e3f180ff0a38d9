// Training a GPT on a text: nanoGPT's loop in moxing.
//
//   for each step: lr from the schedule (linear warmup, cosine decay to lr/10), grad_accum
//   micro-batches of forward + backward, clip the global gradient norm, AdamW step; every
//   eval_interval steps, the mean loss of eval_iters batches of each split (eval mode, no grad);
//   every checkpoint_interval steps and at the end, a checkpoint.
//
// The output directory is a model directory (see src/io/checkpoint.ts) plus metrics.jsonl, one JSON
// object per step. Resuming restores everything a step depends on - weights, AdamW moments and step,
// the step counter, and the three RNG streams (training batches, evaluation batches, dropout) - so a
// run interrupted at any point (even by SIGKILL) and resumed logs exactly the losses an uninterrupted
// run would.
//
// This is a library API; `moxing train` is a thin CLI over it.

import { appendFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BatchSampler, checkBlockSize, encodeText, readTextFile, splitTokens, textDigest } from "../data/text.js";
import { writeFileAtomic } from "../io/atomic.js";
import {
  CheckpointError,
  loadOptimizerState,
  loadWeights,
  OPTIMIZER_FILE,
  readConfig,
  readTokenizer,
  readTrainerState,
  recoverCheckpoint,
  saveCheckpoint,
  TRAINER_STATE_FILE,
} from "../io/checkpoint.js";
import { makeOutputDir } from "../io/files.js";
import { checkGPTTrainingMemory, GPT, type GPTConfig, type PositionalEncoding } from "../models/gpt.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { getBackend } from "../tensor/backend.js";
import { MemoryArena } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { ByteLevelBPE, CharTokenizer, type Tokenizer } from "../tokenizers/index.js";
import { clipGradNorm, forwardBackward } from "./grad.js";
import { getLr } from "./schedule.js";

export const METRICS_FILE = "metrics.jsonl";

/** Every setting of a run, resolved. Saved in trainer_state.json. */
export interface TrainArgs {
  /** Path of the training text, or null when the text was given in memory. */
  data: string | null;
  tokenizer: "char" | "bpe";
  /** Vocabulary size for a BPE tokenizer (ignored for char). */
  vocabSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  dropout: number;
  bias: boolean;
  tieWeights: boolean;
  posEncoding: PositionalEncoding;
  batchSize: number;
  gradAccum: number;
  maxSteps: number;
  learningRate: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Maximum global gradient norm; 0 disables clipping. */
  gradClip: number;
  evalInterval: number;
  evalIters: number;
  checkpointInterval: number;
  seed: number;
}

export interface TrainOptions extends Partial<TrainArgs> {
  /** Output directory: the model directory, metrics.jsonl and the checkpoint. */
  out: string;
  /** The training text itself, instead of reading `data` (used by `moxing start`). */
  text?: string;
  /** Continue the run in `out` from its checkpoint. */
  resume?: boolean;
  /** Start afresh even if `out` holds a run (its checkpoint and metrics are replaced). */
  overwrite?: boolean;
}

/** Defaults: nanoGPT's shakespeare-char recipe, scaled down. minLr, warmupSteps and
 *  checkpointInterval default to lr/10, min(100, maxSteps/10) and evalInterval. */
export const TRAIN_DEFAULTS = {
  tokenizer: "char",
  vocabSize: 512,
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  blockSize: 64,
  dropout: 0,
  bias: true,
  tieWeights: true,
  posEncoding: "learned",
  batchSize: 12,
  gradAccum: 1,
  maxSteps: 2000,
  learningRate: 1e-3,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradClip: 1,
  evalInterval: 250,
  evalIters: 20,
  seed: 1337,
} as const satisfies Partial<TrainArgs>;

/** Settings a resumed run may change; every other one must match the checkpoint. */
const RESUMABLE_OVERRIDES = new Set<keyof TrainArgs>(["maxSteps", "evalInterval", "evalIters", "checkpointInterval"]);

/** CLI spelling of each setting, for error messages. */
export function flagName(key: keyof TrainArgs): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export interface StepLog {
  step: number;
  train_loss: number;
  val_loss?: number;
  eval_train_loss?: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  ms_per_step: number;
}

export type TrainEvent =
  | {
      type: "start";
      step: number;
      maxSteps: number;
      resumed: boolean;
      args: TrainArgs;
      config: GPTConfig;
      params: number;
      trainTokens: number;
      valTokens: number;
      dataLabel: string;
      backend: string;
      out: string;
    }
  | ({ type: "step"; maxSteps: number } & StepLog)
  | { type: "eval"; step: number; trainLoss: number; valLoss: number; best: boolean }
  | { type: "checkpoint"; step: number; dir: string; ms: number; reason: "interval" | "end" | "interrupt" };

export interface TrainHooks {
  onLog?(event: TrainEvent): void;
  /** Abort to stop after the current step; a checkpoint is saved and the result says "interrupted". */
  signal?: AbortSignal;
}

export interface TrainResult {
  status: "completed" | "interrupted";
  step: number;
  trainLoss: number | null;
  valLoss: number | null;
  bestValLoss: number | null;
  out: string;
  model: GPT;
  tokenizer: Tokenizer;
}

type GenState = ReturnType<Generator["getState"]>;

/** trainer_state.json. */
export interface TrainerState {
  format: "moxing-trainer-state";
  version: 1;
  step: number;
  best_val_loss: number | null;
  last_train_loss: number | null;
  last_val_loss: number | null;
  tokens_seen: number;
  elapsed_ms: number;
  rng: { model: GenState };
  sampler: { train: GenState; eval: GenState };
  data: { source: string | null; sha256: string; tokens: number; train_tokens: number; val_tokens: number };
  args: TrainArgs;
}

function parseTrainerState(json: unknown, path: string): TrainerState {
  const bad = (what: string): never => {
    throw new CheckpointError(`${path}: ${what}; the checkpoint is damaged or from another program`);
  };
  const rec = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!rec(json) || json.format !== "moxing-trainer-state") return bad('not a moxing trainer state (format is not "moxing-trainer-state")');
  if (json.version !== 1) bad(`unsupported version ${JSON.stringify(json.version)}`);
  if (!Number.isInteger(json.step) || (json.step as number) < 0) bad("step is missing or invalid");
  const gen = (v: unknown, name: string) => {
    if (!rec(v) || !Array.isArray(v.s) || v.s.length !== 4 || !v.s.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) {
      bad(`RNG state '${name}' is missing or invalid`);
    }
  };
  if (!rec(json.rng) || !rec(json.sampler)) return bad("RNG states are missing");
  gen(json.rng.model, "rng.model");
  gen(json.sampler.train, "sampler.train");
  gen(json.sampler.eval, "sampler.eval");
  if (!rec(json.data) || typeof json.data.sha256 !== "string") bad("data fingerprint is missing");
  if (!rec(json.args)) bad("training arguments are missing");
  const args = json.args as Record<string, unknown>;
  for (const k of Object.keys(TRAIN_DEFAULTS)) if (args[k] === undefined) bad(`training argument '${k}' is missing`);
  return json as unknown as TrainerState;
}

function resolveArgs(opts: TrainOptions): TrainArgs {
  const pick = <K extends keyof TrainArgs>(k: K, fallback: TrainArgs[K]): TrainArgs[K] =>
    opts[k] !== undefined ? (opts[k] as TrainArgs[K]) : fallback;
  const maxSteps = pick("maxSteps", TRAIN_DEFAULTS.maxSteps);
  const learningRate = pick("learningRate", TRAIN_DEFAULTS.learningRate);
  const evalInterval = pick("evalInterval", TRAIN_DEFAULTS.evalInterval);
  return {
    data: opts.data ?? null,
    tokenizer: pick("tokenizer", TRAIN_DEFAULTS.tokenizer),
    vocabSize: pick("vocabSize", TRAIN_DEFAULTS.vocabSize),
    nLayer: pick("nLayer", TRAIN_DEFAULTS.nLayer),
    nHead: pick("nHead", TRAIN_DEFAULTS.nHead),
    nEmbd: pick("nEmbd", TRAIN_DEFAULTS.nEmbd),
    blockSize: pick("blockSize", TRAIN_DEFAULTS.blockSize),
    dropout: pick("dropout", TRAIN_DEFAULTS.dropout),
    bias: pick("bias", TRAIN_DEFAULTS.bias),
    tieWeights: pick("tieWeights", TRAIN_DEFAULTS.tieWeights),
    posEncoding: pick("posEncoding", TRAIN_DEFAULTS.posEncoding),
    batchSize: pick("batchSize", TRAIN_DEFAULTS.batchSize),
    gradAccum: pick("gradAccum", TRAIN_DEFAULTS.gradAccum),
    maxSteps,
    learningRate,
    minLr: pick("minLr", learningRate / 10),
    warmupSteps: pick("warmupSteps", Math.min(100, Math.floor(maxSteps / 10))),
    weightDecay: pick("weightDecay", TRAIN_DEFAULTS.weightDecay),
    beta1: pick("beta1", TRAIN_DEFAULTS.beta1),
    beta2: pick("beta2", TRAIN_DEFAULTS.beta2),
    gradClip: pick("gradClip", TRAIN_DEFAULTS.gradClip),
    evalInterval,
    evalIters: pick("evalIters", TRAIN_DEFAULTS.evalIters),
    checkpointInterval: pick("checkpointInterval", evalInterval),
    seed: pick("seed", TRAIN_DEFAULTS.seed),
  };
}

function checkArgs(a: TrainArgs): void {
  const int = (k: keyof TrainArgs, min: number) => {
    const v = a[k] as number;
    if (!Number.isInteger(v) || v < min) throw new Error(`${flagName(k)} must be an integer >= ${min} (got ${v})`);
  };
  int("nLayer", 1);
  int("nHead", 1);
  int("nEmbd", 1);
  int("blockSize", 1);
  int("batchSize", 1);
  int("gradAccum", 1);
  int("maxSteps", 0);
  int("warmupSteps", 0);
  int("evalInterval", 1);
  int("evalIters", 1);
  int("checkpointInterval", 1);
  int("seed", 0);
  if (a.tokenizer !== "char" && a.tokenizer !== "bpe") throw new Error(`--tokenizer must be char or bpe (got ${a.tokenizer})`);
  if (a.tokenizer === "bpe") int("vocabSize", 257);
  for (const k of ["learningRate", "minLr", "weightDecay", "gradClip"] as const) {
    if (!(a[k] >= 0) || !Number.isFinite(a[k])) throw new Error(`${flagName(k)} must be a number >= 0 (got ${a[k]})`);
  }
  if (!(a.dropout >= 0 && a.dropout < 1)) throw new Error(`--dropout must be in [0, 1) (got ${a.dropout})`);
  if (a.nEmbd % a.nHead !== 0) throw new Error(`--n-embd (${a.nEmbd}) must be divisible by --n-head (${a.nHead})`);
}

/** Merge the options of a resumed run with its saved arguments. */
function resumeArgs(opts: TrainOptions, saved: TrainArgs, statePath: string): TrainArgs {
  const merged: TrainArgs = { ...saved };
  for (const key of Object.keys(saved) as (keyof TrainArgs)[]) {
    const given = opts[key];
    if (given === undefined || key === "data") continue;
    if (RESUMABLE_OVERRIDES.has(key)) (merged as unknown as Record<string, unknown>)[key] = given;
    else if (given !== saved[key]) {
      throw new Error(
        `${flagName(key)} ${given} differs from the run being resumed (${saved[key]}, in ${statePath}); drop the flag to resume`,
      );
    }
  }
  if (opts.data !== undefined) merged.data = opts.data;
  return merged;
}

function metricsLines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
}

/** Keep the metrics of steps up to `step` (a killed run may have logged steps after its checkpoint). */
function truncateMetrics(path: string, step: number): void {
  const keep = metricsLines(path).filter((line) => {
    try {
      const o = JSON.parse(line) as { step?: unknown };
      return typeof o.step === "number" && o.step <= step;
    } catch {
      return false; // a line cut short by the kill
    }
  });
  writeFileAtomic(path, keep.map((l) => `${l}\n`).join(""));
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** Train a GPT; see the file comment. Resolves when training ends or is interrupted via hooks.signal. */
export async function train(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const out = opts.out;
  const emit = hooks.onLog ?? (() => {});
  if (existsSync(out)) recoverCheckpoint(out);
  const statePath = join(out, TRAINER_STATE_FILE);
  const metricsPath = join(out, METRICS_FILE);

  // ---- settings and saved state
  let saved: TrainerState | null = null;
  let args: TrainArgs;
  if (opts.resume) {
    const raw = existsSync(out) ? readTrainerState(out) : null;
    if (raw === null) throw new Error(`nothing to resume in '${out}' (no ${TRAINER_STATE_FILE}); run without --resume to start training`);
    saved = parseTrainerState(raw, statePath);
    args = resumeArgs(opts, saved.args, statePath);
  } else {
    if (existsSync(out) && readTrainerState(out) !== null && !opts.overwrite) {
      throw new Error(
        `'${out}' already holds a training run; pass --resume to continue it, --overwrite to start over, or choose another --out`,
      );
    }
    args = resolveArgs(opts);
  }
  checkArgs(args);

  // ---- data and tokenizer
  let text: string;
  let dataLabel: string;
  if (opts.text !== undefined) {
    text = opts.text;
    dataLabel = args.data ?? "(text in memory)";
  } else if (args.data !== null) {
    text = readTextFile(args.data);
    dataLabel = args.data;
  } else {
    throw new Error(
      saved ? "this run was trained on text given in memory; pass --data to resume it" : "no training data: pass --data FILE",
    );
  }
  if (text.length === 0) throw new Error("the training text is empty");
  const digest = textDigest(text);
  if (saved && saved.data.sha256 !== digest) {
    throw new Error(`the data '${dataLabel}' differs from the data this run was trained on; resume with the same data`);
  }
  let tokenizer: Tokenizer;
  if (saved) tokenizer = readTokenizer(out);
  else if (args.tokenizer === "char") tokenizer = CharTokenizer.fromText(text);
  else tokenizer = ByteLevelBPE.train(text, { vocabSize: args.vocabSize });
  const tokens = encodeText(tokenizer, text, dataLabel);
  const splits = splitTokens(tokens);
  checkBlockSize(splits, args.blockSize);

  // ---- model, optimizer, random streams
  const config: GPTConfig = saved
    ? readConfig(out)
    : {
        n_layer: args.nLayer,
        n_head: args.nHead,
        n_embd: args.nEmbd,
        block_size: args.blockSize,
        vocab_size: tokenizer.vocabSize,
        dropout: args.dropout,
        bias: args.bias,
        tie_weights: args.tieWeights,
        pos_encoding: args.posEncoding,
      };
  const modelRng = new Generator(args.seed);
  const trainRng = new Generator(args.seed + 1);
  const evalRng = new Generator(args.seed + 2);
  checkGPTTrainingMemory(config, { batch_size: args.batchSize, grad_accum: args.gradAccum }, (f) => `--${f.replace(/_/g, "-")}`);
  const model = new GPT(config, { generator: modelRng });
  const optimizer = new AdamW(model.optimGroups(args.weightDecay), {
    lr: args.learningRate,
    betas: [args.beta1, args.beta2],
    eps: 1e-8,
  });
  let step = 0;
  let bestVal: number | null = null;
  let lastTrain: number | null = null;
  let lastVal: number | null = null;
  let tokensSeen = 0;
  let elapsedMs = 0;
  if (saved) {
    loadWeights(out, model);
    if (!existsSync(join(out, OPTIMIZER_FILE)))
      throw new CheckpointError(`${join(out, OPTIMIZER_FILE)}: file not found; cannot resume without it`);
    loadOptimizerState(out, model, optimizer);
    modelRng.setState(saved.rng.model);
    trainRng.setState(saved.sampler.train);
    evalRng.setState(saved.sampler.eval);
    step = saved.step;
    if (optimizer.step_ !== step) {
      throw new CheckpointError(`${join(out, OPTIMIZER_FILE)}: optimizer step ${optimizer.step_} does not match trainer step ${step}`);
    }
    bestVal = saved.best_val_loss;
    lastTrain = saved.last_train_loss;
    lastVal = saved.last_val_loss;
    tokensSeen = saved.tokens_seen;
    elapsedMs = saved.elapsed_ms;
    truncateMetrics(metricsPath, step);
  } else {
    makeOutputDir(out);
    if (opts.overwrite) removeTrainingState(out);
    rmSync(metricsPath, { force: true });
  }
  model.train();

  const trainSampler = new BatchSampler(splits.train, config.block_size, args.batchSize, trainRng);
  const evalSamplers = {
    train: new BatchSampler(splits.train, config.block_size, args.batchSize, evalRng),
    val: new BatchSampler(splits.val, config.block_size, args.batchSize, evalRng),
  };
  const params = model.parameters();
  const schedule = { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps };
  const tokensPerStep = args.batchSize * config.block_size * args.gradAccum;

  let lastSaved = saved ? step : -1;
  const save = (reason: "interval" | "end" | "interrupt") => {
    const t0 = performance.now();
    const state: TrainerState = {
      format: "moxing-trainer-state",
      version: 1,
      step,
      best_val_loss: bestVal,
      last_train_loss: lastTrain,
      last_val_loss: lastVal,
      tokens_seen: tokensSeen,
      elapsed_ms: Math.round(elapsedMs),
      rng: { model: modelRng.getState() },
      sampler: { train: trainRng.getState(), eval: evalRng.getState() },
      data: { source: args.data, sha256: digest, tokens: tokens.length, train_tokens: splits.train.length, val_tokens: splits.val.length },
      args,
    };
    saveCheckpoint(out, { model, tokenizer, optimizer, trainerState: state });
    lastSaved = step;
    emit({ type: "checkpoint", step, dir: out, ms: performance.now() - t0, reason });
  };

  emit({
    type: "start",
    step,
    maxSteps: args.maxSteps,
    resumed: saved !== null,
    args,
    config,
    params: model.paramCount().total,
    trainTokens: splits.train.length,
    valTokens: splits.val.length,
    dataLabel,
    backend: getBackend().name,
    out,
  });

  let status: TrainResult["status"] = "completed";
  const arena = new MemoryArena();
  while (step < args.maxSteps) {
    if (hooks.signal?.aborted) {
      status = "interrupted";
      break;
    }
    const t0 = performance.now();
    const lr = getLr(step, schedule);
    optimizer.setLr(lr);
    optimizer.zeroGrad();
    const batches = Array.from({ length: args.gradAccum }, () => trainSampler.next());
    // Every tensor of the step lives in the arena and is recycled by the next step's reset;
    // parameters, their gradients and the optimizer state are outside it.
    arena.reset();
    const { loss, norm } = arena.run(() => {
      const l = forwardBackward(model, batches);
      const n = clipGradNorm(params, args.gradClip);
      optimizer.step();
      return { loss: l, norm: n };
    });
    optimizer.zeroGrad(); // free the gradients before evaluation and the next step
    step++;
    tokensSeen += tokensPerStep;
    lastTrain = loss;
    const ms = performance.now() - t0;
    elapsedMs += ms;
    const log: StepLog = {
      step,
      train_loss: loss,
      lr,
      grad_norm: round(norm, 6),
      tokens_per_s: Math.round((tokensPerStep * 1000) / ms),
      ms_per_step: round(ms, 1),
    };
    if (step % args.evalInterval === 0 || step === args.maxSteps) {
      arena.reset();
      const est = arena.run(() => estimateLoss(model, evalSamplers, args.evalIters));
      log.val_loss = est.val;
      log.eval_train_loss = est.train;
      lastVal = est.val;
      const best = bestVal === null || est.val < bestVal;
      if (best) bestVal = est.val;
      emit({ type: "eval", step, trainLoss: est.train, valLoss: est.val, best });
    }
    appendFileSync(metricsPath, `${JSON.stringify(log)}\n`);
    emit({ type: "step", maxSteps: args.maxSteps, ...log });
    if (step % args.checkpointInterval === 0 || step === args.maxSteps) save(step === args.maxSteps ? "end" : "interval");
    // Let signal handlers (Ctrl-C) run: the loop is synchronous otherwise.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (lastSaved !== step) save(status === "interrupted" ? "interrupt" : "end");
  model.eval();
  return { status, step, trainLoss: lastTrain, valLoss: lastVal, bestValLoss: bestVal, out, model, tokenizer };
}

/** Remove the checkpoint files of an earlier run in `out` (for overwrite). */
function removeTrainingState(out: string): void {
  for (const f of [TRAINER_STATE_FILE, OPTIMIZER_FILE]) rmSync(join(out, f), { force: true });
}

/** Mean loss over `iters` random batches of each split, in eval mode without gradients (nanoGPT's estimate_loss). */
export function estimateLoss(
  model: GPT,
  samplers: { train: BatchSampler; val: BatchSampler },
  iters: number,
): { train: number; val: number } {
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() => {
      const mean = (s: BatchSampler) => {
        let total = 0;
        for (let i = 0; i < iters; i++) {
          const { x, y } = s.next();
          total += (model.forward(x, { targets: y }).loss as NonNullable<ReturnType<GPT["forward"]>["loss"]>).item();
        }
        return total / iters;
      };
      return { train: mean(samplers.train), val: mean(samplers.val) };
    });
  } finally {
    model.train(wasTraining);
  }
}
