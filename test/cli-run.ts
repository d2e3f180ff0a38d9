// Running the `moxing` CLI from tests: spawn it from the repo root, collect its output, and check
// that a failed command is one line on stderr with no stack trace.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Run `moxing ...args` from the repo root; `onStderr` may act on the process as output arrives. */
export function moxing(args: string[], onStderr?: (text: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    // MOXING_QUIET: without the native addon the one-time fallback notice would be a second
    // stderr line (that notice has its own test in test/backends/native.test.ts).
    const env: NodeJS.ProcessEnv = { ...process.env, MOXING_QUIET: "1" };
    delete env.MOXING_DEBUG;
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: repo, env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
    });
    p.stderr.on("data", (d) => {
      stderr += d;
      onStderr?.(stderr, (sig) => p.kill(sig));
    });
    p.on("error", reject);
    p.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A failed command: non-zero exit (the given code, if any), exactly one line on stderr, no stack trace. */
export function assertOneLineError(r: Run, pattern: RegExp, code?: number): void {
  assert.notEqual(r.code, 0, `expected failure, got success: ${r.stdout}`);
  if (code !== undefined) assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] as string, /^moxing: /);
  assert.match(lines[0] as string, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
}
