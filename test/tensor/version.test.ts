// The version counter (src/tensor/tape.ts): a tensor modified in place after an op saved it for
// backward makes backward raise an error naming the op, as PyTorch does, instead of returning a
// wrong gradient; modifications that no gradient rule reads stay allowed.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as mx from "../../src/index.js";

const w = () => mx.tensor([1, 2, 3], { requiresGrad: true });

describe("in-place modification of a tensor saved for backward", () => {
  test("y = w*1; z = sum(y*y); y.copy_(0); z.backward() raises naming 'mul' (it used to give zeros instead of 2w)", () => {
    const p = w();
    const y = p.mul(1);
    const z = y.mul(y).sum();
    y.copy_(mx.zeros([3]));
    assert.throws(
      () => z.backward(),
      /backward: input 0 \[3\] of 'mul' was modified in place after 'mul' saved it for the gradient \(it is at version 1, the graph saved version 0\)/,
    );
  });

  test("without the modification the gradient is 2w", () => {
    const p = w();
    const y = p.mul(1);
    y.mul(y).sum().backward();
    assert.deepEqual(p.grad?.toArray(), [2, 4, 6]);
  });

  test("an op's output modified in place, when its rule reads the output (exp)", () => {
    const x = w();
    const y = x.exp();
    const s = y.sum();
    mx.noGrad(() => y.fill_(1));
    assert.throws(() => s.backward(), /the output \[3\] of 'exp' was modified in place/);
  });

  test("a view shares its tensor's version", () => {
    const p = w();
    const y = p.mul(1);
    const z = y.mul(y).sum();
    y.reshape([3, 1]).zero_();
    assert.throws(() => z.backward(), /of 'mul' was modified in place/);
  });

  test("an optimizer step between forward and backward is an in-place write of the weights", () => {
    const p = mx.tensor(
      [
        [1, 2],
        [3, 4],
      ],
      { requiresGrad: true },
    );
    const x = mx.tensor([[1, 1]]);
    const loss = x.matmul(p).sum();
    p.grad = mx.onesLike(p);
    new mx.AdamW([p], { lr: 0.1 }).step();
    assert.throws(() => loss.backward(), /of 'matmul' was modified in place/);
  });

  test("modifying what no rule reads is allowed, as in PyTorch (add needs no input values)", () => {
    const p = w();
    const y = p.mul(2);
    const z = y.add(1).sum();
    y.fill_(100);
    z.backward();
    assert.deepEqual(p.grad?.toArray(), [2, 2, 2]);
  });
});
