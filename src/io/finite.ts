// Weights that are NaN or infinite make every output garbage (generate printed noise with exit 0,
// eval printed {"loss": null}); a model is checked once when it is loaded, and refused with the
// tensor to blame.

import type { Tensor } from "../tensor/tensor.js";

/** How many values of `data` are NaN or ±Infinity. */
export function countNonFinite(data: ArrayLike<number>): number {
  let bad = 0;
  // x - x is 0 for every finite x and NaN for NaN and ±Infinity.
  for (let i = 0; i < data.length; i++) if ((data[i] as number) - (data[i] as number) !== 0) bad++;
  return bad;
}

/**
 * Throw `Err` (naming `source`) if any parameter of a loaded model holds NaN or ±Infinity. The
 * message names the first such tensor, how many of its values are bad, and how many other tensors
 * are affected.
 */
export function checkFiniteWeights(named: Iterable<[string, Tensor]>, source: string, Err: new (message: string) => Error = Error): void {
  let first: { name: string; bad: number; size: number } | null = null;
  let others = 0;
  for (const [name, t] of named) {
    if (t.dtype !== "float32") continue;
    const bad = countNonFinite(t.contiguousData());
    if (bad === 0) continue;
    if (first) others++;
    else first = { name, bad, size: t.size };
  }
  if (!first) return;
  const more = others ? ` (and ${others} other tensor${others > 1 ? "s" : ""})` : "";
  throw new Err(
    `${source}: ${first.bad} of the ${first.size} values of '${first.name}' are NaN or infinite${more}; ` +
      "the weights are damaged or training diverged: use an earlier checkpoint, or retrain with a lower learning rate",
  );
}
