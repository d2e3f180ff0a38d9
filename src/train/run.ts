// The run directory of a training job, and everything resuming needs, written once for every
// trainer: finding the saved state, refusing to clobber a run by accident, checking the data is
// the same, and cutting metrics.jsonl back to the checkpoint.
//
// A run directory is a model directory (config, weights, tokenizer: the model's own files) plus
//   optimizer.safetensors  AdamW's moments by parameter name (src/io/optimizer.ts)
//   trainer_state.json     { format, step, args, data: { sha256, ... }, rng: { name: state }, ... }:
//                          the loop's counters, the trainer's settings, the data's fingerprint and
//                          every random stream, so a resumed run draws what an uninterrupted one would
//   metrics.jsonl          one JSON object per step
// The checkpoint files are written together through the journal of src/io/checkpoint.ts.

import { closeSync, existsSync, constants as fsConstants, lstatSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DataError } from "../data/text.js";
import { writeFileAtomic } from "../io/atomic.js";
import { FILE_LIMITS, makeOutputDir, readTextFileChecked } from "../io/files.js";
import { lockDir } from "../io/lock.js";
import { CheckpointError, checkpointFile, OPTIMIZER_FILE, readJSONFile, recoverCheckpoint, TRAINER_STATE_FILE } from "../io/model-dir.js";
import type { Generator } from "../tensor/random.js";
import { isRecord } from "../util/json.js";

export const METRICS_FILE = "metrics.jsonl";

export type GenState = ReturnType<Generator["getState"]>;

/** What every trainer_state.json holds; trainers add their own fields. */
export interface SavedState {
  format: string;
  step: number;
  args: Record<string, unknown>;
  data: { sha256: string } & Record<string, unknown>;
  rng: Record<string, GenState>;
  [key: string]: unknown;
}

export interface RunOptions {
  /** The output directory. */
  out: string;
  /** Continue the run saved in `out`. */
  resume?: boolean;
  /** Start afresh even if `out` holds a run (its checkpoint and metrics are replaced). */
  overwrite?: boolean;
  /** The trainer's trainer_state.json format tag (e.g. "moxing-trainer-state"). */
  format: string;
  /** What the run is called in messages ("training run", "fine-tuning run"). */
  kind: string;
  /** Trainer-specific checks of a saved state; throw CheckpointError naming `path` when it is bad. */
  validate?(state: SavedState, path: string): void;
}

function isGenState(v: unknown): boolean {
  return isRecord(v) && Array.isArray(v.s) && v.s.length === 4 && v.s.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32);
}

/** The checks every saved state gets: a damaged file is refused with the field named. */
export function parseSavedState(json: unknown, format: string, path: string): SavedState {
  const bad = (what: string): never => {
    throw new CheckpointError(`${path}: ${what}; the checkpoint is damaged or from another program`);
  };
  if (!isRecord(json)) return bad("expected a JSON object");
  if (json.format !== format) bad(`format is ${JSON.stringify(json.format)}, expected "${format}"`);
  if (!Number.isInteger(json.step) || (json.step as number) < 0) bad("step is missing or invalid");
  if (!isRecord(json.args)) bad("training arguments are missing");
  if (!isRecord(json.data) || typeof json.data.sha256 !== "string") bad("data fingerprint is missing");
  if (!isRecord(json.rng)) return bad("RNG states are missing");
  for (const [name, g] of Object.entries(json.rng)) if (!isGenState(g)) bad(`RNG state 'rng.${name}' is missing or invalid`);
  return json as SavedState;
}

/** Check that a field of a saved state is a generator state (for trainers with more than `rng`). */
export function checkGenState(v: unknown, name: string, path: string): void {
  if (!isGenState(v)) throw new CheckpointError(`${path}: RNG state '${name}' is missing or invalid; the checkpoint is damaged`);
}

export class RunDirectory {
  readonly out: string;
  /** The state of the run being resumed; null for a fresh run. */
  readonly saved: SavedState | null;
  readonly metricsPath: string;
  readonly statePath: string;
  private readonly kind: string;
  private readonly overwrite: boolean;
  private unlock: (() => void) | null = null;

  private constructor(opts: RunOptions, saved: SavedState | null) {
    this.out = opts.out;
    this.saved = saved;
    this.kind = opts.kind;
    this.overwrite = opts.overwrite === true;
    this.metricsPath = join(opts.out, METRICS_FILE);
    this.statePath = join(opts.out, TRAINER_STATE_FILE);
  }

