// learnFromFeedback, what /learn and a server's "learn now" call: SFT on approved and corrected answers
// and DPO on pairs, in LoRA adapters, in memory; adapters passed in keep training; a signal stops it
// after the current step; nothing to learn from is an error.

import assert from "node:assert/strict";
import { test } from "node:test";
import "../../src/index.js";
import { chatReply, useChatML } from "../../src/chat/index.js";
import { GPT } from "../../src/models/gpt.js";
import { padBatch } from "../../src/rlhf/common.js";
import { encodePreference } from "../../src/rlhf/datasets.js";
import { learnFromFeedback } from "../../src/rlhf/learn.js";
import { sequenceLogprobs } from "../../src/rlhf/losses.js";
import { noGrad } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz \n");
useChatML(tok);
const fresh = () => new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 64 }, { seed: 4 });
const prompt = [{ role: "user" as const, content: "say dog" }];
const pair = {
  prompt,
  chosen: [{ role: "assistant" as const, content: "ok dog" }],
  rejected: [{ role: "assistant" as const, content: "no" }],
};

test("a correction (SFT + DPO) is learned: the greedy answer becomes it; the base weights never change", async () => {
  const model = fresh();
  const before = model.transformer.h.items[0]?.attn.c_attn.weight.tolist();
  const r = await learnFromFeedback({
    model,
    tokenizer: tok,
    sft: [{ prompt, completion: pair.chosen }],
    preference: [pair],
    settings: { steps: 40, learningRate: 1e-2 },
  });
  assert.deepEqual([r.steps, r.sftExamples, r.pairs], [40, 1, 1]);
  assert.ok(r.lastLoss < r.firstLoss);
  assert.equal(chatReply(model, tok, prompt, { temperature: 0, maxNewTokens: 10 }).text, "ok dog");
  assert.deepEqual(model.transformer.h.items[0]?.attn.c_attn.weight.tolist(), before, "only the adapters train");
  r.lora.withAdaptersDisabled(() => assert.notEqual(chatReply(model, tok, prompt, { temperature: 0, maxNewTokens: 10 }).text, "ok dog"));
});

test("pairs alone (DPO): the chosen answer gains on the rejected one; adapters passed in keep training", async () => {
  const model = fresh();
  const margin = () =>
    noGrad(() => {
      const p = encodePreference(tok, { format: "preference-chat", ...pair });
      const b = padBatch([p.chosen, p.rejected]);
      const s = sequenceLogprobs(model.forward(b.x).logits, b.ids, b.mask).sum.tolist() as number[];
      return (s[0] as number) - (s[1] as number);
    });
  const m0 = margin();
  const first = await learnFromFeedback({ model, tokenizer: tok, sft: [], preference: [pair], settings: { steps: 5, learningRate: 1e-2 } });
  const m1 = margin();
  assert.ok(m1 > m0, `margin ${m0} -> ${m1}`);
  const again = await learnFromFeedback({ model, tokenizer: tok, lora: first.lora, sft: [], preference: [pair], settings: { steps: 5 } });
  assert.equal(again.lora, first.lora);
  assert.ok(margin() > m1);
});

test("a signal stops it after the current step; no feedback is an error", async () => {
  const abort = new AbortController();
  const r = await learnFromFeedback({
    model: fresh(),
    tokenizer: tok,
    sft: [{ prompt, completion: pair.chosen }],
    preference: [],
    signal: abort.signal,
    onStep: (step) => step === 3 && abort.abort(),
  });
  assert.equal(r.steps, 3);
  await assert.rejects(learnFromFeedback({ model: fresh(), tokenizer: tok, sft: [], preference: [] }), /no feedback to learn from/);
});
