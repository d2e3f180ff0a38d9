// The one training loop: GPT pretraining (trainer.ts), BERT masked-LM pretraining (mlm.ts) and
// fine-tuning (finetune.ts) all run here. docs/training.md documents it with a small new trainer.
//
// The loop owns everything a step and a run need, so each trainer supplies only its batches, its
// loss and its evaluation:
//   each step      lr from the schedule (linear warmup, cosine decay); gradAccum micro-batches of
//                  forward + backward, each loss scaled by 1/gradAccum; clip the global gradient
//                  norm; AdamW step; every tensor of the step lives in one MemoryArena, recycled by
//                  the next step
//   divergence     a non-finite loss or gradient norm stops the run before the optimizer step (and
//                  weights that became non-finite are never saved): the last good checkpoint stays
//   evaluation     every evalInterval steps and at the end, in eval mode without gradients; each
//                  evaluation batch should run in `scoped` so memory does not grow with their number
//   metrics.jsonl  one line per step: step, train_loss, lr, grad_norm, tokens_per_s, ms_per_step,
//                  then the evaluation's metrics
//   checkpoints    every checkpointInterval steps, at the end and on interrupt: the model's files,
//                  optimizer.safetensors and trainer_state.json, written as one set (the journal)
//   exact resume   optimizer moments, step counter and the trainer's RNG states come back from the
//                  checkpoint (run.ts), so a resumed run logs the losses an uninterrupted one would
//   interrupts     aborting hooks.signal (Ctrl-C in the CLI) saves a checkpoint after the current step