  /**
   * Look at `out` before anything is built: finish an interrupted checkpoint commit, read the saved
   * state when resuming, and refuse to start over a run unless asked to. Nothing is written to a
   * fresh directory until `prepare()`, so a run that fails its checks leaves nothing behind.
   */
  static open(opts: RunOptions): RunDirectory {
    // Hold the lock while looking, so no other run is mid-checkpoint while this one recovers.
    const unlock = isDirectory(opts.out) ? lockDir(opts.out, `open a ${opts.kind}`) : null;
    try {
      return RunDirectory.look(opts);
    } finally {
      unlock?.();
    }
  }

  private static look(opts: RunOptions): RunDirectory {
    const { out } = opts;
    if (existsSync(out)) recoverCheckpoint(out);
    const statePath = join(out, TRAINER_STATE_FILE);
    const raw = readState(out);
    if (opts.resume) {
      if (raw === null) {
        throw new Error(`nothing to resume in '${out}' (no ${TRAINER_STATE_FILE}); run without --resume to start a new ${opts.kind}`);
      }
      if (isRecord(raw) && typeof raw.format === "string" && raw.format !== opts.format) {
        throw new Error(`'${out}' holds a run of another kind (${raw.format}), not a ${opts.kind}; choose another --out`);
      }
      const saved = parseSavedState(raw, opts.format, statePath);
      opts.validate?.(saved, statePath);
      return new RunDirectory(opts, saved);
    }
    if (raw !== null && !opts.overwrite) {
      const what = isRecord(raw) && raw.format === opts.format ? opts.kind : "training run";
      throw new Error(`'${out}' already holds a ${what}; pass --resume to continue it, --overwrite to start over, or choose another --out`);
    }
    return new RunDirectory(opts, null);
  }

  /**
   * The run goes ahead: create the directory and take its lock until close() (a second run on it
   * is refused); a fresh run drops the old checkpoint's training state and metrics, a resumed one
   * forgets the steps logged after its checkpoint.
   */
  prepare(): void {
    makeOutputDir(this.out); // errors that say what is wrong (a file in the way, a read-only disk)
    this.unlock = lockDir(this.out, `${this.kind} (pid ${process.pid})`);
    try {
      // Another run may have written here between open() and now.
      const now = readState(this.out);
      const step = isRecord(now) ? now.step : now;
      if (this.saved ? step !== this.saved.step : now !== null && !this.overwrite) {
        throw new Error(`'${this.out}' changed while this run was starting (another run wrote to it); start again`);
      }
      if (lstatOrNull(this.metricsPath)?.isSymbolicLink()) {
        throw new CheckpointError(
          `${this.metricsPath}: is a symbolic link; moxing writes only the run directory's own files: remove it, or choose another --out`,
        );
      }
      if (this.saved) truncateMetrics(this.metricsPath, this.saved.step);
      else for (const f of [METRICS_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE]) rmSync(join(this.out, f), { force: true });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Append one line to metrics.jsonl (never through a link planted in its place). */
  appendMetrics(line: string): void {
    const flags = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | (fsConstants.O_NOFOLLOW ?? 0);
    const fd = openSync(this.metricsPath, flags, 0o644);
    try {
      const bytes = Buffer.from(`${line}\n`, "utf8");
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    } finally {
      closeSync(fd);
    }
  }

  /** Release the directory (the loop calls it when the run ends, however it ends). */
  close(): void {
    this.unlock?.();
    this.unlock = null;
  }

  /** Refuse to resume on other data than the run was trained on. `what` names the data, `same`
   *  says what to give instead (e.g. "--train/--eval or --dataset"). */
  checkData(sha256: string, what = "the data", same = "data"): void {
    if (this.saved && this.saved.data.sha256 !== sha256) {
      throw new DataError(`${what} differs from the data the run in '${this.out}' was trained on; resume with the same ${same}`);
    }
  }
}

function lstatOrNull(path: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The parsed trainer_state.json of `dir` (from an interrupted commit when it holds one), or null. */
function readState(dir: string): unknown {
  const file = existsSync(dir) ? checkpointFile(dir, TRAINER_STATE_FILE) : null;
  return file ? readJSONFile(file) : null;
}

/** Keep the metrics of steps up to `step` (a killed run may have logged steps after its checkpoint). */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  // A regular file only (a FIFO planted as metrics.jsonl would block the run for ever).
  const keep = readTextFileChecked(path, { maxBytes: FILE_LIMITS.text, what: "the metrics log" })
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
