// Shared test utilities: closeness checks with useful diagnostics, and a finite-difference
// gradient checker. Importing this registers every backend (through the package entry).

import assert from "node:assert/strict";
import type { Tensor } from "../src/index.js";
import * as mx from "../src/index.js";

export { mx };

/** Assert two arrays agree elementwise within atol + rtol·|expected|; names the worst element. */
export function assertClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(got.length, want.length, `${name}: length ${got.length} vs expected ${want.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue; // covers matching infinities
    const excess = Math.abs(g - w) - (atol + rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${name}: element ${worst} is ${got[worst]}, expected ${want[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

export function assertTensorClose(name: string, got: Tensor, want: Tensor, rtol = 1e-5, atol = 1e-6): void {
  assert.deepEqual(
    [...got.shape],
    [...want.shape],
    `${name}: shape ${JSON.stringify(got.shape)} vs expected ${JSON.stringify(want.shape)}`,
  );
  assertClose(name, got.toArray(), want.toArray(), rtol, atol);
}

/** Random float32 tensor from a seeded generator; values in [lo, hi). */
export function rnd(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  return mx.rand(shape, { generator: new mx.Generator(seed), low: lo, high: hi });
}

/** Values spaced at least `gap` apart (shuffled), so kinks of max/relu/abs stay far from x ± eps. */
export function spaced(shape: number[], seed: number, gap = 0.1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const g = new mx.Generator(seed);
  const vals = Array.from({ length: n }, (_, i) => (i - n / 2 + 0.5) * gap);
  for (let i = n - 1; i > 0; i--) {
    const j = g.randint(i + 1);
    [vals[i], vals[j]] = [vals[j] as number, vals[i] as number];
  }
  return mx.tensor(vals, { shape });
}

/**
 * Finite-difference gradient check. L = Σ f(inputs) ⊙ W for a fixed random W, evaluated in
 * float64 from the float32 outputs; each input element is moved by ±eps and the central
 * difference is compared with the gradient from backward(). Storage is float32, so eps and the
 * tolerances are sized for float32 rounding (about 6e-8 relative) rather than float64's.
 */
export function gradcheck(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; atol?: number; rtol?: number } = {},
): void {
  const { eps = 1e-2, atol = 2e-3, rtol = 2e-2 } = opts;
  for (const x of inputs) {
    x.requiresGrad = true;
    x.grad = null;
  }
  const out = f(...inputs);
  const W = rnd([...out.shape], 12345, -1, 1);
  const weights = Float64Array.from(W.toArray());
  const lossOf = (): number => {
    const y = mx.noGrad(() => f(...inputs)).toArray();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += (y[i] as number) * (weights[i] as number);
    return s;
  };
  out.mul(W).sum().backward();
  inputs.forEach((x, k) => {
    const analytic = x.grad ? x.grad.toArray() : new Array<number>(x.size).fill(0);
    const numeric: number[] = [];
    const data = x.data;
    for (let i = 0; i < x.size; i++) {
      const at = x.offset + i; // leaves are contiguous
      const orig = data[at] as number;
      data[at] = orig + eps;
      const up = lossOf();
      data[at] = orig - eps;
      const down = lossOf();
      data[at] = orig;
      numeric.push((up - down) / (2 * eps));
    }
    assertClose(`${name}: d/d input ${k}`, analytic, numeric, rtol, atol);
  });
}
