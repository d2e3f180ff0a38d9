// `npm run bench`: moxing's speed beside PyTorch's, measured in the same invocation.
//
//   npm run bench                  a readable table
//   npm run bench -- --json        the same, plus one JSON object on the last line
//   npm run bench -- --quick       one turn, fewer repetitions (a smoke run)
//   npm run bench -- --turns N     N alternating turns (default 3)
//
// The two sides take turns (PyTorch, moxing, PyTorch, moxing, ...), so a shared machine's drift hits
// both alike; the tables give each side's median over the turns and the median (and range) of the
// per-turn ratios. MOXING_ISA=avx512|avx2|neon|generic runs every moxing kernel family on that
// instruction set (the header says which set served each).
//
// GEMM runs in child processes, one per thread count (MOXING_THREADS is read at start-up); the
// PyTorch figures come from bench/torch_bench.py and bench/torch_gemm_bench.py run by
// /usr/bin/python3 with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that child only (they
// halve OpenBLAS's speed on this CPU). Without torch the torch_* fields are null.

import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { nativeInfo } from "../src/backends/native/index.js";
import * as mx from "../src/index.js";
import { median, timeIt } from "./timing.js";
import { torchOrNull } from "./torch.js";
import { type BenchConfig, gptTrainStep, MEDIUM, SMALL } from "./workloads.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const asJson = argv.includes("--json");
const turnsAt = argv.indexOf("--turns");
const turns = quick ? 1 : turnsAt >= 0 ? Math.max(1, Number(argv[turnsAt + 1])) : 3;

const SHAPES: [number, number, number][] = [
  [64, 768, 768],
  [512, 768, 768],
  [512, 3072, 768],
  [1024, 1024, 1024],
];

// ---- workers (run in a child process with MOXING_THREADS set) --------------------------------------

function gemmWorker(): void {
  const be = mx.getBackend();
  const out = SHAPES.map(([m, n, k]) => {
    const a = mx.randn([m, k]).data as Float32Array;
    const b = mx.randn([k, n]).data as Float32Array;
    const c = new Float32Array(m * n);
    const A = { data: a, offset: 0, batchStride: 0, rowStride: k, colStride: 1 };
    const B = { data: b, offset: 0, batchStride: 0, rowStride: n, colStride: 1 };
    const ms = timeIt(() => be.matmul(A, B, c, 1, m, n, k), quick ? 3 : 9);
    return { m, n, k, gflops: (2 * m * n * k) / (ms * 1e6) };
  });
  console.log(JSON.stringify({ backend: be.name, threads: be.threads?.() ?? 1, gemm: out }));
}

// ---- the parent ------------------------------------------------------------------------------------

