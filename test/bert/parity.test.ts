// BERT against PyTorch: tools/torch_bert.py builds a tiny random BERT the way Hugging Face's
// BertForMaskedLM computes it and stores its weights (Hugging Face names, as save_pretrained writes
// them, plus the I64 position_ids buffer older checkpoints carry) and its outputs on three padded
// sequences in tools/fixtures/bert/. moxing loads the weights and must give the same hidden states,
// pooler output, masked-LM logits and loss to 1e-4, and the same gradients of that loss.
//
// Regenerate: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/torch_bert.py

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import * as mx from "../../src/index.js";
import { bertConfigFromJSON, bertStateDict } from "../../src/io/bert.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { Bert, loadBertWeights } from "../../src/models/bert.js";

const dir = join(fileURLToPath(import.meta.url), "..", "..", "..", "tools", "fixtures", "bert");
const { config, info } = bertConfigFromJSON(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
const weights = readSafetensors(join(dir, "model.safetensors"), { only: (n) => n !== "bert.embeddings.position_ids" }).tensors;
const expected = readSafetensors(join(dir, "expected.safetensors")).tensors;
const want = (name: string) => {
  const t = expected.get(name);
  if (!t) throw new Error(`fixture has no '${name}'`);
  return mx.tensor(t.data, { shape: t.shape });
};

/** max |got - want| <= tol * max(1, max |want|). */
function assertNear(name: string, got: mx.Tensor, exp: mx.Tensor, tol = 1e-4): number {
  assert.deepEqual([...got.shape], [...exp.shape], `${name}: shape`);
  const g = got.toArray();
  const w = exp.toArray();
  let scale = 1;
  for (const v of w) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs((g[i] as number) - (w[i] as number)));
  assert.ok(worst <= tol * scale, `${name}: max difference ${worst.toExponential(2)} exceeds ${tol} x ${scale.toFixed(2)}`);
  return worst;
}

describe(`BERT parity with PyTorch (${mx.getBackend().name} backend)`, () => {
  const model = new Bert(config, { task: info.task, init: "none" });
  const report = loadBertWeights(model, weights);
  model.eval();
  const inputs = {
    inputIds: want("input_ids").int(),
    tokenTypeIds: want("token_type_ids").int(),
    attentionMask: want("attention_mask").int(),
  };

  it("loads Hugging Face's names (tied decoder absent) with nothing new or unexpected", () => {
    assert.equal(info.task, "fill-mask");
    assert.deepEqual(report.initialised, []);
    assert.equal(model.numParameters(), 19917); // torch's count for the same model
  });

  it("hidden states, pooler output, masked-LM logits and loss match to 1e-4", () => {
    const out = model.forward(inputs, { labels: want("labels").int(), outputHiddenStates: true });
    const hs = out.hidden.hiddenStates as mx.Tensor[];
    assert.equal(hs.length, config.num_hidden_layers + 1);
    hs.forEach((h, i) => {
      assertNear(`hidden_states.${i}`, h, want(`hidden_states.${i}`));
    });
    assertNear("last_hidden_state", out.hidden.lastHiddenState, want("last_hidden_state"));
    assertNear("pooler_output", out.hidden.poolerOutput as mx.Tensor, want("pooler_output"));
    assertNear("logits", out.logits, want("logits"));
    assertNear("loss", (out.loss as mx.Tensor).reshape([1]), want("loss"));

    // Gradients of the masked-LM loss, for every parameter torch has one for.
    model.zeroGrad();
    (out.loss as mx.Tensor).backward();
    let checked = 0;
    for (const [name, p] of model.namedParameters()) {
      if (!expected.has(`grad.${name}`)) continue;
      assert.ok(p.grad, `${name} has no gradient`);
      assertNear(`grad.${name}`, p.grad, want(`grad.${name}`));
      checked++;
    }
    assert.ok(checked >= 30, `checked ${checked} gradients`);
  });

  it("only the masked positions' logits, when asked for, are the same rows", () => {
    const labels = want("labels").int();
    const flat = labels.toArray();
    const positions = flat.map((v, i) => (v === -100 ? -1 : i)).filter((i) => i >= 0);
    const out = mx.noGrad(() =>
      model.forward(inputs, {
        positions: mx.tensor(positions, { dtype: "int32" }),
        labels: mx.tensor(
          positions.map((i) => flat[i] as number),
          { dtype: "int32" },
        ),
      }),
    );
    const all = want("logits").reshape([-1, config.vocab_size]);
    positions.forEach((pos, r) => {
      assertNear(`row ${pos}`, out.logits.slice(0, r, r + 1), all.slice(0, pos, pos + 1));
    });
    assertNear("loss", (out.loss as mx.Tensor).reshape([1]), want("loss"));
  });

  it("saves the same tensor names and shapes as PyTorch wrote (Hugging Face's save_pretrained layout)", () => {
    const mine = bertStateDict(model);
    const theirs = [...weights.keys()].filter((n) => n !== "bert.embeddings.position_ids").sort();
    assert.deepEqual([...mine.keys()].sort(), theirs);
    for (const n of theirs) {
      assert.deepEqual(mine.get(n)?.shape, weights.get(n)?.shape, n);
      assert.deepEqual(mine.get(n)?.data, weights.get(n)?.data, n);
    }
  });

  it("padding does not change the real tokens' outputs", () => {
    // Row 2 has 5 real tokens; alone and unpadded it must give the same states.
    const ids = inputs.inputIds.slice(0, 2, 3).slice(1, 0, 5).contiguous();
    const out = mx.noGrad(() => model.forward({ inputIds: ids }));
    const padded = want("last_hidden_state").slice(0, 2, 3).slice(1, 0, 5);
    assertNear("unpadded row", out.hidden.lastHiddenState, padded.contiguous());
  });
});
