// Gradient plumbing for the training loop: accumulation over micro-batches, clipping by the
// global norm (torch.nn.utils.clip_grad_norm_), and the finiteness checks of divergence detection.

import type { Tensor } from "../tensor/tensor.js";

/**
 * Forward and backward over n micro-batches, accumulating into the parameters' .grad. `micro`
 * runs one micro-batch's forward pass and returns its loss (the mean over its rows); each loss is
 * scaled by 1/n, so n micro-batches of B rows give the gradient of one batch of n·B rows. Returns
 * the mean of the micro-batch losses and the tokens they held. Call optimizer.zeroGrad() first.
 */
export function forwardBackward(n: number, micro: (i: number) => { loss: Tensor; tokens?: number }): { loss: number; tokens: number } {
  if (!Number.isInteger(n) || n < 1) throw new Error(`forwardBackward: the number of micro-batches must be an integer >= 1 (got ${n})`);
  let total = 0;
  let tokens = 0;
  for (let i = 0; i < n; i++) {
    const r = micro(i);
    total += r.loss.item();
    tokens += r.tokens ?? 0;
    (n === 1 ? r.loss : r.loss.mul(1 / n)).backward();
  }
  return { loss: total / n, tokens };
}

/** The global L2 norm of the gradients (parameters without a gradient count as zero). */
export function gradNorm(params: readonly Tensor[]): number {
  let sq = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.contiguousData();
    for (let i = 0; i < g.length; i++) {
      const v = g[i] as number;
      sq += v * v;
    }
  }
  return Math.sqrt(sq);
}

/**
 * Scale all gradients in place so their global norm is at most maxNorm, as torch's
 * clip_grad_norm_ does (factor maxNorm / (norm + 1e-6) when that is below 1). Returns the norm
 * before clipping. maxNorm <= 0 disables clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  if (!(maxNorm > 0)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return norm;
  for (const p of params) {
    if (!p.grad) continue;
    if (!p.grad.isContiguous()) p.grad = p.grad.contiguous();
    const g = p.grad.contiguousData(); // a view of the gradient's own memory
    for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) * coef;
  }
  return norm;
}

/** Whether every value of every tensor is a finite number (no NaN, no ±Infinity). */
export function allFinite(tensors: readonly Tensor[]): boolean {
  for (const t of tensors) {
    const d = t.contiguousData();
    for (let i = 0; i < d.length; i++) {
      // x - x is 0 for finite x and NaN for NaN and ±Infinity.
      if ((d[i] as number) - (d[i] as number) !== 0) return false;
    }
  }
  return true;
}
