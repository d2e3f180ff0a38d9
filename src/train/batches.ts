// Batches for the trainers that walk a fixed list of examples epoch by epoch (fine-tuning, ListOps,
// the hierarchical attention network): a fresh seeded order each epoch, batches taken from it in
// turn, the last batch of an epoch possibly short. Its order and cursor go into the run's
// trainer_state.json (with the generator's state), so a resumed run draws the batches an
// uninterrupted one would.

import type { Generator } from "../tensor/random.js";

/** 0..n-1 shuffled by Fisher-Yates with rng. */
export function shuffledOrder(n: number, rng: Generator): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.randint(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

export class EpochBatches<T> {
  private order: number[] = [];
  private cursor = 0;

  /** newOrder makes each epoch's order (default: the items shuffled). */
  constructor(
    private readonly items: readonly T[],
    private readonly batchSize: number,
    private readonly rng: Generator,
    private readonly newOrder: (rng: Generator) => number[] = (g) => shuffledOrder(items.length, g),
  ) {}

  /** Continue from a checkpoint's state (the generator's state is restored by the caller). */
  restore(saved: { order: readonly number[]; cursor: number }): void {
    this.order = [...saved.order];
    this.cursor = saved.cursor;
  }

  /** What restore takes back: the current epoch's order and the position in it. */
  state(): { order: number[]; cursor: number } {
    return { order: this.order, cursor: this.cursor };
  }

  next(): T[] {
    const rows: T[] = [];
    while (rows.length < this.batchSize) {
      if (this.cursor >= this.order.length) {
        if (rows.length) break; // the last batch of an epoch may be short
        this.order = this.newOrder(this.rng);
        this.cursor = 0;
        if (this.order.length === 0) break;
      }
      rows.push(this.items[this.order[this.cursor++] as number] as T);
    }
    return rows;
  }
}
