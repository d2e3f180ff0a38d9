// ListOps classifiers on the shared loop: each of the Tree-LSTM, the LSTM and the Transformer learns
// beyond chance on a small generated set, a resumed run equals an uninterrupted one, the saved model
// directory gives the same accuracy, and `moxing train-listops` runs end to end.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { generateListOps } from "../../src/data/listops.js";
import { noGrad } from "../../src/tensor/autograd.js";
import {
  LISTOPS_VOCAB,
  type ListOpsTrainOptions,
  listOpsAccuracy,
  listOpsTokens,
  loadListOpsModel,
  trainListOps,
} from "../../src/train/listops.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "listops-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Short examples (at most 8 tokens: one operator over digits, or a digit) learn in a few dozen steps.
const tiny = (out: string, model: ListOpsTrainOptions["model"], extra: Partial<ListOpsTrainOptions> = {}): ListOpsTrainOptions => ({
  out,
  model,
  trainSize: 400,
  validSize: 100,
  testSize: 100,
  maxTokens: 8,
  hiddenSize: 32,
  embedDim: 16,
  layers: 1,
  batchSize: 32,
  maxSteps: 60,
  learningRate: 1e-2,
  warmupSteps: 5,
  evalInterval: 30,
  ...extra,
});

const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { train_loss: number }).train_loss);

describe("ListOps training", () => {
  test("sequence models read the tokens without brackets", () => {
    const [e] = generateListOps(1, { seed: 3, valueP: 0.999, maxDepth: 2 });
    assert.ok(e);
    const toks = listOpsTokens(e.tree);
    assert.deepEqual(
      toks,
      e.text.split(" ").filter((t) => t !== "(" && t !== ")"),
    );
    for (const t of toks) assert.ok(LISTOPS_VOCAB.includes(t));
  });

  for (const model of ["tree-lstm", "lstm", "transformer"] as const) {
    test(`${model}: learns beyond chance; the saved directory gives the same accuracy`, async () => {
      const out = join(tmp, model);
      const r = await trainListOps(tiny(out, model));
      assert.equal(r.status, "completed");
      const l = losses(out);
      assert.equal(l.length, 60);
      assert.ok((r.testAccuracy as number) > 0.3, `test accuracy ${r.testAccuracy} (chance is about 0.1)`);
      assert.ok((l[59] as number) < (l[0] as number) - 0.3, `loss ${l[0]} -> ${l[59]}`);
      const results = JSON.parse(readFileSync(join(out, "eval_results.json"), "utf8"));
      assert.equal(results.test_accuracy, r.testAccuracy);
      assert.equal(results.params, r.params);
      const loaded = loadListOpsModel(out);
      assert.equal(loaded.kind, model);
      const test = generateListOps(600, { seed: 0, maxTokens: 8 }).slice(500);
      noGrad(() => assert.equal(listOpsAccuracy(loaded.model, test), r.testAccuracy));
    });
  }

  test("a resumed run equals an uninterrupted one; a finished run is not overwritten by accident", async () => {
    const whole = join(tmp, "whole");
    await trainListOps(tiny(whole, "tree-lstm", { maxSteps: 20, evalInterval: 10 }));
    const part = join(tmp, "part");
    const stop = new AbortController();
    const first = await trainListOps(tiny(part, "tree-lstm", { maxSteps: 20, evalInterval: 10 }), {
      signal: stop.signal,
      onLog: (e) => e.type === "step" && e.step === 7 && stop.abort(),
    });
    assert.equal(first.status, "interrupted");
    await trainListOps({ ...tiny(part, "tree-lstm", { maxSteps: 20, evalInterval: 10 }), resume: true });
    assert.deepEqual(losses(part), losses(whole));
    await assert.rejects(trainListOps(tiny(part, "lstm")), /already holds a ListOps run/);
  });

  test("moxing train-listops", async () => {
    const out = join(tmp, "cli");
    const size = ["--train-size", "200", "--valid-size", "50", "--test-size", "50", "--max-tokens", "8", "--hidden-size", "16"];
    const r = await moxing(["train-listops", "--model", "lstm", "--out", out, ...size, "--max-steps", "4", "--batch-size", "16"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 4 steps, \d+ parameters; validation accuracy [\d.]+%, test accuracy [\d.]+%; model saved in/);
    assertOneLineError(
      await moxing(["train-listops", "--model", "gru", "--out", join(tmp, "x")]),
      /--model must be one of tree-lstm, lstm, transformer/,
      2,
    );
    assertOneLineError(await moxing(["train-listops", "--out", join(tmp, "x")]), /--model is required/, 2);
  });
});
