// Crash-safe file writing: data goes to a temporary file in the same directory, is flushed to disk,
// and is renamed over the destination. rename() within one filesystem is atomic, so a reader (or a
// process restarted after a crash) sees either the old file or the new one, never a mix.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

let counter = 0;

/** Write `data` to `fd` completely and flush it to the disk. */
export function writeAllSync(fd: number, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  fsyncSync(fd);
}

/** Write a file and fsync it (not atomic by itself; see writeFileAtomic). */
export function writeFileSynced(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, "w");
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

/** Replace `path` with `data` atomically: temp file in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${counter++}`);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** writeFileAtomic for data given in pieces (large files are never assembled in memory). */
export function writeFileAtomicChunks(path: string, chunks: Iterable<Uint8Array>): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${counter++}`);
  try {
    const fd = openSync(tmp, "w");
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
