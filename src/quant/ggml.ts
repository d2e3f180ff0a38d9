// GGML's tensor types: the block formats llama.cpp stores weights in, with dequantisation exactly
// as ggml defines it and the reference quantisers for the types moxing writes.
//
// A quantised row of n values is n / blockSize blocks of typeSize bytes. Each block holds small
// integers and one or two float16 scales (K-quants: a 256-value super-block with 6-bit sub-block
// scales and mins). The layouts are ggml-common.h's block_q8_0, block_q4_0, block_q4_K, block_q5_K
// block_q5_0 and block_q6_K. Every value computed here is the float32 value of ggml-org/llama.cpp's reference
// (gguf-py/gguf/quants.py on numpy): products and sums are rounded to float32 at each step in the
// same order (Math.fround), so the results are bit for bit the same, as test/quant/ggml.test.ts
// checks against fixtures written by tools/gguf_quant_fixtures.py.
//
// Quantisers (Q8_0, Q5_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, BF16) follow ggml's reference functions
// (quantize_row_q8_0_ref, _q5_0_ref, _q4_0_ref, _q4_K_ref, _q5_K_ref, _q6_K_ref in ggml-quants.c):
// Q8_0, Q5_0 and Q4_0 give gguf-py's bytes exactly; the K-quants (which gguf-py cannot quantise) give
// the bytes of the C reference compiled without floating-point contraction.

/** The GGML types moxing reads, by their id in a GGUF file. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q5_0: 6, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;
export type GGMLTypeName = keyof typeof GGML_TYPE;

export interface GGMLTypeInfo {
  name: GGMLTypeName;
  id: number;
  /** Values per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

const QK_K = 256;

export const GGML_TYPE_INFO: Readonly<Record<GGMLTypeName, GGMLTypeInfo>> = {
  F32: { name: "F32", id: 0, blockSize: 1, typeSize: 4 },
  F16: { name: "F16", id: 1, blockSize: 1, typeSize: 2 },
  Q4_0: { name: "Q4_0", id: 2, blockSize: 32, typeSize: 18 },
  Q5_0: { name: "Q5_0", id: 6, blockSize: 32, typeSize: 22 },
  Q8_0: { name: "Q8_0", id: 8, blockSize: 32, typeSize: 34 },
  Q4_K: { name: "Q4_K", id: 12, blockSize: QK_K, typeSize: 144 },
  Q5_K: { name: "Q5_K", id: 13, blockSize: QK_K, typeSize: 176 },
  Q6_K: { name: "Q6_K", id: 14, blockSize: QK_K, typeSize: 210 },
  BF16: { name: "BF16", id: 30, blockSize: 1, typeSize: 2 },
};

/** The types `quantizeRow` writes (what `moxing quantize --type` offers, plus the float types). */
export const QUANTIZE_TYPES = [
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q5_0",
  "Q4_0",
  "Q4_K",
  "Q5_K",
  "Q6_K",
] as const satisfies readonly GGMLTypeName[];

export function ggmlTypeById(id: number): GGMLTypeInfo | undefined {
  return Object.values(GGML_TYPE_INFO).find((t) => t.id === id);
}

/** Bytes of one row of n values (n a multiple of the block size). */
export function rowBytes(type: GGMLTypeName, n: number): number {
  const t = GGML_TYPE_INFO[type];
  if (n % t.blockSize !== 0) throw new Error(`${type}: a row of ${n} values is not a whole number of ${t.blockSize}-value blocks`);
  return (n / t.blockSize) * t.typeSize;
}

// ---- float16 and bfloat16 ---------------------------------------------------------------------------

let halfTable: Float32Array | null = null;

/** float16 bit pattern -> float32, for all 65536 patterns (every half is exactly a float). */
export function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 0x1f) t[h] = frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else t[h] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  halfTable = t;
  return t;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 -> float16 bits, rounding to nearest even (IEEE; numpy's astype(float16), F16C's vcvtps2ph). */
export function floatToHalf(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow: infinity
  if (e <= 0) {
    // A subnormal half (or zero): shift the significand with its implicit 1 into place, rounding to even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent, as it should
  return sign | h;
}

/** float32 -> bfloat16 bits as ggml_compute_fp32_to_bf16: NaNs made quiet, then round to nearest even. */
export function floatToBF16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] as number;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0xffff) | 64;
  return Math.floor((x + (0x7fff + ((x >>> 16) & 1))) / 65536) & 0xffff;
}

