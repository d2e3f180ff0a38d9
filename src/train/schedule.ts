// The learning-rate schedule of nanoGPT (and GPT-3): linear warmup, then cosine decay to min_lr.

export interface LrSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Floor of the cosine decay (nanoGPT: lr / 10). */
  minLr: number;
  /** Iterations of linear warmup. */
  warmupSteps: number;
  /** Iteration at which the decay reaches minLr (nanoGPT's lr_decay_iters; moxing uses max_steps). */
  decaySteps: number;
}

/** Learning rate for iteration `it` (0-based, the step about to be taken), exactly nanoGPT's get_lr. */
export function getLr(it: number, s: LrSchedule): number {
  if (it < s.warmupSteps) return (s.lr * (it + 1)) / (s.warmupSteps + 1);
  if (it >= s.decaySteps) return s.minLr;
  const ratio = (it - s.warmupSteps) / (s.decaySteps - s.warmupSteps);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio)); // 1 -> 0
  return s.minLr + coeff * (s.lr - s.minLr);
}
