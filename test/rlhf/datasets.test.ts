// TRL's dataset formats: each is read, bad lines are errors naming file and line, and encoding gives
// the loss mask each trainer needs.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { useChatML } from "../../src/chat/index.js";
import { DatasetError, encodePreference, encodeSFT, readPreferenceDataset, readSFTDataset } from "../../src/rlhf/datasets.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-trl-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (lines: unknown[] | string) => {
  const p = join(tmp, `d${n++}.jsonl`);
  writeFileSync(p, typeof lines === "string" ? lines : lines.map((l) => JSON.stringify(l)).join("\n"));
  return p;
};
const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?!'\n");
useChatML(tok);
const masked = (e: { ids: number[]; mask: number[] }) => tok.decode(e.ids.filter((_, i) => e.mask[i] === 1));
const u = (content: string) => ({ role: "user", content });
const a = (content: string) => ({ role: "assistant", content });

describe("reading TRL JSONL", () => {
  test("conversational, prompt-completion (plain and conversational), text", () => {
    const conv = readSFTDataset(
      file([{ messages: [u("hi"), a("hello")] }, { messages: [{ role: "system", content: "s" }, u("x"), a("y")] }]),
    );
    assert.equal(conv.length, 2);
    assert.equal(conv[0]?.format, "messages");
    assert.deepEqual(readSFTDataset(file([{ prompt: "2 + 2 =", completion: " 4" }]))[0], {
      format: "prompt-completion",
      prompt: "2 + 2 =",
      completion: " 4",
    });
    assert.equal(readSFTDataset(file([{ prompt: [u("q")], completion: [a("r")] }]))[0]?.format, "prompt-completion-chat");
    assert.equal(readSFTDataset(file(`\n${JSON.stringify({ text: "plain text" })}\n\n`))[0]?.format, "text");
  });
  test("preference: plain, conversational, and with an implicit prompt", () => {
    assert.equal(readPreferenceDataset(file([{ prompt: "p", chosen: "c", rejected: "r" }]))[0]?.format, "preference");
    const explicit = readPreferenceDataset(file([{ prompt: [u("q")], chosen: [a("good")], rejected: [a("bad")] }]))[0];
    const implicit = readPreferenceDataset(file([{ chosen: [u("q"), a("good")], rejected: [u("q"), a("bad")] }]))[0];
    assert.deepEqual(implicit, explicit);
  });
  test("bad lines are errors with the file and line number", () => {
    const bad = (lines: unknown[] | string, re: RegExp, reader = readSFTDataset) =>
      assert.throws(
        () => reader(file(lines)),
        (e: Error) => e instanceof DatasetError && re.test(e.message),
        re.source,
      );
    bad(`${JSON.stringify({ text: "ok" })}\n{not json`, /d\d+\.jsonl:2: not valid JSON/);
    bad([{ messages: [u("a")] }, { messages: [{ role: "robot", content: "x" }] }], /:2: messages\[0\]: role is "robot"/);
    bad([{ prompt: "p", completion: [a("x")] }], /:1: "prompt" and "completion" must both be strings or both be message lists/);
    bad([{ question: "q" }], /:1: not a TRL SFT example.*keys here: question/);
    bad(
      [{ messages: [u("a"), a("b")] }, { prompt: "p", completion: "c" }],
      /:2: a prompt-completion example in a file whose first example is messages/,
    );
    bad([[1, 2]], /:1: expected a JSON object, got an array/);
    bad("", /no examples/);
    bad([{ prompt: "p", chosen: "c" }], /:1: a preference example needs "chosen" and "rejected"/, readPreferenceDataset as never);
    bad([{ chosen: [a("x")], rejected: [a("y")] }], /share no leading messages/, readPreferenceDataset as never);
    assert.throws(() => readSFTDataset(join(tmp, "missing.jsonl")), /missing\.jsonl: file not found/);
  });
});

describe("encoding with the loss mask", () => {
  test("messages: every assistant turn; prompt-completion: only the completion's turns", () => {
    const [conv] = readSFTDataset(file([{ messages: [u("q1"), a("r1"), u("q2"), a("r2")] }]));
    assert.equal(masked(encodeSFT(tok, conv!)), "r1<|im_end|>r2<|im_end|>");
    const [pc] = readSFTDataset(file([{ prompt: [u("q1"), a("r1"), u("q2")], completion: [a("r2")] }]));
    assert.equal(masked(encodeSFT(tok, pc!)), "r2<|im_end|>");
  });
  test("plain prompt-completion and text end with EOS; the prompt is context", () => {
    const [pc] = readSFTDataset(file([{ prompt: "Who spoke?", completion: " Lincoln." }]));
    const e = encodeSFT(tok, pc!);
    assert.equal(tok.decode(e.ids), "Who spoke? Lincoln.<|im_end|>");
    assert.equal(masked(e), " Lincoln.<|im_end|>");
    const [t] = readSFTDataset(file([{ text: "abc" }]));
    assert.deepEqual(encodeSFT(tok, t!).mask, [1, 1, 1, 1]);
  });
  test("preference pairs share the prompt and mask only their completions; long prompts lose their start", () => {
    const [rec] = readPreferenceDataset(file([{ prompt: [u("Which party?")], chosen: [a("Democratic.")], rejected: [a("Whig.")] }]));
    const { chosen, rejected } = encodePreference(tok, rec!);
    assert.equal(masked(chosen), "Democratic.<|im_end|>");
    assert.equal(masked(rejected), "Whig.<|im_end|>");
    const short = encodePreference(tok, rec!, 20);
    assert.equal(short.chosen.ids.length, 20);
    assert.equal(masked(short.chosen), "Democratic.<|im_end|>", "the completion survives truncation");
    const [plain] = readPreferenceDataset(file([{ prompt: "abcdefghij", chosen: "yes", rejected: "no" }]));
    const p = encodePreference(tok, plain!, 6);
    assert.equal(tok.decode(p.chosen.ids), "ijyes<|im_end|>");
    const sft = encodeSFT(tok, readSFTDataset(file([{ text: "abcdefgh" }]))[0]!, 3);
    assert.equal(tok.decode(sft.ids), "abc", "SFT keeps the start");
  });
});