// ---- dequantisation ---------------------------------------------------------------------------------

const fr = Math.fround;

function u16(b: Uint8Array, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8);
}

/** The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
function scaleMin(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [(b[s + j] as number) & 63, (b[s + j + 4] as number) & 63];
  const a = b[s + j + 4] as number;
  return [(a & 0xf) | (((b[s + j - 4] as number) >> 6) << 4), (a >> 4) | (((b[s + j] as number) >> 6) << 4)];
}

/** One type's decoder: n values from src at byte offset o into out at y. */
type RowDecoder = (src: Uint8Array, o: number, out: Float32Array, y: number, n: number) => void;

// One small function per type: V8 optimises each on its own (one large switch is slower).
const DECODERS: Record<GGMLTypeName, RowDecoder> = {
  F32(src, o, out, y, n) {
    const dv = new DataView(src.buffer, src.byteOffset + o, n * 4);
    for (let i = 0; i < n; i++) out[y + i] = dv.getFloat32(4 * i, true);
  },
  F16(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let i = 0; i < n; i++) out[y + i] = half[(src[o + 2 * i] as number) | ((src[o + 2 * i + 1] as number) << 8)] as number;
  },
  BF16(src, o, out, y, n) {
    const bits = new Uint32Array(out.buffer, out.byteOffset + 4 * y, n);
    for (let i = 0; i < n; i++) bits[i] = (((src[o + 2 * i] as number) | ((src[o + 2 * i + 1] as number) << 8)) << 16) >>> 0;
  },
  // block_q8_0: f16 d, int8 qs[32]; x = qs * d
  Q8_0(src, o, out, y, n) {
    const half = halfToFloatTable();
    const i8 = new Int8Array(src.buffer, src.byteOffset, src.length);
    for (let b = 0; b < n; b += 32, o += 34) {
      const d = half[(src[o] as number) | ((src[o + 1] as number) << 8)] as number;
      const q = o + 2;
      const yb = y + b;
      for (let j = 0; j < 32; j++) out[yb + j] = (i8[q + j] as number) * d;
    }
  },
  // block_q4_0: f16 d, qs[16]: value j in the low nibble of byte j, value j+16 in the high nibble; x = (q - 8) * d
  Q4_0(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let b = 0; b < n; b += 32, o += 18) {
      const d = half[(src[o] as number) | ((src[o + 1] as number) << 8)] as number;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j] as number;
        out[y + b + j] = ((q & 0xf) - 8) * d;
        out[y + b + j + 16] = ((q >> 4) - 8) * d;
      }
    }
  },
  // block_q5_0: f16 d, u32 qh (bit j: the fifth bit of value j), qs[16] as in Q4_0; x = (q - 16) * d
  Q5_0(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let b = 0; b < n; b += 32, o += 22) {
      const d = half[(src[o] as number) | ((src[o + 1] as number) << 8)] as number;
      const qh =
        ((src[o + 2] as number) | ((src[o + 3] as number) << 8) | ((src[o + 4] as number) << 16) | ((src[o + 5] as number) << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 6 + j] as number;
        out[y + b + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) * d;
        out[y + b + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
      }
    }
  },
  // block_q4_K: f16 d, f16 dmin, scales[12] (8 6-bit scales and mins), qs[128]: 4 chunks of 64
  // values, the first 32 in the low nibbles of 32 bytes, the next 32 in their high nibbles.
  // x = (d * scale) * q - (dmin * min)
  Q4_K(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let b = 0; b < n; b += QK_K, o += 144) {
      const d = half[u16(src, o)] as number;
      const dmin = half[u16(src, o + 2)] as number;
      for (let c = 0; c < 4; c++) {
        const q = o + 16 + 32 * c;
        const [sc1, m1] = scaleMin(src, o + 4, 2 * c);
        const [sc2, m2] = scaleMin(src, o + 4, 2 * c + 1);
        const d1 = fr(d * sc1);
        const dm1 = fr(dmin * m1);
        const d2 = fr(d * sc2);
        const dm2 = fr(dmin * m2);
        const yc = y + b + 64 * c;
        for (let l = 0; l < 32; l++) {
          const v = src[q + l] as number;
          out[yc + l] = fr(d1 * (v & 0xf)) - dm1;
          out[yc + 32 + l] = fr(d2 * (v >> 4)) - dm2;
        }
      }
    }
  },
  // block_q5_K: f16 d, f16 dmin, scales[12], qh[32] (bit k of qh[l]: the fifth bit of value
  // 32k + l), qs[128] as in Q4_K. x = (d * scale) * q - (dmin * min)
  Q5_K(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let b = 0; b < n; b += QK_K, o += 176) {
      const d = half[u16(src, o)] as number;
      const dmin = half[u16(src, o + 2)] as number;
      const qh = o + 16;
      for (let c = 0; c < 4; c++) {
        const q = o + 48 + 32 * c;
        const [sc1, m1] = scaleMin(src, o + 4, 2 * c);
        const [sc2, m2] = scaleMin(src, o + 4, 2 * c + 1);
        const d1 = fr(d * sc1);
        const dm1 = fr(dmin * m1);
        const d2 = fr(d * sc2);
        const dm2 = fr(dmin * m2);
        const yc = y + b + 64 * c;
        for (let l = 0; l < 32; l++) {
          const v = src[q + l] as number;
          const h = src[qh + l] as number;
          out[yc + l] = fr(d1 * ((v & 0xf) | (((h >> (2 * c)) & 1) << 4))) - dm1;
          out[yc + 32 + l] = fr(d2 * ((v >> 4) | (((h >> (2 * c + 1)) & 1) << 4))) - dm2;
        }
      }
    }
  },
  // block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d at the end.
  // Each half of 128 values: value l (0..31) + 32k takes ql's nibble and qh's bit pair k.
  // x = (d * scale[16-value group]) * (q - 32)
  Q6_K(src, o, out, y, n) {
    const half = halfToFloatTable();
    for (let b = 0; b < n; b += QK_K, o += 210) {
      const d = half[u16(src, o + 208)] as number;
      for (let h = 0; h < 2; h++) {
        const ql = o + 64 * h;
        const qh = o + 128 + 32 * h;
        const sc = o + 192 + 8 * h;
        const yh = y + b + 128 * h;
        for (let g = 0; g < 2; g++) {
          // 16 values share a scale: l in [16g, 16g + 16) uses scales is = g, g+2, g+4, g+6.
          const s0 = fr(d * (((src[sc + g] as number) << 24) >> 24));
          const s2 = fr(d * (((src[sc + g + 2] as number) << 24) >> 24));
          const s4 = fr(d * (((src[sc + g + 4] as number) << 24) >> 24));
          const s6 = fr(d * (((src[sc + g + 6] as number) << 24) >> 24));
          for (let l = 16 * g; l < 16 * g + 16; l++) {
            const lo0 = src[ql + l] as number;
            const lo1 = src[ql + l + 32] as number;
            const hi = src[qh + l] as number;
            out[yh + l] = s0 * (((lo0 & 0xf) | ((hi & 3) << 4)) - 32);
            out[yh + l + 32] = s2 * (((lo1 & 0xf) | (((hi >> 2) & 3) << 4)) - 32);
            out[yh + l + 64] = s4 * (((lo0 >> 4) | (((hi >> 4) & 3) << 4)) - 32);
            out[yh + l + 96] = s6 * (((lo1 >> 4) | (((hi >> 6) & 3) << 4)) - 32);
          }
        }
      }
    }
  },
};

