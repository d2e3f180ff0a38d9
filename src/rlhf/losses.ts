// The losses of learning from human feedback, as pure functions of tensors, with TRL's definitions and
// metric names. test/rlhf/losses.test.ts checks each (values and gradients) against PyTorch code
// written from TRL's trainers (tools/torch_rlhf.py).
//
//   sequenceLogprobs  log p(token | earlier tokens) of the completion tokens of each sequence, and
//                     their sum: what DPO, PPO and GRPO compare between a policy and its reference
//   sftLoss           next-token cross-entropy on assistant / completion tokens only (TRL's SFTTrainer
//                     with assistant_only_loss or completion_only_loss)
//   rewardLoss        Bradley-Terry: -log σ(r_chosen - r_rejected [- margin]) (TRL's RewardTrainer)
//   dpoLoss           -log σ(β·((π_c - π_r) - (ref_c - ref_r))), with cDPO's label smoothing (TRL's
//                     DPOTrainer, loss_type "sigmoid"); rewards/*, logps/* metrics
//   PPO (TRL's PPOTrainer): klPenaltyRewards (per-token KL to the reference as a reward, the score
//                     added at each sequence's last token), gae (generalised advantage estimation,
//                     whitened advantages), ppoPolicyLoss and ppoValueLoss (clipped), ppoMetrics
//   GRPO (TRL's GRPOTrainer): grpoAdvantages (reward minus its group's mean, over the group's std)
//                     and grpoLoss (clipped ratio per token with a k3 KL term, no value head)
//
// Shapes: B sequences, T positions, V vocabulary. Masks are 1 for tokens that count and 0 for the
// rest (prompt, padding). Rollout quantities that need no gradient (rewards, values, advantages) are
// plain arrays, one row per sequence.

import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { abs, add, clamp, crossEntropy, div, exp, log, maximum, mean, minimum, mul, neg, pow, slice, sub, sum } from "../tensor/ops.js";
import type { Tensor } from "../tensor/tensor.js";

export type Rows = readonly (readonly number[])[];
export type Metrics = Record<string, number>;

/** log σ(x), computed stably as min(x, 0) - log(1 + e^-|x|). */
export function logSigmoid(x: Tensor): Tensor {
  return sub(minimum(x, 0), log(add(exp(neg(abs(x))), 1)));
}

function checkRows(what: string, rows: Rows, B: number, T: number): void {
  if (rows.length !== B || rows.some((r) => r.length !== T)) {
    throw new Error(`${what}: expected ${B} rows of ${T} values (one per sequence and position)`);
  }
}

/** Σ(x·mask) / Σmask over all elements (TRL's masked_mean); a plain number for arrays. */
function maskedMeanRows(x: Rows, mask: Rows): number {
  let s = 0;
  let n = 0;
  x.forEach((row, b) => {
    row.forEach((v, t) => {
      const m = mask[b]?.[t] ?? 0;
      s += v * m;
      n += m;
    });
  });
  return s / n;
}

function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return div(sum(mul(x, mask)), sum(mask));
}

// ---- log-probabilities -------------------------------------------------------------------------------

export interface SequenceLogprobs {
  /** (B, T-1): log p(ids[b][t+1] | ids[b][..t]) where lossMask[b][t+1] is 1, else 0. */
  perToken: Tensor;
  /** (B,): the sum over each sequence's counted tokens. */
  sum: Tensor;
  /** Tokens counted per sequence. */
  count: number[];
}

/**
 * Log-probabilities of the counted tokens of `ids` under next-token `logits` (B, T, V): the logits at
 * position t score the token at t + 1, so the first token is never counted. `lossMask` (B, T) marks
 * the tokens to count (the completion). Gradients flow into `logits`.
 */
