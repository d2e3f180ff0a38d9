// Running the PyTorch side of a benchmark: Debian's torch (/usr/bin/python3) with its best
// settings. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the child only (they halve
// OpenBLAS's speed on this CPU), and OpenBLAS's and OpenMP's thread counts are set to the count being
// measured: OpenBLAS starts its own pthreads whatever torch.set_num_threads says, so without them a
// "1 thread" figure is really all cores.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

// From bench/ under tsx, or from dist/bench/ when compiled.
// The Python peers sit beside this file in bench/ (also when run from dist/bench/, which has no .py files).
const PEERS = fileURLToPath(new URL(import.meta.url.includes("/dist/") ? "../../bench/" : "./", import.meta.url));

export type TorchRun<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Run bench/<script> on `threads` threads and parse the JSON object on its last line. Not ok when
 *  there is no python3 or no torch (the reason says which); any other failure throws. */
export function runTorch<T>(script: string, args: readonly string[], threads: number): TorchRun<T> {
  if (!existsSync("/usr/bin/python3")) return { ok: false, reason: "no /usr/bin/python3" };
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync("/usr/bin/python3", [`${PEERS}${script}`, ...args], { env, encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    if (/No module named 'torch'/.test(r.stderr)) return { ok: false, reason: "/usr/bin/python3 has no torch" };
    throw new Error(`${script} failed: ${(r.stderr || String(r.error)).trim().split("\n").slice(-3).join(" ")}`);
  }
  return { ok: true, value: JSON.parse(r.stdout.trim().split("\n").pop() as string) as T };
}

/** runTorch's value, or null when torch is unavailable. */
export function torchOrNull<T>(script: string, args: readonly string[], threads: number): T | null {
  const r = runTorch<T>(script, args, threads);
  return r.ok ? r.value : null;
}
