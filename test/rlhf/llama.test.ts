// The chat issue's trainers on a Llama-family model (src/models/llama.ts): SFT grows a base's
// vocabulary by ChatML's tokens and teaches it to answer; LoRA adapters on PEFT's Llama target names
// train, resume exactly, save in PEFT's layout and merge (moxing merge); the reward model is saved as
// LlamaForSequenceClassification; DPO starts at ln 2 and its loss falls; PPO and GRPO run and resume
// mid-rollout exactly; LoRA on a Q8_0 GGUF file trains adapters over the frozen quantised weights
// (QLoRA), while full training of quantised weights is refused.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { chatReply, useChatML } from "../../src/chat/index.js";
import { loadTrainableLM } from "../../src/io/causal-lm.js";
import { loadAdapter, readSafetensorsHeader, saveLlamaDir } from "../../src/io/index.js";
import { Llama } from "../../src/models/llama.js";
import { dpo } from "../../src/rlhf/dpo.js";
import { grpo } from "../../src/rlhf/grpo.js";
import { ppo } from "../../src/rlhf/ppo.js";
import { loadRewardModel, trainRewardModel } from "../../src/rlhf/reward.js";
import { type RewardSample, rewardModelFunction } from "../../src/rlhf/rollout.js";
import { sft } from "../../src/rlhf/sft.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing, repo } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-llama-rlhf-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 };
const chars = "abcdefghijklmnopqrstuvwxyz ?.\n";
// A base without chat tokens (SFT adds them) and a chat model (ChatML in its tokenizer), untied heads.
const base = join(tmp, "base");
{
  const tok = CharTokenizer.fromText(chars);
  const cfg = { ...tiny, vocab_size: tok.vocabSize, max_position_embeddings: 48, tie_word_embeddings: false };
  saveLlamaDir(base, new Llama(cfg, { seed: 1 }), tok);
}
const chat = join(tmp, "chat");
{
  const tok = CharTokenizer.fromText(chars);
  useChatML(tok);
  saveLlamaDir(chat, new Llama({ ...tiny, vocab_size: tok.vocabSize, max_position_embeddings: 40 }, { seed: 5 }), tok);
}

const PAIRS: [string, string][] = [
  ["hi", "hello"],
  ["bye", "ciao"],
  ["yes", "no"],
  ["up", "down"],
];
const sftData = join(tmp, "sft.jsonl");
writeFileSync(
  sftData,
  Array.from({ length: 10 }, () =>
    PAIRS.map(([q, a]) =>
      JSON.stringify({
        messages: [
          { role: "user", content: q },
          { role: "assistant", content: a },
        ],
      }),
    ),
  )
    .flat()
    .join("\n"),
);
const WORDS = ["cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "key", "car", "bus", "egg"];
const prefLine = (w: string) =>
  JSON.stringify({
    prompt: [{ role: "user", content: `say ${w}` }],
    chosen: [{ role: "assistant", content: `ok ${w}` }],
    rejected: [{ role: "assistant", content: `no ${w}` }],
  });
const pref = join(tmp, "pref.jsonl");
const prefHeld = join(tmp, "pref-held.jsonl");
writeFileSync(pref, WORDS.slice(0, 9).map(prefLine).join("\n"));
writeFileSync(prefHeld, WORDS.slice(9).map(prefLine).join("\n"));
const prompts = join(tmp, "prompts.jsonl");
writeFileSync(prompts, WORDS.map((w) => JSON.stringify({ prompt: [{ role: "user", content: `say ${w}` }] })).join("\n"));
const reward = (s: RewardSample) => [...s.completion.slice(0, 4)].filter((c) => c === "a").length / 4;

const quiet = { onLog: () => {} };
const common = {
  batchSize: 8,
  learningRate: 1e-2,
  minLr: 1e-3,
  warmupSteps: 5,
  evalInterval: 100,
  checkpointInterval: 1000,
  evalFraction: 0,
};
const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);
const LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