export function sequenceLogprobs(logits: Tensor, ids: Rows, lossMask: Rows): SequenceLogprobs {
  const [B, T] = logits.shape as [number, number, number];
  checkRows("sequenceLogprobs: ids", ids, B, T);
  checkRows("sequenceLogprobs: lossMask", lossMask, B, T);
  // Cross-entropy per position with ignored targets (-100) where the mask is 0: exactly -log p, and 0 elsewhere.
  const labels = ids.map((row, b) => row.slice(1).map((id, t) => (lossMask[b]?.[t + 1] ? id : -100)));
  const nll = crossEntropy(slice(logits, 1, 0, T - 1), tensor(labels, { dtype: "int32" }), { reduction: "none" }); // (B, T-1)
  const perToken = neg(nll);
  return { perToken, sum: sum(perToken, -1), count: labels.map((row) => row.filter((l) => l !== -100).length) };
}

/**
 * SFT: mean next-token cross-entropy over the tokens with lossMask 1 (assistant or completion tokens),
 * across the batch, as TRL computes it with labels -100 everywhere else. The other tokens are context:
 * they get no loss and, through it, no gradient.
 */
export function sftLoss(logits: Tensor, ids: Rows, lossMask: Rows): Tensor {
  const [B, T] = logits.shape as [number, number, number];
  checkRows("sftLoss: ids", ids, B, T);
  checkRows("sftLoss: lossMask", lossMask, B, T);
  const labels = ids.map((row, b) => row.slice(1).map((id, t) => (lossMask[b]?.[t + 1] ? id : -100)));
  if (labels.every((row) => row.every((l) => l === -100))) {
    throw new Error("sftLoss: no token of the batch is marked for the loss (every lossMask is 0 after the first position)");
  }
  return crossEntropy(slice(logits, 1, 0, T - 1), tensor(labels, { dtype: "int32" }));
}

// ---- reward model ----------------------------------------------------------------------------------------

/** Bradley-Terry loss of a reward model's scalar rewards for chosen and rejected completions, (B,) each. */
export function rewardLoss(
  chosen: Tensor,
  rejected: Tensor,
  opts: { margin?: readonly number[]; centerRewardsCoefficient?: number } = {},
): {
  loss: Tensor;
  metrics: Metrics;
} {
  let diff = sub(chosen, rejected);
  if (opts.margin) diff = sub(diff, tensor([...opts.margin]));
  let loss = neg(mean(logSigmoid(diff)));
  // TRL's center_rewards_coefficient keeps rewards near zero (Eisenstein et al. 2023).
  if (opts.centerRewardsCoefficient) loss = add(loss, mul(mean(pow(add(chosen, rejected), 2)), opts.centerRewardsCoefficient));
  const c = chosen.detach().tolist() as number[];
  const r = rejected.detach().tolist() as number[];
  return {
    loss,
    metrics: {
      accuracy: c.filter((v, i) => v > (r[i] as number)).length / c.length,
      margin: c.reduce((s, v, i) => s + v - (r[i] as number), 0) / c.length,
      mean_reward: [...c, ...r].reduce((s, v) => s + v, 0) / (2 * c.length),
    },
  };
}

// ---- DPO -------------------------------------------------------------------------------------------------

export interface DpoInputs {
  /** (B,) summed completion log-probs under the policy (with gradient) and the frozen reference. */
  policyChosen: Tensor;
  policyRejected: Tensor;
  refChosen: Tensor;
  refRejected: Tensor;
}

/**
 * Direct preference optimisation (Rafailov et al. 2023), TRL's loss_type "sigmoid":
 *   loss = -(1-ε)·log σ(β·h) - ε·log σ(-β·h),  h = (π_c - π_r) - (ref_c - ref_r)
 * ε is cDPO's label smoothing (0: plain DPO). The implicit rewards are β·(π - ref).
 */
