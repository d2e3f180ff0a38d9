// nn modules and the GPT model: names, shapes, parameter counts, masks, modes, state dicts.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GPT } from "../../src/models/gpt.js";
import { Linear, MultiHeadAttention, TransformerBlock } from "../../src/nn/index.js";
import { assertClose, mx, rnd } from "../helpers.js";

describe("nn", () => {
  test("Linear matches x·Wᵀ + b and registers named parameters", () => {
    const lin = new Linear(3, 2);
    const x = rnd([4, 3], 1);
    const want = x.matmul(lin.weight.T).add(lin.bias!);
    assertClose("linear", lin.forward(x).toArray(), want.toArray());
    assert.deepEqual(
      lin.namedParameters().map(([n]) => n),
      ["weight", "bias"],
    );
  });

  test("attention: causal weights are lower-triangular rows summing to 1; padding masks keys", () => {
    const attn = new MultiHeadAttention(8, 2, { causal: true });
    attn.storeAttention = true;
    attn.forward(rnd([2, 5, 8], 2));
    const w = attn.attentionWeights!;
    assert.deepEqual(w.shape, [2, 2, 5, 5]);
    const rows = w.sum(-1).toArray();
    assertClose(
      "rows sum to 1",
      rows,
      rows.map(() => 1),
    );
    const a = w.toArray();
    for (let i = 0; i < 5; i++) for (let j = i + 1; j < 5; j++) assert.equal(a[i * 5 + j], 0, `future key ${j} seen from ${i}`);
    const bi = new MultiHeadAttention(8, 2, { causal: false });
    bi.storeAttention = true;
    const pad = mx.tensor(
      [
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
      ],
      { dtype: "int32" },
    );
    bi.forward(rnd([2, 5, 8], 3), { paddingMask: pad });
    const bw = bi.attentionWeights!.toArray();
    for (let h = 0; h < 2; h++) for (let i = 0; i < 5; i++) for (const j of [3, 4]) assert.equal(bw[(h * 5 + i) * 5 + j], 0);
  });

  test("a block keeps the shape; dropout only in training mode", () => {
    const b = new TransformerBlock({ n_embd: 8, n_head: 2, dropout: 0.5 });
    const x = rnd([2, 3, 8], 4);
    assert.deepEqual(b.forward(x).shape, [2, 3, 8]);
    assert.notDeepEqual(b.forward(x).toArray(), b.forward(x).toArray(), "training mode drops out");
    b.eval();
    assert.deepEqual(b.forward(x).toArray(), b.forward(x).toArray(), "eval mode is deterministic");
  });

  test("GPT: Hugging Face GPT-2 parameter names, counts and tied head", () => {
    const m = new GPT({ vocab_size: 50, n_layer: 2, n_head: 2, n_embd: 8, block_size: 16 });
    const names = m.namedParameters().map(([n]) => n);
    assert.ok(names.includes("transformer.wte.weight"));
    assert.ok(names.includes("transformer.wpe.weight"));
    assert.ok(names.includes("transformer.h.1.attn.c_attn.weight"));
    assert.ok(names.includes("transformer.h.0.mlp.c_proj.bias"));
    assert.ok(names.includes("transformer.ln_f.weight"));
    assert.ok(!names.includes("lm_head.weight"), "the head is tied to wte");
    // per block: 2 LN (2*2C) + c_attn (C*3C + 3C) + c_proj (C*C + C) + c_fc (C*4C + 4C) + mlp c_proj (4C*C + C)
    const C = 8;
    const block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
    const total = 50 * C + 16 * C + 2 * block + 2 * C;
    assert.equal(m.paramCount().total, total);
    assert.equal(m.paramCount().nonEmbedding, total - 16 * C);
    const [decay, noDecay] = m.optimGroups(0.1);
    assert.equal(decay!.params.length, 8, "four Linear weights per block decay");
    assert.equal(decay!.params.length + noDecay!.params.length, names.length);
    assert.throws(() => new GPT({ n_embd: 10, n_head: 4 }), /n_embd \(10\) must be divisible by n_head \(4\)/);
    assert.throws(() => m.forward(mx.zeros([1, 17], { dtype: "int32" })), /cannot forward a sequence of length 17, block_size is only 16/);
  });

  test("GPT-2 init: N(0, 0.02) weights, scaled residual projections, unit LayerNorm", () => {
    const m = new GPT({ vocab_size: 64, n_layer: 4, n_head: 4, n_embd: 64, block_size: 32 }, { seed: 1 });
    const sd = m.stateDict();
    const std = (t: mx.Tensor) => Math.sqrt(t.var().item());
    assert.ok(Math.abs(std(sd.get("transformer.h.0.attn.c_attn.weight")!) - 0.02) < 0.002);
    assert.ok(Math.abs(std(sd.get("transformer.h.0.attn.c_proj.weight")!) - 0.02 / Math.sqrt(8)) < 0.001);
    assert.deepEqual(new Set(sd.get("transformer.h.0.ln_1.weight")!.toArray()), new Set([1]));
  });

  test("stateDict / loadStateDict round-trip and name or shape mismatches", () => {
    const a = new GPT({ vocab_size: 20, n_layer: 1, n_head: 2, n_embd: 8, block_size: 8 }, { seed: 1 });
    const b = new GPT({ vocab_size: 20, n_layer: 1, n_head: 2, n_embd: 8, block_size: 8 }, { seed: 2 });
    const ids = mx.tensor([[1, 2, 3]], { dtype: "int32" });
    b.loadStateDict(a.stateDict());
    assert.deepEqual(b.forward(ids).logits.toArray(), a.forward(ids).logits.toArray());
    const sd = a.stateDict();
    sd.delete("transformer.ln_f.bias");
    assert.throws(() => b.loadStateDict(sd), /missing: transformer.ln_f.bias/);
    const c = new GPT({ vocab_size: 21, n_layer: 1, n_head: 2, n_embd: 8, block_size: 8 });
    assert.throws(
      () => c.loadStateDict(a.stateDict()),
      /'transformer.wte.weight' has shape \[20, 8\] in the weights but \[21, 8\] in the model/,
    );
  });
});
