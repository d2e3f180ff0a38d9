// The training loop shared by BERT pretraining (mlm.ts) and fine-tuning (finetune.ts): the same
// pieces as the GPT trainer (schedule.ts's warmup + cosine decay, grad.ts's global-norm clipping,
// AdamW, a MemoryArena per step), with the batch, the loss and the evaluation supplied by the task.
//
// Each step: lr from the schedule, forward + backward of one batch inside the arena, clip, AdamW
// step; every evalInterval steps (and at the end) the task's evaluation in eval mode without
// gradients; one JSON line per step appended to metrics.jsonl; a checkpoint every
// checkpointInterval steps and at the end.

import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../io/atomic.js";
import type { Module } from "../nn/module.js";
import type { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { MemoryArena } from "../tensor/memory.js";
import type { Tensor } from "../tensor/tensor.js";
import { clipGradNorm } from "./grad.js";
import { formatCount, formatDuration } from "./progress.js";
import { getLr, type LrSchedule } from "./schedule.js";

export type Metrics = Record<string, number>;

export type LoopEvent =
  | { type: "start"; step: number; maxSteps: number; title: string }
  | { type: "step"; step: number; maxSteps: number; loss: number; lr: number; gradNorm: number; msPerStep: number; tokensPerS: number }
  | { type: "eval"; step: number; metrics: Metrics }
  | { type: "checkpoint"; step: number; reason: "interval" | "end" | "interrupt" }
  | { type: "info"; message: string };

export interface LoopHooks {
  onLog?(e: LoopEvent): void;
  /** Abort to stop after the current step (a checkpoint is saved). */
  signal?: AbortSignal;
}

export interface LoopSpec {
  model: Module;
  optimizer: AdamW;
  schedule: LrSchedule;
  maxSteps: number;
  /** First step to run (non-zero when resuming). */
  startStep?: number;
  /** Maximum global gradient norm; 0 disables clipping. */
  gradClip: number;
  /** Build the next batch and return its loss (called inside the step's arena) and its token count. */
  trainStep(): { loss: Tensor; tokens: number };
  /** Metrics on held-out data (called in eval mode, without gradients, inside an arena). */
  evaluate?: () => Metrics;
  evalInterval: number;
  checkpointInterval: number;
  /** Save a checkpoint for `step`. */
  checkpoint(step: number, reason: "interval" | "end" | "interrupt"): void;
  metricsPath: string;
  /** Extra fields for each metrics line (e.g. which data, silver or real). */
  metricsExtra?: Record<string, unknown>;
}

export interface LoopResult {
  status: "completed" | "interrupted";
  step: number;
  lastLoss: number | null;
  lastEval: Metrics | null;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

export async function runLoop(spec: LoopSpec, hooks: LoopHooks = {}): Promise<LoopResult> {
  const emit = hooks.onLog ?? (() => {});
  const { model, optimizer, maxSteps } = spec;
  const params = model.parameters();
  const arena = new MemoryArena();
  let step = spec.startStep ?? 0;
  let lastLoss: number | null = null;
  let lastEval: Metrics | null = null;
  let lastSaved = spec.startStep ? spec.startStep : -1; // a run of 0 steps still saves its model
  let status: LoopResult["status"] = "completed";
  const evaluate = () => {
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
  model.train();
  while (step < maxSteps) {
    if (hooks.signal?.aborted) {
      status = "interrupted";
      break;
    }
    const t0 = performance.now();
    const lr = getLr(step, spec.schedule);
    optimizer.setLr(lr);
    optimizer.zeroGrad();
    arena.reset();
    const { loss, norm, tokens } = arena.run(() => {
      const { loss: l, tokens: n } = spec.trainStep();
      const value = l.item();
      l.backward();
      const gn = clipGradNorm(params, spec.gradClip);
      optimizer.step();
      return { loss: value, norm: gn, tokens: n };
    });
    optimizer.zeroGrad();
    step++;
    lastLoss = loss;
    const ms = performance.now() - t0;
    const line: Record<string, unknown> = {
      step,
      train_loss: round(loss, 6),
      lr,
      grad_norm: round(norm, 6),
      tokens_per_s: Math.round((tokens * 1000) / ms),
      ms_per_step: round(ms, 1),
    };
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step} (loss ${loss}); lower --learning-rate`);
    if (step % spec.evalInterval === 0 || step === maxSteps) {
      lastEval = evaluate();
      if (lastEval) {
        for (const [k, v] of Object.entries(lastEval)) line[`eval_${k}`] = round(v, 6);
        emit({ type: "eval", step, metrics: lastEval });
      }
    }
    appendFileSync(spec.metricsPath, `${JSON.stringify({ ...line, ...(spec.metricsExtra ?? {}) })}\n`);
    emit({ type: "step", step, maxSteps, loss, lr, gradNorm: norm, msPerStep: ms, tokensPerS: line.tokens_per_s as number });
    if (step % spec.checkpointInterval === 0 || step === maxSteps) {
      spec.checkpoint(step, step === maxSteps ? "end" : "interval");
      lastSaved = step;
      emit({ type: "checkpoint", step, reason: step === maxSteps ? "end" : "interval" });
    }
    await new Promise<void>((resolve) => setImmediate(resolve)); // let Ctrl-C handlers run
  }
  if (lastSaved !== step) {
    spec.checkpoint(step, status === "interrupted" ? "interrupt" : "end");
    emit({ type: "checkpoint", step, reason: status === "interrupted" ? "interrupt" : "end" });
  }
  if (step === (spec.startStep ?? 0) && spec.evaluate) lastEval = evaluate(); // nothing to train: still report
  model.eval();
  return { status, step, lastLoss, lastEval };
}

/** Keep the metrics of steps up to `step` (a killed run may have logged steps after its checkpoint). */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => {
      try {
        const o = JSON.parse(line) as { step?: unknown };
        return typeof o.step === "number" && o.step <= step;
      } catch {
        return false; // empty, or cut short by the kill
      }
    });
  writeFileAtomic(path, keep.map((l) => `${l}\n`).join(""));
}

/** An onLog handler printing plain progress lines to `stream` (about 20 step lines per run). */
export function lineReporter(stream: { write(s: string): unknown }, opts: { every?: number } = {}): (e: LoopEvent) => void {
  let every = opts.every ?? 0;
  let avgMs = 0;
  let first = 0;
  const fmt = (m: Metrics) =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
      .join(", ");
  return (e) => {
    switch (e.type) {
      case "start":
        first = e.step;
        if (!every) every = Math.max(1, Math.round((e.maxSteps - e.step) / 20));
        stream.write(`${e.title}\n`);
        break;
      case "info":
        stream.write(`${e.message}\n`);
        break;
      case "step": {
        avgMs = avgMs === 0 || e.step - first <= 2 ? e.msPerStep : 0.9 * avgMs + 0.1 * e.msPerStep;
        if (e.step % every === 0 || e.step === e.maxSteps || e.step === first + 1) {
          const eta = formatDuration(((e.maxSteps - e.step) * avgMs) / 1000);
          stream.write(
            `step ${e.step}/${e.maxSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ${formatCount(e.tokensPerS)} tok/s  ETA ${eta}\n`,
          );
        }
        break;
      }
      case "eval":
        stream.write(`step ${e.step}: eval ${fmt(e.metrics)}\n`);
        break;
      case "checkpoint":
        if (e.reason === "interrupt") stream.write(`saved a checkpoint at step ${e.step}\n`);
        break;
    }
  };
}