export function dpoLoss(x: DpoInputs, opts: { beta?: number; labelSmoothing?: number } = {}): { loss: Tensor; metrics: Metrics } {
  const beta = opts.beta ?? 0.1;
  const eps = opts.labelSmoothing ?? 0;
  if (!(beta > 0)) throw new Error(`dpoLoss: beta must be > 0 (got ${beta})`);
  if (!(eps >= 0 && eps < 0.5)) throw new Error(`dpoLoss: labelSmoothing must be in [0, 0.5) (got ${eps})`);
  const h = sub(sub(x.policyChosen, x.policyRejected), sub(x.refChosen, x.refRejected));
  let losses = mul(logSigmoid(mul(h, beta)), -(1 - eps));
  if (eps > 0) losses = sub(losses, mul(logSigmoid(mul(h, -beta)), eps));
  const metrics = noGrad(() => {
    const rc = mul(sub(x.policyChosen, x.refChosen), beta).tolist() as number[];
    const rr = mul(sub(x.policyRejected, x.refRejected), beta).tolist() as number[];
    const avg = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;
    return {
      "rewards/chosen": avg(rc),
      "rewards/rejected": avg(rr),
      "rewards/accuracies": avg(rc.map((v, i) => (v > (rr[i] as number) ? 1 : 0))),
      "rewards/margins": avg(rc.map((v, i) => v - (rr[i] as number))),
      "logps/chosen": avg(x.policyChosen.tolist() as number[]),
      "logps/rejected": avg(x.policyRejected.tolist() as number[]),
    };
  });
  return { loss: mean(losses), metrics };
}

// ---- PPO -------------------------------------------------------------------------------------------------

/**
 * Per-token rewards for PPO: a KL penalty to the reference at every completion token, plus the
 * sequence's score at its last completion token (TRL: rewards = -kl_coef·kl; rewards[end] += score).
 * kl is k1 = logp - ref_logp, or k3 = (r - 1) - log r with r = exp(ref_logp - logp) (Schulman 2020).
 */
export function klPenaltyRewards(
  logprobs: Rows,
  refLogprobs: Rows,
  scores: readonly number[],
  mask: Rows,
  opts: { klCoef?: number; estimator?: "k1" | "k3" } = {},
): { rewards: number[][]; kl: number[][]; nonScoreReward: number[][] } {
  const klCoef = opts.klCoef ?? 0.05;
  const kl = logprobs.map((row, b) =>
    row.map((lp, t) => {
      if (!mask[b]?.[t]) return 0;
      const logr = (refLogprobs[b]?.[t] as number) - lp;
      return opts.estimator === "k3" ? Math.exp(logr) - 1 - logr : -logr;
    }),
  );
  const nonScoreReward = kl.map((row) => row.map((v) => -klCoef * v));
  const rewards = nonScoreReward.map((row) => [...row]);
  rewards.forEach((row, b) => {
    const last = (mask[b] ?? []).lastIndexOf(1);
    if (last < 0) throw new Error(`klPenaltyRewards: sequence ${b} has no completion token`);
    row[last] = (row[last] as number) + (scores[b] as number);
  });
  return { rewards, kl, nonScoreReward };
}

/** (x - mean) / sqrt(var + 1e-8) over the masked entries, var unbiased (TRL's masked_whiten); masked-out entries become 0. */
export function maskedWhiten(x: Rows, mask: Rows, shiftMean = true): number[][] {
  const mu = maskedMeanRows(x, mask);
  const n = mask.reduce((s, row) => s + row.reduce((a, m) => a + m, 0), 0);
  if (n < 2) throw new Error("maskedWhiten: needs at least two masked-in values");
  const variance =
    (maskedMeanRows(
      x.map((row) => row.map((v) => (v - mu) ** 2)),
      mask,
    ) *
      n) /
    (n - 1);
  const inv = 1 / Math.sqrt(variance + 1e-8);
  return x.map((row, b) => row.map((v, t) => (mask[b]?.[t] ? (v - mu) * inv + (shiftMean ? 0 : mu) : 0)));
}

/**
 * Generalised advantage estimation (Schulman et al. 2016) over the completion tokens, as TRL's PPO:
 *   δ_t = r_t + γ·V_{t+1} - V_t,  A_t = δ_t + γλ·A_{t+1},  returns = A + V,
 * then advantages whitened over the mask. rewards and values must be 0 where the mask is 0.
 */
