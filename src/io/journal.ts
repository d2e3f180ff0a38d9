// The checkpoint journal: a set of files written into a directory so that it is never half-written
// and its files always belong together, whatever the model (GPT, BERT, and every later one).
//
//   1. every file is written and fsynced into DIR/.checkpoint-tmp-<pid>/, with a MANIFEST.json
//      listing the files and any stale files to delete (e.g. trainer_state.json when only a model
//      is saved);
//   2. that directory is renamed to DIR/.checkpoint-commit: the COMMIT POINT (one atomic rename);
//   3. each file is renamed from there into DIR (each rename atomic), stale files are deleted, and
//      .checkpoint-commit is removed.
// A crash before 2 leaves the previous set untouched (the temp dir is garbage, removed later). A
// crash during 3 leaves a complete new set in .checkpoint-commit: readers take each file from there
// when present (journaledFile), and the next writer or resume rolls it forward (recoverCommit).
// Files of DIR that are not part of a set (metrics.jsonl, data) are never touched.
//
// A directory handed to us may be hostile, and recovery runs before anything else looks at it, so
// the journal trusts nothing in it: manifest names must be plain file names of DIR (no "/", no
// ".."), a .checkpoint-commit or .checkpoint-tmp-* that is a symbolic link is refused rather than
// followed, and only regular files are moved into DIR. Writers take the directory's lock (lock.ts).

import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isRecord } from "../util/json.js";
import { fsyncDir, writeFileSynced } from "./atomic.js";
import { FILE_LIMITS, makeOutputDir, readTextFileChecked } from "./files.js";
import { processAlive, withDirLock } from "./lock.js";

export const COMMIT_DIR = ".checkpoint-commit";
const TMP_PREFIX = ".checkpoint-tmp-";
const MANIFEST = "MANIFEST.json";

/** A damaged or hostile journal; the message names the path and says what to do. */
export class JournalError extends Error {}

/** A plain file name of a directory: no separators, not "." or "..", no NUL, not empty. */
export function isPlainFileName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[/\\\0]/.test(name);
}

function lstatOrNull(path: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** The files and the stale-file list of an interrupted commit, or null when there is none. */
function pendingCommit(dir: string): { files: string[]; remove: string[] } | null {
  const commit = join(dir, COMMIT_DIR);
  const st = lstatOrNull(commit);
  if (!st) return null;
  if (!st.isDirectory()) {
    throw new JournalError(
      `${commit}: an interrupted checkpoint commit must be a directory, but this is ${st.isSymbolicLink() ? "a symbolic link" : "not one"}; ` +
        "moxing never writes that: remove it if you trust the rest of the directory",
    );
  }
  let remove: string[] = [];
  const manifest = join(commit, MANIFEST);
  if (lstatOrNull(manifest)?.isFile()) {
    let m: unknown;
    try {
      m = JSON.parse(readTextFileChecked(manifest, { maxBytes: FILE_LIMITS.config }));
    } catch {
      m = null; // cut short: move what is there and delete nothing
    }
    const listed = isRecord(m) && Array.isArray(m.remove) ? m.remove : [];
    for (const name of listed) {
      if (typeof name !== "string" || !isPlainFileName(name)) {
        throw new JournalError(
          `${manifest}: names ${JSON.stringify(name)} to delete, which is not a file of this directory; ` +
            `the directory is damaged or was made to reach outside itself: remove ${commit} if you trust the rest of it`,
        );
      }
    }
    remove = listed as string[];
  }
  // Only regular files are part of a commit; anything else (a link planted there) is left alone.
  const files = readdirSync(commit).filter((f) => f !== MANIFEST && lstatOrNull(join(commit, f))?.isFile() === true);
  return { files, remove };
}

/**
 * Where to read file `name` of `dir`: from an interrupted commit when it holds the file (it is
 * newer), else from the directory. null when the file is absent (or an interrupted commit deletes it).
 */
export function journaledFile(dir: string, name: string): string | null {
  const pending = pendingCommit(dir);
  if (pending?.files.includes(name)) return join(dir, COMMIT_DIR, name);
  if (pending?.remove.includes(name)) return null;
  const p = join(dir, name);
  return existsSync(p) ? p : null;
}

/** Roll an interrupted commit forward and delete temp dirs of dead writers. Returns true if it rolled forward. */
export function recoverCommit(dir: string): boolean {
  if (!lstatOrNull(dir)?.isDirectory()) return false;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(name.slice(TMP_PREFIX.length));
    // rmSync removes a symbolic link itself, never what it points to.
    if (pid !== process.pid && !processAlive(pid)) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const pending = pendingCommit(dir);
  if (!pending) return false;
  const commit = join(dir, COMMIT_DIR);
  for (const f of pending.files) renameSync(join(commit, f), join(dir, f)); // rename replaces a link, never follows it
  for (const f of pending.remove) rmSync(join(dir, f), { force: true });
  fsyncDir(dir);
  rmSync(commit, { recursive: true, force: true });
  return true;
}

/** Write `files` into `dir` as one set through the journal, and delete the `remove` files (stale
 *  parts of an older set) with them. Takes the directory's lock while it writes. */
export function commitFiles(dir: string, files: ReadonlyMap<string, Uint8Array | string>, remove: readonly string[]): void {
  for (const name of [...files.keys(), ...remove]) {
    if (!isPlainFileName(name)) throw new JournalError(`commitFiles: '${name}' is not a plain file name`);
  }
  makeOutputDir(dir); // errors that say what is wrong (a file in the way, a read-only disk)
  withDirLock(dir, "write a checkpoint", () => {
    recoverCommit(dir);
    const tmp = join(dir, `${TMP_PREFIX}${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    try {
      for (const [name, data] of files) writeFileSynced(join(tmp, name), data, { exclusive: true });
      writeFileSynced(join(tmp, MANIFEST), JSON.stringify({ files: [...files.keys()], remove }), { exclusive: true });
      fsyncDir(tmp);
      renameSync(tmp, join(dir, COMMIT_DIR)); // the commit point
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    fsyncDir(dir);
    recoverCommit(dir);
  });
}
