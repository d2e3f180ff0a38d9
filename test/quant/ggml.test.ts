// GGML's block formats against llama.cpp's own code: dequantisation bit for bit as gguf-py computes
// it, and quantisation byte for byte as gguf-py (Q8_0, Q4_0, BF16), numpy (F16) and ggml's C
// reference (Q4_K, Q5_K, Q6_K) write it. Fixtures: tools/gguf_quant_fixtures.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  dequantizeRow,
  floatToBF16,
  floatToHalf,
  GGML_TYPE_INFO,
  type GGMLTypeName,
  halfToFloatTable,
  QuantizedTensor,
  quantizeRow,
  roundActivations,
  rowBytes,
} from "../../src/quant/ggml.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "ggml-quants");
const bytes = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
const floats = (name: string) => {
  const b = bytes(name);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { shape: [number, number] };
const [ROWS, COLS] = manifest.shape;
const input = floats("input.f32");

/** Index of the first element whose float32 bits differ (NaN equal to NaN), or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  }
  return -1;
}

describe("dequantisation equals gguf-py's, bit for bit", () => {
  for (const type of ["F16", "BF16", "Q8_0", "Q5_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"] as GGMLTypeName[]) {
    test(type, () => {
      const src = bytes(`${type}.bin`);
      const want = floats(`${type}.dequant.f32`);
      const t = new QuantizedTensor(type, [ROWS, COLS], src);
      const got = t.toFloat32();
      const i = firstBitDifference(got, want);
      assert.equal(i, -1, `${type}: value ${i} decodes to ${got[i]}, gguf-py gives ${want[i]}`);
      // Close to the original values (so the fixture is not trivially zero).
      let err = 0;
      let scale = 0;
      for (let k = 0; k < got.length; k++) {
        err = Math.max(err, Math.abs((got[k] as number) - (input[k] as number)));
        scale = Math.max(scale, Math.abs(input[k] as number));
      }
      assert.ok(err / scale < 0.1, `${type}: relative error ${err / scale}`);
      // Rows decode independently, at any row offset.
      const row = new Float32Array(COLS);
      t.dequantizeRows(5, 6, row);
      assert.equal(firstBitDifference(row, want.subarray(5 * COLS, 6 * COLS)), -1);
    });
  }
});

describe("quantisation writes the reference bytes", () => {
  const writers: [GGMLTypeName, string][] = [
    ["Q8_0", "gguf-py (= ggml's quantize_row_q8_0_ref)"],
    ["Q5_0", "gguf-py"],
    ["Q4_0", "gguf-py"],
    ["Q4_K", "ggml's quantize_row_q4_K_ref"],
    ["Q5_K", "ggml's quantize_row_q5_K_ref"],
    ["Q6_K", "ggml's quantize_row_q6_K_ref"],
    ["F16", "numpy"],
    ["BF16", "gguf-py"],
  ];
  for (const [type, from] of writers) {
    test(`${type}, as ${from}`, () => {
      const want = bytes(`${type}.bin`);
      const got = QuantizedTensor.quantize(type, [ROWS, COLS], input).data;
      assert.equal(got.length, want.length);
      const rb = rowBytes(type, COLS);
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== want[i]) {
          const block = Math.floor((i % rb) / GGML_TYPE_INFO[type].typeSize);
          assert.fail(`${type}: byte ${i} (row ${Math.floor(i / rb)}, block ${block}) is ${got[i]}, the reference wrote ${want[i]}`);
        }
      }
    });
  }

  test("float16 and bfloat16 conversion of edge cases (subnormals, overflow, ties, NaN)", () => {
    const s = floats("special.f32");
    const f16 = bytes("special.F16.bin");
    const bf16 = bytes("special.BF16.bin");
    const half = halfToFloatTable();
    for (let i = 0; i < s.length; i++) {
      const h = (f16[2 * i] as number) | ((f16[2 * i + 1] as number) << 8);
      const b = (bf16[2 * i] as number) | ((bf16[2 * i + 1] as number) << 8);
      const v = s[i] as number;
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(half[floatToHalf(v)] as number), "NaN stays NaN in float16");
        assert.equal(floatToBF16(v), b, "bfloat16 NaN");
        continue;
      }
      assert.equal(floatToHalf(v), h, `float16 of ${v}: 0x${floatToHalf(v).toString(16)}, numpy 0x${h.toString(16)}`);
      assert.equal(floatToBF16(v), b, `bfloat16 of ${v}: 0x${floatToBF16(v).toString(16)}, gguf-py 0x${b.toString(16)}`);
    }
    // Every finite float16 survives a round trip through float32.
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      assert.equal(floatToHalf(half[h] as number), h);
    }
  });
});

describe("activations rounded as ggml's CPU backend multiplies them", () => {
  for (const [type, block, grid] of [
    ["Q8_0", 32, "float16 d, |q| <= 127"],
    ["Q4_K", 256, "float32 d, q in [-127, 127]"],
  ] as const) {
    test(`${type} weights: ${block}-value blocks on the grid d·q (${grid}), idempotent`, () => {
      const x = Float32Array.from(input);
      roundActivations(type, x, 0, x.length);
      for (let b = 0; b < x.length; b += block) {
        const blockIn = input.subarray(b, b + block);
        const amax = Math.max(...Array.from(blockIn, Math.abs));
        if (amax === 0) {
          assert.ok(
            x.subarray(b, b + block).every((v) => v === 0),
            "an all-zero block stays zero",
          );
          continue;
        }
        // Q8_0 stores d as float16; Q8_K keeps it in float32.
        const d = type === "Q8_0" ? (halfToFloatTable()[floatToHalf(Math.fround(amax / 127))] as number) : amax / 127;
        for (let j = 0; j < block; j++) {
          const q = (x[b + j] as number) / d;
          assert.ok(
            Math.abs(q) <= 127.01 && Math.abs(q - Math.round(q)) < 2e-3 * Math.max(1, Math.abs(q)),
            `${type} value ${b + j}: ${x[b + j]} is not on the grid of ${d}`,
          );
          // (Where float16 cannot hold the scale accurately, ggml's values move further; so do these.)
          if (d > 6.2e-5) {
            assert.ok(
              Math.abs((x[b + j] as number) - (blockIn[j] as number)) <= d * 0.6,
              `${type} value ${b + j} moved by more than half a step`,
            );
          }
        }
      }
      const again = Float32Array.from(x);
      roundActivations(type, again, 0, again.length);
      assert.deepEqual(again, x);
    });
  }
  test("F16 and BF16 weights: activations rounded to float16 / bfloat16; F32: untouched", () => {
    const half = halfToFloatTable();
    const x = Float32Array.from(input.subarray(0, 64));
    roundActivations("F16", x, 0, 64);
    for (let i = 0; i < 64; i++) assert.equal(x[i], half[floatToHalf(input[i] as number)]);
    const y = Float32Array.from(input.subarray(0, 64));
    roundActivations("F32", y, 0, 64);
    assert.deepEqual(y, input.subarray(0, 64));
  });
});

describe("QuantizedTensor", () => {
  test("refuses data of the wrong size and rows that are not whole blocks", () => {
    assert.throws(() => new QuantizedTensor("Q8_0", [2, 32], new Uint8Array(67)), /needs 68 bytes but 67/);
    assert.throws(() => new QuantizedTensor("Q4_K", [2, 100]), /not a whole number of 256-value blocks/);
  });
  test("quantize then dequantize is close for every writable type", () => {
    for (const type of ["F16", "BF16", "Q8_0", "Q5_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"] as GGMLTypeName[]) {
      const q = QuantizedTensor.quantize(type, [2, 256], input.subarray(0, 512));
      const back = q.toFloat32();
      let err = 0;
      let scale = 0;
      for (let i = 0; i < 512; i++) {
        err = Math.max(err, Math.abs((back[i] as number) - (input[i] as number)));
        scale = Math.max(scale, Math.abs(input[i] as number));
      }
      assert.ok(err / scale < 0.1, `${type}: max error ${err} for values up to ${scale}`);
    }
  });
  test("quantizeRow refuses types it does not write", () => {
    assert.throws(() => quantizeRow("Q3_K" as GGMLTypeName, new Float32Array(256), 0, 256, new Uint8Array(110), 0), /does not write Q3_K/);
    const out = new Float32Array(32);
    dequantizeRow("Q8_0", new Uint8Array(34), 0, out, 0, 32);
    assert.deepEqual([...out], new Array(32).fill(0));
  });
});