export function gae(
  rewards: Rows,
  values: Rows,
  mask: Rows,
  opts: { gamma?: number; lam?: number } = {},
): { advantages: number[][]; returns: number[][] } {
  const gamma = opts.gamma ?? 1;
  const lam = opts.lam ?? 0.95;
  const raw = rewards.map((row, b) => {
    const v = values[b] as readonly number[];
    const out = new Array<number>(row.length).fill(0);
    let last = 0;
    for (let t = row.length - 1; t >= 0; t--) {
      const next = t < row.length - 1 ? (v[t + 1] as number) : 0;
      const delta = (row[t] as number) + gamma * next - (v[t] as number);
      last = delta + gamma * lam * last;
      out[t] = last;
    }
    return out;
  });
  const returns = raw.map((row, b) => row.map((a, t) => a + ((values[b] as readonly number[])[t] as number)));
  return { advantages: maskedWhiten(raw, mask), returns };
}

/**
 * PPO's clipped surrogate (Schulman et al. 2017) per completion token, as TRL computes it:
 *   ratio = exp(logp - old_logp); loss = masked_mean(max(-A·ratio, -A·clip(ratio, 1-ε, 1+ε)))
 * `newLogprobs` (B, T) carries the gradient; the rest are the rollout's.
 */
export function ppoPolicyLoss(
  newLogprobs: Tensor,
  oldLogprobs: Rows,
  advantages: Rows,
  mask: Rows,
  cliprange = 0.2,
): { loss: Tensor; metrics: Metrics } {
  const [B, T] = newLogprobs.shape as [number, number];
  for (const [what, rows] of [
    ["oldLogprobs", oldLogprobs],
    ["advantages", advantages],
    ["mask", mask],
  ] as const)
    checkRows(`ppoPolicyLoss: ${what}`, rows, B, T);
  const m = tensor(mask.map((r) => [...r]));
  const adv = tensor(advantages.map((r) => [...r]));
  const diff = sub(newLogprobs, tensor(oldLogprobs.map((r) => [...r])));
  const ratio = exp(diff);
  const pg1 = mul(neg(adv), ratio);
  const pg2 = mul(neg(adv), clamp(ratio, 1 - cliprange, 1 + cliprange));
  const loss = maskedMean(maximum(pg1, pg2), m);
  const metrics = noGrad(() => ({
    "policy/clipfrac_avg": maskedMean(pg2.gt(pg1).float(), m).item(),
    "policy/approxkl_avg": mean(mul(pow(diff, 2), 0.5)).item(),
    "val/ratio": mean(ratio).item(),
    "loss/policy_avg": loss.item(),
  }));
  return { loss, metrics };
}

/** PPO's clipped value loss: 0.5·masked_mean(max((v - R)², (clip(v, v_old ± ε) - R)²)). */
export function ppoValueLoss(
  vpred: Tensor,
  oldValues: Rows,
  returns: Rows,
  mask: Rows,
  cliprangeValue = 0.2,
): { loss: Tensor; metrics: Metrics } {
  const [B, T] = vpred.shape as [number, number];
  checkRows("ppoValueLoss: oldValues", oldValues, B, T);
  checkRows("ppoValueLoss: returns", returns, B, T);
  const m = tensor(mask.map((r) => [...r]));
  const old = tensor(oldValues.map((r) => [...r]));
  const ret = tensor(returns.map((r) => [...r]));
  const clipped = minimum(maximum(vpred, sub(old, cliprangeValue)), add(old, cliprangeValue));
  const l1 = pow(sub(vpred, ret), 2);
  const l2 = pow(sub(clipped, ret), 2);
  const loss = mul(maskedMean(maximum(l1, l2), m), 0.5);
  const metrics = noGrad(() => ({ "val/clipfrac_avg": maskedMean(l2.gt(l1).float(), m).item(), "loss/value_avg": loss.item() }));
  return { loss, metrics };
}

