// The hierarchical attention network: attention weights are distributions over the real words and
// sentences (none on padding), a document's result does not depend on its batch, and it learns a
// task decided by one word in one sentence, its word attention peaking on that word.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Document, HierarchicalAttentionNetwork } from "../../src/models/han.js";
import { assertClose, mx } from "../helpers.js";

describe("hierarchical attention network", () => {
  const config = { vocab_size: 12, embed_dim: 8, hidden_size: 6, num_labels: 2 };

  test("attention weights are distributions over real words and sentences", () => {
    const m = new HierarchicalAttentionNetwork(config, { seed: 1 });
    m.eval();
    const docs: Document[] = [
      [
        [1, 2, 3],
        [4, 5],
      ],
      [[6], [7, 8, 9, 10], [11]],
    ];
    const out = mx.noGrad(() => m.forward(docs));
    assert.deepEqual(out.logits.shape, [2, 2]);
    const w = out.wordAttention.toArray();
    const W = out.wordAttention.shape[1] as number;
    const lengths = [3, 2, 1, 4, 1];
    lengths.forEach((n, i) => {
      const row = w.slice(i * W, (i + 1) * W);
      assertClose(`sentence ${i} sums to 1`, [row.reduce((a, b) => a + b, 0)], [1], 1e-5, 1e-6);
      assert.ok(
        row.slice(n).every((v) => v === 0),
        "no attention on padding",
      );
    });
    const s = out.sentenceAttention.toArray();
    assert.equal(s[2], 0, "document 0 has two sentences");
    const alone = mx.noGrad(() => m.forward([docs[0] as Document]).logits.toArray());
    assertClose("batch-independent", alone, out.logits.toArray().slice(0, 2), 1e-5, 1e-6);
    const printed = m.attention(docs[1] as Document);
    assert.equal(printed.length, 3);
    assert.equal(printed[1]?.words.length, 4);
  });

  test("learns which sentence decides the label", () => {
    // Label 1 when some sentence contains word 11; the other words are noise.
    const g = new mx.Generator(4);
    const docs: Document[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 24; i++) {
      const doc = Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => 1 + g.randint(9)));
      const y = i % 2;
      if (y) (doc[g.randint(3)] as number[])[g.randint(4)] = 11;
      docs.push(doc);
      labels.push(y);
    }
    const m = new HierarchicalAttentionNetwork(config, { seed: 2 });
    const opt = new mx.AdamW(m.parameters(), { lr: 2e-2 });
    const y = mx.tensor(labels, { dtype: "int32" });
    for (let step = 0; step < 60; step++) {
      const { loss } = m.forward(docs, y);
      opt.zeroGrad();
      (loss as mx.Tensor).backward();
      opt.step();
    }
    const pred = mx.noGrad(() => m.eval().forward(docs).logits.argmax(-1).toArray());
    const acc = pred.filter((p, i) => p === labels[i]).length / labels.length;
    assert.ok(acc >= 0.9, `accuracy ${acc}`);
    // Where the deciding word is, the word attention of its sentence peaks on it.
    let peaks = 0;
    let positives = 0;
    docs.forEach((d, i) => {
      if (!labels[i]) return;
      positives++;
      const att = m.attention(d);
      const k = d.findIndex((s) => s.includes(11));
      const words = att[k]?.words ?? [];
      if (words.indexOf(Math.max(...words)) === (d[k] as number[]).indexOf(11)) peaks++;
    });
    assert.ok(peaks / positives >= 0.75, `word attention peaks on the deciding word in ${peaks} of ${positives}`);
  });
});
