// Tier 2: the conformance suite. Every backend runs it unchanged (npm test runs it once per
// backend with MOXING_BACKEND set). Each case computes an op on the active backend and on the
// reference backend (the specification) over many layouts: contiguous, transposed, sliced with
// a step, broadcast, 0-d, empty, sizes 1 and primes; fused kernels are checked, forward and
// backward, against the reference's composition of primitives. Exact-value cases keep the suite
// meaningful on the reference backend itself.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Tensor } from "../../src/index.js";
import { AdamW } from "../../src/optim/adamw.js";
import { assertClose, assertTensorClose, mx, rnd, spaced } from "../helpers.js";

const ACTIVE = mx.getBackend().name;
const swapLast = (s: number[]) => [...s.slice(0, -2), s[s.length - 1] as number, s[s.length - 2] as number];

function onReference<T>(fn: () => T): T {
  mx.setBackend("reference");
  try {
    return fn();
  } finally {
    mx.setBackend(ACTIVE);
  }
}

/** Run f on both backends with fresh leaf copies of the inputs; compare output and input grads. */
function same(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { rtol?: number; atol?: number; grad?: boolean } = {},
): void {
  const { rtol = 1e-5, atol = 1e-6, grad = true } = opts;
  const run = () => {
    const xs = inputs.map((x) => {
      const c = mx.tensor(x.contiguousData().slice(), { shape: [...x.shape] });
      if (grad && c.dtype === "float32") c.requiresGrad = true;
      return c;
    });
    const out = f(...xs);
    if (grad && out.requiresGrad) {
      const w = rnd([...out.shape], 777);
      out.mul(w).sum().backward();
    }
    return { out, grads: xs.map((x) => x.grad) };
  };
  const got = run();
  const want = onReference(run);
  assertTensorClose(`${name} [${ACTIVE} vs reference] output`, got.out, want.out, rtol, atol);
  got.grads.forEach((g, i) => {
    const w = want.grads[i];
    if (w && g) assertTensorClose(`${name} [${ACTIVE} vs reference] grad ${i}`, g, w, rtol * 10, atol * 10);
    else assert.equal(!!g, !!w, `${name}: grad ${i} present on one backend only`);
  });
}

const layouts: [string, (s: number) => Tensor][] = [
  ["contiguous 7x13", (s) => rnd([7, 13], s, -2, 2)],
  ["transposed 13x7", (s) => rnd([7, 13], s, -2, 2).T],
  ["sliced step 2", (s) => rnd([6, 20], s, -2, 2).slice(1, 1, 19, 2)],
  ["0-d", (s) => rnd([], s, -2, 2)],
  ["size 1", (s) => rnd([1], s, -2, 2)],
  ["3-d permuted", (s) => rnd([3, 4, 5], s, -2, 2).permute(2, 0, 1)],
  ["empty", () => mx.zeros([0, 3])],
  ["large 257x33", (s) => rnd([257, 33], s, -3, 3)],
];

