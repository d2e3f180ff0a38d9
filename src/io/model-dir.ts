// Any model's directory, the parts every model shares: the file names, the errors about them,
// where to read a file (from an interrupted checkpoint commit when it holds the file), JSON files,
// and the trainer state. Each model's own files are its io module's (gpt.ts, bert.ts, marian.ts);
// every set of files is written through the checkpoint journal (journal.ts), so a checkpoint is
// never half-written and its files always belong together.
//
// A training checkpoint is a model directory plus
//   optimizer.safetensors  AdamW's moments: "<param>.exp_avg" and "<param>.exp_avg_sq" per parameter,
//                          in the parameters' own (moxing) shapes (optimizer.ts)
//   trainer_state.json     the step, RNG states, training arguments, data fingerprint (train/run.ts)

import { statSync } from "node:fs";
import { join } from "node:path";
import { FILE_LIMITS, readJSONFile as readJSON } from "./files.js";
import { JournalError, journaledFile, recoverCommit } from "./journal.js";

export { commitFiles } from "./journal.js";

export const CONFIG_FILE = "config.json";
export const MODEL_FILE = "model.safetensors";
export const TOKENIZER_FILE = "tokenizer.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const TRAINER_STATE_FILE = "trainer_state.json";
/** Hugging Face's index of a model saved in several safetensors shards. */
export const MODEL_INDEX_FILE = "model.safetensors.index.json";
/** Errors about files on disk; the message names the file. */
export class CheckpointError extends Error {}

// ---- reading ------------------------------------------------------------------------------------

/**
 * Where to read checkpoint file `name` of `dir`: from an interrupted commit when it holds the file
 * (it is newer), else from the directory. null when the file is absent (or an interrupted commit deletes it).
 */
export function checkpointFile(dir: string, name: string): string | null {
  try {
    return journaledFile(dir, name);
  } catch (e) {
    if (e instanceof JournalError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** checkpointFile, or an error naming the missing file. */
export function requireFile(dir: string, name: string): string {
  const p = checkpointFile(dir, name);
  if (!p) throw new CheckpointError(`${join(dir, name)}: file not found; is '${dir}' a moxing model directory?`);
  return p;
}

type FileErrorClass = new (message: string) => Error;

/** A JSON file's contents; unreadable or invalid files raise `Err` naming the file (see io/files.ts:
 *  regular files only, at most maxBytes, syntax errors by line and column). */
export function readJSONFile(path: string, Err: FileErrorClass = CheckpointError, maxBytes: number = FILE_LIMITS.config): unknown {
  return readJSON(path, { Err, maxBytes });
}

/** Raise `Err` unless `dir` is an existing directory. */
export function checkModelDir(dir: string, Err: FileErrorClass = CheckpointError): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new Err(`model directory '${dir}' does not exist`);
  }
  if (!isDir) throw new Err(`'${dir}' is a file, not a model directory`);
}

export function readTrainerState(dir: string): unknown | null {
  const p = checkpointFile(dir, TRAINER_STATE_FILE);
  return p ? readJSONFile(p) : null;
}

// ---- writing ------------------------------------------------------------------------------------

/** Roll an interrupted commit forward and delete temp dirs of dead writers (the journal, journal.ts).
 *  Returns true if it rolled forward. */
export function recoverCheckpoint(dir: string): boolean {
  try {
    return recoverCommit(dir);
  } catch (e) {
    if (e instanceof JournalError) throw new CheckpointError(e.message);
    throw e;
  }
}