/**
 * Decode n values (a whole number of blocks) of `type` from src at byte offset srcOff into
 * out[outOff ...]. The float32 results are exactly gguf-py's dequantize().
 */
export function dequantizeRow(type: GGMLTypeName, src: Uint8Array, srcOff: number, out: Float32Array, outOff: number, n: number): void {
  DECODERS[type](src, srcOff, out, outOff, n);
}

// ---- quantisation ------------------------------------------------------------------------------------

/** ggml's nearest_int: round half to even, the value being a float32 (adding 1.5·2^23 in float32). */
function nearestInt(v: number): number {
  return fr(v + 12582912) - 12582912;
}

/** C's roundf: half away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >> 8) & 0xff;
}

/** Encode n values of x (from xOff) as `type` into out at byte offset outOff. */
export function quantizeRow(type: GGMLTypeName, x: Float32Array, xOff: number, n: number, out: Uint8Array, outOff: number): void {
  switch (type) {
    case "F32": {
      const dv = new DataView(out.buffer, out.byteOffset + outOff, 4 * n);
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, x[xOff + i] as number, true);
      return;
    }
    case "F16":
      for (let i = 0; i < n; i++) putU16(out, outOff + 2 * i, floatToHalf(x[xOff + i] as number));
      return;
    case "BF16":
      for (let i = 0; i < n; i++) putU16(out, outOff + 2 * i, floatToBF16(x[xOff + i] as number));
      return;
    case "Q8_0":
      for (let b = 0; b < n / 32; b++) quantizeQ8_0(x, xOff + 32 * b, out, outOff + 34 * b);
      return;
    case "Q4_0":
      for (let b = 0; b < n / 32; b++) quantizeQ4_0(x, xOff + 32 * b, out, outOff + 18 * b);
      return;
    case "Q5_0":
      for (let b = 0; b < n / 32; b++) quantizeQ5_0(x, xOff + 32 * b, out, outOff + 22 * b);
      return;
    case "Q4_K":
    case "Q5_K": {
      const scratch = new Q4KScratch();
      const five = type === "Q5_K";
      const bytes = five ? 176 : 144;
      for (let b = 0; b < n / QK_K; b++) quantizeQ45_K(x, xOff + QK_K * b, out, outOff + bytes * b, scratch, five);
      return;
    }
    case "Q6_K": {
      const scratch = new Q6KScratch();
      for (let b = 0; b < n / QK_K; b++) quantizeQ6_K(x, xOff + QK_K * b, out, outOff + 210 * b, scratch);
      return;
    }
    default:
      throw new Error(`quantize: moxing does not write ${type}; it writes ${QUANTIZE_TYPES.join(", ")}`);
  }
}

/** quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d). */
function quantizeQ8_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j] as number));
  const d = fr(amax / 127);
  const id = d ? fr(1 / d) : 0;
  putU16(out, o, floatToHalf(d));
  for (let j = 0; j < 32; j++) out[o + 2 + j] = roundf(fr((x[xo + j] as number) * id)) & 0xff;
}

/** quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)).
 *  The product and the sum are not rounded to float32 in between (one rounding after the sum), as
 *  ggml built with FMA computes them and gguf-py emulates in float64. */
function quantizeQ4_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j] as number;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fr(max / -8);
  const id = d ? fr(1 / d) : 0;
  putU16(out, o, floatToHalf(d));
  for (let j = 0; j < 16; j++) {
    const q0 = Math.min(15, Math.max(0, Math.trunc(fr((x[xo + j] as number) * id + 8.5))));
    const q1 = Math.min(15, Math.max(0, Math.trunc(fr((x[xo + 16 + j] as number) * id + 8.5))));
    out[o + 2 + j] = q0 | (q1 << 4);
  }
}

/** quantize_row_q5_0_ref: as Q4_0 with 5 bits, d = (the value of largest magnitude) / -16,
 *  q = min(31, trunc(x / d + 16.5)), rounded as gguf-py does (see quantizeQ4_0). */
function quantizeQ5_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j] as number;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fr(max / -16);
  const id = d ? fr(1 / d) : 0;
  putU16(out, o, floatToHalf(d));
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = Math.min(31, Math.max(0, Math.trunc(fr((x[xo + j] as number) * id + 16.5))));
    const q1 = Math.min(31, Math.max(0, Math.trunc(fr((x[xo + 16 + j] as number) * id + 16.5))));
    out[o + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
  }
  out[o + 2] = qh & 0xff;
  out[o + 3] = (qh >>> 8) & 0xff;
  out[o + 4] = (qh >>> 16) & 0xff;
  out[o + 5] = (qh >>> 24) & 0xff;
}

class Q4KScratch {
  readonly L = new Uint8Array(QK_K);
  readonly Laux = new Uint8Array(32);
  readonly prev = new Uint8Array(32);
  readonly xm = new Float32Array(32);
  scale = 0;
  min = 0;
  readonly weights = new Float32Array(32);
  readonly mins = new Float32Array(8);
  readonly scales = new Float32Array(8);
}

/** make_qkx2_quants: the scale and min (returned as -min) of 32 values fitted to 0..nmax,
 *  searching nstep+1 candidate scales around the first guess for the least weighted error.
 *  Every float operation rounds to float32 in C's order; the shortcuts below change no result:
 *  x - min is kept per value until min changes, and a candidate whose levels equal the previous
 *  candidate's has the same error, which cannot beat the best. */