describe(`conformance: primitives (${ACTIVE})`, () => {
  const unaries: [string, (x: Tensor) => Tensor][] = [
    ["neg", (x) => x.neg()],
    ["exp", (x) => x.exp()],
    ["log", (x) => x.abs().add(0.1).log()],
    ["sqrt", (x) => x.abs().sqrt()],
    ["tanh", (x) => x.tanh()],
    ["sigmoid", (x) => x.sigmoid()],
    ["relu", (x) => x.relu()],
    ["erf", (x) => x.erf()],
    ["abs", (x) => x.abs()],
    ["sin", (x) => x.sin()],
    ["cos", (x) => x.cos()],
  ];
  for (const [op, f] of unaries) {
    test(`unary ${op}`, () => {
      for (const [lname, make] of layouts) same(`${op} ${lname}`, f, [make(1)], { grad: op !== "relu" && op !== "abs" });
    });
  }

  const pairs: [string, number[], number[]][] = [
    ["same shape", [5, 7], [5, 7]],
    ["row vector", [5, 7], [7]],
    ["column vector", [5, 7], [5, 1]],
    ["scalar", [5, 7], []],
    ["outer", [5, 1], [1, 7]],
    ["3-d", [2, 1, 6], [3, 6]],
    ["big bias", [129, 65], [65]],
  ];
  const binaries: [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ["add", (a, b) => a.add(b)],
    ["sub", (a, b) => a.sub(b)],
    ["mul", (a, b) => a.mul(b)],
    ["div", (a, b) => a.div(b.abs().add(0.5))],
    ["pow", (a, b) => a.abs().add(0.1).pow(b)],
    ["maximum", (a, b) => a.maximum(b)],
    ["minimum", (a, b) => a.minimum(b)],
    ["eq", (a, b) => a.eq(b)],
    ["ne", (a, b) => a.ne(b)],
    ["lt", (a, b) => a.lt(b)],
    ["le", (a, b) => a.le(b)],
    ["gt", (a, b) => a.gt(b)],
    ["ge", (a, b) => a.ge(b)],
  ];
  for (const [op, f] of binaries) {
    test(`binary ${op}`, () => {
      for (const [pname, sa, sb] of pairs) {
        same(`${op} ${pname}`, f, [spaced(sa, 2, 0.25), spaced(sb, 3, 0.25)]);
        same(`${op} ${pname} transposed`, (a, b) => f(a.T, b), [spaced(swapLast(sa), 4, 0.25), spaced(sb, 5, 0.25)]);
      }
      // Integer arithmetic stays exact where float32 would round (2^24 + 1).
      const ia = mx.tensor([16777217, -7, 3, 0], { dtype: "int32" });
      const ib = mx.tensor([1, 2, -2, 5], { dtype: "int32" });
      if (op !== "div" && op !== "pow") {
        const got = f(ia, ib);
        const want = onReference(() => f(ia, ib));
        assert.deepEqual(got.toArray(), want.toArray(), `${op} on int32`);
        assert.equal(got.dtype, "int32");
      }
    });
  }

  test("where and maskedFill with broadcasting", () => {
    same("where", (a, b, c) => mx.where(c.gt(0), a, b), [rnd([4, 5], 6), rnd([5], 7), rnd([4, 1], 8)]);
    same("maskedFill -inf then softmax", (a, m) => a.maskedFill(m.gt(0.3), Number.NEGATIVE_INFINITY).softmax(-1), [
      rnd([3, 6], 9),
      rnd([6], 10),
    ]);
  });

  test("copy: contiguous(), strided destinations, casts", () => {
    for (const [lname, make] of layouts) same(`contiguous ${lname}`, (x) => x.contiguous().mul(1), [make(11)]);
    const casts = (x: Tensor) => x.mul(3).int().float();
    same("float -> int truncation", casts, [rnd([9, 4], 12, -3, 3)], { grad: false });
    const got = mx.zeros([4, 6]);
    const want = onReference(() => mx.zeros([4, 6]));
    const src = rnd([4, 3], 13);
    mx.noGrad(() => got.slice(1, 0, 6, 2).copy_(src));
    onReference(() => mx.noGrad(() => want.slice(1, 0, 6, 2).copy_(src)));
    assertTensorClose("copy into strided slice", got, want);
    const row = mx.zeros([3, 5]);
    mx.noGrad(() => row.copy_(mx.arange(5).float()));
    assert.deepEqual(row.index(2).toArray(), [0, 1, 2, 3, 4], "broadcast copy");
  });

  test("reductions over any axes and layouts", () => {
    const x = rnd([3, 4, 5], 14, -2, 2);
    const axesList: (number | number[] | undefined)[] = [undefined, 0, 1, 2, [0, 2], [1, 2], [0, 1]];
    for (const axes of axesList) {
      same(`sum ${JSON.stringify(axes)}`, (t) => t.sum(axes), [x]);
      same(`sum keepdim ${JSON.stringify(axes)} permuted`, (t) => t.permute(2, 0, 1).sum(axes, true), [x]);
      same(`max ${JSON.stringify(axes)}`, (t) => t.max(axes), [spaced([3, 4, 5], 15)]);
    }
    same("sum of 100k elements", (t) => t.sum(), [rnd([100000], 16)], { rtol: 1e-5, atol: 1e-3 });
    same("mean over a big row", (t) => t.mean(-1), [rnd([4, 4099], 17)], { rtol: 1e-5, atol: 1e-5 });
  });

  test("matmul: sizes 1, primes, every transpose, batches and broadcast", () => {
    const sizes: [number, number, number][] = [
      [1, 1, 1],
      [1, 7, 1],
      [7, 1, 13],
      [7, 13, 5],
      [33, 17, 65],
      [64, 96, 80],
      [129, 67, 131],
    ];
    for (const [m, k, n] of sizes) {
      const tol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(k) };
      same(`mm ${m}x${k}x${n}`, (a, b) => a.matmul(b), [rnd([m, k], m), rnd([k, n], n)], tol);
      same(`mm a^T ${m}x${k}x${n}`, (a, b) => a.T.matmul(b), [rnd([k, m], m), rnd([k, n], n)], tol);
      same(`mm b^T ${m}x${k}x${n}`, (a, b) => a.matmul(b.T), [rnd([m, k], m), rnd([n, k], n)], tol);
      same(`mm a^T b^T ${m}x${k}x${n}`, (a, b) => a.T.matmul(b.T), [rnd([k, m], m), rnd([n, k], n)], tol);
    }
    const tol = { rtol: 1e-4, atol: 1e-4 };
    same("bmm", (a, b) => a.matmul(b), [rnd([3, 9, 11], 20), rnd([3, 11, 6], 21)], tol);
    same("bmm broadcast batch", (a, b) => a.matmul(b), [rnd([2, 1, 9, 11], 22), rnd([3, 11, 6], 23)], tol);
    same("shared weight", (a, b) => a.matmul(b), [rnd([4, 9, 11], 24), rnd([11, 6], 25)], tol);
    same(
      "attention-like (B, nh, T, hs) @ (B, nh, hs, T)",
      (q, k) => q.matmul(k.transpose(-2, -1)),
      [rnd([2, 3, 10, 8], 26), rnd([2, 3, 10, 8], 27)],
      tol,
    );
    same("strided rows", (a, b) => a.slice(0, 0, 20, 3).matmul(b), [rnd([20, 16], 28), rnd([16, 5], 29)], tol);
  });

  test("gather and scatter-add (embedding)", () => {
    const ids = mx.tensor(
      [
        [3, 0, 3],
        [9, 1, 3],
      ],
      { dtype: "int32" },
    );
    same("embedding", (w) => mx.embedding(w, ids), [rnd([10, 7], 30)]);
    same("row index", (w) => w.index(mx.tensor([2, 2, 0], { dtype: "int32" })), [rnd([4, 3, 2], 31)]);
  });
});

