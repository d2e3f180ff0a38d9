// Shared CLI plumbing: the Command shape, a usage error type, and flag parsing with clear errors.

import { existsSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ParseArgsConfig, parseArgs } from "node:util";
import type { LoopEvent } from "../train/loop.js";
import { progressReporter } from "../train/progress.js";

/** moxing's own package.json, found by walking up from this file (works from src/ and dist/src/). */
export function packageJson(): { name: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, "package.json");
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, "utf8"));
      if (pkg.name === "moxing") return pkg;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find moxing's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export interface Command {
  summary: string;
  help: string;
  run(argv: string[]): Promise<number | undefined> | number | undefined;
}

/** A mistake in how the command was called: printed as one line, exit status 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs with strict checking, its errors turned into one-line usage errors. */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : O[K]["multiple"] extends true ? string[] : string;
};

export function parseFlags<O extends Options>(cmd: string, argv: string[], options: O): { values: FlagValues<O>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { values: r.values as FlagValues<O>, positionals: r.positionals };
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    throw new UsageError(`${cmd}: ${msg}; run 'moxing ${cmd} --help' for the flags`);
  }
}

/**
 * One vocabulary for every command: where a flag had another name before, the old name still works.
 * `aliases` maps each flag to its old names; the value given under either name ends up under the
 * flag's own, and giving both is an error.
 */
export function resolveAliases<V extends Record<string, unknown>>(cmd: string, values: V, aliases: Record<string, readonly string[]>): V {
  const out: Record<string, unknown> = { ...values };
  for (const [flag, old] of Object.entries(aliases)) {
    const given = [flag, ...old].filter((n) => out[n] !== undefined);
    if (given.length > 1) {
      throw new UsageError(`${cmd}: ${given.map((n) => `--${n}`).join(" and ")} are one flag (--${flag}); give it once`);
    }
    const name = given[0];
    if (name !== undefined && name !== flag) out[flag] = out[name];
    for (const n of old) delete out[n];
  }
  return out as V;
}

/** Parse a numeric flag, naming the flag and the bad value on failure. */
export function num(
  cmd: string,
  flag: string,
  value: string | undefined,
  fallback: number,
  opts: { int?: boolean; min?: number } = {},
): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isFinite(v) || (opts.int && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min)) {
    const kind = opts.int ? "an integer" : "a number";
    const bound = opts.min !== undefined ? ` >= ${opts.min}` : "";
    throw new UsageError(`${cmd}: --${flag} must be ${kind}${bound} (got '${value}')`);
  }
  return v;
}

/** The signals that stop a training run with a checkpoint: Ctrl-C, `kill` (and systemd, docker
 *  stop, a job scheduler's timeout), and the terminal going away. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Run a training job so that the first SIGINT, SIGTERM or SIGHUP asks it (through the AbortSignal)
 * to save a checkpoint after the current step and stop; a second one gets Node's default and exits
 * at once. onInterrupt runs before the notice (e.g. to end a progress line). Resolves with the
 * job's result and the exit status for an interrupted run: 128 + the signal's number (130 for Ctrl-C).
 */
export async function withCheckpointOnInterrupt<T>(
  job: (signal: AbortSignal) => Promise<T>,
  onInterrupt?: () => void,
): Promise<{ result: T; interruptedExit: number }> {
  const abort = new AbortController();
  let interruptedExit = 130;
  const onSignal = (sig: NodeJS.Signals) => {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    interruptedExit = 128 + (osConstants.signals[sig] ?? 2);
    if (sig === "SIGHUP") {
      // The terminal is gone: writing to it fails, which must not stop the checkpoint.
      process.stdout.on("error", () => {});
      process.stderr.on("error", () => {});
    }
    onInterrupt?.();
    const again = sig === "SIGINT" ? "Ctrl-C again" : `${sig} again`;
    process.stderr.write(
      `\n${sig === "SIGINT" ? "interrupted" : `${sig} received`}: saving a checkpoint after this step (${again} to quit without saving)\n`,
    );
    abort.abort(sig);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    return { result: await job(abort.signal), interruptedExit };
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}

/**
 * Run a training job with progress on stderr (a redrawn bar on a terminal, plain lines elsewhere)
 * and SIGINT/SIGTERM/SIGHUP saving a checkpoint (withCheckpointOnInterrupt).
 */
export async function runWithProgress<T>(
  job: (hooks: { onLog: (e: LoopEvent) => void; signal: AbortSignal }) => Promise<T>,
): Promise<{ result: T; interruptedExit: number }> {
  const progress = progressReporter(process.stderr);
  try {
    return await withCheckpointOnInterrupt((signal) => job({ onLog: progress.onLog, signal }), progress.done);
  } finally {
    progress.done();
  }
}

/** The flags every training command (train, pretrain-mlm) shares: data, output, resuming, the
 *  optimiser and schedule, evaluation and checkpoint intervals. */
export const TRAINING_RUN_FLAGS = {
  data: { type: "string" },
  out: { type: "string" },
  resume: { type: "boolean" },
  overwrite: { type: "boolean" },
  "batch-size": { type: "string" },
  "max-steps": { type: "string" },
  "learning-rate": { type: "string" },
  "min-lr": { type: "string" },
  "warmup-steps": { type: "string" },
  "weight-decay": { type: "string" },
  "grad-clip": { type: "string" },
  seed: { type: "string" },
  "eval-interval": { type: "string" },
  "checkpoint-interval": { type: "string" },
} as const;