function makeQkx2Quants(
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  s: Q4KScratch,
  nmax: number,
  rmin: number,
  rdelta: number,
  nstep: number,
): void {
  const n = 32;
  const { Laux, prev, xm } = s;
  let min = x[xo] as number;
  let max = x[xo] as number;
  let sumW = weights[0] as number;
  let sumX = fr(sumW * (x[xo] as number));
  for (let i = 1; i < n; i++) {
    const v = x[xo + i] as number;
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i] as number;
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    s.scale = 0;
    s.min = -min;
    return;
  }
  for (let i = 0; i < n; i++) xm[i] = fr((x[xo + i] as number) - min);
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestInt(fr(iscale * (xm[i] as number)));
    l = l < 0 ? 0 : Math.min(l, nmax);
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - (x[xo + i] as number));
    bestError = fr(bestError + fr((weights[i] as number) * fr(diff * diff)));
  }
  prev.fill(255);
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let same = true;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(fr(iscale * (xm[i] as number)));
      l = l < 0 ? 0 : Math.min(l, nmax);
      if (l !== prev[i]) same = false;
      Laux[i] = l;
    }
    if (same) continue;
    prev.set(Laux);
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Laux[i] as number;
      const wl = fr((weights[i] as number) * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * (x[xo + i] as number)));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * (Laux[i] as number)) + thisMin) - (x[xo + i] as number));
        curError = fr(curError + fr((weights[i] as number) * fr(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i] as number;
        bestError = curError;
        scale = thisScale;
        if (thisMin !== min) {
          min = thisMin;
          for (let i = 0; i < n; i++) xm[i] = fr((x[xo + i] as number) - min);
        }
      }
    }
  }
  s.scale = scale;
  s.min = -min;
}

const RDELTA = fr(0.1);

/** quantize_row_q4_K_ref (five false) or quantize_row_q5_K_ref (five true) for one super-block of 256
 *  values: the same fit, with 5-bit values (0..31, a narrower search: rmin -0.5, 15 steps) for Q5_K,
 *  their fifth bits in qh. */
function quantizeQ45_K(x: Float32Array, xo: number, out: Uint8Array, o: number, s: Q4KScratch, five: boolean): void {
  const nmax = five ? 31 : 15;
  const { L, weights, mins, scales } = s;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + 32 * j + l] as number;
      sumX2 = fr(sumX2 + fr(v * v));
    }
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[xo + 32 * j + l] as number));
    if (five) makeQkx2Quants(x, xo + 32 * j, weights, L, 32 * j, s, 31, -0.5, RDELTA, 15);
    else makeQkx2Quants(x, xo + 32 * j, weights, L, 32 * j, s, 15, -1, RDELTA, 20);
    scales[j] = s.scale;
    mins[j] = s.min;
    if (s.scale > maxScale) maxScale = s.scale;
    if (s.min > maxMin) maxMin = s.min;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sc = o + 4;
  out.fill(0, sc, sc + 12);
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * (scales[j] as number))) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * (mins[j] as number))) & 0xff);
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[sc + j - 4] = (out[sc + j - 4] as number) | ((ls >> 4) << 6);
      out[sc + j] = (out[sc + j] as number) | ((lm >> 4) << 6);
    }
  }
  const dBits = floatToHalf(fr(maxScale / 63));
  const dminBits = floatToHalf(fr(maxMin / 63));
  putU16(out, o, dBits);
  putU16(out, o + 2, dminBits);
  const half = halfToFloatTable();
  const dh = half[dBits] as number;
  const dminh = half[dminBits] as number;
  for (let j = 0; j < 8; j++) {
    const [scj, mj] = scaleMin(out, sc, j);
    const d = fr(dh * scj);
    if (!d) continue;
    const dm = fr(dminh * mj);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(fr(fr((x[xo + 32 * j + ii] as number) + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
  if (!five) {
    for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) out[q + l] = (L[j + l] as number) | ((L[j + l + 32] as number) << 4);
    }
    return;
  }
  // qh[32] at 16 (bit 2c of byte l: the fifth bit of value l of sub-block 2c; bit 2c+1: of 2c+1),
  // then the low nibbles at 48 as Q4_K's
  out.fill(0, o + 16, o + 48);
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      const l1 = L[64 * c + l] as number;
      const l2 = L[64 * c + 32 + l] as number;
      out[o + 16 + l] = (out[o + 16 + l] as number) | ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
      out[o + 48 + 32 * c + l] = (l1 & 15) | ((l2 & 15) << 4);
    }
  }
}

