// chatReply: an answer ends at the end-of-turn token (not included in the text), or at maxNewTokens;
// long conversations are cut to the context; a chat tokenizer's template and EOS survive saving.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js"; // registers the backends
import { CHATML_TEMPLATE, type ChatMessage, chatReply, encodeChat, useChatML } from "../../src/chat/index.js";
import { loadModel, saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { AdamW } from "../../src/optim/adamw.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-chat-reply-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz \n");
useChatML(tok);
const pairs: [string, string][] = [
  ["hi", "hello there"],
  ["bye", "ciao"],
];

/** A 2-layer GPT taught the two exchanges (a few seconds on one core). */
function trainedModel(): GPT {
  const model = new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 48 }, { seed: 3 });
  const opt = new AdamW(model.optimGroups(0), { lr: 1e-2 });
  const seqs = pairs.map(
    ([q, a]) =>
      encodeChat(tok, [
        { role: "user", content: q },
        { role: "assistant", content: a },
      ]).ids,
  );
  const T = Math.max(...seqs.map((s) => s.length)) - 1;
  const pad = (s: number[], v: number) => [...s, ...Array(T + 1 - s.length).fill(v)];
  const x = tensor(
    seqs.map((s) => pad(s, 0).slice(0, T)),
    { dtype: "int32" },
  );
  const y = tensor(
    seqs.map((s) => pad(s, -100).slice(1)),
    { dtype: "int32" },
  );
  for (let step = 0; step < 120; step++) {
    const { loss } = model.forward(x, { targets: y });
    opt.zeroGrad();
    loss!.backward();
    opt.step();
  }
  model.eval();
  return model;
}

describe("chatReply", () => {
  const model = trainedModel();

  test("the answer stops at <|im_end|>, which is not part of the text", () => {
    for (const [q, a] of pairs) {
      const pieces: string[] = [];
      const r = chatReply(model, tok, [{ role: "user", content: q }], { temperature: 0, maxNewTokens: 30, onText: (p) => pieces.push(p) });
      assert.equal(r.text, a);
      assert.equal(r.finishReason, "stop");
      assert.equal(r.completionTokens, a.length);
      assert.equal(pieces.join(""), a, "the streamed pieces add up to the answer");
    }
  });

  test("without an end-of-turn token in reach, maxNewTokens ends the answer", () => {
    const r = chatReply(model, tok, [{ role: "user", content: "hi" }], { temperature: 0, maxNewTokens: 4 });
    assert.equal(r.finishReason, "length");
    assert.equal(r.text, "hell");
  });

  test("a conversation longer than the context drops its oldest turns and keeps the system turn", () => {
    const messages: ChatMessage[] = [{ role: "system", content: "be nice" }];
    for (let i = 0; i < 6; i++) messages.push({ role: "user", content: "hi" }, { role: "assistant", content: "hello there" });
    messages.push({ role: "user", content: "bye" });
    const r = chatReply(model, tok, messages, { temperature: 0, maxNewTokens: 8 });
    assert.ok(r.droppedMessages >= 10, `dropped ${r.droppedMessages}`);
    assert.ok(r.promptTokens <= 48 - 8);
  });

  test("a newest turn too long to leave the usual room still gets the rest of the context", () => {
    const r = chatReply(model, tok, [{ role: "user", content: "hi hi hi hi hi hi hi hi hi" }], { temperature: 0, maxNewTokens: 30 });
    assert.ok(r.promptTokens > 48 / 2, `prompt ${r.promptTokens} tokens`);
    assert.ok(r.promptTokens + r.completionTokens <= 48, "the answer stays inside the context");
    const tooLong = "hi ".repeat(20);
    assert.throws(() => chatReply(model, tok, [{ role: "user", content: tooLong }], { maxNewTokens: 30 }), /does not fit the context/);
  });

  test("a tokenizer without an end-of-turn token is refused", () => {
    const plain = CharTokenizer.fromText("abc");
    assert.throws(() => chatReply(model, plain, [{ role: "user", content: "a" }]), /no end-of-turn token/);
  });
});

describe("chat tokenizers are saved with their template", () => {
  test("tokenizer.json keeps the special tokens, tokenizer_config.json the template and EOS", () => {
    const model = new GPT({ vocab_size: tok.vocabSize, n_layer: 1, n_head: 1, n_embd: 8, block_size: 8 }, { seed: 1 });
    const dir = join(tmp, "chat-model");
    saveModel(dir, model, tok);
    const cfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    assert.equal(cfg.chat_template, CHATML_TEMPLATE);
    assert.equal(cfg.eos_token, "<|im_end|>");
    assert.deepEqual(cfg.additional_special_tokens, ["<|im_start|>"]);
    assert.equal(cfg.added_tokens_decoder[String(tok.specialTokens.get("<|im_end|>"))].content, "<|im_end|>");
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(config.eos_token_id, tok.specialTokens.get("<|im_end|>"), "config.json's eos_token_id is the end of a turn");
    const loaded = loadModel(dir).tokenizer;
    assert.deepEqual([...loaded.specialTokens], [...tok.specialTokens]);
    assert.deepEqual(loaded.config, tok.config);
  });
  test("a tokenizer without chat settings writes no tokenizer_config.json", () => {
    const plain = CharTokenizer.fromText("abc");
    const model = new GPT({ vocab_size: plain.vocabSize, n_layer: 1, n_head: 1, n_embd: 8, block_size: 8 }, { seed: 1 });
    const dir = join(tmp, "plain-model");
    saveModel(dir, model, plain);
    assert.equal(existsSync(join(dir, "tokenizer_config.json")), false);
    noGrad(() => assert.deepEqual(loadModel(dir).tokenizer.config, {}));
  });
});
