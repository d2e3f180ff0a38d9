// A chat model exported to GGUF keeps what a chat needs: tokenizer.chat_template (llama.cpp's and
// Ollama's key) and <|im_end|> as its EOS, and reads back as a chat model that renders and stops alike.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import "../../src/index.js";
import { applyChatTemplate, CHATML_TEMPLATE, chatReply, endOfTurnIds, useChatML } from "../../src/chat/index.js";
import { exportGGUF, loadModelFrom, readGGUFHeader } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { ByteLevelBPE } from "../../src/tokenizers/index.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-chat-gguf-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("GGUF export writes tokenizer.chat_template and the end-of-turn EOS; the file reads back as the same chat model", () => {
  const tok = ByteLevelBPE.train("the cat sat on the mat. the dog sat on the log. ".repeat(20), {
    vocabSize: 300,
    specialTokens: ["<|endoftext|>"],
  });
  const { imEnd } = useChatML(tok);
  const model = new GPT({ vocab_size: tok.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 64 }, { seed: 2 });
  const path = join(tmp, "chat.gguf");
  exportGGUF(path, model, tok);
  const meta = readGGUFHeader(path).metadata;
  assert.deepEqual(meta.get("tokenizer.chat_template"), { type: "string", value: CHATML_TEMPLATE });
  assert.equal(meta.get("tokenizer.ggml.eos_token_id")?.value, imEnd, "EOS is <|im_end|>, where a turn ends");

  const back = loadModelFrom(path);
  assert.equal(back.tokenizer.config?.chat_template, CHATML_TEMPLATE);
  assert.equal(back.tokenizer.config?.eos_token, "<|im_end|>");
  assert.deepEqual(endOfTurnIds(back.tokenizer), endOfTurnIds(tok));
  const messages = [
    { role: "system" as const, content: "be brief" },
    { role: "user" as const, content: "the cat" },
  ];
  assert.equal(
    applyChatTemplate(messages, { tokenizer: back.tokenizer, addGenerationPrompt: true }),
    applyChatTemplate(messages, { tokenizer: tok, addGenerationPrompt: true }),
  );
  const a = chatReply(model, tok, messages, { temperature: 0, maxNewTokens: 8 });
  const b = chatReply(back.model, back.tokenizer, messages, { temperature: 0, maxNewTokens: 8 });
  assert.deepEqual(b, a);
});

test("a GGUF without a template (a plain language model) reads back without one", () => {
  const tok = ByteLevelBPE.train("the cat sat on the mat. ".repeat(20), { vocabSize: 280, specialTokens: ["<|endoftext|>"] });
  const path = join(tmp, "plain.gguf");
  exportGGUF(path, new GPT({ vocab_size: tok.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16 }, { seed: 1 }), tok);
  assert.equal(readGGUFHeader(path).metadata.has("tokenizer.chat_template"), false);
  assert.equal(loadModelFrom(path).tokenizer.config?.chat_template, undefined);
});
