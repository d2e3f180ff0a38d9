// The textbook question, measured rather than assumed: after masked-LM training, is "cat" closer
// to "dog" than to "hamburger" (and 猫 to 狗 than to 汉堡)? This test trains a small BERT on a corpus
// generated from templates (below: English and Chinese sentences about animals and food, some
// templates shared by both), then prints the cosine similarities of two kinds of word vector:
//
//   input        the rows of the input word-embedding table (a word of several pieces, e.g. 汉堡 =
//                汉 + 堡, is the mean of its pieces' rows)
//   contextual   the word run alone through the encoder, [CLS] word [SEP], mean of its pieces' last
//                hidden states
//
// It checks that the computation runs and prints the numbers; it does NOT assert the answer. The
// corpus puts cat and dog in the same contexts by construction, so what it measures is whether the
// model picks up that distributional signal, not what it knows about the world.
//
// By default the run is small (a 1-layer, 32-wide model, 80 steps: seconds). Environment:
//   MOXING_WORDSIM_STEPS=N          train N steps
//   MOXING_WORDSIM_SIZE=tiny        bert-tiny's size (2 layers, 128 wide, 2 heads) instead of the test size
//   MOXING_WORDSIM_MODEL=DIR        also measure an existing model directory (e.g. pretrained on the
//                                   State of the Union addresses with moxing pretrain-mlm)
// e.g. MOXING_WORDSIM_SIZE=tiny MOXING_WORDSIM_STEPS=1500 node --import tsx --test test/bert/wordsim.test.ts

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import "../../src/index.js";
import { loadBert } from "../../src/io/bert.js";
import type { Bert } from "../../src/models/bert.js";
import { cosineSimilarity, WordVectors } from "../../src/pipelines/index.js";
import { Generator } from "../../src/tensor/random.js";
import type { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";
import { pretrainMlm } from "../../src/train/mlm.js";
import { TINY } from "./helpers.js";

const EN = {
  animals: ["cat", "dog", "rabbit", "horse"],
  foods: ["hamburger", "pizza", "sandwich", "salad"],
  animal: [
    "the {} is sleeping on the sofa .",
    "my {} likes to play in the garden .",
    "we took the {} to the vet .",
    "the {} ran after the ball .",
    "she feeds her {} every morning .",
    "the little {} is very friendly .",
    "our {} is hungry and wants to go outside .",
  ],
  food: [
    "i ate a {} for lunch .",
    "the {} tastes delicious .",
    "he ordered a {} and a drink .",
    "we made a {} for dinner .",
    "this {} is too hot to eat .",
    "the restaurant sells a cheap {} .",
    "she is hungry and wants a {} .",
  ],
  shared: ["there is a {} in the kitchen .", "i saw a {} yesterday .", "look at that {} !"],
};

const ZH = {
  animals: ["猫", "狗", "兔子", "马"],
  foods: ["汉堡", "披萨", "三明治", "沙拉"],
  animal: [
    "{}在沙发上睡觉。",
    "我的{}喜欢在花园里玩。",
    "我们带{}去看兽医。",
    "{}追着球跑。",
    "她每天早上喂她的{}。",
    "这只小{}很友好。",
    "我们的{}饿了，想出去。",
  ],
  food: [
    "我午饭吃了一个{}。",
    "这个{}很好吃。",
    "他点了一个{}和一杯饮料。",
    "我们晚饭做了{}。",
    "这个{}太烫了，不能吃。",
    "餐厅卖便宜的{}。",
    "她饿了，想要一个{}。",
  ],
  shared: ["厨房里有{}。", "我昨天看见了{}。", "你看那个{}！"],
};

/** `n` sentences, half English and half Chinese: a random template of a random kind, filled with a
 *  random word of that kind (animal templates with animals, food templates with foods, shared ones
 *  with either). Seeded, so the corpus is the same every run. */
export function wordsimCorpus(n = 4000, seed = 7): string {
  const g = new Generator(seed);
  const pick = <T>(xs: readonly T[]) => xs[g.randint(xs.length)] as T;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const lang = i % 2 === 0 ? EN : ZH;
    const r = g.random();
    const [templates, words] =
      r < 0.42
        ? [lang.animal, lang.animals]
        : r < 0.84
          ? [lang.food, lang.foods]
          : [lang.shared, g.random() < 0.5 ? lang.animals : lang.foods];
    lines.push(pick(templates).replace("{}", pick(words)));
  }
  return lines.join("\n");
}

