// Shared CLI plumbing: the Command shape, a usage error type, and flag parsing with clear errors.

import { existsSync, readFileSync } from "node:fs";
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
    const r = parseArgs({ args: withNegativeValues(argv, options), options, strict: true, allowPositionals: true });
    return { values: r.values as FlagValues<O>, positionals: r.positionals };
  } catch (e) {
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec((e as Error).message);
    if (ambiguous) {
      const flag = ambiguous[1];
      throw new UsageError(`${cmd}: the value after ${flag} starts with '-'; if it is the value, write ${flag}=VALUE`);
    }
    const msg = (e as Error).message.split("\n")[0];
    throw new UsageError(`${cmd}: ${msg}; run 'moxing ${cmd} --help' for the flags`);
  }
}

/** A negative number (or -Infinity, -NaN: the range check names those) as a flag's value. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$|NaN$)/;

/**
 * `--seed -1` as `--seed=-1`. parseArgs takes a value starting with '-' for a possible flag and
 * refuses it as ambiguous; a negative number is never a flag, so it is joined to the string flag
 * before it, and the flag's own range check then says what is allowed.
 */
export function withNegativeValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = a.startsWith("--") && !a.includes("=") ? a.slice(2) : null;
    if (name !== null && options[name]?.type === "string" && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
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

/**
 * Run a training job so that the first Ctrl-C asks it (through the AbortSignal) to save a
 * checkpoint after the current step and stop; a second Ctrl-C gets Node's default and exits at once.
 * onInterrupt runs before the notice (e.g. to end a progress line).
 */
export async function withCheckpointOnInterrupt<T>(job: (signal: AbortSignal) => Promise<T>, onInterrupt?: () => void): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => {
    onInterrupt?.();
    process.stderr.write("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit without saving)\n");
    abort.abort();
    process.off("SIGINT", onSigint);
  };
  process.on("SIGINT", onSigint);
  try {
    return await job(abort.signal);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/**
 * Run a training job with progress on stderr (a redrawn bar on a terminal, plain lines elsewhere)
 * and Ctrl-C saving a checkpoint (withCheckpointOnInterrupt).
 */
export async function runWithProgress<T>(job: (hooks: { onLog: (e: LoopEvent) => void; signal: AbortSignal }) => Promise<T>): Promise<T> {
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
