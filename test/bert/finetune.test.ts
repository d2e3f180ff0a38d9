// Fine-tuning a (tiny) BERT for each task and the pipelines over the results, in transformers.js's
// output shapes; embeddings and word similarity.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { TaggedSentence } from "../../src/data/conll.js";
import type { QaExample } from "../../src/data/squad.js";
import * as mx from "../../src/index.js";
import { loadBert } from "../../src/io/bert.js";
import { cosineSimilarity, pipeline, SUPPORTED_TASKS, sentenceEmbeddings, WordVectors } from "../../src/pipelines/index.js";
import { finetune, resolveTask } from "../../src/train/finetune.js";
import { tinyModelDir } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "moxing-ft-"));
after(() => rmSync(root, { recursive: true, force: true }));
const base = join(root, "base");
before(() => {
  tinyModelDir(base);
});

const SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the teacher"];
const sentiment = (n: number, offset = 0) =>
  Array.from({ length: n }, (_, i) => {
    const good = (i + offset) % 2 === 0;
    return {
      text: `${SUBJECTS[i % 5]} is ${good ? (i % 3 ? "good" : "great") : i % 3 ? "bad" : "awful"} .`,
      label: good ? "POSITIVE" : "NEGATIVE",
    };
  });

describe("fine-tuning", () => {
  it("text classification learns a separable task; the directory reloads as a classifier; the pipeline answers like transformers.js", async () => {
    const out = join(root, "cls");
    const r = await finetune({
      task: "text-classification",
      model: base,
      out,
      train: { task: "text-classification", examples: sentiment(80) },
      eval: { task: "text-classification", examples: sentiment(20, 1) },
      provenance: { train: { name: "toy", kind: "synthetic" } },
      epochs: 6,
      batchSize: 8,
      learningRate: 3e-3,
    });
    assert.deepEqual(r.labels, ["NEGATIVE", "POSITIVE"]);
    assert.ok((r.eval?.metrics.accuracy ?? 0) >= 0.9, `accuracy ${r.eval?.metrics.accuracy}`);
    const results = JSON.parse(readFileSync(join(out, "eval_results.json"), "utf8"));
    assert.equal(results.task, "text-classification");
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual(config.architectures, ["BertForSequenceClassification"]);
    assert.deepEqual(config.id2label, { 0: "NEGATIVE", 1: "POSITIVE" });
    assert.equal(config.moxing.data.train.kind, "synthetic");
    assert.match(readFileSync(join(out, "metrics.jsonl"), "utf8"), /"data":"synthetic"/);

    const classify = await pipeline("sentiment-analysis", out);
    const one = classify("the dog is great .");
    assert.ok(Array.isArray(one) && one.length === 1);
    assert.deepEqual(Object.keys(one[0] as object).sort(), ["label", "score"]);
    assert.equal((one[0] as { label: string }).label, "POSITIVE");
    const many = classify(["the cat is awful .", "my friend is good ."]) as { label: string; score: number }[];
    assert.deepEqual(
      many.map((x) => x.label),
      ["NEGATIVE", "POSITIVE"],
    );
    const top2 = classify("a dog is bad .", { topk: 2 }) as { score: number }[];
    assert.ok(Math.abs((top2[0]?.score ?? 0) + (top2[1]?.score ?? 0) - 1) < 1e-5);
  });

  it("an interrupted run resumed from its checkpoint logs the losses and saves the weights of an uninterrupted one", async () => {
    const withDropout = join(root, "base-dropout"); // so the dropout generator's state must be restored too
    tinyModelDir(withDropout, undefined, 1, 0.1);
    const spec = (out: string) => ({
      task: "text-classification" as const,
      model: withDropout,
      out,
      train: { task: "text-classification" as const, examples: sentiment(40) },
      eval: { task: "text-classification" as const, examples: sentiment(8, 1) },
      maxSteps: 12,
      batchSize: 8, // 5 batches an epoch: the stop falls inside the second epoch's order
      learningRate: 3e-3,
      checkpointInterval: 4,
    });
    const losses = (out: string) =>
      readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { step: number; train_loss: number })
        .map((m) => [m.step, m.train_loss]);
    const whole = join(root, "resume-whole");
    await finetune(spec(whole));
    const parts = join(root, "resume-parts");
    const stop = new AbortController();
    const first = await finetune(spec(parts), { signal: stop.signal, onLog: (e) => e.type === "step" && e.step === 7 && stop.abort() });
    assert.equal(first.status, "interrupted");
    assert.equal(first.step, 7);
    await assert.rejects(finetune(spec(parts)), /already holds a fine-tuning run; pass --resume to continue it, --overwrite/);
    await assert.rejects(
      finetune({ ...spec(parts), resume: true, train: { task: "text-classification", examples: sentiment(41) } }),
      /the data differs/,
    );
    const second = await finetune({ ...spec(parts), resume: true });
    assert.equal(second.status, "completed");
    assert.equal(second.step, 12);
    assert.deepEqual(losses(parts), losses(whole));
    assert.deepEqual(readFileSync(join(parts, "model.safetensors")), readFileSync(join(whole, "model.safetensors")));
    await assert.rejects(finetune({ ...spec(join(root, "resume-none")), resume: true }), /nothing to resume/);
  });

  it("token classification: seqeval metrics, per-word predictions, and the NER pipeline", async () => {
    const names = ["berlin", "paris", "france", "germany"];
    const sentences: TaggedSentence[] = Array.from({ length: 60 }, (_, i) => {
      const place = names[i % 4] as string;
      return { tokens: ["the", "cat", "sees", place, "."], tags: ["O", "O", "O", "B-LOC", "O"] };
    });
    const out = join(root, "ner");
    const r = await finetune({
      task: "token-classification",
      model: base,
      out,
      train: { task: "token-classification", examples: sentences.slice(0, 48) },
      eval: { task: "token-classification", examples: sentences.slice(48) },
      epochs: 6,
      batchSize: 8,
      learningRate: 3e-3,
    });
    assert.deepEqual(r.labels, ["O", "B-LOC", "I-LOC"]);
    assert.ok((r.eval?.metrics.f1 ?? 0) >= 0.9, `f1 ${r.eval?.metrics.f1}`);
    assert.equal((r.eval?.predictions as string[][] | undefined)?.length, 12);
    const ner = await pipeline("ner", out);
    const ents = ner("the dog sees paris .") as { entity: string; word: string; start: number; end: number; index: number }[];
    assert.deepEqual(
      ents.map((e) => [e.entity, e.word, e.start, e.end]),
      [["B-LOC", "paris", 13, 18]],
    );
    const grouped = ner("the dog sees paris .", { aggregation_strategy: "simple" }) as { entity_group: string }[];
    assert.equal(grouped[0]?.entity_group, "LOC");
  });

  it("question answering trains on SQuAD-style data and answers through the pipeline", async () => {
    const examples: QaExample[] = Array.from({ length: 40 }, (_, i) => {
      const city = ["berlin", "paris"][i % 2] as string;
      const other = ["paris", "berlin"][i % 2] as string;
      const context = `the cat sees ${city} . the dog sees ${other} .`;
      return { id: String(i), question: "what does the cat see ?", context, answers: [{ text: city, answerStart: context.indexOf(city) }] };
    });
    const out = join(root, "qa");
    const r = await finetune({
      task: "question-answering",
      model: base,
      out,
      train: { task: "question-answering", examples: examples.slice(0, 32) },
      eval: { task: "question-answering", examples: examples.slice(32) },
      epochs: 8,
      batchSize: 8,
      learningRate: 3e-3,
      maxLength: 32,
    });
    const m = r.eval?.metrics ?? {};
    assert.ok(m.exact_match !== undefined && m.f1 !== undefined && m.f1 >= m.exact_match);
    const qa = await pipeline("question-answering", out);
    const ans = qa("what does the cat see ?", "the cat sees paris . the dog sees berlin .");
    assert.deepEqual(Object.keys(ans).sort(), ["answer", "end", "score", "start"]);
    assert.ok(ans.score >= 0 && ans.score <= 1);
    assert.equal(ans.answer, "the cat sees paris . the dog sees berlin .".slice(ans.start, ans.end));
  });

  it("refuses eval labels the training data does not have, and labels that differ from a fine-tuned model's", async () => {
    await assert.rejects(
      finetune({
        task: "text-classification",
        model: base,
        out: join(root, "x"),
        train: { task: "text-classification", examples: sentiment(10) },
        eval: { task: "text-classification", examples: [{ text: "x", label: "NEUTRAL" }] },
        maxSteps: 1,
      }),
      /example 1 has label 'NEUTRAL', which is not among the model's labels \(NEGATIVE, POSITIVE\)/,
    );
    await assert.rejects(
      finetune({
        task: "text-classification",
        model: join(root, "cls"),
        out: join(root, "y"),
        train: {
          task: "text-classification",
          examples: [
            { text: "a", label: "x" },
            { text: "b", label: "y" },
          ],
        },
        maxSteps: 1,
      }),
      /fine-tuned with the labels NEGATIVE, POSITIVE, but the training data has x, y/,
    );
    assert.throws(
      () => resolveTask("summarization"),
      /unknown task 'summarization'; choose one of text-classification, sentiment-analysis/,
    );
  });
});