import { join } from "node:path";
import { commitFiles } from "../io/journal.js";
import { CheckpointError, checkpointFile, OPTIMIZER_FILE, TRAINER_STATE_FILE } from "../io/model-dir.js";
import { loadOptimizerFile, optimizerToSafetensors } from "../io/optimizer.js";
import type { Module } from "../nn/module.js";
import type { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { MemoryArena } from "../tensor/memory.js";
import type { Tensor } from "../tensor/tensor.js";
import { allFinite, clipGradNorm, forwardBackward } from "./grad.js";
import type { RunDirectory } from "./run.js";
import { getLr, type LrSchedule } from "./schedule.js";

export type Metrics = Record<string, number>;

export type CheckpointReason = "interval" | "end" | "interrupt";

export type LoopEvent =
  | { type: "start"; step: number; maxSteps: number; resumed: boolean; title: string }
  | { type: "step"; step: number; maxSteps: number; loss: number; lr: number; gradNorm: number; msPerStep: number; tokensPerS: number }
  | { type: "eval"; step: number; metrics: Metrics; best: boolean; summary: string }
  | { type: "checkpoint"; step: number; dir: string; ms: number; reason: CheckpointReason }
  | { type: "info"; message: string };

export interface LoopHooks {
  onLog?(e: LoopEvent): void;
  /** Abort to stop after the current step; a checkpoint is saved and the result says "interrupted". */
  signal?: AbortSignal;
}

/** The trainer's part of trainer_state.json: its settings, its data's fingerprint, its random
 *  streams, and anything else it needs to continue (e.g. where it is in an epoch). */
export interface TaskState {
  format: string;
  args: object;
  data: { sha256: string } & Record<string, unknown>;
  rng: Record<string, unknown>;
  [key: string]: unknown;
}

export interface LoopSpec {
  /** Where the run lives, and the saved state when it resumes (run.ts). */
  run: RunDirectory;
  model: Module;
  optimizer: AdamW;
  schedule: LrSchedule;
  maxSteps: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Maximum global gradient norm; 0 disables clipping. */
  gradClip: number;
  evalInterval: number;
  checkpointInterval: number;
  /** One line saying what is trained on what (the loop adds "resuming at step N: "). */
  title: string;
  /** Forward one micro-batch: its loss (the mean over its rows) and how many tokens it held.
   *  Called in training mode inside the step's arena, gradAccum times per step. */
  trainStep(): { loss: Tensor; tokens: number };
  /** Metrics of the step just taken, beyond its loss (DPO's rewards/*, PPO's objective/* and
   *  policy/*): called once after each step, their values go into that step's metrics line. */
  stepMetrics?(): Metrics;
  /** Metrics on held-out data; called in eval mode, without gradients, inside an arena. */
  evaluate?(): Metrics;
  /** Prefix of the evaluation's metrics in metrics.jsonl (default "eval_"). */
  metricsPrefix?: string;
  /** An evaluation metric to minimise: its best and last values go into trainer_state.json as
   *  best_<name> and last_<name>, and evaluation events say when it improved. */
  bestMetric?: string;
  /** The progress line of an evaluation (default: its metrics). */
  describeEval?(metrics: Metrics, best: boolean): string;
  /** Extra fields for each metrics line (e.g. which data, silver or real). */
  metricsExtra?: Record<string, unknown>;
  /** The model directory's own files (config, weights, tokenizer) for a checkpoint. */
  modelFiles(): Map<string, Uint8Array | string>;
  /** The trainer's part of trainer_state.json, as of now. */
  state(): TaskState;
}

export interface LoopResult {
  status: "completed" | "interrupted";
  step: number;
  lastLoss: number | null;
  lastEval: Metrics | null;
  /** The best value of spec.bestMetric so far (null without one, or before any evaluation). */
  best: number | null;
  /** Bytes the step arena grew to: the memory of a training step (and of an evaluation batch). */
  arenaBytes: number;
}

/** Training stopped because the loss, the gradients or the weights stopped being finite numbers. */
export class DivergenceError extends Error {}

const round = (x: number, digits: number) => Number(x.toFixed(digits));
const numOrNull = (v: unknown): number | null => (typeof v === "number" ? v : null);

/** Run training to spec.maxSteps (or until hooks.signal aborts); see the file comment. */
export async function runLoop(spec: LoopSpec, hooks: LoopHooks = {}): Promise<LoopResult> {
  const emit = hooks.onLog ?? (() => {});
  const { run, model, optimizer, maxSteps } = spec;
  const accum = spec.gradAccum ?? 1;
  const prefix = spec.metricsPrefix ?? "eval_";
  const params = model.parameters();
  const saved = run.saved;

  // ---- resume bookkeeping: optimizer moments, counters; metrics cut back to the checkpoint
  let step = 0;
  let tokensSeen = 0;
  let elapsedMs = 0;
  let lastLoss: number | null = null;
  let best: number | null = null;
  let lastMetric: number | null = null;
  if (saved) {
    const file = checkpointFile(run.out, OPTIMIZER_FILE);
    if (!file) throw new CheckpointError(`${join(run.out, OPTIMIZER_FILE)}: file not found; cannot resume without it`);
    loadOptimizerFile(file, model, optimizer, (m) => new CheckpointError(m));
    step = saved.step;
    if (optimizer.step_ !== step) {
      throw new CheckpointError(`${file}: optimizer step ${optimizer.step_} does not match trainer step ${step}`);
    }
    tokensSeen = numOrNull(saved.tokens_seen) ?? 0;
    elapsedMs = numOrNull(saved.elapsed_ms) ?? 0;
    lastLoss = numOrNull(saved.last_train_loss);
    if (spec.bestMetric) {
      best = numOrNull(saved[`best_${spec.bestMetric}`]);
      lastMetric = numOrNull(saved[`last_${spec.bestMetric}`]);
    }
  }
  run.prepare();
  try {
    const startStep = step;
    let lastSaved = saved ? step : -1; // a fresh run of 0 steps still saves its model
    let lastEval: Metrics | null = null;

    const save = (reason: CheckpointReason) => {
      const t0 = performance.now();
      if (!allFinite(params)) {
        throw new DivergenceError(
          `training diverged at step ${step}: the weights are no longer finite numbers; the last good checkpoint in '${run.out}' is kept (step ${lastSaved < 0 ? "none" : lastSaved}). Lower the learning rate (or clip gradients) and start again`,
        );
      }
      const files = spec.modelFiles();
      files.set(OPTIMIZER_FILE, optimizerToSafetensors(model, optimizer));
      const state = {
        ...spec.state(),
        step,
        tokens_seen: tokensSeen,
        elapsed_ms: Math.round(elapsedMs),
        last_train_loss: lastLoss,
        ...(spec.bestMetric ? { [`best_${spec.bestMetric}`]: best, [`last_${spec.bestMetric}`]: lastMetric } : {}),
      };
      files.set(TRAINER_STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
      commitFiles(run.out, files, []);
      lastSaved = step;
      emit({ type: "checkpoint", step, dir: run.out, ms: performance.now() - t0, reason });
    };

    const arena = new MemoryArena();
    const evaluate = (): Metrics | null => {
      if (!spec.evaluate) return null;
      const was = model.training;
      model.eval();
      try {
        arena.reset();
        return arena.run(() => noGrad(() => (spec.evaluate as () => Metrics)()));
      } finally {
        model.train(was);
      }
    };

    emit({ type: "start", step, maxSteps, resumed: saved !== null, title: spec.title });
    model.train();
    let status: LoopResult["status"] = "completed";
    while (step < maxSteps) {
      if (hooks.signal?.aborted) {
        status = "interrupted";
        break;
      }
      const t0 = performance.now();
      const lr = getLr(step, spec.schedule);
      optimizer.setLr(lr);
      optimizer.zeroGrad({ recycle: true });
      const { loss, norm, tokens } = optimizerStep(arena, { params, optimizer, gradAccum: accum, gradClip: spec.gradClip }, spec.trainStep);
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        optimizer.zeroGrad();
        throw new DivergenceError(
          `training diverged at step ${step + 1}: the loss is ${loss} and the gradient norm ${norm}; ` +
            `the weights were not updated and the last good checkpoint in '${run.out}' is kept (step ${lastSaved < 0 ? "none" : lastSaved}). ` +
            "Lower the learning rate (or clip gradients) and start again",
        );
      }
      // The gradients are done with; their buffers are kept for the next step's backward to write into.
      optimizer.zeroGrad({ recycle: true });
      step++;
      tokensSeen += tokens;
      lastLoss = loss;
      const ms = performance.now() - t0;
      elapsedMs += ms;
      const line: Record<string, unknown> = {
        step,
        train_loss: round(loss, 6),
        lr,
        grad_norm: round(norm, 6),
        tokens_per_s: Math.round((tokens * 1000) / ms),
        ms_per_step: round(ms, 1),
      };
      for (const [k, v] of Object.entries(spec.stepMetrics?.() ?? {})) line[k] = round(v, 6);
      if (step % spec.evalInterval === 0 || step === maxSteps) {
        lastEval = evaluate();
        if (lastEval) {
          for (const [k, v] of Object.entries(lastEval)) line[`${prefix}${k}`] = round(v, 6);
          let improved = false;
          if (spec.bestMetric) {
            const v = lastEval[spec.bestMetric];
            if (v !== undefined) {
              lastMetric = v;
              improved = best === null || v < best;
              if (improved) best = v;
            }
          }
          const summary = spec.describeEval?.(lastEval, improved) ?? `eval ${formatMetrics(lastEval)}`;
          emit({ type: "eval", step, metrics: lastEval, best: improved, summary });
        }
      }
      run.appendMetrics(JSON.stringify({ ...line, ...(spec.metricsExtra ?? {}) }));
      emit({ type: "step", step, maxSteps, loss, lr, gradNorm: norm, msPerStep: ms, tokensPerS: line.tokens_per_s as number });
      if (step % spec.checkpointInterval === 0 || step === maxSteps) save(step === maxSteps ? "end" : "interval");
      // Let signal handlers (Ctrl-C) run: the loop is synchronous otherwise.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (lastSaved !== step) save(status === "interrupted" ? "interrupt" : "end");
    if (step === startStep && spec.evaluate) lastEval = evaluate(); // nothing to train: still report
    model.eval();
    return { status, step, lastLoss, lastEval, best, arenaBytes: arena.bytes };
  } finally {
    run.close(); // release the directory however the run ends
  }
}

/**
 * One optimizer step as the loop takes it (benchmarks time this same function): the arena reset,
 * gradAccum micro-batches of forward + backward, global-norm clipping, and the AdamW step, which is
 * skipped when the loss or the gradient norm is not finite (the caller stops the run). Call
 * optimizer.zeroGrad() first; the learning rate is the caller's.
 */
export function optimizerStep(
  arena: MemoryArena,
  o: { params: readonly Tensor[]; optimizer: AdamW; gradAccum: number; gradClip: number },
  trainStep: () => { loss: Tensor; tokens: number },
): { loss: number; norm: number; tokens: number } {
  // Every tensor of the step lives in the arena and is recycled by the next step's reset;
  // parameters, their gradients and the optimizer state are outside it.
  arena.reset();
  return arena.run(() => {
    const r = forwardBackward(o.gradAccum, trainStep);
    const norm = clipGradNorm(o.params, o.gradClip);
    if (Number.isFinite(r.loss) && Number.isFinite(norm)) o.optimizer.step();
    return { ...r, norm };
  });
}

/** "name value, ..." with integers as they are and other numbers to 4 decimals. */
export function formatMetrics(m: Metrics): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(", ");
}
