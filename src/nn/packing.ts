// Padding-free training (TRL's padding_free): a right-padded (B, T) batch of sequences of different
// lengths spends the position-wise work (projections, feed-forward, norms, residuals, the head) on
// its padding too, about a third of the positions of a batch of chat examples. With a Packing the
// real positions run as one packed (N, C) matrix of rows, and only attention, which needs each
// sequence's positions side by side, sees them unpacked to (B, T, C). The padded positions' results
// are never computed, so the loss and gradients at the real positions are those of the padded batch.
// Marian's encoder and decoder pack the same way for training (padded keys there are masked by
// length, or causally).

import { index, reshape } from "../tensor/ops.js";
import { Tensor } from "../tensor/tensor.js";

/** The real positions of a right-padded (B, T) batch: position t of row b is real when t < lengths[b]. */
export interface Packing {
  B: number;
  T: number;
  lengths: Int32Array;
  /** (N) int32: the padded position (b·T + t) of each packed row, row by row. */
  rows: Tensor;
  /** (B·T) int32: the packed row of each padded position; padding reads row 0. What a padded
   *  position then holds never reaches a real one: in a causal model a real query attends only to
   *  earlier positions of its own row, which are real, and padded rows' outputs are dropped again
   *  by pack (their gradients are zero). */
  slots: Tensor;
}

export function packing(lengths: ArrayLike<number>, T: number): Packing {
  const B = lengths.length;
  const lens = new Int32Array(B);
  let N = 0;
  for (let b = 0; b < B; b++) {
    const l = lengths[b] as number;
    if (!Number.isInteger(l) || l < 0 || l > T) throw new Error(`packing: a row length must be from 0 to ${T} (got ${l})`);
    lens[b] = l;
    N += l;
  }
  const rows = new Int32Array(N);
  const slots = new Int32Array(B * T);
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < (lens[b] as number); t++) {
      rows[n] = b * T + t;
      slots[b * T + t] = n++;
    }
  }
  return { B, T, lengths: lens, rows: new Tensor(rows, [N]), slots: new Tensor(slots, [B * T]) };
}

/** (B, T, C) -> packed (N, C). */
export function pack(x: Tensor, p: Packing): Tensor {
  return index(reshape(x, [p.B * p.T, x.shape[2] as number]), p.rows);
}

/** Packed (N, C) -> (B, T, C); padded positions hold row 0's values. */
export function unpack(x: Tensor, p: Packing): Tensor {
  return reshape(index(x, p.slots), [p.B, p.T, x.shape[1] as number]);
}

/** Targets (B, T) int32 -> the packed (N) targets of the real positions. */
export function packTargets(targets: Tensor, p: Packing): Tensor {
  const all = targets.contiguousData();
  const rows = p.rows.data;
  const out = new Int32Array(rows.length);
  for (let n = 0; n < rows.length; n++) out[n] = all[rows[n] as number] as number;
  return new Tensor(out, [rows.length]);
}
