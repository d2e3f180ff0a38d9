// Tier 1: finite-difference gradient checks for every differentiable op, with broadcasting and
// non-contiguous (transposed, sliced, expanded) inputs. Runs on whichever backend is active.

import { describe, test } from "node:test";
import type { Tensor } from "../../src/index.js";
import { gradcheck, mx, rnd, spaced } from "../helpers.js";

const B = mx.getBackend().name;

describe(`gradcheck (${B})`, () => {
  const unary: [string, (x: mx.Tensor) => mx.Tensor, () => mx.Tensor][] = [
    ["neg", (x) => x.neg(), () => rnd([3, 4], 1)],
    ["exp", (x) => x.exp(), () => rnd([3, 4], 2)],
    ["log", (x) => x.log(), () => rnd([3, 4], 3, 0.5, 2)],
    ["sqrt", (x) => x.sqrt(), () => rnd([3, 4], 4, 0.5, 2)],
    ["tanh", (x) => x.tanh(), () => rnd([3, 4], 5)],
    ["sigmoid", (x) => x.sigmoid(), () => rnd([3, 4], 6)],
    ["relu", (x) => x.relu(), () => spaced([3, 4], 7)],
    ["erf", (x) => x.erf(), () => rnd([3, 4], 8)],
    ["abs", (x) => x.abs(), () => spaced([3, 4], 9)],
    ["sin", (x) => x.sin(), () => rnd([3, 4], 10, -3, 3)],
    ["cos", (x) => x.cos(), () => rnd([3, 4], 11, -3, 3)],
    ["gelu exact", (x) => x.gelu("none"), () => rnd([3, 4], 12, -3, 3)],
    ["gelu tanh", (x) => x.gelu("tanh"), () => rnd([3, 4], 13, -3, 3)],
    ["softmax last", (x) => x.softmax(-1), () => rnd([3, 5], 14, -2, 2)],
    ["softmax dim0", (x) => x.softmax(0), () => rnd([3, 5], 15, -2, 2)],
    ["log_softmax", (x) => x.logSoftmax(-1), () => rnd([3, 5], 16, -2, 2)],
    ["sum all", (x) => x.sum(), () => rnd([3, 4], 17)],
    ["sum dim keepdim", (x) => x.sum(1, true), () => rnd([2, 3, 4], 18)],
    ["sum dims", (x) => x.sum([0, 2]), () => rnd([2, 3, 4], 19)],
    ["mean", (x) => x.mean(-1), () => rnd([3, 4], 20)],
    ["max all", (x) => x.max(), () => spaced([3, 4], 21)],
    ["max dim", (x) => x.max(0, true), () => spaced([3, 4], 22)],
    ["min dim", (x) => x.min(1), () => spaced([3, 4], 23)],
    ["var unbiased", (x) => x.var(-1), () => rnd([3, 5], 24)],
    ["var biased", (x) => x.var([0, 1], false, 0), () => rnd([3, 5], 25)],
    ["clamp", (x) => x.clamp(-0.45, 0.55), () => spaced([3, 4], 26)],
    ["pow scalar", (x) => x.pow(3), () => rnd([3, 4], 27)],
    ["transpose (non-contiguous) then exp", (x) => x.T.exp(), () => rnd([3, 4], 28)],
    ["slice with step", (x) => x.slice(1, 0, 5, 2).mul(2), () => rnd([3, 6], 29)],
    ["permute + reshape", (x) => x.permute(2, 0, 1).reshape(4, 6), () => rnd([2, 3, 4], 30)],
    ["expand", (x) => x.expand(3, 4), () => rnd([1, 4], 31)],
    ["unsqueeze/squeeze", (x) => x.unsqueeze(1).squeeze(1).mul(x), () => rnd([3, 4], 32)],
    ["index number", (x) => x.index(1), () => rnd([3, 4], 33)],
    ["index tensor", (x) => x.index(mx.tensor([2, 0, 2], { dtype: "int32" })), () => rnd([3, 4], 34)],
    ["contiguous of transposed", (x) => x.T.contiguous().mul(x.T), () => rnd([3, 4], 35)],
    ["flatten", (x) => x.flatten(1).mul(2), () => rnd([2, 3, 2], 36)],
    ["layer_norm no affine", (x) => mx.layerNorm(x, null, null), () => rnd([3, 6], 37)],
    ["dropout p=0", (x) => mx.dropout(x, 0), () => rnd([3, 4], 38)],
  ];
  for (const [name, f, make] of unary) test(name, () => gradcheck(name, f, [make()]));

  const binary: [string, (a: mx.Tensor, b: mx.Tensor) => mx.Tensor, () => mx.Tensor, () => mx.Tensor][] = [
    ["add broadcast", (a, b) => a.add(b), () => rnd([3, 1, 4], 40), () => rnd([2, 4], 41)],
    ["sub broadcast", (a, b) => a.sub(b), () => rnd([3, 4], 42), () => rnd([4], 43)],
    ["mul broadcast", (a, b) => a.mul(b), () => rnd([2, 3, 4], 44), () => rnd([3, 1], 45)],
    ["div", (a, b) => a.div(b), () => rnd([3, 4], 46), () => rnd([3, 4], 47, 0.5, 2)],
    ["pow tensor", (a, b) => a.pow(b), () => rnd([3, 4], 48, 0.5, 2), () => rnd([3, 4], 49)],
    ["maximum", (a, b) => a.maximum(b), () => spaced([3, 4], 50), () => spaced([3, 4], 51).add(0.05)],
    ["minimum", (a, b) => a.minimum(b), () => spaced([3, 4], 52), () => spaced([4], 53).add(0.05)],
    ["where", (a, b) => mx.where(a.gt(0), a, b), () => spaced([3, 4], 54), () => rnd([4], 55)],
    ["matmul 2d", (a, b) => a.matmul(b), () => rnd([3, 5], 56), () => rnd([5, 4], 57)],
    ["matmul batched", (a, b) => a.matmul(b), () => rnd([2, 3, 5], 58), () => rnd([2, 5, 4], 59)],
    ["matmul broadcast batch", (a, b) => a.matmul(b), () => rnd([2, 1, 3, 5], 60), () => rnd([3, 5, 2], 61)],
    ["matmul shared weight", (a, b) => a.matmul(b), () => rnd([2, 3, 5], 62), () => rnd([5, 4], 63)],
    ["matmul transposed operands", (a, b) => a.T.matmul(b.T), () => rnd([5, 3], 64), () => rnd([4, 5], 65)],
    ["matmul vector", (a, b) => a.matmul(b), () => rnd([3, 5], 66), () => rnd([5], 67)],
    ["matmul vec-mat", (a, b) => a.matmul(b), () => rnd([5], 68), () => rnd([5, 3], 69)],
    [
      "embedding repeated ids",
      (w, _b) =>
        mx.embedding(
          w,
          mx.tensor(
            [
              [1, 3],
              [1, 1],
            ],
            { dtype: "int32" },
          ),
        ),
      () => rnd([4, 3], 70),
      () => rnd([1], 71),
    ],
    ["cat dim 1", (a, b) => mx.cat([a, b, a], 1), () => rnd([2, 3], 72), () => rnd([2, 2], 73)],
    ["stack", (a, b) => mx.stack([a, b], 1), () => rnd([2, 3], 74), () => rnd([2, 3], 75)],
    [
      "split + recombine",
      (a, b) => {
        const [p, q] = a.split([1, 3], 1);
        return p!.mul(q!.sum(1, true)).add(b);
      },
      () => rnd([3, 4], 76),
      () => rnd([3, 1], 77),
    ],
    ["linear", (x, w) => mx.linear(x, w), () => rnd([2, 3, 4], 78), () => rnd([5, 4], 79)],
    ["maskedFill", (a, b) => a.maskedFill(b.gt(0), 2).mul(b), () => rnd([3, 4], 80), () => spaced([4], 81)],
  ];
  for (const [name, f, ma, mb] of binary) test(name, () => gradcheck(name, f, [ma(), mb()]));

  test("linear with bias equals x·Wᵀ + b, and its gradients check", () => {
    gradcheck("linear+bias", (x, w, b) => mx.linear(x, w, b), [rnd([2, 3, 4], 101), rnd([5, 4], 102), rnd([5], 103)]);
    gradcheck("linear of a transposed input", (x, w, b) => mx.linear(x.T, w, b), [rnd([4, 3], 104), rnd([5, 4], 105), rnd([5], 106)]);
    const [x, w, b] = [rnd([2, 3, 4], 107), rnd([5, 4], 108), rnd([5], 109)];
    const want = x.matmul(w.T).add(b).toArray();
    const got = mx.linear(x, w, b).toArray();
    got.forEach((v, i) => {
      if (Math.abs(v - (want[i] as number)) > 1e-6) throw new Error(`linear differs from matmul + bias at ${i}: ${v} vs ${want[i]}`);
    });
  });
  test("linear with a GELU epilogue", () => {
    gradcheck("linear+gelu", (x, w, b) => mx.linear(x, w, b, "gelu"), [rnd([2, 3, 4], 110), rnd([5, 4], 111), rnd([5], 112)]);
    gradcheck("linear+gelu_tanh", (x, w, b) => mx.linear(x, w, b, "gelu_tanh"), [rnd([3, 4], 113), rnd([5, 4], 114), rnd([5], 115)]);
  });
  test("rms_norm, silu, swiglu and rope", () => {
    gradcheck("rms_norm", (x, w) => mx.rmsNorm(x, w, 1e-6), [rnd([2, 3, 6], 93), rnd([6], 94, 0.5, 1.5)]);
    gradcheck("rms_norm no weight", (x) => mx.rmsNorm(x, null, 1e-5), [rnd([3, 5], 95)]);
    gradcheck("silu", (x) => mx.silu(x), [rnd([3, 4], 96, -4, 4)]);
    gradcheck("swiglu", (g, u) => mx.swiglu(g, u), [rnd([3, 4], 97, -4, 4), rnd([3, 4], 98)]);
    const angles = rnd([3, 2], 99, -3, 3);
    const half = (f: (t: Tensor) => Tensor) => mx.cat([f(angles), f(angles)], 1); // (T, hs): equal halves, as Llama's
    const [cos, sin] = [half((a) => a.cos()), half((a) => a.sin())];
    gradcheck("rope", (x) => mx.rope(x, cos, sin), [rnd([2, 3, 4], 100)]);
    gradcheck("rope heads last", (x) => mx.rope(x, cos, sin, true), [rnd([2, 3, 2, 4], 101)]);
  });
  test("layer_norm affine", () => {
    gradcheck("layer_norm", (x, w, b) => mx.layerNorm(x, w, b), [rnd([2, 3, 6], 90), rnd([6], 91, 0.5, 1.5), rnd([6], 92)]);
  });
  test("cross_entropy mean", () => {
    const t = mx.tensor([0, 3, 2, 1], { dtype: "int32" });
    gradcheck("ce", (x) => mx.crossEntropy(x, t), [rnd([4, 5], 93, -2, 2)]);
  });
  test("cross_entropy ignore_index + label smoothing, 3-d logits", () => {
    const t = mx.tensor(
      [
        [0, -100, 2],
        [4, 1, -100],
      ],
      { dtype: "int32" },
    );
    gradcheck("ce", (x) => mx.crossEntropy(x, t, { labelSmoothing: 0.1 }), [rnd([2, 3, 5], 94, -2, 2)]);
  });
  test("cross_entropy sum and none", () => {
    const t = mx.tensor([0, 3, 2], { dtype: "int32" });
    gradcheck("ce sum", (x) => mx.crossEntropy(x, t, { reduction: "sum" }), [rnd([3, 5], 95, -2, 2)]);
    gradcheck("ce none", (x) => mx.crossEntropy(x, t, { reduction: "none" }), [rnd([3, 5], 96, -2, 2)]);
  });
  test("scaled dot-product attention, causal", () => {
    gradcheck("sdpa", (q, k, v) => mx.scaledDotProductAttention(q, k, v, { causal: true }).out, [
      rnd([2, 4, 3], 97),
      rnd([2, 4, 3], 98),
      rnd([2, 4, 3], 99),
    ]);
  });
  test("a tensor used twice accumulates both gradients", () => {
    gradcheck("reuse", (x) => x.mul(x).add(x.exp()).sum(0), [rnd([3, 4], 100)]);
  });
});
