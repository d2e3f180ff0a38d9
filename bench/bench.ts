// `npm run bench`: moxing's speed beside PyTorch's, measured in the same invocation.
//
//   npm run bench                  a readable table
//   npm run bench -- --json        the same, plus one JSON object on the last line
//   npm run bench -- --quick       fewer repetitions (a smoke run)
//
// GEMM runs in child processes, one per thread count (MOXING_THREADS is read at start-up); the
// PyTorch figures come from bench/torch_bench.py and bench/torch_gemm_bench.py run by
// /usr/bin/python3 with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that child only (they
// halve OpenBLAS's speed on this CPU). Without torch the torch_* fields are null.

import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import * as mx from "../src/index.js";
import { median, timeIt } from "./timing.js";
import { torchOrNull } from "./torch.js";
import { type BenchConfig, gptTrainStep, MEDIUM, SMALL } from "./workloads.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const asJson = argv.includes("--json");

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

function trainStep(cfg: BenchConfig, steps: number): { ms_per_step: number; tokens_per_s: number } {
  const ms = timeIt(gptTrainStep(cfg).step, steps);
  return { ms_per_step: ms, tokens_per_s: (cfg.batch_size * cfg.block_size) / (ms / 1000) };
}

function generation(cfg: BenchConfig, tokens: number): { tokens_per_s: number } {
  const model = new mx.GPT({ ...cfg }, { seed: 0 });
  const n = Math.min(tokens, cfg.block_size - 1);
  const t0 = performance.now();
  let count = 0;
  for (const _ of mx.generateIds(model, [0], { temperature: 0, maxNewTokens: n })) count++;
  return { tokens_per_s: count / ((performance.now() - t0) / 1000) };
}

function main(): void {
  if (argv[0] === "--worker") {
    gemmWorker();
    return;
  }
  const backend = mx.getBackend().name;
  const cpu = cpus()[0]?.model ?? "unknown";
  const all = cpus().length;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`moxing bench: backend ${backend}, ${cpu}, ${all} cores${quick ? " (quick)" : ""}`);

  type TorchGemm = { results: { m: number; n: number; k: number; threads: number; gflops: number }[] };
  const torchGemm = [1, all].flatMap(
    (t) =>
      (torchOrNull("torch_gemm_bench.py", ["--threads", String(t), "--layouts", "nn", "--reps", quick ? "3" : "9"], t) as TorchGemm | null)
        ?.results ?? [],
  );
  const gemm: { m: number; n: number; k: number; threads: number; gflops: number; torch_gflops: number | null }[] = [];
  for (const threads of [1, all]) {
    const r = runChild({ MOXING_THREADS: String(threads) }, ["--worker"]) as {
      gemm: { m: number; n: number; k: number; gflops: number }[];
    };
    for (const g of r.gemm) {
      const t = torchGemm.find((x) => x.m === g.m && x.n === g.n && x.k === g.k && x.threads === threads);
      gemm.push({ ...g, threads, torch_gflops: t?.gflops ?? null });
    }
  }

  const configs = quick ? [SMALL] : [SMALL, MEDIUM];
  // PyTorch eager on this 2-core machine is sometimes faster on one thread than on two (OpenBLAS
  // threads contend), so it gets both and the better figure counts.
  type TorchRun = {
    threads: number;
    op_overhead_us: number;
    configs: { train: { ms_per_step: number; tokens_per_s: number }; generate: { tokens_per_s: number } }[];
  };
  const torchRuns = [...new Set([1, all])]
    .map(
      (t) =>
        torchOrNull(
          "torch_bench.py",
          ["--threads", String(t), "--configs", JSON.stringify(configs), "--steps", quick ? "3" : "5"],
          t,
        ) as TorchRun | null,
    )
    .filter((r): r is TorchRun => r !== null);
  const bestOf = <T>(pick: (r: TorchRun) => T | undefined, better: (a: T, b: T) => boolean): (T & { threads: number }) | null =>
    torchRuns.reduce<(T & { threads: number }) | null>((best, r) => {
      const v = pick(r);
      return v !== undefined && (!best || better(v, best)) ? { ...v, threads: r.threads } : best;
    }, null);
  const torchRest = torchRuns.length ? { op_overhead_us: Math.min(...torchRuns.map((r) => r.op_overhead_us)) } : null;
  const overhead = opOverhead();
  const models = configs.map((cfg, i) => ({
    config: cfg,
    train: trainStep(cfg, quick ? 3 : 5),
    generate: generation(cfg, 100),
    torch_train: bestOf(
      (r) => r.configs[i]?.train,
      (a, b) => a.ms_per_step < b.ms_per_step,
    ),
    torch_generate: bestOf(
      (r) => r.configs[i]?.generate,
      (a, b) => a.tokens_per_s > b.tokens_per_s,
    ),
  }));

  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "-" : x.toFixed(d));
  log("\nGEMM fp32, GFLOP/s (median)");
  log("    m     n     k  threads   moxing    torch   ratio");
  for (const g of gemm) {
    log(
      `${String(g.m).padStart(5)} ${String(g.n).padStart(5)} ${String(g.k).padStart(5)} ${String(g.threads).padStart(8)} ${f(g.gflops).padStart(8)} ${f(g.torch_gflops).padStart(8)} ${g.torch_gflops ? (g.gflops / g.torch_gflops).toFixed(2).padStart(7) : "      -"}`,
    );
  }
  log(
    `\nper-op overhead (add of two 768-float vectors): tensor op ${f(overhead.op_overhead_us, 2)} us (${f(overhead.op_in_arena_us, 2)} us in a step arena), kernel call ${f(overhead.kernel_call_us, 2)} us; torch.add ${f(torchRest?.op_overhead_us, 2)} us`,
  );
  log("\nGPT training step (forward + backward + clip + AdamW) and generation (KV cache, batch 1)");
  for (const m of models) {
    const c = m.config;
    log(`  n_layer=${c.n_layer} n_head=${c.n_head} n_embd=${c.n_embd} block_size=${c.block_size} batch_size=${c.batch_size}`);
    log(
      `    train: moxing ${f(m.train.ms_per_step)} ms/step (${f(m.train.tokens_per_s, 0)} tok/s); torch ${f(m.torch_train?.ms_per_step)} ms/step (${f(m.torch_train?.tokens_per_s, 0)} tok/s, ${m.torch_train?.threads ?? "-"} thread(s)); speed-up ${m.torch_train ? (m.torch_train.ms_per_step / m.train.ms_per_step).toFixed(2) : "-"}x`,
    );
    log(
      `    generate: moxing ${f(m.generate.tokens_per_s, 0)} tok/s; torch ${f(m.torch_generate?.tokens_per_s, 0)} tok/s (${m.torch_generate?.threads ?? "-"} thread(s))`,
    );
  }
  const result = {
    backend,
    cpu,
    gemm,
    op_overhead_us: overhead.op_overhead_us,
    op_in_arena_us: overhead.op_in_arena_us,
    kernel_call_us: overhead.kernel_call_us,
    torch_op_overhead_us: torchRest?.op_overhead_us ?? null,
    train_step: models[0],
    models,
  };
  if (asJson) console.log(JSON.stringify(result));
}

main();
