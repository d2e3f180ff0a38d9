// The native quantised matrix products (native/quant.cc) on every instruction set this CPU runs,
// against the reference: the activations rounded as ggml rounds them (roundActivations) times the
// dequantised weights, summed in float64. Then QLinear and a whole quantised Llama on the native
// backend against the reference backend, and the addon's checks on untrusted sizes.
//
//   node --import tsx --test test/backends/quant.test.ts
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { nativeBackend, nativeInfo, nativeMapFile, nativeTesting } from "../../src/backends/native/index.js";
import "../../src/backends/reference/index.js";
import { Llama } from "../../src/models/llama.js";
import { QLinear, qlinearMany, randomParams } from "../../src/nn/quantized.js";
import { GGML_TYPE, type GGMLTypeName, QuantizedTensor, roundActivations } from "../../src/quant/ggml.js";
import { getBackend, setBackend } from "../../src/tensor/backend.js";
import { Generator, noGrad, tensor } from "../../src/tensor/index.js";

const TYPES: GGMLTypeName[] = ["F16", "BF16", "Q8_0", "Q5_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"];

function values(n: number, seed: number): Float32Array {
  const g = new Generator(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g.normal() * (i % 7 === 0 ? 3 : 1);
  return out;
}

/** Float64 sums of the rounded activations times the dequantised weights, and each sum's magnitude. */
function reference(type: GGMLTypeName, q: QuantizedTensor, x: Float32Array, M: number): { y: Float64Array; mag: Float64Array } {
  const [N, K] = [q.rows, q.cols];
  const xr = Float32Array.from(x);
  for (let m = 0; m < M; m++) roundActivations(type, xr, m * K, K);
  const w = q.toFloat32();
  const y = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let a = 0;
      for (let k = 0; k < K; k++) {
        const p = (xr[m * K + k] as number) * (w[n * K + k] as number);
        s += p;
        a += Math.abs(p);
      }
      y[m * N + n] = s;
      mag[m * N + n] = a;
    }
  return { y, mag };
}

function isas(): string[] {
  return nativeBackend ? nativeInfo().available : [];
}

function onEachIsa(t: TestContext, body: (isa: string) => void): void {
  const before = nativeInfo().isa;
  try {
    for (const isa of isas()) {
      assert.ok(nativeTesting.setIsa(isa as never), isa);
      body(isa);
    }
  } finally {
    nativeTesting.setIsa(before as never);
  }
  if (!nativeBackend) t.skip("no native addon");
}