const PAIRS: [string, string][] = [
  ["cat", "dog"],
  ["cat", "hamburger"],
  ["dog", "hamburger"],
  ["猫", "狗"],
  ["猫", "汉堡"],
  ["狗", "汉堡"],
];

type Table = Record<string, Record<string, number | null>>;

/** Cosine similarity of each pair with input and contextual vectors; null where a word has an
 *  [UNK] piece (the vocabulary does not cover it, and [UNK] ~ [UNK] would read as 1). */
function similarities(model: Bert, tokenizer: WordPieceTokenizer, pairs = PAIRS): Table {
  const unk = tokenizer.tokenToId(tokenizer.unkToken);
  const covered = (w: string) => !tokenizer.encode(w, { disallowedSpecial: [] }).includes(unk as number);
  const out: Table = {};
  for (const source of ["input", "contextual"] as const) {
    const wv = new WordVectors(model, tokenizer, source, { maxWords: 1 }); // vectorsOf alone needs no vocabulary sweep
    const row: Record<string, number | null> = {};
    for (const [a, b] of pairs) {
      const [va, vb] = wv.vectorsOf([a, b]) as [Float32Array, Float32Array];
      row[`${a}~${b}`] = covered(a) && covered(b) ? Number(cosineSimilarity(va, vb).toFixed(4)) : null;
    }
    out[source] = row;
  }
  return out;
}

const pieces = (tokenizer: WordPieceTokenizer, words: readonly string[]) =>
  Object.fromEntries(words.map((w) => [w, tokenizer.encode(w, { disallowedSpecial: [] }).map((id) => tokenizer.idToToken(id))]));

describe("word similarity after masked-LM training (prints, does not assert the answer)", () => {
  const root = mkdtempSync(join(tmpdir(), "moxing-wordsim-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const steps = Number(process.env.MOXING_WORDSIM_STEPS ?? 80);
  const full = process.env.MOXING_WORDSIM_SIZE === "tiny";

  it(`cat / dog / hamburger and 猫 / 狗 / 汉堡 on a template corpus (${full ? "bert-tiny" : "test size"}, ${steps} steps)`, async (t) => {
    const text = wordsimCorpus();
    const size = full
      ? {}
      : { numLayers: TINY.num_hidden_layers, hiddenSize: TINY.hidden_size, numHeads: TINY.num_attention_heads, intermediateSize: 64 };
    const common = { text, preset: "tiny" as const, ...size, vocabSize: 400, maxLen: 32, batchSize: 32, seed: 3, dropout: 0.1 };
    // The same model before any training (same seed, 0 steps): what random vectors give.
    const before = await pretrainMlm({ ...common, out: join(root, "init"), maxSteps: 0 });
    const r = await pretrainMlm({
      ...common,
      out: join(root, "mlm"),
      maxSteps: steps,
      learningRate: full ? 1e-3 : 3e-3,
      evalInterval: Math.max(1, steps),
    });
    assert.equal(r.step, steps);
    const init = similarities(before.model, before.tokenizer);
    const trained = similarities(r.model, r.tokenizer);
    for (const table of [init, trained]) {
      for (const row of Object.values(table)) {
        for (const v of Object.values(row)) assert.ok(v !== null && v >= -1 - 1e-6 && v <= 1 + 1e-6, `similarity ${v}`);
      }
    }
    const report = {
      corpus: "template sentences (wordsimCorpus), 4000 lines, English and Chinese",
      model: `${r.model.config.num_hidden_layers} layers, ${r.model.config.hidden_size} hidden, vocab ${r.tokenizer.vocabSize}`,
      steps,
      eval: r.eval,
      pieces: pieces(r.tokenizer, ["cat", "dog", "hamburger", "猫", "狗", "汉堡"]),
      at_init: init,
      trained,
      nearest_input: Object.fromEntries(
        ["cat", "hamburger"].map((w) => [w, new WordVectors(r.model, r.tokenizer, "input").nearest(w, 5).map((n) => n.word)]),
      ),
    };
    t.diagnostic(`wordsim ${JSON.stringify(report)}`);
  });

  const dir = process.env.MOXING_WORDSIM_MODEL;
  it("an existing model directory (MOXING_WORDSIM_MODEL)", { skip: dir ? false : "MOXING_WORDSIM_MODEL is not set" }, (t) => {
    const { model, tokenizer } = loadBert(dir as string, { task: "fill-mask" });
    const report = {
      model: dir,
      pieces: pieces(tokenizer, ["cat", "dog", "hamburger", "猫", "狗", "汉堡"]),
      similarities: similarities(model, tokenizer),
    };
    t.diagnostic(`wordsim ${JSON.stringify(report)}`);
  });
});
