// Masked-language-model pretraining: BERT's 15% / 80-10-10 masking, sequences, and a short
// training run that learns, logs, checkpoints and resumes exactly.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as mx from "../../src/index.js";
import { loadBert } from "../../src/io/bert.js";
import { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";
import { IGNORE_INDEX, maskTokens, mlmSequences, pretrainMlm } from "../../src/train/mlm.js";
import { corpus } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "moxing-mlm-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("BERT masking", () => {
  const special = new Set([0, 1, 2, 3, 4]);
  const ids = Int32Array.from({ length: 40_000 }, (_, i) => (i % 50 === 0 ? 2 : i % 50 === 49 ? 3 : 5 + (i % 37)));

  it("selects 15% of the ordinary tokens; of those 80% [MASK], 10% random, 10% kept; labels -100 elsewhere", () => {
    const { inputIds, labels, selected } = maskTokens(ids, {
      maskId: 4,
      specialIds: special,
      vocabSize: 100,
      generator: new mx.Generator(7),
    });
    const ordinary = ids.filter((x) => !special.has(x)).length;
    assert.ok(Math.abs(selected / ordinary - 0.15) < 0.01, `selected ${(selected / ordinary).toFixed(4)}`);
    let masked = 0;
    let kept = 0;
    let random = 0;
    for (let i = 0; i < ids.length; i++) {
      if (labels[i] === IGNORE_INDEX) {
        assert.equal(inputIds[i], ids[i], "an unselected token is unchanged");
        continue;
      }
      assert.ok(!special.has(ids[i] as number), "special tokens are never selected");
      assert.equal(labels[i], ids[i], "the label is the original token");
      if (inputIds[i] === 4) masked++;
      else if (inputIds[i] === ids[i]) kept++;
      else {
        random++;
        assert.ok(!special.has(inputIds[i] as number), "random replacements are ordinary tokens");
      }
    }
    // A random draw can land on the token itself (1 in 95 here), which counts as kept.
    assert.ok(Math.abs(masked / selected - 0.8) < 0.02, `mask ${(masked / selected).toFixed(3)}`);
    assert.ok(Math.abs(random / selected - 0.1) < 0.02, `random ${(random / selected).toFixed(3)}`);
    assert.ok(Math.abs(kept / selected - 0.1) < 0.02, `kept ${(kept / selected).toFixed(3)}`);
  });

  it("is seeded: the same generator state gives the same masks", () => {
    const a = maskTokens(ids.subarray(0, 500), { maskId: 4, specialIds: special, vocabSize: 100, generator: new mx.Generator(3) });
    const b = maskTokens(ids.subarray(0, 500), { maskId: 4, specialIds: special, vocabSize: 100, generator: new mx.Generator(3) });
    assert.deepEqual(a, b);
    // Even a sequence too short to expect a selection gets one target.
    const one = maskTokens(Int32Array.from([2, 9, 3]), {
      maskId: 4,
      specialIds: special,
      vocabSize: 100,
      generator: new mx.Generator(1),
      probability: 0.01,
    });
    assert.equal(one.selected, 1);
  });

  it("cuts text into [CLS] ... [SEP] sequences of the given length", () => {
    const tok = WordPieceTokenizer.train(corpus(50), { vocabSize: 80 });
    const seqs = mlmSequences(tok, corpus(50), 16);
    assert.ok(seqs.length > 5);
    for (const s of seqs) {
      assert.equal(s.length, 16);
      assert.equal(s[0], tok.tokenToId("[CLS]"));
      assert.equal(s[15], tok.tokenToId("[SEP]"));
    }
  });
});

describe("pretrainMlm", () => {
  const base = {
    text: corpus(),
    vocabSize: 120,
    preset: "tiny" as const,
    numLayers: 1,
    hiddenSize: 32,
    numHeads: 2,
    maxLen: 24,
    batchSize: 8,
    learningRate: 3e-3,
    warmupSteps: 5,
    dropout: 0,
    evalInterval: 20,
    evalBatches: 2,
  };

  it("learns (masked-token loss falls), writes metrics.jsonl and a model directory, and resumes exactly", async () => {
    const straight = join(root, "straight");
    const r = await pretrainMlm({ ...base, out: straight, maxSteps: 40 });
    assert.equal(r.status, "completed");
    const lines = readFileSync(join(straight, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 40);
    const first = lines.slice(0, 5).reduce((a, l) => a + l.train_loss, 0) / 5;
    const last = lines.slice(-5).reduce((a, l) => a + l.train_loss, 0) / 5;
    assert.ok(last < first - 0.5, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    assert.ok(lines[19].eval_mlm_loss > 0 && lines[19].eval_mlm_accuracy >= 0);
    const loaded = loadBert(straight);
    assert.equal(loaded.model.task, "fill-mask");
    assert.equal(loaded.config.num_hidden_layers, 1);

    // Interrupted at step 15, then resumed: the same losses as the straight run.
    const resumed = join(root, "resumed");
    const ac = new AbortController();
    await pretrainMlm(
      { ...base, out: resumed, maxSteps: 40 },
      { signal: ac.signal, onLog: (e) => e.type === "step" && e.step === 15 && ac.abort() },
    );
    const again = await pretrainMlm({ out: resumed, text: base.text, resume: true });
    assert.equal(again.step, 40);
    const a = readFileSync(join(resumed, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      a.map((l) => [l.step, l.train_loss, l.grad_norm]),
      lines.map((l) => [l.step, l.train_loss, l.grad_norm]),
    );
  });

  it("refuses to overwrite a run, and a text too short to make two sequences", async () => {
    await assert.rejects(pretrainMlm({ ...base, out: join(root, "straight"), maxSteps: 1 }), /already holds a training run; pass --resume/);
    await assert.rejects(pretrainMlm({ ...base, text: "too short", out: join(root, "short"), maxSteps: 1 }), /the text is too short/);
  });
});
