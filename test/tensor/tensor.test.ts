// The Tensor API: creation, dtypes, views, autograd mechanics, memory release and error messages.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { mx, rnd } from "../helpers.js";

describe(`tensor (${mx.getBackend().name})`, () => {
  test("creation: nested arrays, typed arrays, constants, ranges", () => {
    const t = mx.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, "float32");
    assert.deepEqual(t.tolist(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const buf = new Float32Array([1, 2, 3, 4]);
    const u = mx.tensor(buf, { shape: [2, 2] });
    assert.equal(u.data, buf, "a typed array is used without copying");
    assert.deepEqual(mx.zeros([2, 2]).toArray(), [0, 0, 0, 0]);
    assert.deepEqual(mx.ones([3]).toArray(), [1, 1, 1]);
    assert.deepEqual(mx.full([2], 7).toArray(), [7, 7]);
    assert.deepEqual(mx.arange(5).toArray(), [0, 1, 2, 3, 4]);
    assert.equal(mx.arange(5).dtype, "int32");
    assert.deepEqual(mx.arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
    assert.equal(mx.tensor([1, 2], { dtype: "int32" }).dtype, "int32");
    assert.throws(() => mx.tensor([[1, 2], [3]]), /ragged/);
    assert.throws(() => mx.tensor(new Float32Array(3), { shape: [2, 2] }), /needs 4 values/);
  });

  test("seeded random: same seed, same numbers; different seeds differ", () => {
    const a = mx.randn([100], { generator: new mx.Generator(42) }).toArray();
    const b = mx.randn([100], { generator: new mx.Generator(42) }).toArray();
    const c = mx.randn([100], { generator: new mx.Generator(43) }).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const mean = a.reduce((p, v) => p + v, 0) / a.length;
    assert.ok(Math.abs(mean) < 0.35, `randn mean ${mean} should be near 0`);
    const u = mx.rand([1000], { generator: new mx.Generator(1) }).toArray();
    assert.ok(u.every((v) => v >= 0 && v < 1));
    mx.manualSeed(7);
    const d = mx.randn([5]).toArray();
    mx.manualSeed(7);
    assert.deepEqual(mx.randn([5]).toArray(), d);
    const ri = mx.randint(3, 9, [500], { generator: new mx.Generator(2) }).toArray();
    assert.ok(ri.every((v) => v >= 3 && v < 9) && new Set(ri).size === 6);
    // Dropout's fast mask makes exactly the draws of a loop over random(), and moves the state as far.
    for (const p of [0, 0.1, 0.5, 1]) {
      const [g1, g2] = [new mx.Generator(9), new mx.Generator(9)];
      const loop = Float32Array.from({ length: 1001 }, () => (g1.random() >= p ? 1.25 : 0));
      const fast = new Float32Array(1001);
      g2.fillBernoulli(fast, p, 1.25);
      assert.deepEqual(fast, loop);
      assert.deepEqual(g2.getState(), g1.getState());
      if (p === 0.5) assert.ok(fast.some((v) => v === 0) && fast.some((v) => v === 1.25));
    }
  });

  test("views share memory: reshape, transpose, permute, slice, expand", () => {
    const x = mx.arange(24).float().reshape(2, 3, 4);
    assert.equal(x.reshape(6, 4).data, x.data);
    assert.equal(x.transpose(0, 2).data, x.data);
    assert.equal(x.permute(2, 0, 1).data, x.data);
    assert.equal(x.slice(2, 1, 3).data, x.data);
    assert.equal(x.slice(0, 0, 1).expand(5, 3, 4).data, x.data);
    const t = x.transpose(1, 2);
    assert.equal(t.isContiguous(), false);
    assert.deepEqual(t.shape, [2, 4, 3]);
    assert.deepEqual(t.contiguous().index(0).index(1).toArray(), [1, 5, 9]);
    assert.notEqual(t.contiguous().data, x.data);
    assert.deepEqual(x.slice(2, 0, 4, 2).index(1).toArray(), [12, 14, 16, 18, 20, 22]);
    assert.deepEqual(x.slice(2, -1).flatten().toArray(), [3, 7, 11, 15, 19, 23]);
    assert.deepEqual(x.reshape(-1, 12).shape, [2, 12]);
    assert.throws(() => x.reshape(5, 5), /cannot reshape tensor of shape \[2, 3, 4\] \(24 elements\) into \[5, 5\]/);
    // reshape of a non-contiguous tensor copies, as torch.reshape does
    assert.deepEqual(t.reshape(-1).toArray().slice(0, 4), [0, 4, 8, 1]);
  });

  test("concat / split / stack / chunk", () => {
    const a = mx.tensor([
      [1, 2],
      [3, 4],
    ]);
    const b = mx.tensor([[5], [6]]);
    assert.deepEqual(mx.cat([a, b], 1).tolist(), [
      [1, 2, 5],
      [3, 4, 6],
    ]);
    assert.deepEqual(mx.stack([a, a], 0).shape, [2, 2, 2]);
    const [p, q] = mx.cat([a, b], 1).split([2, 1], 1);
    assert.deepEqual(p!.tolist(), [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(q!.tolist(), [[5], [6]]);
    assert.equal(mx.arange(10).chunk(3).length, 3);
    assert.throws(() => mx.cat([a, mx.ones([3, 1])], 1), /cat: shapes \[2, 2\] and \[3, 1\] differ outside dim 1/);
  });

  test("comparisons, where, maskedFill, casts", () => {
    const x = mx.tensor([-1.5, 0, 2.7]);
    assert.deepEqual(x.gt(0).toArray(), [0, 0, 1]);
    assert.deepEqual(mx.where(x.lt(0), 0, x).toArray(), [0, 0, 2.700000047683716]);
    assert.deepEqual(x.maskedFill(x.eq(0), 9).toArray(), [-1.5, 9, 2.700000047683716]);
    assert.deepEqual(x.int().toArray(), [-1, 0, 2], "float to int truncates toward zero");
    const i = mx.tensor([7, 2], { dtype: "int32" });
    assert.equal(i.add(1).dtype, "int32");
    assert.equal(i.add(0.5).dtype, "float32");
    assert.deepEqual(i.div(2).toArray(), [3.5, 1], "true division of ints is float");
    assert.deepEqual(x.argmax().toArray(), [2]);
    assert.deepEqual(
      mx
        .tensor([
          [1, 5],
          [7, 2],
        ])
        .argmax(0)
        .toArray(),
      [1, 0],
    );
  });

  test("reductions with keepdim", () => {
    const x = mx.arange(6).float().reshape(2, 3);
    assert.deepEqual(x.sum(1).toArray(), [3, 12]);
    assert.deepEqual(x.sum(1, true).shape, [2, 1]);
    assert.deepEqual(x.mean(0).toArray(), [1.5, 2.5, 3.5]);
    assert.deepEqual(x.max(1).toArray(), [2, 5]);
    assert.deepEqual(x.min().toArray(), [0]);
    assert.equal(x.sum().item(), 15);
    assert.ok(Math.abs(x.var().item() - 3.5) < 1e-6);
    assert.ok(Math.abs(x.var(undefined, false, 0).item() - 17.5 / 6) < 1e-6);
  });

  test("errors name the op and the shapes", () => {
    assert.throws(() => mx.ones([2, 3]).add(mx.ones([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
    assert.throws(() => mx.ones([2, 3]).matmul(mx.ones([4, 2])), /matmul: shapes \[2, 3\] and \[4, 2\] are not aligned/);
    assert.throws(() => mx.embedding(mx.ones([3, 2]), mx.ones([2])), /indices must be int32/);
    assert.throws(() => mx.embedding(mx.ones([3, 2]), mx.tensor([3], { dtype: "int32" })), /index 3 is out of range for a table of 3 rows/);
    assert.throws(
      () => mx.crossEntropy(mx.ones([2, 3]), mx.tensor([0, 5], { dtype: "int32" })),
      /target 5 at position 1 is out of range for 3 classes/,
    );
    const y = mx.ones([2, 2], { requiresGrad: true }).mul(2);
    assert.throws(() => y.backward(), /backward: called on a tensor of shape \[2, 2\]; pass a gradient/);
    assert.throws(() => mx.ones([2]).sum(3), /sum: dim 3 is out of range/);
    assert.throws(() => mx.ones([2], { dtype: "int32", requiresGrad: true }), /only float32/);
  });

  test("autograd: accumulation, detach, noGrad, non-scalar backward with a gradient", () => {
    const x = mx.tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward();
    x.mul(3).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [5, 7, 9], "grads accumulate across backward calls");
    x.grad = null;
    x.mul(x.detach()).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [1, 2, 3], "detach stops the gradient through one factor");
    const z = mx.noGrad(() => x.mul(2));
    assert.equal(z.requiresGrad, false);
    assert.equal(z._node, null);
    x.grad = null;
    x.mul(2).backward(mx.tensor([1, 0, -1]));
    assert.deepEqual(x.grad!.toArray(), [2, 0, -2]);
  });

  test("backward releases the graph; a second backward through it is an error", () => {
    const w = rnd([4, 4], 1).requiresGrad_();
    const h = w.tanh();
    const loss = h.sum();
    loss.backward();
    assert.equal(loss._node, null);
    assert.equal(h._node, null);
    assert.throws(() => loss.backward(), /already released/);
    assert.throws(() => h.mul(2).sum().backward(), /already used by an earlier backward/);
  });

  test("memory does not grow from step to step", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const w1 = rnd([32, 64], 2).requiresGrad_();
    const w2 = rnd([64, 8], 3).requiresGrad_();
    const x = rnd([16, 32], 4);
    const t = mx.randint(0, 8, [16], { generator: new mx.Generator(5) });
    const step = () => {
      const loss = mx.crossEntropy(x.matmul(w1).relu().matmul(w2), t);
      w1.grad = null;
      w2.grad = null;
      loss.backward();
      mx.noGrad(() => {
        w1.copy_(w1.sub(w1.grad!.mul(0.01)));
        w2.copy_(w2.sub(w2.grad!.mul(0.01)));
      });
    };
    // Warm up first: JIT code and backend caches settle in the first few hundred steps. A leaked
    // graph would cost ~40 kB per step here, 24 MB over the measured 600.
    const used = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    };
    for (let i = 0; i < 300; i++) step();
    const before = used();
    for (let i = 0; i < 600; i++) step();
    const after = used();
    assert.ok(after - before < 2e6, `memory grew by ${(after - before) / 1e6} MB over 600 steps`);
  });

  test("dropout is seeded and scales kept values", () => {
    const x = mx.ones([1000]);
    const a = mx.dropout(x, 0.25, true, new mx.Generator(3)).toArray();
    const b = mx.dropout(x, 0.25, true, new mx.Generator(3)).toArray();
    assert.deepEqual(a, b);
    const kept = a.filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 4 / 3) < 1e-6));
    assert.ok(Math.abs(kept.length / 1000 - 0.75) < 0.05);
    assert.equal(mx.dropout(x, 0.25, false), x, "eval mode is the identity");
  });

  test("in-place updates of leaves need noGrad", () => {
    const p = mx.ones([2], { requiresGrad: true });
    assert.throws(() => p.copy_(mx.zeros([2])), /cannot be modified in place/);
    mx.noGrad(() => p.copy_(mx.tensor([3, 4])));
    assert.deepEqual(p.toArray(), [3, 4]);
    mx.noGrad(() => p.slice(0, 1).fill_(9));
    assert.deepEqual(p.toArray(), [3, 9]);
  });
});

describe("reshape views", () => {
  test("reshape of a compatible non-contiguous layout is a view; an incompatible one copies", () => {
    const qkv = mx
      .arange(2 * 3 * 12)
      .float()
      .reshape(2, 3, 12);
    const q = qkv.slice(2, 4, 8); // (2, 3, 4) with row stride 12
    const heads = q.reshape(2, 3, 2, 2);
    assert.equal(heads.data, qkv.data, "splitting a dim of a strided tensor needs no copy");
    assert.deepEqual(heads.strides, [36, 12, 2, 1]);
    assert.deepEqual(heads.toArray(), q.contiguous().toArray());
    const t = mx.arange(6).float().reshape(2, 3).T; // (3, 2) transposed
    const flat = t.reshape(6);
    assert.notEqual(flat.data, t.data, "flattening a transposed matrix must copy");
    assert.deepEqual(flat.toArray(), [0, 3, 1, 4, 2, 5]);
  });
});
