// Peak memory of moxing beside PyTorch's for the GPT training step and for generation, measured in
// the same invocation.
//
//   node --import tsx bench/memory.ts                 a readable table
//   node --import tsx bench/memory.ts --json          the same, plus one JSON object on the last line
//   node --import tsx bench/memory.ts --steps 3       training steps per measurement (default 3)
//
// Every measurement runs in a fresh child process, so one workload's peak cannot hide another's:
// the child reads VmRSS from /proc/self/status once its imports are done (the baseline: Node, tsx
// and the native addon here; Python and `import torch` on the PyTorch side), resets the peak
// (`5` into /proc/self/clear_refs) so start-up's own peak does not count, builds the model, runs
// the workload and reads VmHWM (the peak resident set size). The PyTorch side is
// bench/torch_memory.py run by /usr/bin/python3 with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
// and OPENBLAS_NUM_THREADS/OMP_NUM_THREADS set to 2, as bench/bench.ts runs its peers. Without
// torch the torch fields are null. MB here means 2^20 bytes (/proc's kB are 1024 bytes).

import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateIds } from "../src/generate/index.js";
import * as mx from "../src/index.js";
import { torchOrNull } from "./torch.js";
import { type BenchConfig, gptTrainStep, MEDIUM, SMALL } from "./workloads.js";

const argv = process.argv.slice(2);
const asJson = argv.includes("--json");

const CONFIGS = { small: SMALL, medium: MEDIUM };
type ConfigName = keyof typeof CONFIGS;
type Case = "train" | "generate";
const TORCH_THREADS = 2;
const GEN_TOKENS = 64;

function option(name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? (argv[i + 1] as string) : fallback;
}
const steps = Number(option("--steps", "3"));

/** VmRSS and VmHWM of this process, in MB. */
function procMemory(): { rss_mb: number; hwm_mb: number } {
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss_mb: kb("VmRSS") / 1024, hwm_mb: kb("VmHWM") / 1024 };
}

