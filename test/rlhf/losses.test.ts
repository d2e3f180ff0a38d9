// The RLHF losses against PyTorch (tools/torch_rlhf.py, written from TRL's trainers): values, TRL's
// metrics and gradients. And SFT's defining property: tokens outside the assistant's turns get no
// gradient at all.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { encodeChat, useChatML } from "../../src/chat/index.js";
import { GPT } from "../../src/models/gpt.js";
import {
  dpoLoss,
  gae,
  grpoAdvantages,
  grpoLoss,
  klPenaltyRewards,
  ppoMetrics,
  ppoPolicyLoss,
  ppoValueLoss,
  rewardLoss,
  sequenceLogprobs,
  sftLoss,
} from "../../src/rlhf/losses.js";
import { tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertClose } from "../helpers.js";

// biome-ignore lint/suspicious/noExplicitAny: the fixture is free-form JSON
const F: any = JSON.parse(readFileSync(new URL("../../tools/fixtures/rlhf/losses.json", import.meta.url), "utf8"));
const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const leaf = (x: unknown) => {
  const t = tensor(x as number[]);
  t.requiresGrad = true;
  return t;
};
const close = (name: string, got: unknown, want: unknown, tol = 1e-5) =>
  assertClose(name, typeof got === "number" ? [got] : flat(got), flat(want), tol, tol);
const closeMetrics = (got: Record<string, number>, want: Record<string, number>) => {
  for (const [k, v] of Object.entries(want)) close(k, got[k], v);
};

describe("log-probabilities and SFT vs PyTorch", () => {
  const c = F.logprobs;
  test("sequenceLogprobs: per-token, summed, and the gradient", () => {
    const logits = leaf(c.logits);
    const r = sequenceLogprobs(logits, c.ids, c.mask);
    close("per_token", r.perToken.tolist(), c.per_token);
    close("sum", r.sum.tolist(), c.sum);
    assert.deepEqual(r.count, [5, 3, 4]);
    r.sum.sum().backward();
    close("grad of the sums", logits.grad?.tolist(), c.grad_sum);
  });
  test("sftLoss: value and gradient", () => {
    const logits = leaf(c.logits);
    const loss = sftLoss(logits, c.ids, c.mask);
    close("sft loss", loss.item(), c.sft_loss);
    loss.backward();
    close("grad", logits.grad?.tolist(), c.grad_sft);
  });
  test("sftLoss on a chat: user-turn tokens get zero gradient, assistant tokens do not", () => {
    const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ?.\n");
    useChatML(tok);
    const e = encodeChat(
      tok,
      [
        { role: "system", content: "be brief" },
        { role: "user", content: "who spoke?" },
        { role: "assistant", content: "lincoln." },
        { role: "user", content: "and then?" },
        { role: "assistant", content: "grant." },
      ],
      { assistantMask: true },
    );
    const T = e.ids.length;
    const model = new GPT({ vocab_size: tok.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: T }, { seed: 2 });
    const logits = model.forward(tensor([e.ids], { dtype: "int32" })).logits.detach();
    logits.requiresGrad = true;
    sftLoss(logits, [e.ids], [e.assistantMask]).backward();
    const g = logits.grad?.tolist() as number[][][];
    let userRows = 0;
    for (let t = 0; t + 1 < T; t++) {
      // Row t of the logits predicts token t + 1.
      const rowNorm = ((g[0] as number[][])[t] as number[]).reduce((s, v) => s + Math.abs(v), 0);
      if (e.assistantMask[t + 1]) assert.ok(rowNorm > 0, `assistant token ${t + 1} must get a gradient`);
      else {
        assert.equal(rowNorm, 0, `token ${t + 1} (${JSON.stringify(tok.decode([e.ids[t + 1] as number]))}) is not the assistant's`);
        userRows++;
      }
    }
    assert.ok(userRows > 20);
    // Through the whole model too: parameters still learn (from the assistant tokens).
    const loss = sftLoss(model.forward(tensor([e.ids], { dtype: "int32" })).logits, [e.ids], [e.assistantMask]);
    loss.backward();
    assert.ok(model.transformer.wte.weight.grad !== null);
  });
  test("sftLoss refuses a batch with nothing to learn", () => {
    assert.throws(
      () =>
        sftLoss(
          leaf(c.logits),
          c.ids,
          c.mask.map((r: number[]) => r.map(() => 0)),
        ),
      /no token of the batch/,
    );
  });
});