/** make_qx_quants with rmse_type 1 (weights x²), n = 16, nmax = 32: the signed scale of 16 values
 *  fitted to -32..31 (written to L as 0..63), searching 18 candidate scales around -32 / max. */
function makeQxQuants16(x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  const n = 16;
  const nmax = 32;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i] as number;
    const ax = Math.abs(v);
    if (ax > amax) {
      amax = ax;
      max = v;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  const level = (iscale: number, v: number) => Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * v))));
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i] as number;
    const l = level(iscale, v);
    L[lo + i] = l + nmax;
    const w = fr(v * v);
    sumlx = fr(sumlx + fr(fr(w * v) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(TENTH * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i] as number;
      const l = level(iscale, v);
      const w = fr(v * v);
      sumlx = fr(sumlx + fr(fr(w * v) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + level(iscale, x[xo + i] as number);
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

const TENTH = fr(0.1);
const GROUP_MAX_EPS = fr(1e-15);

class Q6KScratch {
  readonly L = new Uint8Array(QK_K);
  readonly scales = new Float32Array(16);
}

/** quantize_row_q6_K_ref for one super-block of 256 values: ql[128] (low 4 bits), qh[64] (high 2
 *  bits), int8 scales[16] (one per 16 values), float16 d; value = d · scale · (q - 32). */
function quantizeQ6_K(x: Float32Array, xo: number, out: Uint8Array, o: number, s: Q6KScratch): void {
  const { L, scales } = s;
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const scale = makeQxQuants16(x, xo + 16 * ib, L, 16 * ib);
    scales[ib] = scale;
    if (Math.abs(scale) > maxAbsScale) {
      maxAbsScale = Math.abs(scale);
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    out.fill(0, o, o + 210);
    return;
  }
  const iscale = fr(-128 / maxScale);
  const dBits = floatToHalf(fr(1 / iscale));
  putU16(out, o + 208, dBits);
  const dh = halfToFloatTable()[dBits] as number;
  for (let ib = 0; ib < 16; ib++) out[o + 192 + ib] = Math.min(127, nearestInt(fr(iscale * (scales[ib] as number)))) & 0xff;
  for (let j = 0; j < 16; j++) {
    const sc = ((out[o + 192 + j] as number) << 24) >> 24;
    const d = fr(dh * sc);
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(fr((x[xo + 16 * j + ii] as number) / d));
      L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
    }
  }
  for (let h = 0; h < 2; h++) {
    const ql = o + 64 * h;
    const qh = o + 128 + 32 * h;
    const j = 128 * h;
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l] as number;
      const q2 = L[j + l + 32] as number;
      const q3 = L[j + l + 64] as number;
      const q4 = L[j + l + 96] as number;
      out[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
      out[ql + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
      out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

// ---- activations, as ggml's CPU backend rounds them -------------------------------------------------------

/** The type ggml's CPU backend converts activations to before a dot product with a weight of each
 *  type (ggml-cpu.c's type_traits_cpu[].vec_dot_type). */
export const VEC_DOT_TYPE: Readonly<Record<GGMLTypeName, "F32" | "F16" | "BF16" | "Q8_0" | "Q8_K">> = {
  F32: "F32",
  F16: "F16",
  BF16: "BF16",
  Q8_0: "Q8_0",
  Q4_0: "Q8_0",
  Q5_0: "Q8_0",
  Q4_K: "Q8_K",
  Q5_K: "Q8_K",
  Q6_K: "Q8_K",
};

/** Round half to even (_mm256_round_ps with _MM_ROUND_NEAREST). */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Replace each value of x[off .. off+n) by what ggml's CPU backend multiplies a weight of `weightType`
 * with: the activation quantised to the weight's dot-product type and read back. Q8_0 (for Q8_0 and
 * Q4_0 weights): blocks of 32, d = max|x| / 127 stored as float16, q = round(x · 127 / max|x|), as
 * AVX2's quantize_row_q8_0; Q8_K (K-quants): blocks of 256, q = nearest_int(x · -127 / max) with max
 * the value of largest magnitude, d = 1 / that scale (quantize_row_q8_K_ref); F16/BF16 weights:
 * float16/bfloat16 activations. A matrix product of the values returned with the dequantised weights
 * is, up to float32 summation order, the integer dot products ggml computes.
 */
export function roundActivations(weightType: GGMLTypeName, x: Float32Array, off: number, n: number): void {
  const kind = VEC_DOT_TYPE[weightType];
  if (kind === "F32") return;
  if (kind === "F16") {
    const half = halfToFloatTable();
    for (let i = off; i < off + n; i++) x[i] = half[floatToHalf(x[i] as number)] as number;
    return;
  }
  if (kind === "BF16") {
    for (let i = off; i < off + n; i++) {
      u32Scratch[0] = floatToBF16(x[i] as number) << 16;
      x[i] = f32Scratch[0] as number;
    }
    return;
  }
  if (kind === "Q8_0") {
    const half = halfToFloatTable();
    for (let b = off; b < off + n; b += 32) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j] as number));
      const d = half[floatToHalf(fr(amax / 127))] as number;
      const id = amax !== 0 ? fr(127 / amax) : 0;
      for (let j = 0; j < 32; j++) x[b + j] = d * roundEven(fr((x[b + j] as number) * id));
    }
    return;
  }
  for (let b = off; b < off + n; b += QK_K) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[b + j] as number);
      if (ax > amax) {
        amax = ax;
        max = x[b + j] as number;
      }
    }
    if (!amax) {
      x.fill(0, b, b + QK_K);
      continue;
    }
    const iscale = fr(-127 / max);
    const d = fr(1 / iscale);
    for (let j = 0; j < QK_K; j++) x[b + j] = d * Math.min(127, nearestInt(fr(iscale * (x[b + j] as number))));
  }
}

