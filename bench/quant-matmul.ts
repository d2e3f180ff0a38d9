// Throughput of the native quantised matrix product (quantMatmul) alone, per weight type, on the
// projections of Qwen3-0.6B's or SmolLM2-135M's shape, for prompt processing (M activation rows) and
// generation (M = 1):
// GOP/s (2·M·N·K per second), median of --reps runs, on 1 and 2 threads. Weights are moxing's own
// quantisation of random normal values (one layer's; --layers copies it).
//   node --import tsx bench/quant-matmul.ts [--model qwen3-0.6b|smollm2-135m] [--layers 1] [--m 128,1]
//                                           [--types Q8_0,Q4_0,Q5_0,Q4_K,Q5_K,Q6_K,F16,BF16] [--threads 1,2] [--reps 7] [--group]
// MOXING_NATIVE_ADDON=path/to/moxing_native.node measures another build (e.g. main's) with this script.
// --group: q, k and v, and gate and up, each as one quantMatmulMany call (as the Llama layers run them).
import { nativeBackend, nativeInfo, nativeTesting } from "../src/backends/native/index.js";
import { GGML_TYPE, type GGMLTypeName, quantizeRow, rowBytes } from "../src/quant/ggml.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : fallback;
};
const Ms = flag("m", "128,1").split(",").map(Number);
const types = flag("types", "Q8_0,Q4_0,Q5_0,Q4_K,F16").split(",") as GGMLTypeName[];
const threads = flag("threads", "1,2").split(",").map(Number);
const reps = Number(flag("reps", "7"));
const group = argv.includes("--group");
// (N, K) of the projections of one layer: q, k, v, o, gate, up, down; --layers copies with distinct
// weights (30 layers: more than the caches hold, so the weights stream from memory as in generation).
const SHAPES: Record<string, [number, number][]> = {
  "qwen3-0.6b": [
    [2048, 1024],
    [1024, 1024],
    [1024, 1024],
    [1024, 2048],
    [3072, 1024],
    [3072, 1024],
    [1024, 3072],
  ],
  "smollm2-135m": [
    [576, 576],
    [192, 576],
    [192, 576],
    [576, 576],
    [1536, 576],
    [1536, 576],
    [576, 1536],
  ],
};
const layers = Number(flag("layers", "1"));
const shapes = Array.from({ length: layers }, () => SHAPES[flag("model", "qwen3-0.6b")] as [number, number][]).flat();
const SHAPES_PER_LAYER = (SHAPES[flag("model", "qwen3-0.6b")] as [number, number][]).length;

let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());

const be = nativeBackend;
if (!be?.quantMatmul) throw new Error("the native backend with quantMatmul is required");
if (group && !be.quantMatmulMany) throw new Error("--group needs an addon with quantMatmulMany");
console.log(`quant isa ${nativeInfo().quant}`);
for (const type of types) {
  const wsFirst: Uint8Array[] = [];
  // One layer is quantised; further layers are copies of it in buffers of their own (the kernels'
  // speed does not depend on the values, and the K-quants' reference quantisers take seconds a layer).
  const ws = shapes.map(([N, K], i) => {
    if (i >= SHAPES_PER_LAYER) return (wsFirst[i % SHAPES_PER_LAYER] as Uint8Array).slice();
    const rb = rowBytes(type, K);
    const w = new Uint8Array(N * rb);
    const row = new Float32Array(K);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) row[k] = gauss() * 0.02;
      quantizeRow(type, row, 0, K, w, n * rb);
    }
    wsFirst[i] = w;
    return w;
  });
  for (const M of Ms) {
    for (const T of threads) {
      nativeTesting.setThreads(T);
      const x = new Float32Array(M * 3072).map(() => gauss());
      const y = new Float32Array(M * 3072);
      const ys = [0, 1, 2].map(() => new Float32Array(M * 3072));
      const times: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        if (group) {
          // Per layer of 7: [q, k, v], o, [gate, up], down.
          for (let l = 0; l < shapes.length; l += 7) {
            const call = (idx: number[]) => {
              const [, K] = shapes[idx[0] as number] as [number, number];
              if (idx.length === 1)
                return be.quantMatmul?.(
                  GGML_TYPE[type],
                  ws[idx[0] as number] as Uint8Array,
                  x,
                  y,
                  M,
                  (shapes[idx[0] as number] as [number, number])[0],
                  K,
                );
              const Ns = idx.map((i) => (shapes[i] as [number, number])[0]);
              return be.quantMatmulMany?.(
                GGML_TYPE[type],
                idx.map((i) => ws[i] as Uint8Array),
                x,
                Ns.map((N, j) => (ys[j] as Float32Array).subarray(0, M * N)),
                M,
                Ns,
                K,
              );
            };
            call([l, l + 1, l + 2]);
            call([l + 3]);
            call([l + 4, l + 5]);
            call([l + 6]);
          }
        } else {
          shapes.forEach(([N, K], i) => {
            be.quantMatmul?.(GGML_TYPE[type], ws[i] as Uint8Array, x, y, M, N, K);
          });
        }
        if (r > 0) times.push(performance.now() - t0);
      }
      const ops = shapes.reduce((s, [N, K]) => s + 2 * M * N * K, 0);
      const ms = median(times);
      const bytes = ws.reduce((s, w) => s + w.length, 0);
      console.log(
        `${type} M=${M} threads=${T}${group ? " grouped" : ""}: ${ms.toFixed(2)} ms, ${(ops / ms / 1e6).toFixed(1)} GOP/s, weights ${(bytes / ms / 1e6).toFixed(1)} GB/s`,
      );
    }
  }
}
