// Reward model and DPO on the one training loop, on tiny preference data: the reward model learns to
// rank held-out pairs and is saved in GPT2ForSequenceClassification's layout; DPO starts at loss ln 2
// (policy == reference: a frozen copy, or the same weights with LoRA's adapters off) and moves the
// implicit rewards the right way.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { useChatML } from "../../src/chat/index.js";
import { loadAdapter, readSafetensorsHeader, saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { encodePreference, readPreferenceDataset } from "../../src/rlhf/datasets.js";
import { dpo } from "../../src/rlhf/dpo.js";
import { loadRewardModel, trainRewardModel } from "../../src/rlhf/reward.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-pref-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Chosen answers agree ("ok <word>"), rejected ones refuse ("no <word>"): a preference that carries over to
// the held-out words.
const WORDS = ["cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "key", "car", "bus", "egg"];
const line = (w: string) =>
  JSON.stringify({
    prompt: [{ role: "user", content: `say ${w}` }],
    chosen: [{ role: "assistant", content: `ok ${w}` }],
    rejected: [{ role: "assistant", content: `no ${w}` }],
  });
const data = join(tmp, "pairs.jsonl");
const held = join(tmp, "held.jsonl");
writeFileSync(data, WORDS.slice(0, 9).map(line).join("\n"));
writeFileSync(held, WORDS.slice(9).map(line).join("\n"));

const chat = join(tmp, "chat-base"); // a chat model: ChatML tokens in its tokenizer
{
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz \n");
  useChatML(tok);
  saveModel(chat, new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 40 }, { seed: 5 }), tok);
}
const quiet = { onLog: () => {} };
const common = { batchSize: 6, warmupSteps: 3, evalInterval: 10, checkpointInterval: 1000 };
const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

describe("reward model", () => {
  test("learns to rank held-out pairs; saved as GPT2ForSequenceClassification and reloaded", async () => {
    const out = join(tmp, "rm");
    const r = await trainRewardModel(
      { ...common, model: chat, data, eval: held, out, maxSteps: 60, learningRate: 3e-3, minLr: 3e-4 },
      quiet,
    );
    assert.equal(r.lastEval?.accuracy, 1, `held-out accuracy ${r.lastEval?.accuracy}`);
    assert.ok((r.lastEval?.margin ?? 0) > 0);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual([config.architectures, config.num_labels], [["GPT2ForSequenceClassification"], 1]);
    const header = readSafetensorsHeader(join(out, "model.safetensors"));
    assert.deepEqual(header.tensors.get("score.weight")?.shape, [1, 32]);
    assert.equal(header.tensors.has("lm_head.weight"), false);
    assert.equal(header.tensors.get("transformer.h.0.attn.c_attn.weight")?.shape.join(), "32,96", "Conv1D orientation");
    // Reloaded, it scores the held-out pairs as the trainer's evaluation did.
    const { model, tokenizer, fresh } = loadRewardModel(out);
    assert.equal(fresh, false);
    const pairs = readPreferenceDataset(held).map((rec) => encodePreference(tokenizer, rec));
    const score = (e: { ids: number[] }) => noGrad(() => model.rewards(tensor([e.ids], { dtype: "int32" }), [e.ids.length]).item());
    const right = pairs.filter((p) => score(p.chosen) > score(p.rejected)).length / pairs.length;
    assert.equal(right, r.lastEval?.accuracy);
  });
});

