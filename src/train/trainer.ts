// Training a GPT on a text: nanoGPT's recipe on the one training loop (loop.ts).
//
//   data        the text's tokens, the first 90% to train and the last 10% to validate; each
//               micro-batch is batch_size random windows of block_size tokens (nanoGPT's get_batch)
//   loss        next-token cross-entropy
//   evaluation  every eval_interval steps, the mean loss of eval_iters random batches of each split
//               (val_loss and eval_train_loss in metrics.jsonl; the best val_loss is remembered)
// The loop does the rest: schedule (linear warmup, cosine decay to min_lr), grad_accum micro-batches,
// clipping, AdamW, checkpoints, divergence detection, Ctrl-C.
//
// The output directory is a model directory (see src/io/checkpoint.ts) plus metrics.jsonl, one JSON
// object per step. Resuming restores everything a step depends on - weights, AdamW moments and step,
// the step counter, and the three RNG streams (training batches, evaluation batches, dropout) - so a
// run interrupted at any point (even by SIGKILL) and resumed logs exactly the losses an uninterrupted
// run would.
//
// The same recipe trains a Llama-family decoder (arch "llama": RMSNorm, SwiGLU, rotary positions,
// grouped-query attention; src/models/llama.ts), whose output directory is then Hugging Face's
// LlamaForCausalLM layout (config.json, model.safetensors) with the tokenizer beside it.
//
// This is a library API; `moxing train` is a thin CLI over it.

import { BatchSampler, checkBlockSize, encodeText, readTextFile, splitTokens, textDigest } from "../data/text.js";
import { gptModelFiles, loadWeights, readConfig, readTokenizer } from "../io/gpt.js";
import { llamaModelFiles, loadLlamaDirWith, readLlamaConfig } from "../io/llama.js";
import { CheckpointError } from "../io/model-dir.js";
import type { LanguageModel } from "../models/causal.js";
import { checkGPTTrainingMemory, GPT, type GPTConfig, type PositionalEncoding } from "../models/gpt.js";
import { checkLlamaTrainingMemory, LLAMA_DEFAULTS, Llama, type LlamaConfig } from "../models/llama.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { getBackend } from "../tensor/backend.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { ByteLevelBPE, CharTokenizer, type Tokenizer } from "../tokenizers/index.js";
import { type LoopEvent, type LoopHooks, runLoop } from "./loop.js";
import { formatCount } from "./progress.js";
import { checkGenState, type GenState, RunDirectory, type SavedState } from "./run.js";

export { METRICS_FILE } from "./run.js";