describe(`conformance: fused kernels vs the composite specification (${ACTIVE})`, () => {
  const shapes = [
    [1, 1],
    [3, 5],
    [17, 64],
    [4, 1000],
    [2, 3, 129],
  ];
  test("softmax and log_softmax", () => {
    for (const s of shapes) {
      same(`softmax ${s}`, (x) => x.softmax(-1), [rnd(s, 40, -5, 5)]);
      same(`log_softmax ${s}`, (x) => x.logSoftmax(-1), [rnd(s, 41, -5, 5)]);
    }
    same("softmax, large logits", (x) => x.softmax(-1), [rnd([3, 50], 42, 80, 100)]);
  });
  test("layer_norm", () => {
    for (const s of shapes) {
      const C = s[s.length - 1] as number;
      same(`layer_norm affine ${s}`, (x, w, b) => mx.layerNorm(x, w, b), [rnd(s, 43, -3, 3), rnd([C], 44, 0.5, 1.5), rnd([C], 45)], {
        rtol: 1e-4,
        atol: 1e-5,
      });
      same(`layer_norm plain ${s}`, (x) => mx.layerNorm(x, null, null), [rnd(s, 46, -3, 3)], { rtol: 1e-4, atol: 1e-5 });
    }
  });
  test("rms_norm", () => {
    for (const s of shapes) {
      const C = s[s.length - 1] as number;
      same(`rms_norm weight ${s}`, (x, w) => mx.rmsNorm(x, w, 1e-6), [rnd(s, 143, -3, 3), rnd([C], 144, 0.5, 1.5)], {
        rtol: 1e-4,
        atol: 1e-5,
      });
      same(`rms_norm plain ${s}`, (x) => mx.rmsNorm(x, null, 1e-5), [rnd(s, 146, -3, 3)], { rtol: 1e-4, atol: 1e-5 });
    }
    same("rms_norm transposed input", (x, w) => mx.rmsNorm(x, w), [rnd([9, 6], 147, -2, 2).T, rnd([9], 148)], { rtol: 1e-4, atol: 1e-5 });
  });
  test("silu and swiglu", () => {
    for (const s of shapes) {
      same(`silu ${s}`, (x) => mx.silu(x), [rnd(s, 150, -8, 8)], { atol: 2e-6 });
      same(`swiglu ${s}`, (g, u) => mx.swiglu(g, u), [rnd(s, 151, -8, 8), rnd(s, 152, -2, 2)], { atol: 2e-6 });
    }
    same("swiglu transposed gate", (g, u) => mx.swiglu(g, u), [rnd([7, 5], 153, -4, 4).T, rnd([5, 7], 154)], { atol: 2e-6 });
  });
  test("rope (heads first and heads last)", () => {
    for (const [T, H, hs] of [
      [1, 1, 2],
      [5, 3, 8],
      [4, 2, 22],
      [3, 4, 64],
    ] as [number, number, number][]) {
      // Table rows of positions 2 .. 2 + T - 1 of a longer table, as a KV cache's next positions.
      const cos = rnd([T + 2, hs], 155, -1, 1).slice(0, 2, T + 2);
      const sin = rnd([T + 2, hs], 156, -1, 1).slice(0, 2, T + 2);
      same(`rope (2, ${H}, ${T}, ${hs})`, (x) => mx.rope(x, cos, sin), [rnd([2, H, T, hs], 157, -3, 3)], { atol: 2e-6 });
      same(`rope heads last (2, ${T}, ${H}, ${hs})`, (x) => mx.rope(x, cos, sin, true), [rnd([2, T, H, hs], 158, -3, 3)], {
        atol: 2e-6,
      });
      same(`rope transposed (${T}, ${H}, ${hs})`, (x) => mx.rope(x.transpose(0, 1), cos, sin), [rnd([T, H, hs], 159, -3, 3)], {
        atol: 2e-6,
      });
    }
  });
  test("gelu", () => {
    for (const s of shapes) {
      same(`gelu exact ${s}`, (x) => x.gelu("none"), [rnd(s, 47, -6, 6)], { atol: 2e-6 });
      same(`gelu tanh ${s}`, (x) => x.gelu("tanh"), [rnd(s, 48, -6, 6)], { atol: 2e-6 });
    }
  });
  test("cross_entropy", () => {
    for (const [rows, C] of [
      [1, 1],
      [5, 7],
      [33, 1000],
    ] as [number, number][]) {
      const t = mx.randint(0, C, [rows], { generator: new mx.Generator(rows) });
      same(`ce ${rows}x${C}`, (x) => mx.crossEntropy(x, t), [rnd([rows, C], 49, -4, 4)]);
      same(
        `ce sum smoothing ${rows}x${C}`,
        (x) => mx.crossEntropy(x, t, { reduction: "sum", labelSmoothing: 0.1 }),
        [rnd([rows, C], 50, -4, 4)],
        { rtol: 1e-5, atol: 1e-5 },
      );
    }
    const t = mx.tensor([2, -100, 0, -100], { dtype: "int32" });
    same("ce ignore_index", (x) => mx.crossEntropy(x, t, { reduction: "none" }), [rnd([4, 6], 51, -4, 4)]);
  });
  test("linear with a GELU epilogue (bias + GELU fused when the backend has it)", () => {
    for (const act of ["gelu", "gelu_tanh"] as const) {
      same(`linear ${act}`, (x, w, b) => mx.linear(x, w, b, act), [rnd([3, 5, 16], 66), rnd([24, 16], 67), rnd([24], 68)], {
        rtol: 1e-4,
        atol: 1e-5,
      });
      same(`linear ${act} 1 row`, (x, w, b) => mx.linear(x, w, b, act), [rnd([1, 7], 69), rnd([5, 7], 70), rnd([5], 71)], {
        rtol: 1e-4,
        atol: 1e-5,
      });
    }
  });
  test("attention (fused when the backend has it) vs the composite", () => {
    const cases: [number, number, number, number, boolean][] = [
      [1, 1, 1, 1, true],
      [2, 5, 5, 8, true],
      [3, 7, 7, 16, false],
      [2, 1, 9, 8, true], // one new query over a KV cache of 9
      [2, 4, 11, 5, true], // 4 queries, 11 keys: causal with an offset
      [4, 64, 64, 32, true],
    ];
    for (const [bh, T, S, d, causal] of cases) {
      const f = (q: Tensor, k: Tensor, v: Tensor) => mx.scaledDotProductAttention(q, k, v, { causal }).out;
      same(`sdpa bh=${bh} T=${T} S=${S} d=${d} causal=${causal}`, f, [rnd([bh, T, d], 60), rnd([bh, S, d], 61), rnd([bh, S, d], 62)], {
        rtol: 1e-4,
        atol: 1e-5,
      });
    }
    same(
      "sdpa 4-d (B, nh, T, hs)",
      (q, k, v) => mx.scaledDotProductAttention(q, k, v, { causal: true }).out,
      [rnd([2, 3, 6, 4], 63), rnd([2, 3, 6, 4], 64), rnd([2, 3, 6, 4], 65)],
      { rtol: 1e-4, atol: 1e-5 },
    );
    // Inference over a KV cache: k and v are the first S of maxLen positions, read in place.
    for (const [B, nh, T, S, maxLen, hs] of [
      [1, 1, 1, 1, 8, 4],
      [2, 3, 1, 5, 16, 8],
      [2, 3, 4, 9, 12, 5],
      [1, 2, 3, 7, 7, 16],
    ] as const) {
      const cached = (q: Tensor, ck: Tensor, cv: Tensor) =>
        mx.scaledDotProductAttention(q, mx.slice(ck, 2, 0, S), mx.slice(cv, 2, 0, S), { causal: true }).out;
      same(
        `sdpa over a KV cache B=${B} nh=${nh} T=${T} S=${S} of ${maxLen}`,
        cached,
        [rnd([B, nh, T, hs], 72), rnd([B, nh, maxLen, hs], 73), rnd([B, nh, maxLen, hs], 74)],
        { rtol: 1e-4, atol: 1e-5, grad: false },
      );
    }
    // Views the in-place read must not take: a head slice (leading strides that do not collapse)
    // and a transposed cache.
    same(
      "sdpa over a slice of the heads",
      (q, ck, cv) => mx.scaledDotProductAttention(q, mx.slice(ck, 1, 1, 3), mx.slice(cv, 1, 1, 3), { causal: true }).out,
      [rnd([2, 2, 3, 4], 75), rnd([2, 4, 3, 4], 76), rnd([2, 4, 3, 4], 77)],
      { rtol: 1e-4, atol: 1e-5, grad: false },
    );
    same(
      "sdpa over transposed keys",
      (q, ck, cv) => mx.scaledDotProductAttention(q, mx.transpose(ck, -2, -1), mx.transpose(cv, -2, -1)).out,
      [rnd([2, 3, 4], 78), rnd([2, 4, 5], 79), rnd([2, 4, 5], 80)],
      { rtol: 1e-4, atol: 1e-5, grad: false },
    );
    // Right-padded keys given as lengths (fused, one batch entry at a time) equal the composite,
    // and an explicit padding mask of the same keys; padded keys get zero gradient.
    for (const [B, nh, T, S, hs, lengths] of [
      [3, 2, 5, 7, 4, [7, 3, 1]],
      [2, 4, 33, 40, 16, [40, 17]],
      [2, 1, 1, 6, 8, [2, 6]],
    ] as const) {
      const inputs = [rnd([B, nh, T, hs], 81), rnd([B, nh, S, hs], 82), rnd([B, nh, S, hs], 83)];
      same(
        `sdpa with key lengths B=${B} nh=${nh} T=${T} S=${S} [${lengths}]`,
        (q, k, v) => mx.scaledDotProductAttention(q, k, v, { keyLengths: lengths }).out,
        inputs,
        { rtol: 1e-4, atol: 1e-5 },
      );
      const pad = mx.tensor(
        lengths.flatMap((l) => Array.from({ length: S }, (_, j) => (j >= l ? 1 : 0))),
        { shape: [B, 1, 1, S], dtype: "int32" },
      );
      const grads = (o: { keyLengths?: readonly number[]; attnMask?: Tensor }) => {
        const [q, k, v] = inputs.map((x) => x.detach().requiresGrad_()) as [Tensor, Tensor, Tensor];
        const out = mx.scaledDotProductAttention(q, k, v, o).out;
        out
          .mul(rnd([...out.shape], 84))
          .sum()
          .backward();
        return { out, dk: k.grad as Tensor, dv: v.grad as Tensor };
      };
      const a = grads({ keyLengths: lengths });
      const b = grads({ attnMask: pad });
      assertTensorClose("key lengths vs padding mask: output", a.out, b.out, 1e-4, 1e-5);
      assertTensorClose("key lengths vs padding mask: dk", a.dk, b.dk, 1e-4, 1e-5);
      const dv = a.dv.contiguousData();
      lengths.forEach((l, bi) => {
        for (let h = 0; h < nh; h++)
          for (let j = l; j < S; j++)
            for (let c = 0; c < hs; c++) assert.equal(dv[((bi * nh + h) * S + j) * hs + c], 0, "a padded key's value gets no gradient");
      });
    }
    assert.throws(
      () => mx.scaledDotProductAttention(rnd([2, 3, 4], 1), rnd([2, 5, 4], 2), rnd([2, 5, 4], 3), { keyLengths: [5] }),
      /keyLengths has 1 entries/,
    );
    assert.throws(
      () => mx.scaledDotProductAttention(rnd([2, 3, 4], 1), rnd([2, 5, 4], 2), rnd([2, 5, 4], 3), { keyLengths: [5, 6] }),
      /in \[0, 5\]/,
    );
  });
  test("AdamW steps", () => {
    const run = () => {
      const p = rnd([37, 11], 52).requiresGrad_();
      const q = rnd([11], 53).requiresGrad_();
      const opt = new AdamW([p, q], { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.1 });
      for (let i = 0; i < 3; i++) {
        opt.zeroGrad();
        p.matmul(q).tanh().sum().backward();
        opt.step();
      }
      return [p.detach(), q.detach()];
    };
    const got = run();
    const want = onReference(run);
    got.forEach((g, i) => {
      assertTensorClose(`adamw param ${i}`, g, want[i] as Tensor, 1e-5, 1e-6);
    });
  });
});