describe("reward model with LoRA", () => {
  const lora = { r: 4, alpha: 8, dropout: 0.1, targetModules: ["c_attn", "c_proj"] };
  const opts = { ...common, model: chat, data, eval: held, maxSteps: 40, learningRate: 1e-2, minLr: 1e-3, lora };

  test("adapters and the score head learn; --out is the merged reward model plus the adapters; the base is untouched", async () => {
    const before = readFileSync(join(chat, "model.safetensors"));
    const out = join(tmp, "rm-lora");
    const r = await trainRewardModel({ ...opts, out }, quiet);
    assert.equal(r.lastEval?.accuracy, 1, `held-out accuracy ${r.lastEval?.accuracy}`);
    assert.ok(r.trainable < r.total / 5, `${r.trainable} of ${r.total} parameters trained`);
    assert.deepEqual(readFileSync(join(chat, "model.safetensors")), before);
    // The merged model scores as the base with the adapters and the trained head.
    const { model: merged, tokenizer } = loadRewardModel(out);
    const adapted = loadRewardModel(chat).model;
    loadAdapter(out, adapted.gpt);
    noGrad(() => adapted.score.copy_(merged.score));
    const ids = readPreferenceDataset(held).map((rec) => encodePreference(tokenizer, rec).chosen.ids);
    for (const x of ids) {
      const [a, b] = [merged, adapted].map((m) => noGrad(() => m.rewards(tensor([x], { dtype: "int32" }), [x.length]).item()));
      assert.ok(Math.abs((a as number) - (b as number)) < 1e-4, `${a} vs ${b}`);
    }
  });

  test("interrupted and resumed, it logs the losses of an uninterrupted run", async () => {
    const straight = join(tmp, "rm-lora-straight");
    await trainRewardModel({ ...opts, out: straight, maxSteps: 10, evalInterval: 100 }, quiet);
    const split = join(tmp, "rm-lora-split");
    const abort = new AbortController();
    await trainRewardModel(
      { ...opts, out: split, maxSteps: 10, evalInterval: 100 },
      { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 4 && abort.abort() },
    );
    await trainRewardModel({ out: split, resume: true }, quiet);
    assert.deepEqual(
      losses(split).map((m) => m.train_loss),
      losses(straight).map((m) => m.train_loss),
    );
  });
});

describe("dpo", () => {
  test("full DPO: starts at ln 2 against its frozen copy and moves the implicit rewards the right way", async () => {
    const out = join(tmp, "dpo-full");
    const r = await dpo({ ...common, model: chat, data, eval: held, out, maxSteps: 20, learningRate: 3e-3, minLr: 3e-4, beta: 0.5 }, quiet);
    const m = losses(out);
    assert.ok(Math.abs(m[0].train_loss - Math.LN2) < 1e-5, `first loss ${m[0].train_loss} is ln 2`);
    assert.equal(m[0]["rewards/margins"], 0, "policy and reference agree at the first step");
    for (const k of [
      "loss",
      "rewards/chosen",
      "rewards/rejected",
      "rewards/accuracies",
      "rewards/margins",
      "logps/chosen",
      "logps/rejected",
    ]) {
      assert.ok(`eval_${k}` in m[m.length - 1], `metrics.jsonl has eval_${k}`);
      if (k !== "loss") assert.ok(k in m[0], `and ${k} of each training step`);
    }
    assert.ok((r.lastEval?.["rewards/margins"] ?? 0) > 0, `held-out margin ${r.lastEval?.["rewards/margins"]}`);
    assert.ok((m[m.length - 1].train_loss as number) < Math.LN2);
  });

  test("LoRA DPO: the reference is the same weights with the adapters off", async () => {
    const out = join(tmp, "dpo-lora");
    const before = readFileSync(join(chat, "model.safetensors"));
    await dpo(
      {
        ...common,
        model: chat,
        data,
        out,
        evalFraction: 0,
        maxSteps: 15,
        learningRate: 1e-2,
        minLr: 1e-3,
        beta: 0.5,
        lora: { r: 4, alpha: 8, dropout: 0, targetModules: ["c_attn", "c_proj", "c_fc"] },
      },
      quiet,
    );
    const m = losses(out);
    assert.ok(Math.abs(m[0].train_loss - Math.LN2) < 1e-5, `first loss ${m[0].train_loss}`);
    assert.ok(m[m.length - 1].train_loss < m[0].train_loss - 0.05, "the adapters learn the preference");
    assert.deepEqual(readFileSync(join(chat, "model.safetensors")), before, "the base model is untouched");
  });

  test("CLI: moxing dpo trains and reports TRL's metrics; bad flags are one-line errors", async () => {
    const out = join(tmp, "dpo-cli");
    const r = await moxing(["dpo", "--model", chat, "--data", data, "--eval", held, "--out", out, "--max-steps", "2", "--batch-size", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /held-out rewards\/accuracies/);
    assertOneLineError(
      await moxing(["dpo", "--model", chat, "--data", data, "--out", join(tmp, "x"), "--beta", "0"]),
      /--beta must be above 0/,
      2,
    );
    assertOneLineError(
      await moxing(["reward", "--model", chat, "--data", data, "--out", join(tmp, "y"), "--lora-alpha", "2"]),
      /need --lora-r/,
      2,
    );
  });
});