describe("reward model and DPO vs PyTorch", () => {
  test("rewardLoss: Bradley-Terry with margin and centering; accuracy and margin", () => {
    const c = F.reward;
    const ch = leaf(c.chosen);
    const rj = leaf(c.rejected);
    const r = rewardLoss(ch, rj, { margin: c.margin, centerRewardsCoefficient: c.center_rewards_coefficient });
    close("loss", r.loss.item(), c.loss);
    r.loss.backward();
    close("grad chosen", ch.grad?.tolist(), c.grad_chosen);
    close("grad rejected", rj.grad?.tolist(), c.grad_rejected);
    const plain = rewardLoss(tensor(c.chosen), tensor(c.rejected));
    close("plain loss", plain.loss.item(), c.plain_loss);
    close("accuracy", plain.metrics.accuracy, c.accuracy);
    close("margin", plain.metrics.margin, c.mean_margin);
  });
  for (const name of ["dpo", "cdpo"]) {
    test(`dpoLoss (${name}): loss, TRL's metrics, gradients`, () => {
      const c = F[name];
      const pc = leaf(c.policy_chosen);
      const pr = leaf(c.policy_rejected);
      const r = dpoLoss(
        { policyChosen: pc, policyRejected: pr, refChosen: tensor(c.ref_chosen), refRejected: tensor(c.ref_rejected) },
        { beta: c.beta, labelSmoothing: c.label_smoothing },
      );
      close("loss", r.loss.item(), c.loss);
      closeMetrics(r.metrics, c.metrics);
      assert.deepEqual(Object.keys(r.metrics).sort(), Object.keys(c.metrics).sort());
      r.loss.backward();
      close("grad chosen", pc.grad?.tolist(), c.grad_policy_chosen);
      close("grad rejected", pr.grad?.tolist(), c.grad_policy_rejected);
    });
  }
});

describe("PPO and GRPO vs PyTorch", () => {
  const c = F.ppo;
  test("klPenaltyRewards with the k1 and k3 estimators; TRL's objective metrics", () => {
    for (const est of ["k1", "k3"] as const) {
      const r = klPenaltyRewards(c.logprobs, c.ref_logprobs, c.scores, c.mask, { klCoef: c.kl_coef, estimator: est });
      close(`${est} kl`, r.kl, c[est].kl);
      close(`${est} rewards`, r.rewards, c[est].rewards);
      if (est === "k1") closeMetrics(ppoMetrics(r.kl, r.nonScoreReward, c.logprobs, c.mask, c.scores), c.metrics);
    }
  });
  test("gae: whitened advantages and returns, for two (gamma, lambda)", () => {
    const rewards = klPenaltyRewards(c.logprobs, c.ref_logprobs, c.scores, c.mask, { klCoef: c.kl_coef }).rewards;
    for (const key of ["gae_1.0_0.95", "gae_0.99_0.9"]) {
      const want = c[key];
      const r = gae(rewards, c.values, c.mask, { gamma: want.gamma, lam: want.lam });
      close(`${key} advantages`, r.advantages, want.advantages);
      close(`${key} returns`, r.returns, want.returns);
    }
  });
  test("ppoPolicyLoss and ppoValueLoss: clipped losses, gradients, clip fractions", () => {
    const k = c.clipped;
    const adv = c["gae_1.0_0.95"].advantages;
    const ret = c["gae_1.0_0.95"].returns;
    const lp = leaf(k.new_logprobs);
    const pg = ppoPolicyLoss(lp, c.logprobs, adv, c.mask, k.cliprange);
    close("pg loss", pg.loss.item(), k.pg_loss);
    pg.loss.backward();
    close("pg grad", lp.grad?.tolist(), k.grad_new_logprobs);
    const v = leaf(k.vpred);
    const vf = ppoValueLoss(v, c.values, ret, c.mask, k.cliprange_value);
    close("vf loss", vf.loss.item(), k.vf_loss);
    vf.loss.backward();
    close("vf grad", v.grad?.tolist(), k.grad_vpred);
    const metrics = { ...pg.metrics, ...vf.metrics };
    closeMetrics(metrics, k.metrics);
    assert.ok(
      (metrics["policy/clipfrac_avg"] as number) > 0 && (metrics["val/clipfrac_avg"] as number) > 0,
      "the fixture exercises clipping",
    );
  });
  test("grpoAdvantages and grpoLoss", () => {
    const g = F.grpo;
    close("advantages", grpoAdvantages(g.rewards, g.group_size), g.advantages);
    close("unscaled", grpoAdvantages(g.rewards, g.group_size, { scaleRewards: false }), g.advantages_unscaled);
    assert.throws(() => grpoAdvantages([1, 2, 3], 2), /do not split into groups of 2/);
    const lp = leaf(g.logprobs);
    const r = grpoLoss(lp, g.old_logprobs, g.advantages, g.mask, { epsilon: g.epsilon, beta: g.beta, refLogprobs: g.ref_logprobs });
    close("loss", r.loss.item(), g.loss);
    closeMetrics(r.metrics, g.metrics);
    r.loss.backward();
    close("grad", lp.grad?.tolist(), g.grad_logprobs);
  });
});
