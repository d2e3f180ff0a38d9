// GEMM throughput of the native backend: GFLOP/s (median of 9 runs, 51 for the small products) on
// the transformer shapes and the few-row shapes of generation, on 1 thread and on all threads, for
// A·B ("nn") and A·Wᵀ ("nt", the nn.Linear layout).
//   node --import tsx bench/gemm.ts            (after the addon is built: node scripts/build-native.mjs)
//   node --import tsx bench/gemm.ts --torch    also runs bench/torch_gemm_bench.py for comparison

import { fileURLToPath } from "node:url";
import { nativeBackend, nativeInfo, nativeLoadError, nativeTesting } from "../src/backends/native/index.js";
import type { MatView } from "../src/tensor/backend.js";
import { median } from "./timing.js";
import { torchOrNull } from "./torch.js";

export const GEMM_SHAPES: readonly [number, number, number][] = [
  [64, 768, 768],
  [512, 768, 768],
  [512, 3072, 768],
  [1024, 1024, 1024],
];

/** Few-row products of generation (one token, or a few sequences, at a time): matrix-vector and
 *  small-m paths. Not in bench/torch_gemm_bench.py's list, so the torch column shows "-". */
export const SMALL_GEMM_SHAPES: readonly [number, number, number][] = [
  [1, 768, 768],
  [1, 3072, 768],
  [1, 768, 3072],
  [4, 768, 768],
  [16, 768, 768],
];

export interface GemmResult {
  m: number;
  n: number;
  k: number;
  layout: "nn" | "nt";
  threads: number;
  gflops: number;
  ms: number;
}

export function benchGemm(reps = 9): GemmResult[] {
  const B = nativeBackend;
  if (!B) throw new Error(`native backend unavailable: ${nativeLoadError}`);
  const all = nativeInfo().threads;
  const results: GemmResult[] = [];
  const threadCounts = all > 1 ? [1, all] : [1];
  try {
    for (const threads of threadCounts) {
      nativeTesting.setThreads(threads);
      for (const layout of ["nn", "nt"] as const) {
        for (const [m, n, k] of [...GEMM_SHAPES, ...SMALL_GEMM_SHAPES]) {
          const a: MatView = {
            data: new Float32Array(m * k).map(() => Math.random() - 0.5),
            offset: 0,
            batchStride: 0,
            rowStride: k,
            colStride: 1,
          };
          const bdata = new Float32Array(k * n).map(() => Math.random() - 0.5);
          const b: MatView =
            layout === "nn"
              ? { data: bdata, offset: 0, batchStride: 0, rowStride: n, colStride: 1 }
              : { data: bdata, offset: 0, batchStride: 0, rowStride: 1, colStride: k };
          const out = new Float32Array(m * n);
          for (let i = 0; i < 2; i++) B.matmul(a, b, out, 1, m, n, k);
          const times: number[] = [];
          const runs = m * n * k < 1 << 24 ? Math.max(reps, 51) : reps;
          for (let r = 0; r < runs; r++) {
            const t0 = process.hrtime.bigint();
            B.matmul(a, b, out, 1, m, n, k);
            times.push(Number(process.hrtime.bigint() - t0) / 1e9);
          }
          const t = median(times);
          results.push({ m, n, k, layout, threads, gflops: (2 * m * n * k) / t / 1e9, ms: t * 1e3 });
        }
      }
    }
  } finally {
    nativeTesting.setThreads(all);
  }
  return results;
}

// One torch run per thread count: OpenBLAS's thread count is fixed per process.
function torchResults(): GemmResult[] | null {
  const counts = [...new Set([1, nativeInfo().threads])];
  const runs = counts.map((t) => torchOrNull<{ results: GemmResult[] }>("torch_gemm_bench.py", ["--threads", String(t)], t));
  return runs.every((r) => r !== null) ? runs.flatMap((r) => (r as { results: GemmResult[] }).results) : null;
}

function main(): void {
  const info = nativeInfo();
  console.log(`native GEMM: isa=${info.isa}, threads=${info.threads}`);
  const res = benchGemm();
  const torch = process.argv.includes("--torch") ? torchResults() : null;
  const key = (r: GemmResult) => `${r.m}x${r.n}x${r.k}/${r.layout}/${r.threads}`;
  const tmap = new Map((torch ?? []).map((r) => [key(r), r.gflops]));
  const header = ["shape (m x n x k)", "layout", "threads", "GFLOP/s", "ms"];
  if (torch) header.push("torch GFLOP/s", "ratio");
  const rows = res.map((r) => {
    const row = [`${r.m} x ${r.n} x ${r.k}`, r.layout, String(r.threads), r.gflops.toFixed(1), r.ms.toFixed(3)];
    if (torch) {
      const tg = tmap.get(key(r));
      row.push(tg === undefined ? "-" : tg.toFixed(1), tg ? (r.gflops / tg).toFixed(2) : "-");
    }
    return row;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  if (info.threads > 1) {
    for (const layout of ["nn", "nt"] as const) {
      const sp = GEMM_SHAPES.map(([m, n, k]) => {
        const one = res.find((r) => r.m === m && r.n === n && r.k === k && r.layout === layout && r.threads === 1);
        const many = res.find((r) => r.m === m && r.n === n && r.k === k && r.layout === layout && r.threads === info.threads);
        return one && many ? (many.gflops / one.gflops).toFixed(2) : "-";
      });
      console.log(`speed-up on ${info.threads} threads (${layout}): ${sp.join(" ")}`);
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
