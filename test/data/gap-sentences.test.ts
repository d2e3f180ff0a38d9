// PEGASUS gap sentences: the sentence that shares the most with the rest is the one cut out, only
// sentences of a subject line's length qualify, and the gap survives the source's word limit.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { gapSentence, MASK } from "../../src/data/gap-sentences.js";

describe("gap sentences", () => {
  const doc = [
    "The budget passed the house today.",
    "Lunch was late.",
    "The house budget vote passed today after a long debate.",
    "Senators will take up the budget next week.",
  ];

  test("the principal sentence (highest ROUGE-L F against the rest) becomes the target", () => {
    const g = gapSentence(doc);
    assert.deepEqual(g, {
      source: `The budget passed the house today. Lunch was late. ${MASK} Senators will take up the budget next week.`,
      target: "The house budget vote passed today after a long debate.",
    });
  });

  test("sentences outside the length bounds never become the target; none left gives null", () => {
    assert.equal(gapSentence(doc, { maxWords: 8 })?.target, "The budget passed the house today.");
    assert.equal(gapSentence(["Too short.", "Also short."]), null);
    assert.equal(gapSentence([]), null);
  });

  test("a long source is cut around the gap, never cutting the gap away", () => {
    const filler = (k: number) => Array.from({ length: 30 }, (_, i) => `word${k}x${i}`).join(" ");
    const long = [filler(1), filler(2), filler(3), "the budget passed", filler(4), "the budget passed the house"];
    const g = gapSentence(long, { sourceWords: 20 });
    assert.ok(g);
    const words = g.source.split(" ");
    assert.equal(words.length, 20);
    assert.ok(words.includes(MASK), g.source);
  });
});
