// The binary Tree-LSTM: batched by level it computes what the equations give node by node; its
// gradients pass finite differences; it learns shallow ListOps.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { generateListOps, LISTOPS_END, LISTOPS_OPERATORS, parseListOps } from "../../src/data/listops.js";
import { BinaryTreeLSTM, TreeLSTMClassifier, treeBatch } from "../../src/models/tree-lstm.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { assertClose, gradcheck, mx, rnd } from "../helpers.js";

const VOCAB = [...LISTOPS_OPERATORS, LISTOPS_END, ..."0123456789"];
const vocab = (t: string) => VOCAB.indexOf(t);

describe("Tree-LSTM", () => {
  const trees = ["( ( ( [MAX 2 ) 9 ) ] )", "( ( ( [SM ( ( ( [MIN 4 ) 7 ) ] ) ) 3 ) ] )", "5"].map(parseListOps);

  test("levels group nodes by height", () => {
    const b = treeBatch(trees, vocab);
    assert.equal(b.roots.length, 3);
    assert.equal(b.levels[0]?.length, 4 + 7 + 1);
    assert.equal(b.tokens.length, 7 + 13 + 1);
    for (const [k, nodes] of b.levels.entries()) {
      for (const n of nodes) {
        const [l, r] = b.children[n] as [number, number];
        if (k === 0) assert.deepEqual([l, r], [-1, -1]);
        else assert.ok(b.levels.slice(0, k).some((lv) => lv.includes(l)) && b.levels[k - 1]?.some((m) => m === l || m === r));
      }
    }
  });

  test("batched by level equals the equations applied node by node", () => {
    const m = new BinaryTreeLSTM(4, 3, { generator: new mx.Generator(2) });
    const b = treeBatch(trees, vocab);
    const emb = rnd([VOCAB.length, 4], 3);
    const leaves = b.levels[0] as number[];
    const x = emb.index(
      mx.tensor(
        leaves.map((n) => b.tokens[n] as number),
        { dtype: "int32" },
      ),
    );
    const { h, c } = mx.noGrad(() => m.forward(b, x));
    const H = 3;
    const W = m.W.weight;
    const U = m.U.weight;
    const node = (n: number): { h: Tensor; c: Tensor } => {
      const [l, r] = b.children[n] as [number, number];
      if (l < 0) {
        const xi = emb.index(mx.tensor([b.tokens[n] as number], { dtype: "int32" }));
        const g = xi.matmul(W.T).add(m.W.bias as Tensor);
        const cc = g
          .slice(1, 0, H)
          .sigmoid()
          .mul(g.slice(1, 2 * H, 3 * H).tanh());
        return {
          c: cc,
          h: g
            .slice(1, H, 2 * H)
            .sigmoid()
            .mul(cc.tanh()),
        };
      }
      const L = node(l);
      const R = node(r);
      const g = mx
        .cat([L.h, R.h], 1)
        .matmul(U.T)
        .add(m.U.bias as Tensor);
      const s = (k: number) => g.slice(1, k * H, (k + 1) * H);
      const cc = s(0).sigmoid().mul(s(4).tanh()).add(s(1).sigmoid().mul(L.c)).add(s(2).sigmoid().mul(R.c));
      return { c: cc, h: s(3).sigmoid().mul(cc.tanh()) };
    };
    mx.noGrad(() => {
      for (let n = 0; n < b.tokens.length; n++) {
        const want = node(n);
        assertClose(`h of node ${n}`, h.slice(0, n, n + 1).toArray(), want.h.toArray(), 1e-5, 1e-6);
        assertClose(`c of node ${n}`, c.slice(0, n, n + 1).toArray(), want.c.toArray(), 1e-5, 1e-6);
      }
    });
  });

  test("gradcheck with respect to the leaves' inputs", () => {
    const m = new BinaryTreeLSTM(3, 2, { generator: new mx.Generator(4) });
    const b = treeBatch(trees.slice(0, 2), vocab);
    gradcheck("tree-lstm", (x) => m.forward(b, x).h, [rnd([(b.levels[0] as number[]).length, 3], 5)]);
  });

  test("learns one-operator ListOps", () => {
    const data = generateListOps(64, { seed: 3, maxDepth: 2, valueP: 0.999 }).filter((e) => typeof e.tree !== "string");
    const model = new TreeLSTMClassifier({ vocab_size: VOCAB.length, embed_dim: 16, hidden_size: 32, num_labels: 10 }, { seed: 1 });
    const opt = new mx.AdamW(
      model.parameters().map((p) => p),
      { lr: 1e-2 },
    );
    const batch = treeBatch(
      data.map((e) => e.tree),
      vocab,
    );
    const labels = mx.tensor(
      data.map((e) => e.label),
      { dtype: "int32" },
    );
    let first = 0;
    let last = 0;
    for (let step = 0; step < 60; step++) {
      const loss = model.forward(batch, labels).loss as Tensor;
      if (step === 0) first = loss.item();
      last = loss.item();
      opt.zeroGrad();
      loss.backward();
      opt.step();
    }
    assert.ok(last < first * 0.6, `loss ${first} -> ${last}`);
    assert.throws(() => model.forward(treeBatch([parseListOps("7")], () => 99)), /outside the vocabulary/);
  });
});
