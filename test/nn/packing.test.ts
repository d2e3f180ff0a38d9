// Padding-free forward (nn/packing.ts): a right-padded batch with its row lengths gives the same
// logits at every real position, the same loss and the same gradients as the padded forward, for
// GPT (learned positions and RoPE) and for Llama-family models (grouped-query attention, Qwen3's
// q/k norms); only the padded positions' work is skipped. packedHiddenStates gives the padded
// forward's hidden states at the real positions.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LanguageModel } from "../../src/models/causal.js";
import "../../src/index.js";
import { GPT } from "../../src/models/gpt.js";
import { Llama } from "../../src/models/llama.js";
import { packing } from "../../src/nn/packing.js";
import { tensor } from "../../src/tensor/index.js";
import type { Tensor } from "../../src/tensor/tensor.js";

const T = 12;
const V = 40;
const lengths = [12, 5, 9, 1];
const ids = tensor(
  lengths.map((l, b) => Array.from({ length: T }, (_, t) => (t < l ? (t * 7 + 3 * b + 1) % V : 0))),
  { dtype: "int32" },
);
// Next-token targets on the real positions, ignored (-100) on the last one and on padding.
const targets = tensor(
  lengths.map((l, b) => Array.from({ length: T }, (_, t) => (t < l - 1 ? (t * 5 + b + 2) % V : -100))),
  { dtype: "int32" },
);

function run(model: LanguageModel, packed: boolean): { logits: Tensor; loss: number; grads: Float32Array[] } {
  for (const p of model.parameters()) p.grad = null;
  const out = model.forward(ids, { targets, lengths: packed ? lengths : null });
  out.loss?.backward();
  return {
    logits: out.logits,
    loss: out.loss?.item() as number,
    grads: model.parameters().map((p) => Float32Array.from(p.grad?.data ?? [])),
  };
}

function assertSame(model: LanguageModel): void {
  model.eval(); // no dropout, so both forwards are deterministic
  const a = run(model, false);
  const b = run(model, true);
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(a.loss), `loss ${a.loss} vs ${b.loss}`);
  const la = a.logits.contiguousData();
  const lb = b.logits.contiguousData();
  for (const [r, len] of lengths.entries()) {
    for (let i = r * T * V; i < (r * T + len) * V; i++) {
      assert.ok(Math.abs((la[i] as number) - (lb[i] as number)) <= 1e-5, `logit ${i}: ${la[i]} vs ${lb[i]}`);
    }
  }
  // packedHiddenStates: row n of (N, C) is the padded forward's hidden state at packed.rows[n].
  const full = model.hiddenStates(ids).contiguousData();
  const { h, packing: p } = model.packedHiddenStates(ids, lengths);
  const C = h.shape[1] as number;
  const packedH = h.contiguousData();
  for (const [n, at] of [...p.rows.data].entries()) {
    for (let c = 0; c < C; c++) {
      assert.ok(Math.abs((packedH[n * C + c] as number) - (full[at * C + c] as number)) <= 1e-5, `hidden state ${n}`);
    }
  }
  for (const [k, g] of a.grads.entries()) {
    const h = b.grads[k] as Float32Array;
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs((g[i] as number) - (h[i] as number)) <= 1e-5, `grad ${k}[${i}]`);
  }
}

describe("padding-free forward", () => {
  test("packing lists the real positions row by row and refuses impossible lengths", () => {
    const p = packing([2, 3], 4);
    assert.deepEqual([...p.rows.data], [0, 1, 4, 5, 6]);
    assert.deepEqual([...p.slots.data], [0, 1, 0, 0, 2, 3, 4, 0]);
    assert.equal(packing([0, 3], 4).rows.size, 3, "a row with no real positions packs nothing");
    assert.throws(() => packing([5], 4), /row length must be from 0 to 4/);
    assert.throws(() => packing([1.5], 4), /row length must be from 0 to 4/);
  });

  test("GPT with learned positions: same logits, loss and gradients", () => {
    assertSame(new GPT({ n_layer: 2, n_head: 2, n_embd: 16, block_size: T, vocab_size: V, dropout: 0 }, { seed: 0 }));
  });

  test("GPT with rotary positions", () => {
    assertSame(new GPT({ n_layer: 2, n_head: 2, n_embd: 16, block_size: T, vocab_size: V, pos_encoding: "rope" }, { seed: 1 }));
  });

  test("Llama (grouped-query attention) and Qwen3 (q/k norms)", () => {
    const tiny = {
      vocab_size: V,
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32,
      rms_norm_eps: 1e-5,
      initializer_range: 0.3,
    };
    assertSame(new Llama(tiny, { seed: 2 }));
    assertSame(new Llama({ ...tiny, model_type: "qwen3" }, { seed: 3 }));
  });
});