// ---- a quantised tensor --------------------------------------------------------------------------------

/**
 * A 2-D (rows, cols) or 1-D tensor held in a GGML type: the raw blocks, row after row, exactly as
 * a GGUF file stores them. Rows decode on demand, so a quantised model keeps its file's size in memory.
 */
export class QuantizedTensor {
  readonly info: GGMLTypeInfo;
  /** Bytes of one row. */
  readonly rowBytes: number;
  constructor(
    readonly type: GGMLTypeName,
    /** Row-major shape: [rows, cols] (or [cols] for a vector). */
    readonly shape: readonly number[],
    /** The blocks; a new zero-filled buffer of the right size when not given. */
    readonly data: Uint8Array = new Uint8Array(shape.reduce((a, b) => a * b, 1) === 0 ? 0 : tensorBytes(type, shape)),
  ) {
    this.info = GGML_TYPE_INFO[type];
    this.rowBytes = rowBytes(type, this.cols);
    const want = this.rowBytes * this.rows;
    if (data.length !== want) {
      throw new Error(`QuantizedTensor: ${type} [${shape.join(", ")}] needs ${want} bytes but ${data.length} were given`);
    }
  }
  get rows(): number {
    return this.shape.length < 2 ? 1 : this.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  }
  get cols(): number {
    return this.shape[this.shape.length - 1] ?? 1;
  }
  get size(): number {
    return this.rows * this.cols;
  }
  /** Decode rows [start, end) into out (at outOff), row-major. */
  dequantizeRows(start: number, end: number, out: Float32Array, outOff = 0): void {
    const n = this.cols;
    for (let r = start; r < end; r++) dequantizeRow(this.type, this.data, r * this.rowBytes, out, outOff + (r - start) * n, n);
  }
  /** Every value as float32, row-major. */
  toFloat32(): Float32Array {
    const out = new Float32Array(this.size);
    this.dequantizeRows(0, this.rows, out);
    return out;
  }
  /** Quantise row-major float32 values of `shape` to `type`. */
  static quantize(type: GGMLTypeName, shape: readonly number[], values: Float32Array): QuantizedTensor {
    const t = new QuantizedTensor(type, shape);
    if (values.length !== t.size) throw new Error(`quantize: ${values.length} values for shape [${shape.join(", ")}]`);
    for (let r = 0; r < t.rows; r++) quantizeRow(type, values, r * t.cols, t.cols, t.data, r * t.rowBytes);
    return t;
  }
}

/** Bytes of a whole tensor of `shape` (row-major) in `type`. */
export function tensorBytes(type: GGMLTypeName, shape: readonly number[]): number {
  const cols = shape[shape.length - 1] ?? 1;
  const rows = shape.length < 2 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return rowBytes(type, cols) * rows;
}