describe("SFT and LoRA on a Llama", () => {
  const full = join(tmp, "sft-full");
  test("full SFT adds ChatML's tokens (the embedding and the head grow) and the Llama learns to answer and stop", async () => {
    const r = await sft({ ...common, model: base, data: sftData, out: full, maxSteps: 80 }, quiet);
    assert.equal(r.status, "completed");
    assert.equal(JSON.parse(readFileSync(join(full, "config.json"), "utf8")).architectures[0], "LlamaForCausalLM");
    const { model, tokenizer } = loadTrainableLM(full);
    assert.ok(model instanceof Llama);
    assert.equal(model.config.vocab_size, tokenizer.vocabSize);
    assert.equal(tokenizer.config?.eos_token, "<|im_end|>");
    for (const [q, a] of PAIRS) {
      const reply = chatReply(model, tokenizer, [{ role: "user", content: q }], { temperature: 0, maxNewTokens: 12 });
      assert.deepEqual([reply.text, reply.finishReason], [a, "stop"], `answer to ${q}`);
    }
  });

  test("LoRA on PEFT's Llama names: trains, resumes exactly, saves PEFT's layout, and moxing merge folds it in", async () => {
    const lora = { r: 2, alpha: 4, dropout: 0.1, targetModules: LLAMA_TARGETS };
    const opts = { ...common, model: chat, data: sftData, maxSteps: 10, lora };
    const straight = join(tmp, "lora-straight");
    const r = await sft({ ...opts, out: straight }, quiet);
    assert.ok(r.trainable < r.total / 5, `${r.trainable} of ${r.total} trained`);
    const m = metrics(straight);
    assert.ok((m[m.length - 1]?.train_loss as number) < (m[0]?.train_loss as number), "the loss falls");
    const header = readSafetensorsHeader(join(straight, "adapter_model.safetensors"));
    assert.deepEqual(header.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape, [2, 32]);
    assert.deepEqual(header.tensors.get("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")?.shape, [32, 2]);
    const config = JSON.parse(readFileSync(join(straight, "adapter_config.json"), "utf8"));
    assert.equal(config.fan_in_fan_out, false, "Llama's projections are nn.Linear");

    const split = join(tmp, "lora-split");
    const abort = new AbortController();
    await sft({ ...opts, out: split }, { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 4 && abort.abort() });
    await sft({ out: split, resume: true }, quiet);
    assert.deepEqual(
      metrics(split).map((x) => x.train_loss),
      m.map((x) => x.train_loss),
    );

    const merged = join(tmp, "lora-merged");
    const res = await moxing(["merge", "--model", chat, "--adapter", straight, "--out", merged]);
    assert.equal(res.code, 0, res.stderr);
    const withAdapters = loadTrainableLM(chat, { forLora: true }).model;
    loadAdapter(straight, withAdapters);
    const folded = loadTrainableLM(merged).model;
    const x = tensor([[1, 2, 3, 4, 5]], { dtype: "int32" });
    const [a, b] = [withAdapters, folded].map((mm) => noGrad(() => mm.forward(x).logits.tolist() as number[][][]));
    const diff = Math.max(...(a?.flat(2) ?? []).map((v, i) => Math.abs(v - ((b?.flat(2) ?? [])[i] as number))));
    assert.ok(diff < 1e-4, `merged logits differ by ${diff}`);
  });
});

describe("reward model and DPO on a Llama", () => {
  test("the reward model ranks held-out pairs and is saved as LlamaForSequenceClassification", async () => {
    const out = join(tmp, "rm");
    const r = await trainRewardModel(
      {
        ...common,
        model: chat,
        data: pref,
        eval: prefHeld,
        out,
        batchSize: 6,
        maxSteps: 60,
        learningRate: 3e-3,
        minLr: 3e-4,
        evalInterval: 30,
      },
      quiet,
    );
    assert.equal(r.lastEval?.accuracy, 1, `held-out accuracy ${r.lastEval?.accuracy}`);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual([config.architectures, config.num_labels], [["LlamaForSequenceClassification"], 1]);
    const header = readSafetensorsHeader(join(out, "model.safetensors"));
    assert.deepEqual(header.tensors.get("score.weight")?.shape, [1, 32]);
    assert.equal(header.tensors.has("lm_head.weight"), false);
    assert.ok(header.tensors.has("model.layers.0.self_attn.q_proj.weight"));
    const { model, fresh } = loadRewardModel(out);
    assert.equal(fresh, false);
    assert.ok(model.lm instanceof Llama);
    // As PPO's --reward-model: it scores a held-out chosen answer above the rejected one.
    const score = rewardModelFunction(out);
    const prompt = [{ role: "user" as const, content: "say key" }];
    const [good, bad] = score([
      { prompt, completion: "ok key", stopped: true, fields: {} },
      { prompt, completion: "no key", stopped: true, fields: {} },
    ]);
    assert.ok((good as number) > (bad as number), `${good} > ${bad}`);
  });

  test("LoRA DPO starts at ln 2 (reference = adapters off) and its loss falls", async () => {
    const out = join(tmp, "dpo");
    const lora = { r: 4, alpha: 8, dropout: 0, targetModules: LLAMA_TARGETS };
    await dpo({ ...common, model: chat, data: pref, out, batchSize: 6, maxSteps: 15, learningRate: 1e-2, beta: 0.5, lora }, quiet);
    const m = metrics(out);
    assert.ok(Math.abs((m[0]?.train_loss as number) - Math.LN2) < 1e-5, `first loss ${m[0]?.train_loss}`);
    assert.ok((m[m.length - 1]?.train_loss as number) < Math.LN2 - 0.05, `last loss ${m[m.length - 1]?.train_loss}`);
  });
});

