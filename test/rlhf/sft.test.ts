// SFT on the one training loop: a tiny base model learns to answer in ChatML and stop at <|im_end|>;
// LoRA adapters train on top and are saved in PEFT's layout (mergeable); a run interrupted and resumed
// logs exactly the losses of an uninterrupted one; mistakes get one-line errors.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { chatReply } from "../../src/chat/index.js";
import { loadModel, saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { sft } from "../../src/rlhf/sft.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-sft-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PAIRS: [string, string][] = [
  ["hi", "hello"],
  ["bye", "ciao"],
  ["yes", "no"],
  ["up", "down"],
];
const base = join(tmp, "base");
const data = join(tmp, "data.jsonl");
{
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ?.\n");
  saveModel(base, new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 48 }, { seed: 1 }), tok);
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) {
    for (const [q, a] of PAIRS)
      lines.push(
        JSON.stringify({
          messages: [
            { role: "user", content: q },
            { role: "assistant", content: a },
          ],
        }),
      );
  }
  writeFileSync(data, lines.join("\n"));
}
const quiet = { onLog: () => {} };
const common = {
  data,
  batchSize: 8,
  learningRate: 1e-2,
  minLr: 1e-3,
  warmupSteps: 5,
  evalInterval: 20,
  checkpointInterval: 1000,
  evalFraction: 0,
};

describe("sft", () => {
  const full = join(tmp, "full");
  test("a base model learns to answer in ChatML and to stop at <|im_end|>", async () => {
    const r = await sft({ ...common, model: base, out: full, maxSteps: 80 }, quiet);
    assert.equal(r.status, "completed");
    const { model, tokenizer } = loadModel(full);
    assert.equal(tokenizer.specialTokens.has("<|im_end|>"), true, "ChatML's tokens were added");
    assert.equal(model.config.vocab_size, tokenizer.vocabSize, "and the embedding grew to hold them");
    assert.equal(tokenizer.config?.eos_token, "<|im_end|>");
    for (const [q, a] of PAIRS) {
      const reply = chatReply(model, tokenizer, [{ role: "user", content: q }], { temperature: 0, maxNewTokens: 12 });
      assert.deepEqual([reply.text, reply.finishReason], [a, "stop"], `answer to ${q}`);
    }
  });

  test("LoRA adapters train on the chat model, save in PEFT's layout, and merge", async () => {
    const out = join(tmp, "lora");
    const r = await sft(
      { ...common, model: full, out, maxSteps: 10, lora: { r: 2, alpha: 4, dropout: 0, targetModules: ["c_attn"] } },
      quiet,
    );
    assert.ok(r.trainable < r.total / 10, `${r.trainable} of ${r.total} parameters trained`);
    for (const f of ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      assert.ok(existsSync(join(out, f)), f);
    assert.equal(existsSync(join(out, "model.safetensors")), false, "the base weights are not copied");
    const cfg = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
    assert.equal(cfg.base_model_name_or_path, full);
    const merged = join(tmp, "merged");
    const m = await moxing(["merge", "--model", full, "--adapter", out, "--out", merged]);
    assert.equal(m.code, 0, m.stderr);
    assert.ok(existsSync(join(merged, "model.safetensors")));
  });

  test("interrupted and resumed, a run logs the losses of an uninterrupted one (LoRA with dropout)", async () => {
    const lora = { r: 2, alpha: 4, dropout: 0.1, targetModules: ["c_attn", "c_proj"] };
    const straight = join(tmp, "straight");
    await sft({ ...common, model: full, out: straight, maxSteps: 12, lora }, quiet);
    const split = join(tmp, "split");
    const abort = new AbortController();
    const first = await sft(
      { ...common, model: full, out: split, maxSteps: 12, lora },
      { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 5 && abort.abort() },
    );
    assert.deepEqual([first.status, first.step], ["interrupted", 5]);
    await sft({ out: split, resume: true }, quiet);
    const losses = (dir: string) =>
      readFileSync(join(dir, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).train_loss);
    assert.deepEqual(losses(split), losses(straight));
  });

  test("mistakes are one-line errors", async () => {
    assertOneLineError(await moxing(["sft", "--data", data, "--out", join(tmp, "x")]), /--model DIR is required/, 2);
    assertOneLineError(
      await moxing(["sft", "--model", base, "--data", data, "--out", join(tmp, "y"), "--lora-alpha", "4"]),
      /need --lora-r/,
      2,
    );
    assertOneLineError(
      await moxing(["sft", "--model", base, "--data", data, "--out", join(tmp, "z"), "--lora-r", "2", "--max-steps", "1"]),
      /no end-of-turn token .* fine-tune it fully first/,
    );
    const bad = join(tmp, "bad.jsonl");
    writeFileSync(bad, '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": 3}\n');
    assertOneLineError(
      await moxing(["sft", "--model", base, "--data", bad, "--out", join(tmp, "w")]),
      /bad\.jsonl:2: messages: expected an array/,
    );
  });
});