describe(`conformance: exact values (${ACTIVE})`, () => {
  test("known results", () => {
    assert.deepEqual(
      mx
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .matmul(
          mx.tensor([
            [5, 6],
            [7, 8],
          ]),
        )
        .toArray(),
      [19, 22, 43, 50],
    );
    assertClose(
      "softmax",
      mx
        .tensor([0, Math.log(2), Math.log(3)])
        .softmax()
        .toArray(),
      [1 / 6, 2 / 6, 3 / 6],
    );
    assertClose("layer_norm", mx.layerNorm(mx.tensor([1, 2, 3]), null, null, 0).toArray(), [-Math.sqrt(1.5), 0, Math.sqrt(1.5)]);
    assertClose("gelu exact", mx.tensor([1, -1]).gelu("none").toArray(), [0.8413447460685429, -0.15865525393145707]);
    assertClose("gelu tanh", mx.tensor([1]).gelu("tanh").toArray(), [0.8411919906082768]);
    assertClose("rms_norm", mx.rmsNorm(mx.tensor([3, 4]), mx.tensor([1, 2]), 0).toArray(), [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
    assertClose("silu", mx.silu(mx.tensor([1, -2])).toArray(), [1 / (1 + Math.exp(-1)), -2 / (1 + Math.exp(2))]);
    assertClose("swiglu", mx.swiglu(mx.tensor([1]), mx.tensor([3])).toArray(), [3 / (1 + Math.exp(-1))]);
    // A quarter turn: (x1, x2) = (1, 2) -> (-2, 1).
    assertClose("rope", mx.rope(mx.tensor([[1, 2]]), mx.tensor([[0, 0]]), mx.tensor([[1, 1]])).toArray(), [-2, 1]);
    assertClose("erf", mx.tensor([0.5, -2]).erf().toArray(), [0.5204998778130465, -0.9953222650189527]);
    assertClose("ce", [mx.crossEntropy(mx.tensor([[0, 0]]), mx.tensor([1], { dtype: "int32" })).item()], [Math.LN2]);
    assert.ok(Number.isNaN(mx.tensor([1, Number.NaN, 3]).max().item()), "max propagates NaN");
    assert.ok(Number.isNaN(mx.tensor([1, Number.NaN]).sum().item()), "sum propagates NaN");
    assert.ok(
      Number.isNaN(
        mx
          .tensor([1])
          .maximum(mx.tensor([Number.NaN]))
          .item(),
      ),
      "maximum propagates NaN",
    );
    assert.equal(mx.zeros([0, 3]).sum().item(), 0, "sum of nothing is 0");
    assert.deepEqual(mx.tensor([1, 2]).div(0).toArray(), [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
    assert.deepEqual(mx.tensor([-2.7, 2.7]).int().toArray(), [-2, 2]);
  });
});

// Issue 11: malformed views. The reference backend used to return NaN or 0 silently (and loop for
// ever on a 2^64-element expand) where native threw; both now reject the same views with the same
// error, raised in core before any backend is asked.
describe(`conformance: malformed views are refused (${ACTIVE})`, () => {
  const f4 = () => new Float32Array([1, 2, 3, 4]);
  const cases: [string, () => Tensor, RegExp][] = [
    [
      "4 elements viewed as [100, 100]",
      () => new mx.Tensor(f4(), [100, 100]),
      /^Tensor: a view of shape \[100, 100\] \(strides \[100, 1\], offset 0\) reaches element 9999 of a buffer of 4 elements$/,
    ],
    [
      "strides past the end",
      () => new mx.Tensor(f4(), [2, 2], [4, 1]),
      /^Tensor: a view of shape \[2, 2\] .* reaches element 5 of a buffer of 4 elements$/,
    ],
    [
      "negative stride below the start",
      () => new mx.Tensor(f4(), [2, 2], [-2, 1], 1),
      /^Tensor: .* reaches element -1 of a buffer of 4 elements$/,
    ],
    ["negative offset", () => new mx.Tensor(f4(), [2], [1], -1), /^Tensor: offset -1 must be a non-negative integer$/],
    ["fractional offset", () => new mx.Tensor(f4(), [2], [1], 0.5), /^Tensor: offset 0\.5 must be a non-negative integer$/],
    ["offset past the end", () => new mx.Tensor(f4(), [2], [1], 3), /^Tensor: .* reaches element 4 of a buffer of 4 elements$/],
    ["negative size", () => new mx.Tensor(f4(), [-2, 2]), /^Tensor: shape \[-2, 2\] must contain non-negative integers$/],
    ["NaN size", () => new mx.Tensor(f4(), [Number.NaN, 2]), /^Tensor: shape \[NaN, 2\] must contain non-negative integers$/],
    ["fractional size", () => new mx.Tensor(f4(), [1.5]), /^Tensor: shape \[1\.5\] must contain non-negative integers$/],
    [
      "infinite size",
      () => new mx.Tensor(f4(), [Number.POSITIVE_INFINITY]),
      /^Tensor: shape \[Infinity\] must contain non-negative integers$/,
    ],
    ["NaN stride", () => new mx.Tensor(f4(), [2, 2], [Number.NaN, 1]), /^Tensor: strides \[NaN, 1\] must be integers$/],
    ["strides of the wrong rank", () => new mx.Tensor(f4(), [2, 2], [1]), /^Tensor: strides \[1\] do not match shape \[2, 2\] \(2 dims\)$/],
    [
      "expand to 2^62 x 4",
      () => mx.ones([1, 4]).expand([2 ** 62, 4]),
      /^expand: shape \[\d+, 4\] has 1\.84e\+19 elements, more than the 2\^53 a tensor can index$/,
    ],
    ["expand to a negative size", () => mx.ones([1, 4]).expand([-3, 4]), /^expand: shape \[-3, 4\] must contain non-negative integers$/],
  ];
  for (const [name, make, message] of cases) {
    test(`${name}: RangeError, same message on ${ACTIVE} and reference`, () => {
      const err = (fn: () => unknown): Error => {
        try {
          fn();
        } catch (e) {
          return e as Error;
        }
        return assert.fail(`${name}: no error (the view was accepted)`);
      };
      // sum() is where the reference backend used to return 0/NaN or hang; it is never reached.
      const got = err(() => make().sum().item());
      const want = onReference(() => err(() => make().sum().item()));
      assert.ok(got instanceof RangeError, `${name}: ${got}`);
      assert.match(got.message, message);
      assert.equal(got.message, want.message);
    });
  }

  test("empty views may point anywhere, as in PyTorch (nothing is read)", () => {
    assert.equal(new mx.Tensor(new Float32Array(0), [0, 100], [100, 1], 0).sum().item(), 0);
    assert.deepEqual(mx.ones([3]).slice(0, 3, 3).shape, [0]);
  });

  test("tensors too large for one buffer are refused with the sizes, not 'Invalid typed array length'", () => {
    assert.throws(() => mx.zeros([2 ** 40]), /^RangeError: cannot allocate a tensor of 1099511627776 elements \(4\.0 TiB\)/);
  });

  // The backends' own checks, for callers below core: each names the operand. (Only out-of-range
  // extents here: a NaN size cannot even be passed to native, whose parameters are integers.)
  const B = mx.getBackend();
  const bad = { data: new Float32Array(4), shape: [2, 3], strides: [3, 1], offset: 0 };
  const ok = { data: new Float32Array(6), shape: [2, 3], strides: [3, 1], offset: 0 };
  const direct: [string, () => void, RegExp][] = [
    ["unary", () => B.unary("exp", bad, new Float32Array(6)), /unary input (view )?out of bounds/],
    ["binary a", () => B.binary("add", bad, ok, new Float32Array(6)), /binary input a out of bounds/],
    ["binary b", () => B.binary("add", ok, bad, new Float32Array(6)), /binary input b out of bounds/],
    ["where cond", () => B.where(bad, ok, ok, new Float32Array(6)), /where cond out of bounds/],
    ["where b", () => B.where(ok, ok, bad, new Float32Array(6)), /where input b out of bounds/],
    ["copy source", () => B.copy({ ...bad, offset: 1, strides: [1, 1] }, ok), /copy source out of bounds/],
    ["copy destination", () => B.copy(ok, bad), /copy destination out of bounds/],
    ["reduce", () => B.reduce("sum", bad, [1], new Float32Array(2)), /reduce input out of bounds/],
    ["binary output", () => B.binary("add", ok, ok, new Float32Array(5)), /binary output too small/],
    [
      "matmul a",
      () =>
        B.matmul(
          { data: new Float32Array(4), offset: 0, batchStride: 0, rowStride: 2, colStride: 1 },
          { data: new Float32Array(6), offset: 0, batchStride: 0, rowStride: 3, colStride: 1 },
          new Float32Array(9),
          1,
          3,
          3,
          2,
        ),
      /matmul operand a out of bounds/,
    ],
    ["gather index", () => B.gather(new Float32Array(4), Int32Array.from([2]), new Float32Array(2), 2), /index out of range/],
    ["indexAdd index", () => B.indexAdd(new Float32Array(4), Int32Array.from([-1]), new Float32Array(2), 2), /index out of range/],
  ];
  for (const [name, call, message] of direct) {
    test(`the ${B.name} backend checks its operands: ${name}`, () => {
      assert.throws(call, (e: Error) => e instanceof RangeError && message.test(e.message));
    });
  }
});