/** TRL's PPO objective metrics from one batch of rollouts (sums over tokens, means over sequences). */
export function ppoMetrics(kl: Rows, nonScoreReward: Rows, logprobs: Rows, mask: Rows, scores: readonly number[]): Metrics {
  const rowSums = (x: Rows, neg = false) => x.map((row, b) => row.reduce((s, v, t) => s + (mask[b]?.[t] ? (neg ? -v : v) : 0), 0));
  const avg = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;
  const nonScore = avg(rowSums(nonScoreReward));
  const meanScore = avg([...scores]);
  return {
    "objective/kl": avg(rowSums(kl)),
    "objective/entropy": avg(rowSums(logprobs, true)),
    "objective/non_score_reward": nonScore,
    "objective/rlhf_reward": nonScore + meanScore,
    "objective/scores": meanScore,
  };
}

// ---- GRPO ------------------------------------------------------------------------------------------------

/**
 * Group-relative advantages (Shao et al. 2024): each completion's reward minus the mean of its group
 * (the `groupSize` completions sampled for one prompt, consecutive), divided by the group's standard
 * deviation (unbiased) + 1e-4 when scaleRewards (TRL's default).
 */
export function grpoAdvantages(rewards: readonly number[], groupSize: number, opts: { scaleRewards?: boolean } = {}): number[] {
  if (!Number.isInteger(groupSize) || groupSize < 2 || rewards.length % groupSize !== 0) {
    throw new Error(`grpoAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize} (groupSize must be >= 2)`);
  }
  const out: number[] = [];
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewards.slice(g, g + groupSize);
    const mu = group.reduce((s, v) => s + v, 0) / groupSize;
    const std = Math.sqrt(group.reduce((s, v) => s + (v - mu) ** 2, 0) / (groupSize - 1));
    for (const r of group) out.push(opts.scaleRewards === false ? r - mu : (r - mu) / (std + 1e-4));
  }
  return out;
}

/**
 * GRPO's loss (TRL's loss_type "grpo"): per token -min(r·A, clip(r, 1-ε, 1+ε)·A) with r = exp(logp -
 * old_logp), plus β·k3(ref ‖ policy) when β > 0; averaged over each sequence's tokens, then over sequences.
 */
export function grpoLoss(
  logprobs: Tensor,
  oldLogprobs: Rows,
  advantages: readonly number[],
  mask: Rows,
  opts: { epsilon?: number; beta?: number; refLogprobs?: Rows } = {},
): { loss: Tensor; metrics: Metrics } {
  const [B, T] = logprobs.shape as [number, number];
  checkRows("grpoLoss: oldLogprobs", oldLogprobs, B, T);
  checkRows("grpoLoss: mask", mask, B, T);
  const eps = opts.epsilon ?? 0.2;
  const beta = opts.beta ?? 0;
  const m = tensor(mask.map((r) => [...r]));
  const adv = tensor(advantages.map((a) => [a]));
  const coef1 = exp(sub(logprobs, tensor(oldLogprobs.map((r) => [...r]))));
  const coef2 = clamp(coef1, 1 - eps, 1 + eps);
  let perToken = neg(minimum(mul(coef1, adv), mul(coef2, adv)));
  let kl: Tensor | null = null;
  if (beta !== 0) {
    if (!opts.refLogprobs) throw new Error("grpoLoss: beta > 0 needs refLogprobs");
    checkRows("grpoLoss: refLogprobs", opts.refLogprobs, B, T);
    const d = sub(tensor(opts.refLogprobs.map((r) => [...r])), logprobs);
    kl = sub(sub(exp(d), d), 1);
    perToken = add(perToken, mul(kl, beta));
  }
  const perSeq = div(sum(mul(perToken, m), -1), clamp(sum(m, -1), 1));
  const loss = mean(perSeq);
  const metrics = noGrad(() => {
    // Tokens whose ratio left the trust region in the direction the advantage pushes: their gradient is 0.
    const r = coef1.tolist() as number[][];
    const clipped = r.map((row, b) =>
      row.map((v) => ((v < 1 - eps && (advantages[b] as number) < 0) || (v > 1 + eps && (advantages[b] as number) > 0) ? 1 : 0)),
    );
    const out: Metrics = { "clip_ratio/region_mean": maskedMeanRows(clipped, mask) };
    if (kl) out.kl = maskedMean(kl, m).item();
    return out;
  });
  return { loss, metrics };
}
