// One writer per directory: a training run (and any checkpoint write) holds DIR/.moxing.lock, a
// small JSON file naming its process. A second run on the same directory is refused with a message
// saying who holds it; a lock left by a process that died (SIGKILL, a power cut) is recognised as
// stale - its process is gone, or the pid now belongs to a process started later - and taken over.
//
// The lock is re-entrant within a process (the training loop holds it while the journal takes it
// for each checkpoint) and is removed when the last holder releases it, or when the process exits.

import { closeSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { isRecord } from "../util/json.js";
import { describeSystemError, FileError } from "./files.js";

export const LOCK_FILE = ".moxing.lock";

/** Another live process holds the directory, or its lock cannot be judged. */
export class LockError extends Error {}

/** Whether a process with this pid exists (on this machine). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** When a process started (Linux: clock ticks since boot, from /proc), to tell a reused pid apart; null elsewhere. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null; // field 22; the name in (...) may hold spaces
  } catch {
    return null;
  }
}

interface LockInfo {
  pid: number;
  host: string;
  started: string | null;
  what: string;
  since: string;
}

const held = new Map<string, { count: number; path: string }>();
let exitHook = false;

function release(key: string): void {
  const h = held.get(key);
  if (!h) return;
  if (--h.count > 0) return;
  held.delete(key);
  try {
    const info = JSON.parse(readFileSync(h.path, "utf8")) as LockInfo;
    if (info.pid === process.pid) rmSync(h.path, { force: true });
  } catch {
    // already gone
  }
}

/** Why an existing lock cannot be taken over, or null when it is stale. */
function liveHolder(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null; // removed meanwhile
  }
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch {
    info = null;
  }
  if (!isRecord(info) || typeof info.pid !== "number") {
    // Empty or cut short: a process that died between creating and writing it, unless that was just now.
    const age = Date.now() - statSync(path).mtimeMs;
    return age > 10_000 ? null : "a process that is starting";
  }
  const who = `process ${info.pid}${typeof info.what === "string" ? ` (${info.what}, since ${String(info.since)})` : ""}`;
  if (info.host !== hostname()) return `${who} on ${String(info.host)}`;
  if (info.pid === process.pid) return null; // this process, not through this module's bookkeeping: a leftover
  if (!processAlive(info.pid)) return null;
  const started = startTime(info.pid);
  if (started !== null && typeof info.started === "string" && started !== info.started) return null; // the pid was reused
  return who;
}

/**
 * Take the lock of `dir` (which must exist) for `what` ("train", "write a checkpoint"); returns the
 * function that releases it. Throws LockError naming the holder when another live process has it.
 */
export function lockDir(dir: string, what: string): () => void {
  const key = realpathSync(dir);
  const mine = held.get(key);
  if (mine) {
    mine.count++;
    return () => release(key);
  }
  const path = join(key, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx"); // O_CREAT | O_EXCL: fails if anything is there, a link included
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== "EEXIST") {
        // Not being able to create a file in the directory is about the directory (read-only, no
        // permission, full): say so in those words.
        err.path = dir;
        throw new FileError(describeSystemError(err) ?? err.message);
      }
      const holder = liveHolder(path);
      if (holder !== null || attempt > 0) {
        throw new LockError(
          `'${dir}' is in use by ${holder ?? "another process"}; wait for it to finish or choose another directory ` +
            `(if no moxing process is using it, delete ${path})`,
        );
      }
      rmSync(path, { force: true }); // stale: its process is gone
      continue;
    }
    try {
      const info: LockInfo = { pid: process.pid, host: hostname(), started: startTime(process.pid), what, since: new Date().toISOString() };
      writeSync(fd, JSON.stringify(info));
    } finally {
      closeSync(fd);
    }
    break;
  }
  held.set(key, { count: 1, path });
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const h of held.values()) rmSync(h.path, { force: true });
    });
  }
  return () => release(key);
}

/** Run fn holding the lock of `dir`. */
export function withDirLock<T>(dir: string, what: string, fn: () => T): T {
  const unlock = lockDir(dir, what);
  try {
    return fn();
  } finally {
    unlock();
  }
}
