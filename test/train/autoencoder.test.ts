// The sentence autoencoder trainer on the shared loop: the loss falls, the directory loads back to
// the same model, `moxing interpolate` prints the sentences between two codes, a resumed run
// equals an uninterrupted one.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadSentenceVAE, trainAutoencoder } from "../../src/train/autoencoder.js";
import { assertOneLineError, moxing } from "../cli-run.js";
import "../helpers.js"; // registers the backends

const SENTENCES = [
  "the union is strong .",
  "we the people of the united states .",
  "the people will build a nation of hope .",
  "liberty to ourselves and our posterity .",
  "the nation is strong and free .",
  "establish justice and insure domestic tranquility .",
];
const tmp = mkdtempSync(join(tmpdir(), "autoencoder-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const opts = (out: string) => ({
  out,
  sentences: Array.from({ length: 4 }, () => SENTENCES).flat(),
  model: { embed_dim: 16, hidden_size: 24, latent_size: 6, word_dropout: 0.2 },
  batchSize: 8,
  maxSteps: 16,
  learningRate: 1e-2,
  evalInterval: 8,
});
const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { train_loss: number }).train_loss);

describe("train-autoencoder", () => {
  test("trains, saves, loads; resumes exactly; interpolate prints the path", async () => {
    const whole = join(tmp, "whole");
    const r = await trainAutoencoder(opts(whole));
    const l = losses(whole);
    assert.equal(l.length, 16);
    assert.ok((l[15] as number) < (l[0] as number), `${l[0]} -> ${l[15]}`);
    assert.ok(r.eval && r.eval.token_accuracy !== undefined && r.eval.bleu !== undefined && r.eval.bleu >= 0);
    const { model, vocab } = loadSentenceVAE(whole);
    assert.deepEqual(
      model.reconstructionAccuracy([vocab.encode(SENTENCES[0] as string)]),
      r.model.reconstructionAccuracy([r.vocab.encode(SENTENCES[0] as string)]),
    );
    const part = join(tmp, "part");
    const stop = new AbortController();
    await trainAutoencoder(opts(part), { signal: stop.signal, onLog: (e) => e.type === "step" && e.step === 8 && stop.abort() });
    await trainAutoencoder({ ...opts(part), resume: true });
    assert.deepEqual(losses(part), l);
    const i = await moxing([
      "interpolate",
      "--model",
      whole,
      "--from",
      SENTENCES[0] as string,
      "--to",
      SENTENCES[1] as string,
      "--steps",
      "4",
    ]);
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.stdout.trimEnd().split("\n").length, 4);
    assertOneLineError(await moxing(["interpolate", "--model", whole, "--from", "a"]), /--to TEXT are required/, 2);
  });

  test("a directory from before feed_latent / bidirectional loads in its own form", async () => {
    const old = join(tmp, "old");
    await trainAutoencoder({ ...opts(old), maxSteps: 2, model: { ...opts(old).model, feed_latent: false, bidirectional: false } });
    const file = join(old, "config.json");
    const cfg = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    delete cfg.feed_latent;
    delete cfg.bidirectional;
    writeFileSync(file, JSON.stringify(cfg));
    const { model } = loadSentenceVAE(old);
    assert.equal(model.config.feed_latent, false);
    assert.equal(model.config.bidirectional, false);
    assert.deepEqual(model.stateDict().get("decoder.weight_ih_l0")?.shape, [4 * 24, 16]); // words only, no code beside them
    assert.deepEqual(model.stateDict().get("to_mu.weight")?.shape, [6, 24]); // one direction's final state
    writeFileSync(file, JSON.stringify({ ...cfg, feed_latent: "yes" }));
    assert.throws(() => loadSentenceVAE(old), /feed_latent must be true or false \(got "yes"\)/);
  });
});