describe("native quantised products", () => {
  for (const type of TYPES) {
    it(`${type}: equal to the rounded activations times the dequantised weights, on every ISA, 1 to 67 rows`, (t) => {
      // Row lengths of one and of several blocks; 37 weight rows: AVX2's integer GEMM (8 rows and
      // more) takes 16 rows per task and repacks 8 at a time, so both leave a tail.
      // 67 rows of the longer K: over 32768 values, so the activations are quantised on the pool.
      for (const K of type.endsWith("_K") ? [256, 512] : [96, 544]) {
        const N = 37;
        const w = QuantizedTensor.quantize(type, [N, K], values(N * K, 1));
        onEachIsa(t, (isa) => {
          for (const M of [1, 2, 3, 4, 5, 8, 13, 21, ...(K >= 512 ? [67] : [])]) {
            const x = values(M * K, 10 + M);
            const y = new Float32Array(M * N).fill(Number.NaN);
            assert.ok((nativeBackend as NonNullable<typeof nativeBackend>).quantMatmul?.(GGML_TYPE[type], w.data, x, y, M, N, K));
            const { y: want, mag } = reference(type, w, x, M);
            for (let i = 0; i < M * N; i++) {
              const err = Math.abs((y[i] as number) - (want[i] as number));
              if (!(err <= 2e-6 * (mag[i] as number) + 1e-6))
                assert.fail(`${type} ${isa} K=${K} M=${M} [${Math.floor(i / N)}, ${i % N}]: ${y[i]} vs ${want[i]} (|products| ${mag[i]})`);
            }
          }
        });
      }
    });
  }

  it("every type's results agree between the instruction sets (each set's own kernels, not the generic fallback)", (t) => {
    const be = nativeBackend;
    if (!be?.quantMatmul || isas().length < 2) return t.skip("one instruction set");
    const before = nativeInfo().isa;
    try {
      for (const isa of isas()) {
        assert.ok(nativeTesting.setIsa(isa as never));
        // x86 sets serve all eight types with their own kernels (a type left out would fall back to
        // the generic kernels, and this comparison would prove nothing for it).
        if (isa !== "generic")
          assert.deepEqual(
            [...nativeInfo().quantTypes].sort((a, b) => a - b),
            [1, 2, 6, 8, 12, 13, 14, 30],
            isa,
          );
      }
      for (const type of TYPES) {
        const K = 512;
        const N = 21;
        // The K-quants as random bytes with small scales (any block of bytes is a valid block of
        // these types: every 6-bit scale and minimum, Q6_K's int8 scales of either sign).
        const w =
          type === "Q5_K" || type === "Q6_K"
            ? new QuantizedTensor(type, [N, K], randomBlocks(type, N, K))
            : QuantizedTensor.quantize(type, [N, K], values(N * K, 2));
        for (const M of [1, 3, 9]) {
          const x = values(M * K, 20 + M);
          const { mag } = reference(type, w, x, M);
          const results = isas().map((isa) => {
            assert.ok(nativeTesting.setIsa(isa as never));
            const y = new Float32Array(M * N);
            be.quantMatmul?.(GGML_TYPE[type], w.data, x, y, M, N, K);
            return y;
          });
          const [first, ...rest] = results as [Float32Array, ...Float32Array[]];
          rest.forEach((y, j) => {
            for (let i = 0; i < M * N; i++) {
              // the same integer sums; only the float32 order of the per-block scalings differs
              if (!(Math.abs((y[i] as number) - (first[i] as number)) <= 1e-6 * (mag[i] as number) + 1e-7))
                assert.fail(`${type} M=${M} [${i}]: ${isas()[j + 1]} ${y[i]} vs ${isas()[0]} ${first[i]}`);
            }
          });
        }
      }
    } finally {
      nativeTesting.setIsa(before as never);
    }
  });

  it("quantMatmulMany: several weights with one activation matrix equal their products one by one, on every ISA", (t) => {
    const be = nativeBackend;
    if (!be?.quantMatmulMany) return t.skip("no native addon");
    for (const type of ["F16", "Q8_0", "Q4_0", "Q4_K"] as GGMLTypeName[]) {
      const K = type === "Q4_K" ? 512 : 96;
      const Ns = [37, 8, 5];
      const ws = Ns.map((N, i) => QuantizedTensor.quantize(type, [N, K], values(N * K, 30 + i)));
      onEachIsa(t, (isa) => {
        for (const M of [1, 3, 13]) {
          const x = values(M * K, 40 + M);
          for (const n of [2, 3]) {
            const ys = Ns.slice(0, n).map((N) => new Float32Array(M * N).fill(Number.NaN));
            const ok = be.quantMatmulMany?.(
              GGML_TYPE[type],
              ws.slice(0, n).map((w) => w.data),
              x,
              ys,
              M,
              Ns.slice(0, n),
              K,
            );
            assert.ok(ok);
            ys.forEach((y, i) => {
              const one = new Float32Array(M * (Ns[i] as number));
              assert.ok(be.quantMatmul?.(GGML_TYPE[type], (ws[i] as QuantizedTensor).data, x, one, M, Ns[i] as number, K));
              assert.deepEqual(y, one, `${type} ${isa} M=${M} product ${i} of ${n}`);
            });
          }
        }
      });
    }
    const w = new Uint8Array(34 * 2 * 3);
    const x = new Float32Array(64);
    assert.throws(() => be.quantMatmulMany?.(8, [w, w], x, [new Float32Array(3), new Float32Array(2)], 1, [3, 3], 64), /not of its sizes/);
    assert.throws(() => be.quantMatmulMany?.(8, [w, w], x, [new Float32Array(3), new Float32Array(3)], 2, [3, 3], 64), /M·K/);
  });

  it("qlinearMany: the outputs of several quantised layers on one input, biases included, as their forwards", () => {
    const K = 64;
    const layers = [24, 8, 8].map(
      (N, i) => new QLinear(QuantizedTensor.quantize("Q8_0", [N, K], values(N * K, 50 + i)), tensor(Array.from(values(N, 60 + i)))),
    );
    const x = tensor(Array.from(values(2 * 3 * K, 70)), { shape: [2, 3, K] });
    noGrad(() => {
      const got = qlinearMany(x, layers);
      layers.forEach((l, i) => {
        assert.deepEqual(got[i]?.toArray(), l.forward(x).toArray(), `layer ${i}`);
      });
    });
  });

  it("the quantised kernels' instruction set is reported and follows the forced set", (t) => {
    if (!nativeBackend) return t.skip("no native addon");
    const info = nativeInfo();
    assert.ok(["avx512vnni", "avx2", "generic", "neon"].includes(info.quant), info.quant);
    onEachIsa(t, (isa) => {
      const q = nativeInfo().quant;
      if (isa === "generic") assert.equal(q, "generic");
      if (isa === "avx2") assert.equal(q, "avx2");
    });
  });

  it("sizes that do not fit the buffers, bad types and partial blocks are refused, not read", (t) => {
    const be = nativeBackend;
    if (!be?.quantMatmul) return t.skip("no native addon");
    const w = new Uint8Array(34 * 2 * 3); // 3 rows of 64 Q8_0 values
    const x = new Float32Array(64);
    const y = new Float32Array(4);
    assert.ok(be.quantMatmul(8, w, x, y, 1, 3, 64));
    assert.throws(() => be.quantMatmul?.(8, w, x, y, 1, 4, 64), /smaller than its sizes/);
    assert.throws(() => be.quantMatmul?.(8, w, x, y, 2, 3, 64), /smaller than its sizes/);
    assert.throws(() => be.quantMatmul?.(8, w.subarray(1), x, y, 1, 3, 64), /smaller than its sizes/);
    assert.equal(be.quantMatmul(8, w, x, y, 1, 3, 48), false); // not whole blocks: the caller decodes
    assert.equal(be.quantMatmul(3, w, x, y, 1, 3, 64), false); // a type without kernels
  });
});

