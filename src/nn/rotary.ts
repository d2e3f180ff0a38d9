// Rotary position embeddings (Su et al. 2021, "RoFormer") as Llama-family models use them: each
// head's dims i and i + d/2 are rotated by the angle pos · θ_i with θ_i = base^(-2i/d) (the
// "rotate_half" layout of Hugging Face and GPT-NeoX), base being rope_theta. Llama 3's scaling
// stretches the low frequencies for long contexts; linear scaling divides positions by a factor.
//
// The frequencies and angles are computed in float32 as Hugging Face's LlamaRotaryEmbedding does
// (inv_freq = 1 / base^(arange(0, d, 2) / d), angle = pos · inv_freq), so logits match its to float
// precision. The cos/sin tables grow on demand: a model with a 128k-token context only builds the
// rows it has used.

import { empty } from "../tensor/creation.js";
import { persistent } from "../tensor/memory.js";
import type { Tensor } from "../tensor/tensor.js";
import { applyRope } from "./positional.js";

/** Hugging Face's rope_scaling, for the two kinds moxing implements. */
export type RopeScaling =
  | {
      rope_type: "llama3";
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    }
  | { rope_type: "linear"; factor: number };

const fr = Math.fround;

/** The inverse frequencies θ_i (d/2 of them), float32, with Llama 3 scaling or per-frequency
 *  divisors (a GGUF file's rope_freqs tensor) applied. */
export function ropeInvFreq(headDim: number, base: number, scaling: RopeScaling | null = null, freqFactors?: Float32Array): Float32Array {
  if (headDim % 2 !== 0) throw new Error(`RoPE needs an even head dimension (got ${headDim})`);
  const half = headDim / 2;
  const inv = new Float32Array(half);
  const b = fr(base);
  for (let i = 0; i < half; i++) inv[i] = fr(1 / fr(b ** fr((2 * i) / headDim)));
  if (freqFactors) {
    if (freqFactors.length !== half) throw new Error(`rope_freqs has ${freqFactors.length} values; the head needs ${half}`);
    for (let i = 0; i < half; i++) inv[i] = fr((inv[i] as number) / (freqFactors[i] as number));
  }
  if (scaling?.rope_type === "llama3") {
    // transformers' _compute_llama3_parameters, elementwise in float32.
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = scaling;
    const lowWavelen = old / lo;
    const highWavelen = old / hi;
    for (let i = 0; i < half; i++) {
      const f = inv[i] as number;
      // torch computes `scalar / tensor` as tensor.reciprocal() * scalar.
      const wavelen = fr(fr(1 / f) * fr(2 * Math.PI));
      let g = wavelen > lowWavelen ? fr(f / factor) : f;
      if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
        const smooth = fr(fr(fr(fr(1 / wavelen) * old) - lo) / (hi - lo));
        g = fr(fr(fr(fr(1 - smooth) * g) / factor) + fr(smooth * g));
      }
      inv[i] = g;
    }
  }
  return inv;
}

export class RotaryEmbedding {
  readonly invFreq: Float32Array;
  private cos: Tensor | null = null;
  private sin: Tensor | null = null;
  private readonly positionScale: number;
  constructor(
    readonly headDim: number,
    readonly base = 10000,
    readonly scaling: RopeScaling | null = null,
    freqFactors?: Float32Array,
  ) {
    this.invFreq = ropeInvFreq(headDim, base, scaling, freqFactors);
    this.positionScale = scaling?.rope_type === "linear" ? scaling.factor : 1;
  }

  /** cos and sin tables (len', headDim) with len' >= len rows; row p is position p. */
  tables(len: number): { cos: Tensor; sin: Tensor } {
    const have = this.cos?.shape[0] ?? 0;
    if (!this.cos || !this.sin || have < len) {
      const rows = Math.max(len, Math.min(2 * have, 1 << 20), 64);
      const d = this.headDim;
      const half = d / 2;
      [this.cos, this.sin] = persistent(() => [empty([rows, d]), empty([rows, d])]);
      const c = this.cos.data as Float32Array;
      const s = this.sin.data as Float32Array;
      for (let p = 0; p < rows; p++) {
        const t = fr(p / this.positionScale);
        for (let i = 0; i < half; i++) {
          const a = fr(t * (this.invFreq[i] as number));
          const [cv, sv] = [Math.cos(a), Math.sin(a)];
          c[p * d + i] = cv;
          c[p * d + i + half] = cv;
          s[p * d + i] = sv;
          s[p * d + i + half] = sv;
        }
      }
    }
    return { cos: this.cos, sin: this.sin };
  }

  /** Rotate x (..., T, headDim) holding positions start .. start + T - 1; with headsLast, x is
   *  (..., T, H, headDim) (a projection's output, rotated before the heads are transposed). */
  apply(x: Tensor, start: number, headsLast = false): Tensor {
    const T = x.shape[x.ndim - (headsLast ? 3 : 2)] as number;
    return applyRope(x, this.tables(start + T), start, headsLast);
  }
}
