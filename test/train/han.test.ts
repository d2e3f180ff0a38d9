// The hierarchical attention network's trainer and commands: it learns a task that hangs on one word
// of one sentence and puts its attention there; a resumed run equals an uninterrupted one; the saved
// directory gives the same metrics; the State of the Union party split keeps every president on
// one side; `moxing train-han` and `moxing han-attention` run end to end.

import "../../src/index.js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { sotuParty } from "../../src/data/documents.js";
import type { LabeledText } from "../../src/data/labeled.js";
import { noGrad } from "../../src/tensor/autograd.js";
import { Generator } from "../../src/tensor/random.js";
import { documentSentences, evaluateHAN, type HANTrainOptions, hanAttention, loadHAN, trainHAN } from "../../src/train/han.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "han-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Documents of 3-5 filler sentences; one sentence says "excellent" (good) or "terrible" (bad).
const FILLER = "the a of we it this that news day year people work city road time plan".split(" ");
function documents(n: number, seed: number): LabeledText[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => {
    const good = g.random() < 0.5;
    const count = 3 + g.randint(3);
    const key = g.randint(count);
    const sentences = Array.from({ length: count }, (_, i) => {
      const words = Array.from({ length: 4 + g.randint(5) }, () => FILLER[g.randint(FILLER.length)] as string);
      if (i === key) words.splice(g.randint(words.length), 0, good ? "excellent" : "terrible");
      return `${words.join(" ")}.`;
    });
    return { text: sentences.join(" "), label: good ? "good" : "bad" };
  });
}

const train = documents(160, 1);
const held = documents(60, 2);
const tiny = (out: string, extra: Partial<HANTrainOptions> = {}): HANTrainOptions => ({
  out,
  train,
  eval: held,
  embedDim: 16,
  hiddenSize: 12,
  batchSize: 16,
  maxSteps: 50,
  learningRate: 1e-2,
  evalInterval: 25,
  ...extra,
});
const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { train_loss: number }).train_loss);

describe("HAN training", () => {
  test("documents become sentences of at most maxWords words", () => {
    const s = documentSentences("One two three. Four five six seven eight!  Nine", 10, 3);
    assert.deepEqual(s, [["one", "two", "three"], ["."], ["four", "five", "six"], ["seven", "eight", "!"], ["nine"]]);
    assert.equal(documentSentences("a. b. c. d.", 2, 5).length, 2);
  });

  test("learns a one-word task, attends to the word; the directory gives the same metrics", async () => {
    const out = join(tmp, "run");
    const r = await trainHAN(tiny(out));
    assert.ok((r.eval?.accuracy ?? 0) >= 0.9, `held-out accuracy ${r.eval?.accuracy}`);
    const loaded = loadHAN(out);
    noGrad(() => assert.deepEqual(evaluateHAN(loaded, held), r.eval));
    const results = JSON.parse(readFileSync(join(out, "eval_results.json"), "utf8"));
    assert.equal(results.accuracy, r.eval?.accuracy);
    // The key sentence gets the most sentence attention, and the key word the most within it.
    const doc = "the people of the city. we plan the road this year. it was excellent work. the day of news.";
    const a = hanAttention(loaded, doc);
    assert.equal(a.label, "good");
    const best = a.sentences.reduce((b, s, i) => (s.weight > (a.sentences[b] as { weight: number }).weight ? i : b), 0);
    assert.equal(best, 2, JSON.stringify(a.sentences.map((s) => s.weight)));
    const words = (a.sentences[2] as (typeof a.sentences)[number]).words;
    assert.equal(words.reduce((b, w) => (w.weight > b.weight ? w : b)).word, "excellent");
    const total = a.sentences.reduce((n, s) => n + s.weight, 0);
    assert.ok(Math.abs(total - 1) < 1e-5);
  });

  test("a resumed run equals an uninterrupted one", async () => {
    const whole = join(tmp, "whole");
    await trainHAN(tiny(whole, { maxSteps: 12, evalInterval: 6 }));
    const part = join(tmp, "part");
    const stop = new AbortController();
    const first = await trainHAN(tiny(part, { maxSteps: 12, evalInterval: 6 }), {
      signal: stop.signal,
      onLog: (e) => e.type === "step" && e.step === 4 && stop.abort(),
    });
    assert.equal(first.status, "interrupted");
    await trainHAN({ ...tiny(part, { maxSteps: 12, evalInterval: 6 }), resume: true });
    assert.deepEqual(losses(part), losses(whole));
    await assert.rejects(trainHAN({ ...tiny(part), train: held, resume: true }), /differs/);
  });

  test("State of the Union by party: split by year, no president on both sides", () => {
    const s = sotuParty();
    assert.equal(s.train.length, 138);
    assert.equal(s.test.length, 44);
    assert.deepEqual([...new Set(s.test.map((d) => d.label))].sort(), ["Democratic", "Republican"]);
    assert.throws(() => sotuParty(1961), /Dwight D Eisenhower on both sides/);
  });

  test("moxing train-han and han-attention", async () => {
    const dir = join(tmp, "files");
    const file = (name: string, rows: LabeledText[]) => {
      const p = join(tmp, name);
      writeFileSync(p, rows.map((r) => JSON.stringify(r)).join("\n"));
      return p;
    };
    const size = ["--embed-dim", "8", "--hidden-size", "6", "--max-steps", "3", "--batch-size", "8"];
    const r = await moxing(["train-han", "--train", file("train.jsonl", train), "--eval", file("eval.jsonl", held), "--out", dir, ...size]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 3 steps, \d+ parameters; held-out accuracy [\d.]+%, macro F1 [\d.]+; model saved in/);
    const a = await moxing(["han-attention", "--model", dir, "--text", "we plan the road. it was excellent work.", "--top", "1"]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(
      a.stdout,
      /^label: (good|bad) \((bad|good) [\d.]+, (bad|good) [\d.]+\)\n2 sentences; the 1 with the most attention:\n {2}#\d +[\d.]+ {2}.*\[/,
    );
    const page = join(tmp, "attention.html");
    const j = await moxing([
      "han-attention",
      "--model",
      dir,
      "--text",
      "we plan the road. it was <excellent> work.",
      "--json",
      "--html",
      page,
    ]);
    assert.equal(JSON.parse(j.stdout).sentences.length, 2);
    const html = readFileSync(page, "utf8");
    assert.equal((html.match(/class="s"/g) ?? []).length, 2);
    assert.match(html, /&lt;/); // the text is escaped
    assertOneLineError(await moxing(["han-attention", "--model", dir]), /--text TEXT or --file FILE/, 2);
    assertOneLineError(await moxing(["train-han", "--dataset", "imdb", "--out", join(tmp, "x")]), /unknown --dataset 'imdb'/, 2);
    assertOneLineError(await moxing(["han-attention", "--model", join(tmp, "nothing"), "--text", "x"]), /does not exist/);
  });
});
