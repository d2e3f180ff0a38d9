// The synthetic chat set: reproducible (the committed samples are what the generator writes), splits
// that share no prompt, a judge that accepts the reference answers and rejects the wrong ones, and
// records that TRL's readers take, labelled synthetic.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { CHAT_TASKS, chatExampleOf, chatFacts, chatRecords, judgeAnswer, syntheticChat, wrongAnswer } from "../../src/data/chat.js";
import { sotuAddresses } from "../../src/data/sotu.js";
import { preferenceRecord, sftRecord } from "../../src/rlhf/datasets.js";

const addresses = sotuAddresses();
const splits = syntheticChat({ seed: 1, sentences: 400, addresses });
const facts = chatFacts(addresses);

describe("synthetic chat data", () => {
  test("the committed samples are the generator's output (tools/synthetic_chat.ts --sample 12)", () => {
    for (const split of ["train", "test"] as const) {
      const { sft, preference } = chatRecords(splits[split], facts);
      for (const [kind, rows] of [
        ["sft", sft],
        ["preference", preference],
      ] as const) {
        const path = new URL(`../../tools/fixtures/chat/synthetic/${kind}-${split}.sample.jsonl`, import.meta.url);
        const sample = readFileSync(path, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l));
        assert.equal(sample.length, 12);
        assert.deepEqual(sample, rows.slice(0, 12), `${kind}-${split}`);
      }
    }
  });

  test("held-out prompts never occur in training; every task is in both splits", () => {
    const train = new Set(splits.train.map((e) => e.prompt));
    assert.equal(splits.test.filter((e) => train.has(e.prompt)).length, 0);
    for (const task of CHAT_TASKS) {
      assert.ok(splits.train.some((e) => e.task === task) && splits.test.some((e) => e.task === task), task);
    }
    assert.ok(splits.test.length > 300 && splits.train.length > 4 * splits.test.length - 100);
  });

  test("the judge accepts every reference answer and rejects the wrong answers", () => {
    const all = [...splits.train, ...splits.test];
    for (const ex of all) assert.equal(judgeAnswer(ex, ex.answer).correct, true, `${ex.id}: ${ex.answer}`);
    let wrongAccepted = 0;
    all.forEach((ex, i) => {
      if (judgeAnswer(ex, wrongAnswer(ex, facts, i + 1)).correct) wrongAccepted++;
    });
    assert.ok(wrongAccepted <= all.length / 100, `${wrongAccepted} wrong answers were judged correct`);
    const who = all.find((e) => e.task === "who" && e.subject.name === "John F Kennedy");
    if (who) {
      assert.equal(judgeAnswer(who, "It was John F. Kennedy.").correct, true, "punctuation and extra words do not matter for a fact");
      assert.equal(judgeAnswer(who, "Lincoln.").correct, false);
    }
    const count = all.find((e) => e.task === "count") as (typeof all)[number];
    assert.equal(judgeAnswer(count, `There are ${count.answer} words.`).correct, true);
    assert.ok(judgeAnswer(count, "banana").score < 1);
  });

  test("records are TRL records labelled synthetic, and the chosen answer is the one the judge prefers", () => {
    const { sft, preference } = chatRecords(splits.test, facts);
    assert.ok(preference.length >= splits.test.length - 5);
    sft.forEach((r, i) => {
      assert.equal(r.provenance, "synthetic");
      assert.equal(sftRecord(r, `sft ${i}`).format, "prompt-completion-chat");
    });
    for (const [i, r] of preference.entries()) {
      const rec = preferenceRecord(r, `pref ${i}`);
      assert.equal(rec.format, "preference-chat");
      const ex = splits.test.find((e) => e.id === r.id) as (typeof splits.test)[number];
      const chosen = (rec.chosen as { content: string }[])[0]?.content as string;
      const rejected = (rec.rejected as { content: string }[])[0]?.content as string;
      assert.ok(judgeAnswer(ex, chosen).score > judgeAnswer(ex, rejected).score, r.id as string);
    }
  });

  test("a record's example comes back from its fields (what a reward function sees), and judges as the original", () => {
    const { sft, preference } = chatRecords(splits.test, facts);
    splits.test.forEach((ex, i) => {
      const back = chatExampleOf(sft[i] as Record<string, unknown>);
      assert.deepEqual([back.task, back.prompt, back.answer], [ex.task, ex.prompt, ex.answer]);
      for (const answer of [ex.answer, wrongAnswer(ex, facts, i + 1)]) assert.deepEqual(judgeAnswer(back, answer), judgeAnswer(ex, answer));
    });
    for (const p of preference) {
      const ex = chatExampleOf(p);
      assert.equal(judgeAnswer(ex, (p.chosen as { content: string }[])[0]?.content ?? "").correct, true);
    }
    assert.throws(() => chatExampleOf({ task: "poem" }), /not a synthetic chat record/);
  });
});