function randomBlocks(type: "Q5_K" | "Q6_K", N: number, K: number): Uint8Array {
  const bytes = new QuantizedTensor(type, [N, K]).data;
  const g = new Generator(5);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(g.random() * 256);
  const block = type === "Q5_K" ? 176 : 210;
  for (let o = 0; o < bytes.length; o += block) {
    // float16 scales of about 1e-3 (exponent 5 of 15 below one), so the products stay finite
    const d = type === "Q5_K" ? [0, 2] : [208];
    for (const at of d) {
      bytes[o + at] = Math.floor(g.random() * 256);
      bytes[o + at + 1] = 0x14 | (g.random() < 0.5 ? 0x80 : 0);
    }
  }
  return bytes;
}

describe("quantised layers on the native backend equal the reference backend", () => {
  it("QLinear and a quantised Llama's logits, Q8_0, Q4_0, Q4_K and F16", (t) => {
    if (!nativeBackend) return t.skip("no native addon");
    const before = getBackend().name;
    try {
      for (const type of ["Q8_0", "Q4_0", "Q4_K", "F16"] as const) {
        const config = {
          vocab_size: 300,
          hidden_size: 256,
          intermediate_size: 512,
          num_hidden_layers: 2,
          num_attention_heads: 4,
          num_key_value_heads: 2,
          head_dim: 64,
          max_position_embeddings: 64,
          tie_word_embeddings: true,
          model_type: "llama",
        };
        const g = new Generator(7);
        const rand = randomParams(g);
        const model = new Llama(config as never, {
          params: (name, shape, init) => {
            const w = rand(name, shape, init);
            return shape.length === 2 && shape[1] === 256 && !name.includes("norm")
              ? QuantizedTensor.quantize(type, shape, (w as ReturnType<typeof tensor>).contiguousData() as Float32Array)
              : w;
          },
        });
        model.eval();
        const ids = tensor(Int32Array.from([1, 5, 9, 200, 42, 7, 3, 299, 11]), { shape: [1, 9] });
        const run = (be: string) => {
          setBackend(be);
          return Float32Array.from(noGrad(() => model.forward(ids).logits).contiguousData() as Float32Array);
        };
        const want = run("reference");
        const got = run("native");
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
        // The activations are re-quantised at every layer: an activation one ulp from a rounding
        // boundary of the 8-bit grid moves by one step, which then shows in the logits.
        assert.ok(worst < 2e-3, `${type}: largest logit difference ${worst}`);
      }
      // A QLinear with bias: the same bias added on both backends.
      const q = QuantizedTensor.quantize("Q4_0", [40, 64], values(40 * 64, 3));
      const lin = new QLinear(q, tensor(values(40, 4), { shape: [40] }));
      const x = tensor(values(3 * 64, 5), { shape: [3, 64] });
      setBackend("reference");
      const a = noGrad(() => lin.forward(x)).contiguousData() as Float32Array;
      setBackend("native");
      const b = noGrad(() => lin.forward(x)).contiguousData() as Float32Array;
      assert.equal(a.length, 120);
      for (let i = 0; i < 120; i++) assert.ok(Math.abs((a[i] as number) - (b[i] as number)) < 1e-4, `${i}: ${a[i]} vs ${b[i]}`);
    } finally {
      setBackend(before);
    }
  });
});

describe("mapFile", () => {
  it("maps a file's bytes copy-on-write: reads equal the file, writes never reach it", (t) => {
    if (!nativeBackend) return t.skip("no native addon");
    const dir = mkdtempSync(join(tmpdir(), "moxing-map-"));
    try {
      const file = join(dir, "a.bin");
      const bytes = Uint8Array.from({ length: 10000 }, (_, i) => (i * 7) & 255);
      writeFileSync(file, bytes);
      const ab = nativeMapFile(file);
      assert.ok(ab);
      const view = new Uint8Array(ab);
      assert.equal(view.length, bytes.length);
      assert.deepEqual(view, bytes);
      view[5] = 1;
      const again = new Uint8Array(nativeMapFile(file) as ArrayBuffer);
      assert.equal(again[5], bytes[5]);
      assert.throws(() => new Uint8Array(ab, 9000, 2000), RangeError);
      writeFileSync(join(dir, "empty"), "");
      assert.equal(nativeMapFile(join(dir, "empty")), null);
      assert.equal(nativeMapFile(join(dir, "missing")), null);
      assert.equal(nativeMapFile(dir), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
