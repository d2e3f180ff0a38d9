// BLEU and chrF against sacreBLEU (its own test cases and more, tools/fixtures/sacrebleu.json written
// by tools/sacrebleu_fixtures.py), and ROUGE-L against hand-worked examples.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  BLEU_TOKENIZERS,
  type BleuOptions,
  type BleuTokenizer,
  type ChrfOptions,
  computeBleu,
  corpusBleu,
  corpusChrf,
  corpusRougeL,
  rougeL,
  rougeLsum,
  sentenceBleu,
  sentenceChrf,
} from "../../src/metrics/index.js";

interface Case {
  kind: "corpus_bleu" | "sentence_bleu" | "corpus_chrf" | "sentence_chrf" | "tokenize";
  hyp: string | string[];
  refs: (string | null)[][] | string[];
  options: BleuOptions & ChrfOptions;
  expected: number | string;
  from: string;
  counts?: number[];
  totals?: number[];
  sysLen?: number;
  refLen?: number;
  text?: string;
  tokenize?: BleuTokenizer;
  line?: string;
}

const { cases } = JSON.parse(readFileSync(new URL("../../tools/fixtures/sacrebleu.json", import.meta.url), "utf8")) as { cases: Case[] };

describe("sacreBLEU parity", () => {
  it("has the ported test cases and the extra ones", () => {
    assert.ok(cases.filter((c) => c.from.startsWith("test_")).length >= 60);
    assert.ok(cases.filter((c) => c.kind === "corpus_chrf" && c.options.wordOrder === 2).length >= 3);
  });
  for (const [i, c] of cases.entries()) {
    const label = `${i}: ${c.kind} ${JSON.stringify(c.options ?? c.tokenize)} (${c.from})`;
    it(label, () => {
      if (c.kind === "tokenize") {
        assert.equal(BLEU_TOKENIZERS[c.tokenize as BleuTokenizer](c.line as string), c.expected);
        return;
      }
      let got: number;
      if (c.kind === "corpus_bleu" || c.kind === "sentence_bleu") {
        const s =
          c.kind === "corpus_bleu"
            ? corpusBleu(c.hyp as string[], c.refs as (string | null)[][], c.options)
            : sentenceBleu(c.hyp as string, c.refs as string[], c.options);
        assert.deepEqual(s.counts, c.counts, "matched n-gram counts");
        assert.deepEqual(s.totals, c.totals, "n-gram totals");
        assert.equal(s.sysLen, c.sysLen);
        assert.equal(s.refLen, c.refLen);
        if (c.text) assert.equal(s.toString(), `BLEU = ${c.text}`);
        got = s.score;
      } else {
        got =
          c.kind === "corpus_chrf"
            ? corpusChrf(c.hyp as string[], c.refs as string[][], c.options).score
            : sentenceChrf(c.hyp as string, c.refs as string[], c.options).score;
      }
      assert.ok(Math.abs(got - (c.expected as number)) < 1e-9, `got ${got}, sacreBLEU ${c.expected}`);
    });
  }
});

describe("BLEU", () => {
  it("scores sacreBLEU's scoring example from statistics alone", () => {
    const s = computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11);
    assert.ok(Math.abs(s.score / 100 - 0.8375922397) < 1e-8);
  });
  it("gives 0 for degenerate statistics with floor smoothing", () => {
    for (const [c, t, sys, ref, v] of [
      [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0],
      [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0],
      [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0],
      [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
    ] as [number[], number[], number, number, number][]) {
      assert.equal(computeBleu(c, t, sys, ref, { smoothMethod: "floor", smoothValue: v }).score, 0);
    }
  });
  it("says what is wrong with its arguments", () => {
    assert.throws(() => corpusBleu(["a"], [["a", "b"]]), /reference stream 0 has 2 lines but there are 1 hypotheses/);
    assert.throws(() => corpusBleu(["a"], ["a"] as unknown as string[][]), /list of reference streams/);
    assert.throws(() => corpusBleu(["a"], [["a"]], { tokenize: "zh" as BleuTokenizer }), /unknown tokenize 'zh'/);
    assert.throws(() => corpusBleu(["a"], [["a"]], { maxNgramOrder: 0 }), /maxNgramOrder/);
  });
  it("writes sacreBLEU's signature", () => {
    assert.equal(corpusBleu(["a b"], [["a b"]]).signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp");
    assert.equal(
      corpusBleu(
        ["a b", "c"],
        [
          ["a b", "c"],
          [null, "c"],
        ],
        { smoothMethod: "floor" },
      ).signature,
      "nrefs:var|case:mixed|eff:no|tok:13a|smooth:floor[0.10]",
    );
  });
});

describe("chrF", () => {
  it("names chrF and chrF++", () => {
    assert.equal(corpusChrf(["a"], [["a"]]).toString(), "chrF2 = 100.00");
    assert.equal(corpusChrf(["a"], [["a"]], { wordOrder: 2 }).name, "chrF2++");
  });
  it("rejects orders that leave nothing to count", () => {
    assert.throws(() => corpusChrf(["a"], [["a"]], { charOrder: 0 }), /at least 1/);
  });
});

describe("ROUGE-L", () => {
  it("is the LCS F-measure of lowercased alphanumeric words", () => {
    // LCS of "the police killed the gunman" and "police kill the gunman" is "police the gunman" (3).
    const s = rougeL("police kill the gunman", "the police killed the gunman");
    assert.equal(s.precision, 3 / 4);
    assert.equal(s.recall, 3 / 5);
    assert.ok(Math.abs(s.fmeasure - (2 * 0.75 * 0.6) / 1.35) < 1e-12);
    assert.deepEqual(rougeL("The Gunman!", "the, gunman"), { precision: 1, recall: 1, fmeasure: 1 });
    assert.deepEqual(rougeL("", "a"), { precision: 0, recall: 0, fmeasure: 0 });
    assert.deepEqual(rougeL("x y", "a b"), { precision: 0, recall: 0, fmeasure: 0 });
  });
  it("rougeLsum takes the union of LCS hits over sentences", () => {
    // Lin 2004's example: r = w1 w2 w3 w4 w5; c1 = w1 w2 w6 w7 w8, c2 = w1 w3 w8 w9 w5.
    // LCS(r, c1) = w1 w2, LCS(r, c2) = w1 w3 w5; union w1 w2 w3 w5: 4 hits of 5 reference and 10 candidate words.
    const s = rougeLsum("w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", "w1 w2 w3 w4 w5");
    assert.equal(s.recall, 4 / 5);
    assert.equal(s.precision, 4 / 10);
  });
  it("averages over a corpus", () => {
    const s = corpusRougeL(["a b", "c d"], ["a b", "x y"]);
    assert.equal(s.fmeasure, 0.5);
    assert.throws(() => corpusRougeL(["a"], []), /one reference per prediction/);
  });
});
