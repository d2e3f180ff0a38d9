// Training an encoder-decoder on the shared loop: loss falls on a tiny parallel sample (Genesis in
// the KJV and the Reina-Valera 1909), a resumed run equals an uninterrupted one, the CLI commands
// train-seq2seq and translate work end to end, and the translation pipeline answers.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readLines } from "../../src/cli/train-seq2seq.js";
import { pipeline } from "../../src/index.js";
import { collatePairs, type Seq2SeqTrainOptions, trainSeq2Seq } from "../../src/train/seq2seq.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const fixture = (name: string) => new URL(`../data/fixtures/${name}`, import.meta.url).pathname;
const train = { source: readLines(fixture("genesis.en")), target: readLines(fixture("genesis.es")) };
const valid = { source: readLines(fixture("ruth.en")), target: readLines(fixture("ruth.es")) };
const tmp = mkdtempSync(join(tmpdir(), "seq2seq-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = (out: string, extra: Partial<Seq2SeqTrainOptions> = {}): Seq2SeqTrainOptions => ({
  out,
  train,
  valid,
  model: {
    d_model: 32,
    encoder_layers: 1,
    decoder_layers: 1,
    encoder_attention_heads: 2,
    decoder_attention_heads: 2,
    encoder_ffn_dim: 64,
    decoder_ffn_dim: 64,
    dropout: 0.1,
  },
  vocabSize: 300,
  maxLength: 40,
  batchSize: 8,
  maxSteps: 24,
  learningRate: 3e-3,
  warmupSteps: 4,
  evalInterval: 12,
  evalSamples: 2,
  ...extra,
});

const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { train_loss: number }).train_loss);

describe("seq2seq training", () => {
  test("pads a batch and ignores padding in the labels", () => {
    const b = collatePairs(
      [
        { src: [1, 2, 3], tgt: [4, 5] },
        { src: [1], tgt: [6, 7, 8] },
      ],
      9,
      64,
    );
    assert.deepEqual(b.inputIds.shape, [2, 8]);
    assert.deepEqual(b.attentionMask.toArray().slice(8, 10), [1, 0]);
    assert.deepEqual(b.labels.toArray().slice(0, 3), [4, 5, -100]);
    assert.equal(b.tokens, 5);
  });

  test("the loss falls, and a resumed run equals an uninterrupted one", async () => {
    const whole = await trainSeq2Seq(tiny(join(tmp, "whole")));
    const l = losses(join(tmp, "whole"));
    assert.equal(l.length, 24);
    assert.ok((l[23] as number) < (l[0] as number) - 0.5, `loss ${l[0]} -> ${l[23]}`);
    assert.ok(whole.eval && Number.isFinite(whole.eval.bleu) && Number.isFinite(whole.eval.chrf), JSON.stringify(whole.eval));
    const part = join(tmp, "part");
    // Interrupted after step 12 (as Ctrl-C does), then resumed: the same schedule, batches and dropout.
    const stop = new AbortController();
    const first = await trainSeq2Seq(tiny(part), { signal: stop.signal, onLog: (e) => e.type === "step" && e.step === 12 && stop.abort() });
    assert.equal(first.status, "interrupted");
    await trainSeq2Seq({ ...tiny(part), resume: true });
    assert.deepEqual(losses(part), l);
    await assert.rejects(trainSeq2Seq(tiny(part)), /already holds a seq2seq training run/);
    await assert.rejects(trainSeq2Seq({ ...tiny(part), train: valid, resume: true }), /the data differs/);
  });

  test("train-seq2seq and translate from the command line; the translation pipeline", async () => {
    const out = join(tmp, "cli");
    const args = ["--source", fixture("genesis.en"), "--target", fixture("genesis.es"), "--out", out];
    const size = ["--vocab-size", "300", "--d-model", "32", "--layers", "1", "--heads", "2", "--ffn-dim", "64", "--max-length", "40"];
    const r = await moxing([
      "train-seq2seq",
      ...args,
      ...size,
      "--max-steps",
      "6",
      "--batch-size",
      "8",
      "--valid-source",
      fixture("ruth.en"),
      "--valid-target",
      fixture("ruth.es"),
      "--eval-samples",
      "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 6 steps, train loss [\d.]+, held-out loss [\d.]+, BLEU [\d.]+, chrF [\d.]+; model saved in/);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(config.model_type, "marian");
    assert.deepEqual(config.architectures, ["MarianMTModel"]);
    const t = await moxing([
      "translate",
      "--model",
      out,
      "--input",
      fixture("ruth.en"),
      "--reference",
      fixture("ruth.es"),
      "--max-new-tokens",
      "6",
      "--num-beams",
      "2",
    ]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout.trimEnd().split("\n").length, 8);
    assert.match(t.stderr, /^BLEU = [\d.]+ .*\[nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp\]\nchrF2 = [\d.]+/);
    const translate = await pipeline("translation", out);
    const res = translate(["In the beginning", "And God said"], { max_new_tokens: 4 });
    assert.equal(res.length, 2);
    assert.equal(typeof res[0]?.translation_text, "string");
    assertOneLineError(
      await moxing(["train-seq2seq", "--source", fixture("genesis.en"), "--target", fixture("ruth.es"), "--out", join(tmp, "x")]),
      /has 48 lines but .* has 8/,
      2,
    );
    assertOneLineError(
      await moxing(["translate", "--model", out, "--input", fixture("ruth.en"), "--reference", fixture("genesis.es")]),
      /8 inputs but 48 references/,
      2,
    );
    assertOneLineError(await moxing(["translate", "--model", join(tmp, "none"), "--text", "x"]), /does not exist/);
  });
});