/** Every setting of a run, resolved. Saved in trainer_state.json. */
export interface TrainArgs {
  /** The model: GPT (GPT-2's architecture) or a Llama-family decoder. */
  arch: "gpt" | "llama";
  /** Path of the training text, or null when the text was given in memory. */
  data: string | null;
  tokenizer: "char" | "bpe";
  /** Vocabulary size for a BPE tokenizer (ignored for char). */
  vocabSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Llama: key/value heads of grouped-query attention (divides nHead). */
  nKvHead: number;
  /** Llama: width of the SwiGLU feed-forward (intermediate_size). */
  nInner: number;
  /** Llama: base of the rotary frequencies. */
  ropeTheta: number;
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

/** The Llama-only settings' defaults: half as many key/value heads as query heads (grouped-query
 *  attention), SwiGLU's 8/3·n_embd rounded up to a multiple of 32 (Llama's rule of thumb), theta 10000. */
export function llamaDefaults(nHead: number, nEmbd: number): { nKvHead: number; nInner: number; ropeTheta: number } {
  return {
    nKvHead: nHead % 2 === 0 ? nHead / 2 : nHead,
    nInner: Math.ceil((8 * nEmbd) / 3 / 32) * 32,
    ropeTheta: LLAMA_DEFAULTS.rope_theta,
  };
}

/** Settings a resumed run may change; every other one must match the checkpoint. */
const RESUMABLE_OVERRIDES = new Set<keyof TrainArgs>(["maxSteps", "evalInterval", "evalIters", "checkpointInterval"]);

/** CLI spelling of each setting, for error messages. */
export function flagName(key: keyof TrainArgs): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Events of a run (the loop's; see loop.ts). */
export type TrainEvent = LoopEvent;
export type TrainHooks = LoopHooks;

export interface TrainResult {
  status: "completed" | "interrupted";
  step: number;
  trainLoss: number | null;
  valLoss: number | null;
  bestValLoss: number | null;
  out: string;
  model: GPT | Llama;
  tokenizer: Tokenizer;
  /** Bytes the step arena grew to (the memory of a training step, see loop.ts). */
  arenaBytes: number;
}

/** trainer_state.json of a GPT run (the loop adds step, tokens_seen, elapsed_ms, last_train_loss,
 *  best_val_loss and last_val_loss). */
export interface TrainerState {
  format: typeof STATE_FORMAT;
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

const STATE_FORMAT = "moxing-trainer-state";

/** The GPT trainer's checks of a saved state, beyond the ones every trainer's state gets. */
function validateState(state: SavedState, path: string): void {
  const bad = (what: string): never => {
    throw new CheckpointError(`${path}: ${what}; the checkpoint is damaged or from another program`);
  };
  if (state.version !== 1) bad(`unsupported version ${JSON.stringify(state.version)}`);
  checkGenState(state.rng.model, "rng.model", path);
  const sampler = (state.sampler ?? {}) as Record<string, unknown>;
  checkGenState(sampler.train, "sampler.train", path);
  checkGenState(sampler.eval, "sampler.eval", path);
  for (const k of Object.keys(TRAIN_DEFAULTS)) if (state.args[k] === undefined) bad(`training argument '${k}' is missing`);
}

function resolveArgs(opts: TrainOptions): TrainArgs {
  const pick = <K extends keyof TrainArgs>(k: K, fallback: TrainArgs[K]): TrainArgs[K] =>
    opts[k] !== undefined ? (opts[k] as TrainArgs[K]) : fallback;
  const maxSteps = pick("maxSteps", TRAIN_DEFAULTS.maxSteps);
  const learningRate = pick("learningRate", TRAIN_DEFAULTS.learningRate);
  const evalInterval = pick("evalInterval", TRAIN_DEFAULTS.evalInterval);
  const arch = pick("arch", "gpt");
  const nHead = pick("nHead", TRAIN_DEFAULTS.nHead);
  const nEmbd = pick("nEmbd", TRAIN_DEFAULTS.nEmbd);
  const ll = llamaDefaults(nHead, nEmbd);
  const llama = arch === "llama";
  return {
    arch,
    data: opts.data ?? null,
    tokenizer: pick("tokenizer", TRAIN_DEFAULTS.tokenizer),
    vocabSize: pick("vocabSize", TRAIN_DEFAULTS.vocabSize),
    nLayer: pick("nLayer", TRAIN_DEFAULTS.nLayer),
    nHead,
    nEmbd,
    nKvHead: pick("nKvHead", llama ? ll.nKvHead : nHead),
    nInner: pick("nInner", llama ? ll.nInner : 4 * nEmbd),
    ropeTheta: pick("ropeTheta", ll.ropeTheta),
    blockSize: pick("blockSize", TRAIN_DEFAULTS.blockSize),
    dropout: pick("dropout", TRAIN_DEFAULTS.dropout),
    // A Llama has no biases and rotary positions (Llama 2/3's choices).
    bias: pick("bias", llama ? false : TRAIN_DEFAULTS.bias),
    tieWeights: pick("tieWeights", TRAIN_DEFAULTS.tieWeights),
    posEncoding: pick("posEncoding", llama ? "rope" : TRAIN_DEFAULTS.posEncoding),
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
  if (a.arch !== "gpt" && a.arch !== "llama") throw new Error(`--arch must be gpt or llama (got ${a.arch})`);
  if (a.arch === "llama") {
    int("nKvHead", 1);
    int("nInner", 1);
    if (a.nHead % a.nKvHead !== 0) throw new Error(`--n-head (${a.nHead}) must be a multiple of --n-kv-head (${a.nKvHead})`);
    if ((a.nEmbd / a.nHead) % 2 !== 0) {
      throw new Error(`--n-embd / --n-head (${a.nEmbd / a.nHead}) must be even: rotary positions rotate pairs of dimensions`);
    }
    if (!(a.ropeTheta > 0)) throw new Error(`--rope-theta must be > 0 (got ${a.ropeTheta})`);
    if (a.dropout !== 0) throw new Error("--dropout: a Llama has no dropout layers; drop the flag (or use --arch gpt)");
    if (a.posEncoding !== "rope") throw new Error("--pos-encoding: a Llama's positions are rotary; drop the flag (or use --arch gpt)");
    if (a.bias) throw new Error("--bias: this Llama has no biases; drop the flag (or use --arch gpt)");
  }
}

/** Merge the options of a resumed run with its saved arguments. */
function resumeArgs(opts: TrainOptions, savedArgs: TrainArgs, statePath: string): TrainArgs {
  // Runs saved before --arch existed are GPT runs without the Llama-only settings.
  const old: Partial<TrainArgs> = savedArgs;
  const saved = { arch: "gpt", nKvHead: savedArgs.nHead, nInner: 4 * savedArgs.nEmbd, ropeTheta: 10000, ...old } as TrainArgs;
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

/** Train a GPT; see the file comment. Resolves when training ends or is interrupted via hooks.signal. */
export async function train(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { out } = opts;
  const run = RunDirectory.open({
    out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: STATE_FORMAT,
    kind: "training run",
    validate: validateState,
  });
  const saved = run.saved as TrainerState | null;
  const args = saved ? resumeArgs(opts, saved.args, run.statePath) : resolveArgs(opts);
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
  run.checkData(digest, `the data '${dataLabel}'`);
  let tokenizer: Tokenizer;
  if (saved) tokenizer = readTokenizer(out);
  else if (args.tokenizer === "char") tokenizer = CharTokenizer.fromText(text);
  else tokenizer = ByteLevelBPE.train(text, { vocabSize: args.vocabSize });
  const tokens = encodeText(tokenizer, text, dataLabel);
  const splits = splitTokens(tokens);
  checkBlockSize(splits, args.blockSize);

  // ---- model, optimizer, random streams
  const modelRng = new Generator(args.seed);
  const trainRng = new Generator(args.seed + 1);
  const evalRng = new Generator(args.seed + 2);
  const built = args.arch === "llama" ? buildLlama(args, tokenizer, out, saved !== null, modelRng) : null;
  let model: GPT | Llama;
  let blockSize: number;
  let describe: string;
  if (built) {
    model = built;
    const c = built.config;
    blockSize = c.max_position_embeddings;
    describe =
      `Llama ${formatCount(built.numParameters())} parameters (${c.num_hidden_layers} layers, ${c.num_attention_heads} heads, ` +
      `${c.num_key_value_heads} key/value heads, ${c.hidden_size} dims, SwiGLU ${c.intermediate_size}, block ${blockSize}, vocab ${c.vocab_size})`;
  } else {
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
    checkGPTTrainingMemory(config, { batch_size: args.batchSize, grad_accum: args.gradAccum }, (f) => `--${f.replace(/_/g, "-")}`);
    const gpt = new GPT(config, { generator: modelRng });
    if (saved) loadWeights(out, gpt);
    model = gpt;
    blockSize = config.block_size;
    const c = config;
    describe =
      `GPT ${formatCount(gpt.paramCount().total)} parameters ` +
      `(${c.n_layer} layers, ${c.n_head} heads, ${c.n_embd} dims, block ${c.block_size}, vocab ${c.vocab_size}, ${c.pos_encoding} positions)`;
  }
  const optimizer = new AdamW(model.optimGroups(args.weightDecay), {
    lr: args.learningRate,
    betas: [args.beta1, args.beta2],
    eps: 1e-8,
  });
  if (saved) {
    modelRng.setState(saved.rng.model);
    trainRng.setState(saved.sampler.train);
    evalRng.setState(saved.sampler.eval);
  }

  const trainSampler = new BatchSampler(splits.train, blockSize, args.batchSize, trainRng);
  const evalSamplers = {
    train: new BatchSampler(splits.train, blockSize, args.batchSize, evalRng),
    val: new BatchSampler(splits.val, blockSize, args.batchSize, evalRng),
  };
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps },
      maxSteps: args.maxSteps,
      gradAccum: args.gradAccum,
      gradClip: args.gradClip,
      evalInterval: args.evalInterval,
      checkpointInterval: args.checkpointInterval,
      title:
        `${describe} ` +
        `on ${dataLabel}: ${formatCount(splits.train.length)} train / ${formatCount(splits.val.length)} val tokens; backend ${getBackend().name}`,
      trainStep: () => {
        const { x, y } = trainSampler.next();
        return { loss: model.forward(x, { targets: y }).loss as Tensor, tokens: x.size };
      },
      evaluate: () => {
        const est = estimateLoss(model, evalSamplers, args.evalIters);
        return { val_loss: est.val, eval_train_loss: est.train };
      },
      metricsPrefix: "",
      bestMetric: "val_loss",
      describeEval: (m, best) =>
        `train loss ${(m.eval_train_loss as number).toFixed(4)}, val loss ${(m.val_loss as number).toFixed(4)}${best ? " (best so far)" : ""}`,
      modelFiles: () => (model instanceof Llama ? llamaModelFiles(model, tokenizer) : gptModelFiles(model, tokenizer)),
      state: () => ({
        format: STATE_FORMAT,
        version: 1,
        rng: { model: modelRng.getState() },
        sampler: { train: trainRng.getState(), eval: evalRng.getState() },
        data: {
          source: args.data,
          sha256: digest,
          tokens: tokens.length,
          train_tokens: splits.train.length,
          val_tokens: splits.val.length,
        },
        args,
      }),
    },
    hooks,
  );
  return {
    status: result.status,
    step: result.step,
    trainLoss: result.lastLoss,
    valLoss: result.lastEval?.val_loss ?? (saved && result.step === saved.step ? saved.last_val_loss : null),
    bestValLoss: result.best,
    out,
    model,
    tokenizer,
    arenaBytes: result.arenaBytes,
  };
}

/** A fresh Llama for a run's settings, or (resuming) the one in its checkpoint, in training mode. */
function buildLlama(args: TrainArgs, tokenizer: Tokenizer, out: string, resume: boolean, g: Generator): Llama {
  const sizes = { batch_size: args.batchSize, grad_accum: args.gradAccum };
  if (resume) {
    // readLlamaConfig: a clear error when the checkpoint is not a Llama directory.
    checkLlamaTrainingMemory(readLlamaConfig(out), sizes, llamaFlag);
    return loadLlamaDirWith(out, () => tokenizer).model.train();
  }
  const config: LlamaConfig = {
    ...LLAMA_DEFAULTS,
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    hidden_size: args.nEmbd,
    intermediate_size: args.nInner,
    num_hidden_layers: args.nLayer,
    num_attention_heads: args.nHead,
    num_key_value_heads: args.nKvHead,
    head_dim: args.nEmbd / args.nHead,
    max_position_embeddings: args.blockSize,
    rope_theta: args.ropeTheta,
    tie_word_embeddings: args.tieWeights,
    bos_token_id: null,
    eos_token_id: null,
  };
  // Before anything is allocated: --n-layer 100000 is refused with the estimate, not a bad_alloc.
  checkLlamaTrainingMemory(config, sizes, llamaFlag);
  return new Llama(config, { generator: g }).train();
}

/** How `moxing train` spells a Llama config's field. */
function llamaFlag(field: string): string {
  const flags: Record<string, string> = {
    vocab_size: "--vocab-size",
    hidden_size: "--n-embd",
    intermediate_size: "--n-inner",
    num_hidden_layers: "--n-layer",
    num_attention_heads: "--n-head",
    num_key_value_heads: "--n-kv-head",
    head_dim: "head size (--n-embd / --n-head)",
    max_position_embeddings: "--block-size",
  };
  return flags[field] ?? `--${field.replace(/_/g, "-")}`;
}

/** Mean loss over `iters` random batches of each split, in eval mode without gradients (nanoGPT's
 *  estimate_loss). Each batch's tensors are handed back to the arena (if any) before the next. */
export function estimateLoss(
  model: LanguageModel,
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
          total += scoped(() => {
            const { x, y } = s.next();
            return (model.forward(x, { targets: y }).loss as Tensor).item();
          });
        }
        return total / iters;
      };
      return { train: mean(samplers.train), val: mean(samplers.val) };
    });
  } finally {
    model.train(wasTraining);
  }
}
