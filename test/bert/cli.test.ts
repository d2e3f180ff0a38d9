// `moxing pretrain-mlm`, `moxing finetune` and `moxing similar` end to end on a tiny model, and
// one-line errors for bad input.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { assertOneLineError, moxing } from "../cli-run.js";
import { corpus } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "moxing-bert-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

const model = join(root, "mlm");
const f = (name: string, content: string) => {
  const p = join(root, name);
  writeFileSync(p, content);
  return p;
};

describe("BERT commands", () => {
  before(() => {
    f("corpus.txt", `${corpus(300)} the cat is good . the dog is bad .`.repeat(2));
  });

  test("pretrain-mlm trains a tokenizer and a BERT with progress, metrics and a model directory", async () => {
    const r = await moxing([
      "pretrain-mlm",
      "--data",
      join(root, "corpus.txt"),
      "--out",
      model,
      "--vocab-size",
      "150",
      "--layers",
      "1",
      "--hidden",
      "32",
      "--heads",
      "2",
      "--max-len",
      "24",
      "--batch-size",
      "4",
      "--max-steps",
      "6",
      "--eval-interval",
      "3",
      "--eval-batches",
      "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /trained a WordPiece tokenizer/);
    assert.match(r.stderr, /step 6\/6 {2}loss/);
    assert.match(r.stdout, /done: 6 steps, train loss [\d.]+, validation masked-token loss/);
    for (const file of ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "metrics.jsonl", "trainer_state.json"]) {
      assert.ok(existsSync(join(model, file)), file);
    }
    assert.equal(readFileSync(join(model, "metrics.jsonl"), "utf8").trim().split("\n").length, 6);
  });

  test("finetune text-classification from a TSV and a text file with a labels file; similar lists neighbours", async () => {
    const rows = Array.from(
      { length: 24 },
      (_, i) => `the ${i % 2 ? "cat" : "dog"} is ${i % 2 ? "good" : "bad"} .\t${i % 2 ? "pos" : "neg"}`,
    );
    const train = f("train.tsv", `text\tlabel\n${rows.join("\n")}\n`);
    const evalTexts = f("eval.txt", "the cat is good .\nthe dog is bad .\n");
    const evalLabels = f("eval-labels.txt", "pos\nneg\n");
    const out = join(root, "cls");
    const r = await moxing([
      "finetune",
      "--task",
      "sentiment-analysis",
      "--model",
      model,
      "--train",
      train,
      "--eval",
      evalTexts,
      "--eval-labels",
      evalLabels,
      "--out",
      out,
      "--max-steps",
      "3",
      "--batch-size",
      "8",
      "--predictions",
      join(root, "pred.txt"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /new text-classification head/);
    assert.match(r.stdout, /done: 3 steps, .*eval accuracy [\d.]+, macro_f1/);
    assert.equal(readFileSync(join(root, "pred.txt"), "utf8").trim().split("\n").length, 2);
    assert.ok(existsSync(join(out, "eval_results.json")));

    const s = await moxing(["similar", "--model", model, "cat", "--top", "3", "--json"]);
    assert.equal(s.code, 0, s.stderr);
    const fill = await moxing(["pipeline", "fill-mask", "--model", model, "--top", "2", "the cat [MASK] the ball ."]);
    assert.equal(fill.code, 0, fill.stderr);
    const filled = JSON.parse(fill.stdout);
    assert.equal(filled.length, 2);
    assert.deepEqual(Object.keys(filled[0]).sort(), ["score", "sequence", "token", "token_str"]);
    const classified = await moxing(["pipeline", "sentiment-analysis", "--model", out, "the cat is good .", "the dog is bad ."]);
    assert.equal(classified.code, 0, classified.stderr);
    assert.equal(JSON.parse(classified.stdout).length, 2);

    const near = JSON.parse(s.stdout);
    assert.equal(near.length, 3);
    assert.ok(near.every((n: { word: string; score: number }) => typeof n.word === "string" && n.score <= 1));
  });

  test("finetune --resume continues a run in --out; a second run there needs --resume or --overwrite", async () => {
    const rows = Array.from(
      { length: 24 },
      (_, i) => `the ${i % 2 ? "cat" : "dog"} is ${i % 2 ? "good" : "bad"} .\t${i % 2 ? "pos" : "neg"}`,
    );
    const train = f("resume.tsv", `text\tlabel\n${rows.join("\n")}\n`);
    const out = join(root, "resumed");
    const args = ["--train", train, "--batch-size", "8", "--checkpoint-interval", "2"];
    const first = await moxing(["finetune", "--task", "text-classification", "--model", model, "--out", out, "--max-steps", "4", ...args]);
    assert.equal(first.code, 0, first.stderr);
    assertOneLineError(
      await moxing(["finetune", "--task", "text-classification", "--model", model, "--out", out, ...args]),
      /already holds a fine-tuning run; pass --resume to continue it, --overwrite to start over/,
    );
    const more = await moxing(["finetune", "--out", out, "--resume", "--max-steps", "6", ...args]);
    assert.equal(more.code, 0, more.stderr);
    assert.match(more.stderr, /resuming at step 4/);
    assert.match(more.stdout, /done: 6 steps/);
    assert.deepEqual(
      readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).step),
      [1, 2, 3, 4, 5, 6],
    );
    assertOneLineError(await moxing(["finetune", "--out", join(root, "empty"), "--resume", ...args]), /nothing to resume in .*empty/);
    assertOneLineError(
      await moxing(["finetune", "--task", "ner", "--out", out, "--resume", ...args]),
      /fine-tunes for text-classification, not token-classification; drop --task/,
    );
  });

  test("bad input: a clear one-line error", async () => {
    assertOneLineError(
      await moxing(["finetune", "--task", "summarization", "--model", model, "--out", join(root, "x"), "--train", "t"]),
      /unknown task 'summarization'; choose one of/,
    );
    const texts = f("texts.txt", "one\ntwo\nthree\n");
    const labels = f("labels.txt", "a\nb\n");
    assertOneLineError(
      await moxing([
        "finetune",
        "--task",
        "text-classification",
        "--model",
        model,
        "--out",
        join(root, "x"),
        "--train",
        texts,
        "--labels",
        labels,
      ]),
      /labels\.txt has 2 labels but .*texts\.txt has 3 texts; they must match line for line/,
    );
    const squad = f(
      "squad.json",
      JSON.stringify({
        data: [
          {
            title: "t",
            paragraphs: [
              { context: "short context", qas: [{ id: "q1", question: "what?", answers: [{ text: "context", answer_start: 40 }] }] },
            ],
          },
        ],
      }),
    );
    assertOneLineError(
      await moxing(["finetune", "--task", "qa", "--model", model, "--out", join(root, "x"), "--train", squad]),
      /question 'q1': the answer 'context' at 40\.\.47 is outside its context \(13 characters\)/,
    );
    assertOneLineError(
      await moxing(["finetune", "--task", "ner", "--model", model, "--out", join(root, "x"), "--dataset", "imdb"]),
      /unknown dataset 'imdb'/,
    );
    // One example: the held-out split takes it all, and the error says so (not "the training data is empty").
    const one = f("one.conll", "Paris B-LOC\nsleeps O\n");
    assertOneLineError(
      await moxing(["finetune", "--task", "ner", "--model", model, "--out", join(root, "x"), "--train", one]),
      /finetune: holding out --eval-fraction 0\.1 of 1 example for evaluation leaves none to train on; give more examples, or evaluation data with --eval FILE/,
      2,
    );
    assertOneLineError(await moxing(["similar", "--model", join(root, "nowhere"), "cat"]), /model directory .* does not exist/);
    assertOneLineError(await moxing(["pipeline", "text-to-speech", "--model", model, "x"]), /unknown task 'text-to-speech'; supported: /);
    assertOneLineError(await moxing(["pipeline", "fill-mask", "--model", model, "no mask"]), /fill-mask: the text has no \[MASK\] token/);
  });
});
