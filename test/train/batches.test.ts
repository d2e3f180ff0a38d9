// EpochBatches: every item once per epoch in a seeded order, a short last batch, and a restored
// state that continues exactly where the run stopped (what resume relies on).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Generator } from "../../src/tensor/random.js";
import { EpochBatches, shuffledOrder } from "../../src/train/batches.js";

describe("EpochBatches", () => {
  const items = Array.from({ length: 10 }, (_, i) => `x${i}`);

  test("each epoch takes every item once, in a shuffled order, the last batch short", () => {
    const b = new EpochBatches(items, 4, new Generator(0));
    const sizes: number[] = [];
    const seen: string[] = [];
    for (let k = 0; k < 3; k++) {
      const rows = b.next();
      sizes.push(rows.length);
      seen.push(...rows);
    }
    assert.deepEqual(sizes, [4, 4, 2]);
    assert.deepEqual([...seen].sort(), [...items].sort());
    assert.notDeepEqual(seen, items, "the order is shuffled");
    // The next epoch has a different order.
    const next = [...b.next(), ...b.next(), ...b.next()];
    assert.deepEqual([...next].sort(), [...items].sort());
    assert.notDeepEqual(next, seen);
  });

  test("a restored state and generator continue with the same batches", () => {
    const g = new Generator(7);
    const a = new EpochBatches(items, 3, g);
    for (let k = 0; k < 5; k++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    const rng = g.getState();
    const rest = Array.from({ length: 6 }, () => a.next());
    const g2 = new Generator(123);
    g2.setState(rng);
    const b = new EpochBatches(items, 3, g2);
    b.restore(saved);
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      rest,
    );
  });

  test("no items gives empty batches instead of looping for ever", () => {
    assert.deepEqual(new EpochBatches([], 4, new Generator(0)).next(), []);
  });

  test("shuffledOrder is a permutation", () => {
    assert.deepEqual(
      shuffledOrder(50, new Generator(3)).sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });
});
