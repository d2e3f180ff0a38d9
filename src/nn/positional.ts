// Positional encodings: attention by itself is blind to order, so position enters either added
// to the token embeddings (sinusoidal, Vaswani et al. 2017; or learned, as in GPT-2) or by
// rotating queries and keys (RoPE, Su et al. 2021).

import { empty } from "../tensor/creation.js";
import { rope, slice } from "../tensor/ops.js";
import type { Tensor } from "../tensor/tensor.js";

/** The (maxLen, dim) table PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(...). */
export function sinusoidalTable(maxLen: number, dim: number): Tensor {
  const t = empty([maxLen, dim]);
  const d = t.data as Float32Array;
  for (let pos = 0; pos < maxLen; pos++) {
    for (let i = 0; i < dim; i += 2) {
      const angle = pos / 10000 ** (i / dim);
      d[pos * dim + i] = Math.sin(angle);
      if (i + 1 < dim) d[pos * dim + i + 1] = Math.cos(angle);
    }
  }
  return t;
}

/** cos and sin tables (maxLen, headDim) for rotary embeddings, in the half-split layout used by
 *  GPT-NeoX and LLaMA: dims i and i + headDim/2 form a rotating pair with frequency base^(-2i/headDim). */
export function ropeTables(maxLen: number, headDim: number, base = 10000): { cos: Tensor; sin: Tensor } {
  if (headDim % 2 !== 0) throw new Error(`RoPE needs an even head dimension (got ${headDim})`);
  const cos = empty([maxLen, headDim]);
  const sin = empty([maxLen, headDim]);
  const half = headDim / 2;
  for (let pos = 0; pos < maxLen; pos++) {
    for (let i = 0; i < half; i++) {
      const a = pos * base ** ((-2 * i) / headDim);
      for (const j of [i, i + half]) {
        (cos.data as Float32Array)[pos * headDim + j] = Math.cos(a);
        (sin.data as Float32Array)[pos * headDim + j] = Math.sin(a);
      }
    }
  }
  return { cos, sin };
}

/** Rotate x (..., T, hs) at positions start..start+T-1: x·cos + rotate_half(x)·sin (one op,
 *  tensor/ops.ts's rope). With headsLast, x is (..., T, H, hs). */
export function applyRope(x: Tensor, tables: { cos: Tensor; sin: Tensor }, start: number, headsLast = false): Tensor {
  const T = x.shape[x.ndim - (headsLast ? 3 : 2)] as number;
  return rope(x, slice(tables.cos, 0, start, start + T), slice(tables.sin, 0, start, start + T), headsLast); // tables (T, hs)
}
