// Seedable random numbers. Generated here in TypeScript (not by a backend) so that the same
// seed gives the same numbers on every backend: a model initialised on the native backend is
// bit-identical to one initialised on the reference backend.

/** xoshiro128** (Blackman & Vigna 2018): 128-bit state, 32-bit integer ops only, fast in JS. */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null; // second Box-Muller sample

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    // SplitMix32 expands the seed into the state, so nearby seeds give unrelated streams.
    let x = (Math.floor(seed) ^ Math.floor(seed / 2 ** 32)) >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.spare = null;
    return this;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2] = s[2]! ^ s[0]!;
    s[3] = s[3]! ^ s[1]!;
    s[1] = s[1]! ^ s[2]!;
    s[0] = s[0]! ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }

  /** Uniform in [0, 1) with 24 random bits, exactly representable in float32. */
  random(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** out[i] = value where random() >= p, else 0: the draws of a loop over random(), with the
   *  generator's state in locals (dropout masks are millions of draws a training step). */
  fillBernoulli(out: Float32Array, p: number, value: number): void {
    const st = this.s;
    let [s0, s1, s2, s3] = [st[0]!, st[1]!, st[2]!, st[3]!];
    const threshold = p * 16777216; // random() >= p  <=>  (24 random bits) >= p * 2^24, exactly
    for (let i = 0; i < out.length; i++) {
      const m = Math.imul(s1, 5);
      const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = r >>> 8 >= threshold ? value : 0;
    }
    st[0] = s0;
    st[1] = s1;
    st[2] = s2;
    st[3] = s3;
  }

  /** Standard normal via Box-Muller (both samples used). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  randint(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** State for checkpoints, so a resumed run draws the same numbers as an uninterrupted one. */
  getState(): { s: number[]; spare: number | null } {
    return { s: [...this.s], spare: this.spare };
  }

  setState(state: { s: readonly number[]; spare: number | null }): void {
    this.s.set(state.s);
    this.spare = state.spare;
  }
}

/** The default generator used when an op is not given one (like torch's global generator). */
function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