describe("PPO and GRPO on a Llama", () => {
  const online = { ...common, model: chat, data: prompts, reward, maxNewTokens: 6, batchSize: 4, warmupSteps: 2 };
  test("PPO: the first minibatch compares the policy with itself; a run interrupted mid-rollout resumes exactly", async () => {
    const opts = { ...online, maxSteps: 6, ppoEpochs: 2, miniBatchSize: 2 };
    const straight = join(tmp, "ppo");
    await ppo({ ...opts, out: straight }, quiet);
    const m = metrics(straight);
    assert.equal(m.length, 6);
    assert.equal(m[0]?.["policy/approxkl_avg"], 0);
    assert.equal(m[0]?.["policy/clipfrac_avg"], 0);
    const split = join(tmp, "ppo-split");
    const abort = new AbortController();
    await ppo({ ...opts, out: split }, { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 3 && abort.abort() });
    await ppo({ out: split, resume: true, reward }, quiet);
    assert.deepEqual(metrics(split).map(untimed), m.map(untimed), "every logged number but the timings");
  });

  test("GRPO with LoRA: runs on group-relative advantages and resumes exactly", async () => {
    const lora = { r: 2, alpha: 4, dropout: 0, targetModules: ["q_proj", "v_proj"] };
    const opts = { ...online, maxSteps: 4, numGenerations: 2, lora };
    const straight = join(tmp, "grpo");
    await grpo({ ...opts, out: straight }, quiet);
    const m = metrics(straight);
    assert.equal(m.length, 4);
    for (const k of ["reward", "reward_std", "kl", "completions/mean_length"]) assert.ok(k in (m[0] ?? {}), `metrics have ${k}`);
    const split = join(tmp, "grpo-split");
    const abort = new AbortController();
    await grpo({ ...opts, out: split }, { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 2 && abort.abort() });
    await grpo({ out: split, resume: true, reward }, quiet);
    assert.deepEqual(
      metrics(split).map((x) => [x.train_loss, x.reward]),
      m.map((x) => [x.train_loss, x.reward]),
    );
  });
});

describe("QLoRA: adapters over a quantised GGUF file", () => {
  const q8 = join(tmp, "qwen2-q8_0.gguf");
  const fixture = join(repo, "tools", "fixtures", "hf-llama", "qwen2"); // a tiny chat model (ChatML)
  const data = join(tmp, "qwen-sft.jsonl");
  writeFileSync(
    data,
    Array.from({ length: 4 }, () =>
      JSON.stringify({
        messages: [
          { role: "user", content: "The people" },
          { role: "assistant", content: "will build" },
        ],
      }),
    ).join("\n"),
  );

  test("LoRA trains on the frozen Q8_0 weights (the loss falls); full training and merging are refused", async () => {
    const q = await moxing(["quantize", "--model", fixture, "--type", "q8_0", "--out", q8]);
    assert.equal(q.code, 0, q.stderr);
    const out = join(tmp, "qlora");
    const lora = { r: 4, alpha: 8, dropout: 0, targetModules: LLAMA_TARGETS };
    await sft({ ...common, model: q8, data, out, batchSize: 4, maxSteps: 12, learningRate: 2e-2, lora }, quiet);
    const m = metrics(out);
    assert.ok(
      (m[m.length - 1]?.train_loss as number) < 0.7 * (m[0]?.train_loss as number),
      `loss ${m[0]?.train_loss} -> ${m[m.length - 1]?.train_loss}`,
    );
    assertOneLineError(
      await moxing(["sft", "--model", q8, "--data", data, "--out", join(tmp, "qfull"), "--max-steps", "1"]),
      /quantised, and quantised weights cannot be trained; train LoRA adapters on it/,
      1,
    );
    assertOneLineError(
      await moxing(["merge", "--model", q8, "--adapter", out, "--out", join(tmp, "qmerged")]),
      /quantised weights, which cannot take the update/,
      2,
    );
  });
});

function untimed(o: Record<string, number>): Record<string, number> {
  const { tokens_per_s: _t, ms_per_step: _m, ...rest } = o;
  return rest;
}
