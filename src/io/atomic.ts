// Crash-safe file writing: data goes to a temporary file in the same directory, is flushed to disk,
// and is renamed over the destination. rename() within one filesystem is atomic, so a reader (or a
// process restarted after a crash) sees either the old file or the new one, never a mix.
//
// A process killed mid-write leaves its temporary file (.NAME.tmp-PID-N) behind; the next write to
// the same destination deletes those of processes that are gone. Temporary files are created with
// O_EXCL, so a link planted under a temporary name is never written through.

import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { processAlive } from "./lock.js";

let counter = 0;

/** Write `data` to `fd` completely and flush it to the disk. */
export function writeAllSync(fd: number, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  fsyncSync(fd);
}

/** Write a file and fsync it (not atomic by itself; see writeFileAtomic). `exclusive`: fail if
 *  anything (a file, a link) is already there instead of writing through it. */
export function writeFileSynced(path: string, data: Uint8Array | string, opts: { exclusive?: boolean } = {}): void {
  const fd = openSync(path, opts.exclusive ? "wx" : "w");
  try {
    writeAllSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/** Flush a directory's entries (renames, creations) to disk; a no-op where that is unsupported. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open or fsync directories; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Delete the temporary files that writers of `path` killed mid-write left behind. */
export function removeStaleTemps(path: string): void {
  const prefix = `.${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return; // no directory yet: nothing to clean
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) rmSync(join(dirname(path), name), { force: true });
  }
}

/** A fresh temporary name beside `path`, created exclusively (returns its open descriptor). */
function openTemp(path: string): { tmp: string; fd: number } {
  removeStaleTemps(path);
  for (;;) {
    const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${counter++}`);
    try {
      return { tmp, fd: openSync(tmp, "wx") };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // else: someone planted that name; take the next
    }
  }
}

/** Replace `path` with `data` atomically: temp file in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  writeFileAtomicChunks(path, [typeof data === "string" ? Buffer.from(data, "utf8") : data]);
}

/** writeFileAtomic for data given in pieces (large files are never assembled in memory). */
export function writeFileAtomicChunks(path: string, chunks: Iterable<Uint8Array>): void {
  const { tmp, fd } = openTemp(path);
  try {
    try {
      for (const c of chunks) {
        let off = 0;
        while (off < c.length) off += writeSync(fd, c, off, c.length - off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}
