// Training progress on a terminal, for every trainer (the loop's events, loop.ts): on a TTY one
// status line redrawn in place (a bar, step/max, loss, tokens/s, ETA); elsewhere (a log file, CI)
// a plain line every few steps. Evaluations, checkpoints on interrupt and notes get a line of their own.

import type { LoopEvent } from "./loop.js";

export interface ProgressOptions {
  /** Redraw in place (default: stream.isTTY). */
  tty?: boolean;
  /** Without a TTY, print a line every this many steps (default: about 20 lines per run). */
  every?: number;
  /** Terminal width for the bar (default: stream.columns or 100). */
  columns?: number;
}

interface Writable {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** An onLog handler that renders progress to `stream` (usually process.stderr); call done() at the end. */
export function progressReporter(stream: Writable, opts: ProgressOptions = {}): { onLog(e: LoopEvent): void; done(): void } {
  const tty = opts.tty ?? stream.isTTY === true;
  let every = opts.every ?? 0;
  let avgMs = 0; // moving average of ms per step, for the ETA
  let drawn = false;
  let startStep = 0;
  const clear = () => {
    if (tty && drawn) stream.write("\r\x1b[K");
    drawn = false;
  };
  const line = (s: string) => {
    clear();
    stream.write(`${s}\n`);
  };
  return {
    onLog(e) {
      switch (e.type) {
        case "start":
          startStep = e.step;
          if (!every) every = Math.max(1, Math.round((e.maxSteps - e.step) / 20));
          line(`${e.resumed ? `resuming at step ${e.step}: ` : ""}${e.title}`);
          break;
        case "info":
          line(e.message);
          break;
        case "step": {
          avgMs = avgMs === 0 || e.step - startStep <= 2 ? e.msPerStep : 0.95 * avgMs + 0.05 * e.msPerStep;
          const eta = formatDuration(((e.maxSteps - e.step) * avgMs) / 1000);
          const tokS = Math.round((e.tokensPerS * e.msPerStep) / avgMs);
          const stats = `step ${e.step}/${e.maxSteps}  loss ${e.loss.toFixed(4)}  ${formatCount(tokS)} tok/s  ETA ${eta}`;
          if (tty) {
            const cols = opts.columns ?? stream.columns ?? 100;
            const width = Math.max(10, Math.min(30, cols - stats.length - 4));
            const filled = Math.round((width * e.step) / Math.max(1, e.maxSteps));
            stream.write(`\r\x1b[K[${"#".repeat(filled)}${".".repeat(width - filled)}] ${stats}`);
            drawn = true;
          } else if (e.step % every === 0 || e.step === e.maxSteps || e.step === startStep + 1) {
            line(`${stats}  lr ${e.lr.toExponential(2)}`);
          }
          break;
        }
        case "eval":
          line(`step ${e.step}: ${e.summary}`);
          break;
        case "checkpoint":
          if (e.reason === "interrupt") line(`saved a checkpoint at step ${e.step} to ${e.dir}`);
          break;
      }
    },
    done() {
      if (drawn) {
        stream.write("\n");
        drawn = false;
      }
    },
  };
}
