// The BERT model: sizes and parameter counts of the released configurations (checked against Hugging
// Face's published counts), one forward of bert-base and bert-large, heads, and model directories.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as mx from "../../src/index.js";
import { loadBert, readBertTrainerState, saveBert } from "../../src/io/bert.js";
import { type BERT_PRESETS, Bert, bertConfig, idsTensor } from "../../src/models/bert.js";
import { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";

const root = mkdtempSync(join(tmpdir(), "moxing-bert-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("BERT configurations", () => {
  it("bert-tiny/mini/small/medium have Google's sizes and Hugging Face's parameter counts", () => {
    // Counts of BertModel (pooler included) with the 30522-token uncased vocabulary, as the Hub's
    // google/bert_uncased_L-*_H-*_A-* checkpoints report them.
    const want = { tiny: 4_385_920, mini: 11_170_560, small: 28_763_648, medium: 41_373_184 };
    for (const [name, count] of Object.entries(want)) {
      const m = new Bert(bertConfig(name as keyof typeof BERT_PRESETS), { task: "feature-extraction", init: "none" });
      assert.equal(m.paramCount().encoder, count, name);
    }
  });

  it("bert-base: 109,482,240 parameters (bert-base-uncased), and one forward", () => {
    const m = new Bert(bertConfig("base"), { task: "feature-extraction", init: "none" }).eval();
    assert.equal(m.paramCount().encoder, 109_482_240);
    const out = mx.noGrad(() =>
      m.forward({ inputIds: idsTensor([[101, 7592, 2088, 102, 0, 0, 0, 0]]), attentionMask: idsTensor([[1, 1, 1, 1, 0, 0, 0, 0]]) }),
    );
    assert.deepEqual(out.hidden.lastHiddenState.shape, [1, 8, 768]);
    assert.deepEqual(out.hidden.poolerOutput?.shape, [1, 768]);
  });

  it("bert-large: 335,141,888 parameters (bert-large-uncased), and one forward of 8 tokens", () => {
    let m: Bert | null = new Bert(bertConfig("large"), { task: "fill-mask", init: "none" }).eval();
    assert.equal(m.paramCount().encoder, 335_141_888);
    // The masked-LM head adds its transform (1024² + 3·1024) and the decoder bias; the decoder is tied.
    assert.equal(m.paramCount().total, 335_141_888 + 1024 * 1024 + 3 * 1024 + 30522);
    // Some non-zero weights so the forward computes something: a few embedding rows and one query.
    mx.noGrad(() => {
      m?.bert.embeddings.word_embeddings.weight.slice(0, 100, 110).copy_(mx.randn([10, 1024], { generator: new mx.Generator(1) }));
      m?.bert.encoder.layer.items[0]?.attention.self.query.weight.copy_(
        mx.randn([1024, 1024], { generator: new mx.Generator(2), std: 0.02 }),
      );
    });
    const out = mx.noGrad(() => m?.forward({ inputIds: idsTensor([[101, 102, 103, 104, 105, 106, 107, 108]]) }));
    assert.deepEqual(out?.logits.shape, [1, 8, 30522]);
    assert.ok(out?.logits.toArray().every(Number.isFinite));
    m = null;
  });

  it("rejects a bad config with the field's name", () => {
    assert.throws(
      () => new Bert({ hidden_size: 100, num_attention_heads: 3 }),
      /hidden_size \(100\) must be divisible by num_attention_heads \(3\)/,
    );
    assert.throws(
      () => new Bert({ ...bertConfig("tiny"), vocab_size: 10 }, { task: "summarization" as never }),
      /unknown BERT task 'summarization'/,
    );
  });

  it("refuses a sequence longer than its position table, naming both lengths", () => {
    const m = new Bert({ ...bertConfig("tiny"), vocab_size: 20, max_position_embeddings: 4 }, { seed: 1 });
    assert.throws(() => m.forward({ inputIds: idsTensor([[1, 2, 3, 4, 5]]) }), /5 tokens is longer than max_position_embeddings \(4\)/);
  });
});

describe("BERT heads and model directories", () => {
  const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "##s"];
  const tok = new WordPieceTokenizer(vocab);
  const cfg = {
    ...bertConfig("tiny"),
    vocab_size: vocab.length,
    hidden_size: 16,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 16,
  };

  it("each head gives logits of its shape and a loss", () => {
    const ids = idsTensor([
      [2, 5, 6, 7, 3],
      [2, 11, 12, 3, 0],
    ]);
    const mask = idsTensor([
      [1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0],
    ]);
    const cls = new Bert(cfg, { task: "text-classification", numLabels: 3, seed: 1 });
    const c = cls.forward({ inputIds: ids, attentionMask: mask }, { labels: mx.tensor([0, 2], { dtype: "int32" }) });
    assert.deepEqual(c.logits.shape, [2, 3]);
    assert.ok(Number.isFinite(c.loss?.item()));
    const ner = new Bert(cfg, { task: "token-classification", numLabels: 5, seed: 1 });
    const n = ner.forward(
      { inputIds: ids, attentionMask: mask },
      {
        labels: idsTensor([
          [-100, 1, 2, 0, -100],
          [-100, 3, -100, -100, -100],
        ]),
      },
    );
    assert.deepEqual(n.logits.shape, [2, 5, 5]);
    const qa = new Bert(cfg, { task: "question-answering", seed: 1 });
    const q = qa.forward(
      { inputIds: ids, attentionMask: mask },
      { startPositions: mx.tensor([1, 0], { dtype: "int32" }), endPositions: mx.tensor([2, 0], { dtype: "int32" }) },
    );
    assert.deepEqual(q.logits.shape, [2, 5, 2]);
    assert.ok(Number.isFinite(q.loss?.item()));
  });

  it("saves Hugging Face's layout and loads it back exactly; a new task keeps the encoder", () => {
    const m = new Bert(cfg, { task: "fill-mask", seed: 3 });
    const dir = join(root, "mlm");
    saveBert(dir, { model: m, tokenizer: tok, notes: { data: "test" } });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.deepEqual(config.architectures, ["BertForMaskedLM"]);
    assert.equal(config.model_type, "bert");
    assert.equal(readFileSync(join(dir, "vocab.txt"), "utf8").split("\n")[6], "cat");
    const back = loadBert(dir);
    const ids = idsTensor([[2, 5, 6, 4, 3]]);
    m.eval();
    assert.deepEqual(back.model.forward({ inputIds: ids }).logits.toArray(), m.forward({ inputIds: ids }).logits.toArray());
    assert.equal(back.tokenizer.vocabSize, vocab.length);

    const cls = loadBert(dir, { task: "text-classification", numLabels: 4, seed: 5 });
    assert.deepEqual(cls.report.initialised.sort(), ["classifier.bias", "classifier.weight"]);
    assert.ok(cls.report.ignored.some((n) => n.startsWith("cls.predictions")));
    assert.deepEqual(
      cls.model.bert.encoder.layer.items[1]?.output.dense.weight.toArray(),
      m.bert.encoder.layer.items[1]?.output.dense.weight.toArray(),
    );
    // Saved as a classifier with labels, it reloads as one with the same labels.
    const dir2 = join(root, "cls");
    saveBert(dir2, { model: cls.model, tokenizer: tok, labels: ["a", "b", "c", "d"] });
    const again = loadBert(dir2);
    assert.equal(again.model.task, "text-classification");
    assert.deepEqual(again.info.labels, ["a", "b", "c", "d"]);
  });

  it("a checkpoint is written as one set: a commit cut short is read as the newer set and rolled forward", () => {
    const m = new Bert(cfg, { task: "fill-mask", seed: 6 });
    const dir = join(root, "journal");
    const opt = new mx.AdamW(m.parameters(), { lr: 1e-3 });
    saveBert(dir, { model: m, tokenizer: tok, optimizer: opt, trainerState: { format: "test", step: 1 } });
    assert.equal(readBertTrainerState(dir)?.step, 1);
    assert.ok(!existsSync(join(dir, ".checkpoint-commit")), "the journal is cleaned up after a commit");
    // A writer killed after its commit point but before moving the files into place.
    const commit = join(dir, ".checkpoint-commit");
    mkdirSync(commit);
    writeFileSync(join(commit, "trainer_state.json"), JSON.stringify({ format: "test", step: 2 }));
    writeFileSync(join(commit, "MANIFEST.json"), JSON.stringify({ files: ["trainer_state.json"], remove: [] }));
    assert.equal(readBertTrainerState(dir)?.step, 2, "readers see the committed set");
    // The next save rolls it forward first; a plain model save drops the stale training files.
    saveBert(dir, { model: m, tokenizer: tok });
    assert.ok(!existsSync(commit));
    assert.equal(readBertTrainerState(dir), null);
    assert.ok(!existsSync(join(dir, "optimizer.safetensors")));
    assert.equal(loadBert(dir).model.task, "fill-mask");
  });

  it("reads a Hugging Face BertForMaskedLM directory (no pooler, no moxing notes, vocab.txt only)", () => {
    const m = new Bert(cfg, { task: "fill-mask", seed: 4, addPoolingLayer: false });
    const dir = join(root, "hf-mlm");
    saveBert(dir, { model: m, tokenizer: tok });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    delete config.moxing;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    rmSync(join(dir, "tokenizer.json"));
    const back = loadBert(dir);
    assert.equal(back.model.task, "fill-mask");
    assert.equal(back.model.bert.pooler, null);
    assert.deepEqual(back.report.initialised, []);
    const cls = loadBert(dir, { task: "text-classification", numLabels: 2 });
    assert.deepEqual(cls.report.initialised.sort(), [
      "bert.pooler.dense.bias",
      "bert.pooler.dense.weight",
      "classifier.bias",
      "classifier.weight",
    ]);
  });

  it("clear errors for mismatched weights and configs", () => {
    const dir = join(root, "mlm");
    const cfgPath = join(dir, "config.json");
    const good = readFileSync(cfgPath, "utf8");
    writeFileSync(cfgPath, good.replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'));
    assert.throws(() => loadBert(dir), /missing tensor 'bert\.encoder\.layer\.2\./);
    writeFileSync(cfgPath, good.replace('"num_hidden_layers": 2', '"num_hidden_layers": 1'));
    assert.throws(() => loadBert(dir), /unexpected tensor 'bert\.encoder\.layer\.1\..*1 layers/);
    writeFileSync(cfgPath, good.replace('"hidden_act": "gelu"', '"hidden_act": "relu"'));
    assert.throws(() => loadBert(dir), /hidden_act is "relu"/);
    writeFileSync(cfgPath, good);
    assert.throws(() => loadBert(join(dir, "nope")), /model directory .* does not exist/);
  });
});