function runChild(env: Record<string, string>, args: string[]): unknown {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`bench worker failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string);
}

function opOverhead(): { op_overhead_us: number; op_in_arena_us: number; kernel_call_us: number } {
  const a = mx.randn([768]);
  const b = mx.randn([768]);
  const calls = 10000;
  const perCall = (fn: () => void) => {
    for (let i = 0; i < 1000; i++) fn();
    return (
      (median(
        [0, 1, 2].map(() =>
          timeIt(
            () => {
              for (let i = 0; i < calls; i++) fn();
            },
            1,
            0,
          ),
        ),
      ) /
        calls) *
      1000
    );
  };
  const be = mx.getBackend();
  const out = new Float32Array(768);
  // In a training step ops run inside a MemoryArena, which skips the zero-filled allocation.
  const arena = new mx.MemoryArena();
  let n = 0;
  const inArena = perCall(() => {
    if (++n % 1000 === 0) arena.reset();
    arena.run(() => a.add(b));
  });
  return { op_overhead_us: perCall(() => a.add(b)), op_in_arena_us: inArena, kernel_call_us: perCall(() => be.binary("add", a, b, out)) };
}

function generation(model: mx.GPT, cfg: BenchConfig, tokens: number): number {
  const n = Math.min(tokens, cfg.block_size - 1);
  const t0 = performance.now();
  let count = 0;
  for (const _ of mx.generateIds(model, [0], { temperature: 0, maxNewTokens: n })) count++;
  return count / ((performance.now() - t0) / 1000);
}

/** Median and range of per-turn ratios (null where a side is missing in a turn). */
function ratioStats(xs: (number | null)[]): { median: number; min: number; max: number } | null {
  const r = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return r.length ? { median: median(r), min: Math.min(...r), max: Math.max(...r) } : null;
}

function main(): void {
  if (argv[0] === "--worker") {
    gemmWorker();
    return;
  }
  const backend = mx.getBackend().name;
  const cpu = cpus()[0]?.model ?? "unknown";
  const all = cpus().length;
  const info = nativeInfo();
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const families = Object.entries(info.kernels);
  const isaLine = families.every(([, v]) => v === info.isa) ? info.isa : families.map(([k, v]) => `${k} ${v}`).join(", ");
  log(
    `moxing bench: backend ${backend}${backend === "native" ? ` (kernels: ${isaLine}; this CPU runs ${info.available.join(", ")})` : ""}, ${cpu}, ${all} cores, ${turns} turn(s)${quick ? " (quick)" : ""}`,
  );

  // ---- GEMM: turns of PyTorch (1 and all threads) then moxing (1 and all threads) ----
  type TorchGemm = { results: { m: number; n: number; k: number; threads: number; gflops: number }[] };
  type Row = { m: number; n: number; k: number; threads: number; moxing: number[]; torch: (number | null)[] };
  const rows: Row[] = [];
  const threadCounts = [...new Set([1, all])];
  for (let turn = 0; turn < turns; turn++) {
    const torchGemm = threadCounts.flatMap(
      (t) =>
        (
          torchOrNull(
            "torch_gemm_bench.py",
            ["--threads", String(t), "--layouts", "nn", "--reps", quick ? "3" : "9"],
            t,
          ) as TorchGemm | null
        )?.results ?? [],
    );
    for (const threads of threadCounts) {
      const r = runChild({ MOXING_THREADS: String(threads) }, ["--worker"]) as {
        gemm: { m: number; n: number; k: number; gflops: number }[];
      };
      for (const g of r.gemm) {
        let row = rows.find((x) => x.m === g.m && x.n === g.n && x.k === g.k && x.threads === threads);
        if (!row) {
          row = { m: g.m, n: g.n, k: g.k, threads, moxing: [], torch: [] };
          rows.push(row);
        }
        row.moxing.push(g.gflops);
        row.torch.push(torchGemm.find((x) => x.m === g.m && x.n === g.n && x.k === g.k && x.threads === threads)?.gflops ?? null);
      }
    }
  }
  const gemm = rows.map((r) => {
    const t = r.torch.filter((x): x is number => x !== null);
    return {
      m: r.m,
      n: r.n,
      k: r.k,
      threads: r.threads,
      gflops: median(r.moxing),
      torch_gflops: t.length ? median(t) : null,
      ratio: ratioStats(r.moxing.map((x, i) => (r.torch[i] ? x / (r.torch[i] as number) : null))),
    };
  });

  // ---- training step and generation: turns of PyTorch (1 and all threads, the better counts) then moxing ----
  const configs = quick ? [SMALL] : [SMALL, MEDIUM];
  // PyTorch eager on this 2-core machine is sometimes faster on one thread than on two (OpenBLAS
  // threads contend), so it gets both and the better figure counts, in every turn.
  type TorchRun = {
    threads: number;
    op_overhead_us: number;
    configs: { train: { ms_per_step: number; tokens_per_s: number }; generate: { tokens_per_s: number } }[];
  };
  type Turn = {
    moxing: { ms_per_step: number; gen_tokens_per_s: number };
    torch: { ms_per_step: number; train_threads: number; gen_tokens_per_s: number; gen_threads: number } | null;
  };
  const perConfig: Turn[][] = configs.map(() => []);
  const torchOverheads: number[] = [];
  const steps = (cfg: BenchConfig) => (quick ? 3 : cfg === MEDIUM ? 3 : 10);
  const models = configs.map((cfg) => ({ cfg, step: gptTrainStep(cfg), gen: new mx.GPT({ ...cfg }, { seed: 0 }) }));
  for (let turn = 0; turn < turns; turn++) {
    for (const [i, cfg] of configs.entries()) {
      const torchRuns = threadCounts
        .map(
          (t) =>
            torchOrNull(
              "torch_bench.py",
              ["--threads", String(t), "--configs", JSON.stringify([cfg]), "--steps", String(steps(cfg))],
              t,
            ) as TorchRun | null,
        )
        .filter((r): r is TorchRun => r !== null);
      for (const r of torchRuns) torchOverheads.push(r.op_overhead_us);
      const bestTrain = torchRuns.reduce<TorchRun | null>(
        (b, r) => (!b || (r.configs[0]?.train.ms_per_step ?? Infinity) < (b.configs[0]?.train.ms_per_step ?? Infinity) ? r : b),
        null,
      );
      const bestGen = torchRuns.reduce<TorchRun | null>(
        (b, r) => (!b || (r.configs[0]?.generate.tokens_per_s ?? 0) > (b.configs[0]?.generate.tokens_per_s ?? 0) ? r : b),
        null,
      );
      const m = models[i] as (typeof models)[number];
      const ms = timeIt(m.step.step, steps(cfg));
      const gen = generation(m.gen, cfg, 100);
      (perConfig[i] as Turn[]).push({
        moxing: { ms_per_step: ms, gen_tokens_per_s: gen },
        torch:
          bestTrain?.configs[0] && bestGen?.configs[0]
            ? {
                ms_per_step: bestTrain.configs[0].train.ms_per_step,
                train_threads: bestTrain.threads,
                gen_tokens_per_s: bestGen.configs[0].generate.tokens_per_s,
                gen_threads: bestGen.threads,
              }
            : null,
      });
    }
  }
  const overhead = opOverhead();
  const tokens = (cfg: BenchConfig, ms: number) => (cfg.batch_size * cfg.block_size) / (ms / 1000);
  const results = configs.map((cfg, i) => {
    const ts = perConfig[i] as Turn[];
    const tt = ts.map((t) => t.torch).filter((t): t is NonNullable<Turn["torch"]> => t !== null);
    const mxMs = median(ts.map((t) => t.moxing.ms_per_step));
    const torchMs = tt.length ? median(tt.map((t) => t.ms_per_step)) : null;
    return {
      config: cfg,
      train: { ms_per_step: mxMs, tokens_per_s: tokens(cfg, mxMs) },
      generate: { tokens_per_s: median(ts.map((t) => t.moxing.gen_tokens_per_s)) },
      torch_train:
        torchMs === null ? null : { ms_per_step: torchMs, tokens_per_s: tokens(cfg, torchMs), threads: tt.map((t) => t.train_threads) },
      torch_generate: tt.length ? { tokens_per_s: median(tt.map((t) => t.gen_tokens_per_s)), threads: tt.map((t) => t.gen_threads) } : null,
      train_speedup: ratioStats(ts.map((t) => (t.torch ? t.torch.ms_per_step / t.moxing.ms_per_step : null))),
      generate_ratio: ratioStats(ts.map((t) => (t.torch ? t.moxing.gen_tokens_per_s / t.torch.gen_tokens_per_s : null))),
      turns: ts,
    };
  });

  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "-" : x.toFixed(d));
  const rs = (r: { median: number; min: number; max: number } | null) =>
    r ? `${r.median.toFixed(2)} (${r.min.toFixed(2)}-${r.max.toFixed(2)})` : "-";
  log(`\nGEMM fp32, GFLOP/s (median over ${turns} turn(s) of the median of ${quick ? 3 : 9} runs)`);
  log("    m     n     k  threads   moxing    torch   ratio (range over turns)");
  for (const g of gemm) {
    log(
      `${String(g.m).padStart(5)} ${String(g.n).padStart(5)} ${String(g.k).padStart(5)} ${String(g.threads).padStart(8)} ${f(g.gflops).padStart(8)} ${f(g.torch_gflops).padStart(8)}   ${rs(g.ratio)}`,
    );
  }
  const torchOverhead = torchOverheads.length ? Math.min(...torchOverheads) : null;
  log(
    `\nper-op overhead (add of two 768-float vectors): tensor op ${f(overhead.op_overhead_us, 2)} us (${f(overhead.op_in_arena_us, 2)} us in a step arena), kernel call ${f(overhead.kernel_call_us, 2)} us; torch.add ${f(torchOverhead, 2)} us`,
  );
  log("\nGPT training step (forward + backward + clip + AdamW) and generation (KV cache, batch 1)");
  for (const r of results) {
    const c = r.config;
    log(`  n_layer=${c.n_layer} n_head=${c.n_head} n_embd=${c.n_embd} block_size=${c.block_size} batch_size=${c.batch_size}`);
    log(
      `    train: moxing ${f(r.train.ms_per_step)} ms/step (${f(r.train.tokens_per_s, 0)} tok/s); torch ${f(r.torch_train?.ms_per_step)} ms/step (threads per turn ${r.torch_train?.threads.join(",") ?? "-"}); speed-up ${rs(r.train_speedup)}`,
    );
    log(
      `    generate: moxing ${f(r.generate.tokens_per_s, 0)} tok/s; torch ${f(r.torch_generate?.tokens_per_s, 0)} tok/s (threads per turn ${r.torch_generate?.threads.join(",") ?? "-"}); ratio ${rs(r.generate_ratio)}`,
    );
  }
  const result = {
    backend,
    isa: info.isa,
    kernels: info.kernels,
    cpu,
    turns,
    gemm,
    op_overhead_us: overhead.op_overhead_us,
    op_in_arena_us: overhead.op_in_arena_us,
    kernel_call_us: overhead.kernel_call_us,
    torch_op_overhead_us: torchOverhead,
    train_step: results[0],
    models: results,
  };
  if (asJson) console.log(JSON.stringify(result));
}

main();
