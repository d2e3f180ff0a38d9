// Gradient plumbing for the training loop: accumulation over micro-batches and clipping by the
// global norm (torch.nn.utils.clip_grad_norm_).

import type { Batch } from "../data/text.js";
import type { GPT } from "../models/gpt.js";
import type { Tensor } from "../tensor/tensor.js";

/**
 * Forward and backward over micro-batches, accumulating into the parameters' .grad. Each loss is
 * scaled by 1/n, so n micro-batches of B rows give the gradient of one batch of n·B rows. Returns
 * the mean of the micro-batch losses. Call optimizer.zeroGrad() first.
 */
export function forwardBackward(model: GPT, batches: readonly Batch[]): number {
  let total = 0;
  for (const { x, y } of batches) {
    const { loss } = model.forward(x, { targets: y });
    if (!loss) throw new Error("forwardBackward: the model returned no loss");
    total += loss.item();
    (batches.length === 1 ? loss : loss.mul(1 / batches.length)).backward();
  }
  return total / batches.length;
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
