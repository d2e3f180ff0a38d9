// The training step's parts: nanoGPT's learning-rate schedule, clipping by global norm, and
// gradient accumulation matching one big batch.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import "../../src/index.js";
import { type Batch, BatchSampler, sequentialWindows, splitTokens } from "../../src/data/text.js";
import { GPT } from "../../src/models/gpt.js";
import { cat, Generator, tensor } from "../../src/tensor/index.js";
import { clipGradNorm, forwardBackward, gradNorm } from "../../src/train/grad.js";
import { getLr } from "../../src/train/schedule.js";
import { assertClose } from "../helpers.js";

describe("learning-rate schedule (nanoGPT get_lr)", () => {
  const s = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, decaySteps: 110 };

  test("linear warmup to the peak", () => {
    assert.equal(getLr(0, s), 1e-3 / 11);
    assert.equal(getLr(4, s), (1e-3 * 5) / 11);
    assert.equal(getLr(9, s), (1e-3 * 10) / 11);
  });

  test("cosine decay from the peak to min_lr, then flat", () => {
    assert.equal(getLr(10, s), 1e-3);
    assertClose("midpoint", [getLr(60, s)], [1e-4 + 0.5 * (1e-3 - 1e-4)], 1e-12, 0);
    assertClose("quarter", [getLr(35, s)], [1e-4 + 0.5 * (1 + Math.cos(Math.PI / 4)) * 9e-4], 1e-12, 0);
    assert.equal(getLr(110, s), 1e-4);
    assert.equal(getLr(500, s), 1e-4);
    for (let it = 11; it <= 110; it++) assert.ok(getLr(it, s) < getLr(it - 1, s), `decreasing at ${it}`);
  });

  test("no warmup, and decay ending at warmup", () => {
    assert.equal(getLr(0, { ...s, warmupSteps: 0 }), 1e-3);
    assert.equal(getLr(10, { ...s, decaySteps: 10 }), 1e-4);
  });
});

describe("gradient clipping by global norm", () => {
  const withGrads = (grads: number[][]) =>
    grads.map((g) => {
      const p = tensor(
        g.map(() => 0),
        { requiresGrad: true },
      );
      p.grad = tensor(g);
      return p;
    });

  test("scales all gradients together to max_norm", () => {
    const ps = withGrads([
      [3, 0],
      [0, 4],
    ]);
    assert.equal(clipGradNorm(ps, 1), 5);
    const k = 1 / (5 + 1e-6);
    assertClose("g0", ps[0]?.grad?.toArray() ?? [], [3 * k, 0], 1e-6);
    assertClose("g1", ps[1]?.grad?.toArray() ?? [], [0, 4 * k], 1e-6);
    assertClose("norm", [gradNorm(ps)], [1], 1e-5);
  });

  test("leaves small gradients alone; 0 disables; missing grads count as zero", () => {
    const ps = withGrads([[0.3, 0.4]]);
    assertClose("norm", [clipGradNorm(ps, 1)], [0.5], 1e-6);
    assert.deepEqual(ps[0]?.grad?.toArray(), [...new Float32Array([0.3, 0.4])]);
    const big = withGrads([[30, 40]]);
    big.push(tensor([1, 2], { requiresGrad: true }));
    assert.equal(clipGradNorm(big, 0), 50);
    assert.deepEqual(big[0]?.grad?.toArray(), [30, 40]);
  });
});

describe("gradient accumulation", () => {
  test("2 micro-batches of B equal one batch of 2B", () => {
    const cfg = { n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 11 };
    const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 7 + (i >> 3)) % 11);
    const sampler = new BatchSampler(tokens, 8, 3, new Generator(5));
    const b1 = sampler.next();
    const b2 = sampler.next();
    const a = new GPT(cfg, { seed: 9 });
    const b = new GPT(cfg, { seed: 9 });
    const loss = (m: GPT, batches: Batch[]) =>
      forwardBackward(batches.length, (i) => ({ loss: m.forward(batches[i]!.x, { targets: batches[i]!.y }).loss! })).loss;
    const lossA = loss(a, [b1, b2]);
    const lossB = loss(b, [{ x: cat([b1.x, b2.x], 0), y: cat([b1.y, b2.y], 0) }]);
    assertClose("loss", [lossA], [lossB], 1e-6);
    const pb = new Map(b.namedParameters());
    for (const [name, p] of a.namedParameters()) {
      const q = pb.get(name);
      assert.ok(p.grad && q?.grad, `${name} has a gradient`);
      assertClose(name, p.grad.toArray(), q.grad.toArray(), 1e-4, 1e-7);
    }
  });
});

describe("data", () => {
  test("90/10 split, windows shifted by one, sampler state is its generator", () => {
    const tokens = Int32Array.from({ length: 100 }, (_, i) => i);
    const { train, val } = splitTokens(tokens);
    assert.equal(train.length, 90);
    assert.deepEqual(
      [...val],
      Array.from({ length: 10 }, (_, i) => 90 + i),
    );
    const g = new Generator(1);
    const s = new BatchSampler(train, 5, 4, g);
    const state = g.getState();
    const { x, y } = s.next();
    assert.deepEqual(x.shape, [4, 5]);
    const xs = x.toArray();
    const ys = y.toArray();
    for (let i = 0; i < xs.length; i++) assert.equal(ys[i], (xs[i] as number) + 1);
    assert.ok(Math.max(...ys) < 90, "windows stay inside the split");
    g.setState(state);
    assert.deepEqual(s.next().x.toArray(), xs);
  });

  test("sequential windows predict every token but the first exactly once", () => {
    const tokens = Int32Array.from({ length: 23 }, (_, i) => i);
    const ys: number[] = [];
    for (const { x, y } of sequentialWindows(tokens, 5, 2)) {
      assert.deepEqual(
        y.toArray(),
        x.toArray().map((v) => v + 1),
      );
      ys.push(...y.toArray());
    }
    assert.deepEqual(
      ys,
      Array.from({ length: 22 }, (_, i) => i + 1),
    );
  });
});
