// The one training loop (src/train/loop.ts) through the small trainer of docs/training.md: it
// learns, checkpoints and resumes exactly; a non-finite loss or weights stop the run and keep the
// last good checkpoint (for the GPT trainer too); evaluation memory does not grow with the number
// of evaluation batches.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { allFinite, DivergenceError, loadModel, MemoryArena, scoped, tensor, train } from "../../src/index.js";
import { trainRotations } from "./fixtures/rotation-trainer.js";

const root = mkdtempSync(join(tmpdir(), "moxing-loop-"));
after(() => rmSync(root, { recursive: true, force: true }));

const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);
const state = (dir: string) => JSON.parse(readFileSync(join(dir, "trainer_state.json"), "utf8"));

describe("a new trainer on the loop (docs/training.md's example)", () => {
  test("learns, logs a line per step, checkpoints, and an interrupted run resumed matches an uninterrupted one bit for bit", async () => {
    const whole = join(root, "whole");
    const r = await trainRotations({ out: whole, maxSteps: 30 });
    assert.equal(r.status, "completed");
    const m = metrics(whole);
    assert.deepEqual(
      m.map((l) => l.step),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.ok((m.at(-1)?.train_loss as number) < (m[0]?.train_loss as number) - 0.5, "the loss falls");
    assert.equal(typeof m[9]?.eval_loss, "number");
    assert.equal(state(whole).step, 30);
    assert.equal(state(whole).format, "rotation-state");

    const parts = join(root, "parts");
    const stop = new AbortController();
    const first = await trainRotations(
      { out: parts, maxSteps: 30 },
      { signal: stop.signal, onLog: (e) => e.type === "step" && e.step === 12 && stop.abort() },
    );
    assert.equal(first.status, "interrupted");
    assert.equal(state(parts).step, 12, "Ctrl-C saves a checkpoint");
    await assert.rejects(trainRotations({ out: parts }), /already holds a rotation run; pass --resume to continue it, --overwrite/);
    const second = await trainRotations({ out: parts, resume: true });
    assert.equal(second.step, 30);
    assert.deepEqual(
      metrics(parts),
      metrics(whole).map((l, i) => ({ ...l, tokens_per_s: metrics(parts)[i]?.tokens_per_s, ms_per_step: metrics(parts)[i]?.ms_per_step })),
    );
    assert.deepEqual(readFileSync(join(parts, "model.safetensors")), readFileSync(join(whole, "model.safetensors")));
    assert.deepEqual(readFileSync(join(parts, "optimizer.safetensors")), readFileSync(join(whole, "optimizer.safetensors")));
    await assert.rejects(
      trainRotations({ out: join(root, "none"), resume: true }),
      /nothing to resume in '.*none' \(no trainer_state\.json\)/,
    );
  });

  test("a NaN loss stops the run before the optimizer step; the last good checkpoint and its metrics stay", async () => {
    const out = join(root, "nan");
    await assert.rejects(trainRotations({ out, maxSteps: 30, poisonAt: 13 }), (e: Error) => {
      assert.ok(e instanceof DivergenceError, String(e));
      assert.match(e.message, /training diverged at step 13: the loss is NaN .*the last good checkpoint in '.*nan' is kept \(step 10\)/);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
    assert.equal(state(out).step, 10);
    assert.deepEqual(
      metrics(out).map((l) => l.step),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const { model } = loadModel(out);
    assert.ok(allFinite(model.parameters()));
    // Resuming re-runs from step 10 (the steps logged after it are dropped) and stops again at 13.
    await assert.rejects(trainRotations({ out, resume: true, poisonAt: 13 }), /diverged at step 13/);
    assert.equal(state(out).step, 10);
  });

  test("weights that became non-finite are never saved", async () => {
    const out = join(root, "inf");
    // lr 1e300 is infinite in float32: the first AdamW step makes the weights NaN/Inf.
    await assert.rejects(
      trainRotations({ out, maxSteps: 30, learningRate: 1e300 }),
      /diverged at step \d+: .*not finite|diverged at step \d+: the loss is/,
    );
    assert.ok(!existsSync(join(out, "model.safetensors")), "no checkpoint of NaN weights");
  });

  test("evaluation memory does not grow with the number of evaluation batches", async () => {
    const few = await trainRotations({ out: join(root, "eval-2"), maxSteps: 10, evalBatches: 2 });
    const many = await trainRotations({ out: join(root, "eval-40"), maxSteps: 10, evalBatches: 40 });
    assert.ok(few.arenaBytes > 0);
    assert.equal(many.arenaBytes, few.arenaBytes);
  });

  test("scoped hands a batch's buffers back to the arena", () => {
    const arena = new MemoryArena();
    const run = (n: number) =>
      arena.run(() => {
        let s = 0;
        for (let i = 0; i < n; i++) s += scoped(() => tensor(new Float32Array(4096).fill(1)).mul(2).sum().item());
        return s;
      });
    assert.equal(run(3), 3 * 8192);
    const bytes = arena.bytes;
    assert.equal(run(50), 50 * 8192);
    assert.equal(arena.bytes, bytes);
  });
});

describe("the GPT trainer on the loop", () => {
  const words = ["we", "the", "people", "of", "the", "united", "states", "form", "a", "more", "perfect", "union"];
  let text = "";
  for (let i = 0; text.length < 3000; i++) text += `${words[(i * 5 + (i >> 3)) % words.length]}${i % 9 === 8 ? ".\n" : " "}`;
  const data = join(root, "data.txt");
  writeFileSync(data, text);
  const tiny = { data, nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, batchSize: 4, evalIters: 2 };

  test("--learning-rate 1e300 stops with a clear message and keeps the last good checkpoint", async () => {
    const out = join(root, "gpt-diverge");
    await train({ ...tiny, out, maxSteps: 4, evalInterval: 2 });
    const before = readFileSync(join(out, "model.safetensors"));
    await assert.rejects(
      train({ ...tiny, out, overwrite: true, maxSteps: 4, learningRate: 1e300, checkpointInterval: 1 }),
      DivergenceError,
    );
    // The fresh run dropped the old training state but never wrote NaN weights over the model.
    assert.deepEqual(readFileSync(join(out, "model.safetensors")), before);
  });

  test("evaluation memory does not grow with --eval-iters", async () => {
    const a = await train({ ...tiny, out: join(root, "gpt-eval-1"), maxSteps: 2, evalInterval: 1, evalIters: 1 });
    const b = await train({ ...tiny, out: join(root, "gpt-eval-20"), maxSteps: 2, evalInterval: 1, evalIters: 20 });
    assert.equal(b.arenaBytes, a.arenaBytes);
  });
});