describe("pipelines and embeddings", () => {
  it("fill-mask and feature-extraction give transformers.js shapes; unknown tasks and wrong models are clear errors", async () => {
    const fill = await pipeline("fill-mask", base);
    const out = fill("the cat [MASK] the ball .") as { score: number; token: number; token_str: string; sequence: string }[];
    assert.equal(out.length, 5);
    assert.deepEqual(Object.keys(out[0] as object).sort(), ["score", "sequence", "token", "token_str"]);
    assert.ok(out.every((o, i) => i === 0 || o.score <= (out[i - 1]?.score ?? 1)));
    assert.match(out[0]?.sequence ?? "", /^the cat.* the ball\.$/); // the decoder joins "##" pieces and tidies " ."
    assert.throws(() => fill("no mask here"), /the text has no \[MASK\] token/);

    const fe = await pipeline("feature-extraction", base);
    assert.deepEqual(fe(["the cat", "a dog sees the ball"]).shape.length, 3);
    const pooled = fe(["the cat", "a dog sees the ball"], { pooling: "mean", normalize: true });
    assert.deepEqual(pooled.shape, [2, 32]);
    const row = pooled.slice(0, 0, 1).toArray();
    assert.ok(Math.abs(Math.hypot(...row) - 1) < 1e-5);

    await assert.rejects(pipeline("text-to-speech", base), /unknown task 'text-to-speech'; supported: text-classification/);
    await assert.rejects(pipeline("summarization", base), /summarization: .*not a Marian config.*needs an encoder-decoder/);
    await assert.rejects(pipeline("ner", base), /is a fill-mask model; this pipeline needs a token-classification model/);
    assert.equal(SUPPORTED_TASKS.get("sentiment-analysis"), SUPPORTED_TASKS.get("text-classification"));
  });

  it("sentence embeddings, cosine similarity, nearest words and analogies", () => {
    const { model, tokenizer } = loadBert(base);
    const [a, b, c] = sentenceEmbeddings(model, tokenizer, ["the cat sees the ball", "the cat sees the ball", "awful"]);
    assert.ok(Math.abs(cosineSimilarity(a as Float32Array, b as Float32Array) - 1) < 1e-6);
    assert.ok(cosineSimilarity(a as Float32Array, c as Float32Array) < 1);
    // Word vectors from the embedding table, with a planted analogy: queen = king - man + woman.
    const wv = new WordVectors(model, tokenizer);
    assert.ok(wv.words.includes("cat") && !wv.words.some((w) => w.startsWith("##") || w.startsWith("[")));
    const near = wv.nearest("cat", 3);
    assert.equal(near.length, 3);
    assert.ok(!near.some((n) => n.word === "cat"));
    const E = model.bert.embeddings.word_embeddings.weight;
    const id = (w: string) => tokenizer.tokenToId(w) as number;
    mx.noGrad(() => {
      const row = (w: string) => E.slice(0, id(w), id(w) + 1);
      row("paris").copy_(row("berlin").sub(row("germany")).add(row("france")));
    });
    const wv2 = new WordVectors(model, tokenizer);
    assert.equal(wv2.analogy("berlin", "germany", "france", 1)[0]?.word, "paris");
    assert.equal(new WordVectors(model, tokenizer, "contextual", { maxWords: 20 }).nearest("cat", 2).length, 2);
  });
});
