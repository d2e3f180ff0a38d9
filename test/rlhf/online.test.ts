// PPO and GRPO on the one training loop, on a tiny chat model whose reward is the share of "a" in the
// first four characters of its answer: batched rollouts equal one-at-a-time decoding; the first step
// compares the policy with itself (ratio 1, KL 0); both algorithms raise the reward; TRL's metric names
// land in metrics.jsonl; a run interrupted mid-rollout resumes exactly; LoRA leaves the base untouched;
// the CLI takes a reward module or a reward model.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { encodeChat, useChatML } from "../../src/chat/index.js";
import { generateIds } from "../../src/generate/index.js";
import { commitFiles } from "../../src/io/checkpoint.js";
import { loadModel, saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { grpo } from "../../src/rlhf/grpo.js";
import { sequenceLogprobs } from "../../src/rlhf/losses.js";
import { ppo } from "../../src/rlhf/ppo.js";
import { RewardModel, rewardModelFiles } from "../../src/rlhf/reward.js";
import {
  type RewardSample,
  readPromptDataset,
  rewardModelFunction,
  sampleCompletions,
  stopTokenIds,
  tokenKL,
  tokenLogprobs,
} from "../../src/rlhf/rollout.js";
import { Generator, noGrad, tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-online-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const base = join(tmp, "base");
const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz \n");
useChatML(tok);
saveModel(base, new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 32 }, { seed: 5 }), tok);
const WORDS = ["cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "key", "car", "bus", "egg", "ox", "tree", "sky", "bee"];
const data = join(tmp, "prompts.jsonl");
writeFileSync(data, WORDS.map((w) => JSON.stringify({ prompt: [{ role: "user", content: `say ${w}` }], word: w })).join("\n"));
const reward = (s: RewardSample) => [...s.completion.slice(0, 4)].filter((c) => c === "a").length / 4;
const rewardModule = join(tmp, "reward.mjs");
writeFileSync(rewardModule, 'export default (s) => [...s.completion.slice(0, 4)].filter((c) => c === "a").length / 4;\n');

const quiet = { onLog: () => {} };
const common = {
  model: base,
  data,
  reward,
  maxNewTokens: 6,
  learningRate: 1e-2,
  minLr: 1e-3,
  warmupSteps: 2,
  checkpointInterval: 1000,
  evalFraction: 0.25,
};
const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

describe("rollouts", () => {
  const { model, tokenizer } = loadModel(base);
  const prompts = ["say cat", "say tree", "say ox", "say dog", "say bee"].map(
    (c) => encodeChat(tokenizer, [{ role: "user", content: c }], { addGenerationPrompt: true }).ids,
  );
  const stopIds = stopTokenIds(tokenizer);

  test("batched greedy rollouts (prompts of several lengths) equal decoding each prompt alone", () => {
    const batched = sampleCompletions(model, prompts, { maxNewTokens: 4, temperature: 0, stopIds, generator: new Generator(1) });
    prompts.forEach((p, i) => {
      const alone: number[] = [];
      for (const id of generateIds(model, p, { maxNewTokens: 4, temperature: 0 })) {
        alone.push(id);
        if (stopIds.has(id)) break;
      }
      assert.deepEqual(batched[i]?.completion, alone, `prompt ${i}`);
      assert.equal(batched[i]?.stopped, stopIds.has(alone[alone.length - 1] as number));
    });
  });

  test("sampled rollouts depend only on the generator's state; stopped ones end with their stop token", () => {
    const run = () => sampleCompletions(model, prompts, { maxNewTokens: 8, temperature: 1, stopIds, generator: new Generator(7) });
    const [a, b] = [run(), run()];
    assert.deepEqual(a, b);
    for (const c of a) {
      assert.ok(c.completion.length >= 1 && c.completion.length <= 8);
      if (c.stopped) assert.ok(stopIds.has(c.completion[c.completion.length - 1] as number));
      assert.equal(
        c.completion.slice(0, -1).some((id) => stopIds.has(id)),
        false,
        "nothing after a stop token",
      );
    }
  });

  test("token log-probs divide the logits by the temperature; the KL of a model with itself is 0", () => {
    const ids = [[1, 2, 3, 4]];
    const mask = [[0, 1, 1, 1]];
    noGrad(() => {
      const logits = model.forward(tensor(ids, { dtype: "int32" })).logits;
      const lp = tokenLogprobs(logits, ids, mask, 0.5).tolist() as number[][];
      const ref = sequenceLogprobs(logits.mul(2), ids, mask).perToken.tolist() as number[][];
      assert.deepEqual(lp, ref);
      const self = tokenKL(logits, logits).tolist() as number[][];
      for (const v of self[0] ?? []) assert.ok(Math.abs(v) < 1e-6);
      const other = tokenKL(logits, logits.mul(0.5)).tolist() as number[][];
      for (const v of other[0] ?? []) assert.ok(v > 0);
    });
  });

  test("prompt datasets: prompt-only lines keep their fields; conversations lose their last answer", () => {
    const recs = readPromptDataset(data);
    assert.equal(recs.length, WORDS.length);
    assert.equal(recs[0]?.fields.word, "cat");
    const conv = join(tmp, "conv.jsonl");
    writeFileSync(
      conv,
      JSON.stringify({
        messages: [
          { role: "user", content: "hi" },
          { role: "assistant", content: "ho" },
        ],
      }),
    );
    assert.deepEqual(readPromptDataset(conv)[0]?.prompt, [{ role: "user", content: "hi" }]);
    const bad = join(tmp, "bad-prompts.jsonl");
    writeFileSync(bad, '{"prompt": "a"}\n{"question": "b"}\n');
    assert.throws(() => readPromptDataset(bad), /bad-prompts\.jsonl:2: not a prompt/);
  });

  test("a reward model directory scores prompt + completion at its last token", () => {
    const rmDir = join(tmp, "rm");
    const rm = new RewardModel(new GPT({ ...model.config }, { seed: 3 }), { generator: new Generator(4) });
    commitFiles(rmDir, rewardModelFiles(rm, tokenizer), []);
    const score = rewardModelFunction(rmDir);
    const samples: RewardSample[] = ["ab", "ba", "aaa"].map((completion) => ({
      prompt: [{ role: "user", content: "say cat" }],
      completion,
      stopped: true,
      fields: {},
    }));
    const got = score(samples);
    samples.forEach((s, i) => {
      const ids = encodeChat(tokenizer, [...(s.prompt as []), { role: "assistant", content: s.completion }]).ids;
      const want = noGrad(() => rm.rewards(tensor([ids], { dtype: "int32" }), [ids.length]).item());
      assert.ok(Math.abs((got[i] as number) - want) < 1e-5, `${got[i]} vs ${want}`);
    });
    assert.throws(() => rewardModelFunction(base), /not a reward model/);
  });
});

describe("ppo", () => {
  const opts = { ...common, batchSize: 8, miniBatchSize: 4, ppoEpochs: 2, evalInterval: 20 };

  test("starts from ratio 1 and KL 0, logs TRL's metrics, raises the reward, saves the value head", async () => {
    const out = join(tmp, "ppo");
    const r = await ppo({ ...opts, out, maxSteps: 60 }, quiet);
    assert.equal(r.status, "completed");
    const m = metrics(out);
    const first = m[0] as Record<string, number>;
    assert.equal(first["val/ratio"], 1);
    assert.equal(first["policy/approxkl_avg"], 0);
    assert.equal(first["policy/clipfrac_avg"], 0);
    assert.equal(first["objective/kl"], 0, "the policy is the reference at first");
    for (const k of [
      "objective/kl",
      "objective/entropy",
      "objective/non_score_reward",
      "objective/rlhf_reward",
      "objective/scores",
      "policy/approxkl_avg",
      "policy/clipfrac_avg",
      "loss/policy_avg",
      "loss/value_avg",
      "val/clipfrac_avg",
      "val/ratio",
      "val/num_eos_tokens",
      "episode",
    ])
      assert.ok(k in first, `metrics.jsonl has ${k}`);
    assert.ok("eval_score" in (m[m.length - 1] ?? {}) && "eval_kl_per_token" in (m[m.length - 1] ?? {}));
    // 4 steps per rollout: compare the first three rollouts with the last three.
    const scores = m.filter((_, i) => i % 4 === 0).map((x) => x["objective/scores"] as number);
    assert.ok(mean(scores.slice(-3)) > mean(scores.slice(0, 3)) + 0.2, `rollout scores ${scores.map((s) => s.toFixed(2))}`);
    assert.ok((r.lastEval?.kl_per_token ?? 0) > 0, "the policy moved away from the reference");
    assert.ok(existsSync(join(out, "value_head.safetensors")));
    assert.ok(existsSync(join(out, "model.safetensors")));
  });

  test("interrupted in the middle of a rollout, a run resumes exactly", async () => {
    const straight = join(tmp, "ppo-straight");
    await ppo({ ...opts, out: straight, maxSteps: 10 }, quiet);
    const split = join(tmp, "ppo-split");
    const abort = new AbortController();
    const first = await ppo(
      { ...opts, out: split, maxSteps: 10 },
      { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 6 && abort.abort() },
    );
    assert.deepEqual([first.status, first.step], ["interrupted", 6]);
    await ppo({ out: split, resume: true, reward }, quiet);
    const strip = (dir: string) => metrics(dir).map(({ ms_per_step, tokens_per_s, ...rest }) => rest);
    assert.deepEqual(strip(split), strip(straight));
  });

  test("with LoRA the reference is the base: the base file is untouched and the first KL is 0", async () => {
    const before = readFileSync(join(base, "model.safetensors"));
    const out = join(tmp, "ppo-lora");
    await ppo({ ...opts, out, maxSteps: 8, lora: { r: 4, alpha: 8, dropout: 0.05, targetModules: ["c_attn", "c_proj"] } }, quiet);
    const m = metrics(out);
    assert.equal(m[0]?.["objective/kl"], 0);
    assert.ok((m[m.length - 1]?.["objective/kl"] ?? 0) !== 0, "the adapters moved the policy");
    assert.deepEqual(readFileSync(join(base, "model.safetensors")), before);
    assert.ok(existsSync(join(out, "adapter_model.safetensors")) && existsSync(join(out, "value_head.safetensors")));
  });
});

describe("grpo", () => {
  const opts = { ...common, batchSize: 4, numGenerations: 4, evalInterval: 20 };

  test("group-relative advantages raise the reward; TRL's names; KL to the reference starts at 0", async () => {
    const out = join(tmp, "grpo");
    const r = await grpo({ ...opts, out, maxSteps: 30 }, quiet);
    assert.equal(r.status, "completed");
    const m = metrics(out);
    for (const k of [
      "reward",
      "reward_std",
      "frac_reward_zero_std",
      "kl",
      "clip_ratio/region_mean",
      "completions/mean_length",
      "completions/clipped_ratio",
      "objective/kl",
      "episode",
    ])
      assert.ok(k in (m[0] ?? {}), `metrics.jsonl has ${k}`);
    assert.equal(m[0]?.kl, 0);
    assert.equal(m[0]?.episode, 16, "4 prompts x 4 completions");
    const rewards = m.map((x) => x.reward as number);
    assert.ok(mean(rewards.slice(-5)) > mean(rewards.slice(0, 5)) + 0.3, `rewards ${rewards.map((s) => s.toFixed(2))}`);
  });

  test("several iterations per rollout: interrupted between them, a run resumes exactly", async () => {
    const o = { ...opts, numIterations: 2 };
    const straight = join(tmp, "grpo-straight");
    await grpo({ ...o, out: straight, maxSteps: 6 }, quiet);
    const split = join(tmp, "grpo-split");
    const abort = new AbortController();
    await grpo(
      { ...o, out: split, maxSteps: 6 },
      { signal: abort.signal, onLog: (e) => e.type === "step" && e.step === 3 && abort.abort() },
    );
    await grpo({ out: split, resume: true, reward }, quiet);
    const strip = (dir: string) => metrics(dir).map(({ ms_per_step, tokens_per_s, ...rest }) => rest);
    assert.deepEqual(strip(split), strip(straight));
    const m = metrics(straight);
    assert.equal(m[1]?.episode, m[0]?.episode, "the second step reuses the rollout");
  });
});

describe("CLI", () => {
  test("moxing ppo with a reward module, moxing grpo with a reward model; resume finds the module again", async () => {
    const out = join(tmp, "cli-ppo");
    const flags = ["--model", base, "--data", data, "--max-new-tokens", "4", "--batch-size", "4", "--learning-rate", "1e-3"];
    let r = await moxing(["ppo", ...flags, "--out", out, "--reward-function", rewardModule, "--max-steps", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /held-out score .*KL\/token/);
    r = await moxing(["ppo", "--out", out, "--resume", "--max-steps", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(metrics(out).length, 3);
    const rm = join(tmp, "rm"); // written by the reward-model test above
    r = await moxing([
      "grpo",
      ...flags,
      "--out",
      join(tmp, "cli-grpo"),
      "--reward-model",
      rm,
      "--max-steps",
      "1",
      "--num-generations",
      "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  test("mistakes are one-line errors", async () => {
    const flags = ["--model", base, "--data", data];
    assertOneLineError(await moxing(["ppo", ...flags, "--out", join(tmp, "e1")]), /give a reward/, 2);
    assertOneLineError(
      await moxing(["grpo", ...flags, "--out", join(tmp, "e2"), "--reward-function", rewardModule, "--num-generations", "1"]),
      /--num-generations must be an integer >= 2/,
      2,
    );
    assertOneLineError(
      await moxing(["ppo", ...flags, "--out", join(tmp, "e3"), "--reward-function", join(tmp, "nope.mjs")]),
      /cannot load the reward function/,
      2,
    );
    assertOneLineError(
      await moxing(["ppo", ...flags, "--out", join(tmp, "e4"), "--reward-model", base, "--max-steps", "1"]),
      /not a reward model/,
    );
    assertOneLineError(
      await moxing([
        "ppo",
        ...flags,
        "--out",
        join(tmp, "e5"),
        "--reward-function",
        rewardModule,
        "--batch-size",
        "4",
        "--mini-batch-size",
        "3",
      ]),
      /miniBatchSize \(3\) must divide batchSize \(4\)/,
    );
  });
});