/** Reset VmHWM to the current RSS (Linux 4.0+); false where the kernel refuses. */
function resetPeak(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

// ---- the worker: one workload in this (fresh) process -----------------------------------------

interface Measurement {
  baseline_mb: number;
  peak_mb: number;
  delta_mb: number;
  hwm_reset: boolean;
  params: number;
}

interface MoxingMeasurement extends Measurement {
  threads: number;
  /** The training step's arena at its high-water mark (null for generation: its arena is internal). */
  arena_mb: number | null;
  heap_used_mb: number;
  external_mb: number;
}

function worker(kind: Case, cfg: BenchConfig): MoxingMeasurement {
  const base = procMemory();
  const hwmReset = resetPeak();
  let model: mx.GPT;
  let arena: mx.MemoryArena | null = null;
  if (kind === "train") {
    // The training step bench/bench.ts times (bench/workloads.ts).
    const w = gptTrainStep(cfg);
    model = w.model;
    arena = w.arena;
    for (let i = 0; i < steps; i++) w.step();
  } else {
    model = new mx.GPT({ ...cfg }, { seed: 0 });
    // Batch 1, greedy, KV cache; generateIds keeps its own arena for each token's activations.
    const n = Math.min(GEN_TOKENS, cfg.block_size - 1);
    let count = 0;
    for (const _ of generateIds(model, [0], { temperature: 0, maxNewTokens: n })) count++;
    if (count !== n) throw new Error(`generated ${count} tokens, expected ${n}`);
  }
  const end = procMemory();
  const mu = process.memoryUsage();
  const MB = 1024 * 1024;
  return {
    baseline_mb: base.rss_mb,
    peak_mb: end.hwm_mb,
    delta_mb: end.hwm_mb - base.rss_mb,
    hwm_reset: hwmReset,
    params: model.numParameters(),
    threads: mx.getBackend().threads?.() ?? 1,
    arena_mb: arena ? arena.bytes / MB : null,
    heap_used_mb: mu.heapUsed / MB,
    external_mb: mu.external / MB,
  };
}

// ---- the parent ----------------------------------------------------------------------------------

function moxingChild(kind: Case, config: ConfigName): MoxingMeasurement {
  const r = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), "--worker", kind, config, "--steps", String(steps)],
    { env: process.env, encoding: "utf8", maxBuffer: 1 << 26 },
  );
  if (r.status !== 0) throw new Error(`memory worker (${kind}, ${config}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as MoxingMeasurement;
}

type TorchMeasurement = Measurement & { torch: string; threads: number };

function torchChild(kind: Case, cfg: BenchConfig): TorchMeasurement | null {
  const args = ["--case", kind, "--config", JSON.stringify(cfg), "--steps", String(steps), "--gen-tokens", String(GEN_TOKENS)];
  return torchOrNull<TorchMeasurement>("torch_memory.py", [...args, "--threads", String(TORCH_THREADS)], TORCH_THREADS);
}

function main(): void {
  if (argv[0] === "--worker") {
    const kind = argv[1] as Case;
    const config = argv[2] as ConfigName;
    if ((kind !== "train" && kind !== "generate") || !(config in CONFIGS)) throw new Error(`bad worker arguments: ${argv.join(" ")}`);
    console.log(JSON.stringify(worker(kind, CONFIGS[config])));
    return;
  }
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`--steps must be a positive integer (got ${option("--steps", "")})`);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const backend = mx.getBackend().name;
  log(
    `moxing memory bench: backend ${backend}, ${steps} training steps, ${GEN_TOKENS} generated tokens (fewer where block_size is smaller)`,
  );

  const rows: { config: BenchConfig; case: Case; moxing: MoxingMeasurement; torch: TorchMeasurement | null }[] = [];
  for (const name of Object.keys(CONFIGS) as ConfigName[]) {
    for (const kind of ["train", "generate"] as const) {
      const moxing = moxingChild(kind, name);
      const torch = torchChild(kind, CONFIGS[name]);
      rows.push({ config: CONFIGS[name], case: kind, moxing, torch });
    }
  }

  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "-" : x.toFixed(d));
  const ratio = (a: number, b: number | null | undefined) => (b ? (a / b).toFixed(2) : "-");
  log("\nPeak resident set size, MB (baseline: RSS after imports, before the model is built; delta: peak - baseline)");
  log("config                     case      params |  moxing base   peak  delta |  torch base   peak  delta | peak ratio  delta ratio");
  for (const r of rows) {
    const c = r.config;
    const name = `L${c.n_layer} H${c.n_head} C${c.n_embd} T${c.block_size} B${c.batch_size}`.padEnd(26);
    const m = r.moxing;
    const t = r.torch;
    log(
      `${name} ${r.case.padEnd(8)} ${(m.params / 1e6).toFixed(2).padStart(6)}M | ${f(m.baseline_mb).padStart(11)} ${f(m.peak_mb).padStart(6)} ${f(m.delta_mb).padStart(6)} | ${f(t?.baseline_mb).padStart(10)} ${f(t?.peak_mb).padStart(6)} ${f(t?.delta_mb).padStart(6)} | ${ratio(m.peak_mb, t?.peak_mb).padStart(10)} ${ratio(m.delta_mb, t?.delta_mb).padStart(12)}`,
    );
  }
  log("\nmoxing detail at the end of each workload (MB): arena high-water mark, V8 heap used, external (ArrayBuffers and native blocks)");
  for (const r of rows) {
    const c = r.config;
    log(
      `  L${c.n_layer} C${c.n_embd} B${c.batch_size} ${r.case.padEnd(8)} arena ${f(r.moxing.arena_mb).padStart(7)}  heap ${f(r.moxing.heap_used_mb).padStart(6)}  external ${f(r.moxing.external_mb).padStart(7)}`,
    );
  }
  if (rows.some((r) => !r.moxing.hwm_reset || (r.torch && !r.torch.hwm_reset))) {
    log("\nnote: /proc/self/clear_refs was not writable somewhere, so that peak includes start-up's own peak");
  }
  const result = {
    backend,
    steps,
    gen_tokens: GEN_TOKENS,
    torch_threads: TORCH_THREADS,
    torch_version: rows.find((r) => r.torch)?.torch?.torch ?? null,
    results: rows.map((r) => ({
      config: r.config,
      case: r.case,
      moxing: r.moxing,
      torch: r.torch,
      peak_ratio: r.torch ? r.moxing.peak_mb / r.torch.peak_mb : null,
      delta_ratio: r.torch ? r.moxing.delta_mb / r.torch.delta_mb : null,
    })),
  };
  if (asJson) console.log(JSON.stringify(result));
}

main();
