#!/usr/bin/python3
"""PyTorch reference values for moxing's RLHF losses (src/rlhf/losses.ts), for test/rlhf/losses.test.ts.
Run from the repository root with Debian's torch (TRL itself cannot be installed here):

    /usr/bin/python3 tools/torch_rlhf.py

It writes tools/fixtures/rlhf/losses.json: random inputs, and the losses, metrics and gradients that
the code below computes from them. The code follows TRL's trainers line by line where it matters:
  - log-probs of labels: trl's selective_log_softmax (gather of log_softmax), masked, summed per sequence
  - SFT: cross-entropy with labels -100 outside the completion (SFTTrainer, completion/assistant-only loss)
  - reward: RewardTrainer.compute_loss, -logsigmoid(r_c - r_r - margin).mean() + coef * mean((r_c + r_r)^2)
  - DPO: DPOTrainer.dpo_loss with loss_type "sigmoid" (label smoothing = cDPO) and its rewards/* metrics
  - PPO: PPOTrainer's reward shaping (k1 and k3 KL estimators), GAE loop, masked_whiten, clipped policy
    and value losses, and the metric definitions (clipfrac, approxkl, ratio)
  - GRPO: GRPOTrainer's group-normalised advantages and its loss_type "grpo" with the k3 KL term
"""
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)  # the reference is computed in float64; moxing runs float32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "rlhf", "losses.json")
g = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def L(t):
    """A tensor as nested lists of 9-significant-digit floats."""
    t = t.detach()
    if t.dim() == 0:
        return float("%.9g" % t.item())
    return [L(x) for x in t]


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def masked_var(values, mask):
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    n = mask.sum()
    return variance * n / (n - 1)


def masked_whiten(values, mask, shift_mean=True):
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


def logprobs_case():
    B, T, V = 3, 7, 11
    logits = rnd(B, T, V, scale=2.0).requires_grad_()
    ids = torch.randint(0, V, (B, T), generator=g)
    # prompt tokens (0) then completion tokens (1), then padding (0) in the last row
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 0, 0]], dtype=torch.float64)
    labels = ids[:, 1:]
    lmask = mask[:, 1:]
    per_token = torch.gather(logits[:, :-1].log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(-1) * lmask
    seq = per_token.sum(-1)
    (grad_seq,) = torch.autograd.grad(seq.sum(), logits)
    sft_labels = torch.where(lmask.bool(), labels, torch.full_like(labels, -100))
    sft = F.cross_entropy(logits[:, :-1].reshape(-1, V), sft_labels.reshape(-1), ignore_index=-100)
    (grad_sft,) = torch.autograd.grad(sft, logits)
    return {
        "logits": L(logits), "ids": ids.tolist(), "mask": mask.int().tolist(),
        "per_token": L(per_token), "sum": L(seq), "grad_sum": L(grad_seq),
        "sft_loss": L(sft), "grad_sft": L(grad_sft),
    }


def reward_case():
    B = 6
    c = rnd(B, scale=1.5).requires_grad_()
    r = rnd(B, scale=1.5).requires_grad_()
    margin = torch.rand(B, generator=g)
    coef = 0.01
    loss = -F.logsigmoid(c - r - margin).mean() + coef * torch.mean((c + r) ** 2)
    gc, gr = torch.autograd.grad(loss, [c, r])
    plain = -F.logsigmoid(c - r).mean()
    return {
        "chosen": L(c), "rejected": L(r), "margin": L(margin), "center_rewards_coefficient": coef,
        "loss": L(loss), "grad_chosen": L(gc), "grad_rejected": L(gr),
        "plain_loss": L(plain), "accuracy": L((c > r).double().mean()), "mean_margin": L((c - r).mean()),
    }


def dpo_case(label_smoothing):
    B = 8
    beta = 0.1
    pc = (rnd(B, scale=3.0) - 20).requires_grad_()
    pr = (rnd(B, scale=3.0) - 22).requires_grad_()
    rc = pc.detach() + rnd(B)
    rr = pr.detach() + rnd(B)
    logratios = pc - pr
    ref_logratios = rc - rr
    logits = logratios - ref_logratios
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    loss = losses.mean()
    gc, gr = torch.autograd.grad(loss, [pc, pr])
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return {
        "beta": beta, "label_smoothing": label_smoothing,
        "policy_chosen": L(pc), "policy_rejected": L(pr), "ref_chosen": L(rc), "ref_rejected": L(rr),
        "loss": L(loss), "grad_policy_chosen": L(gc), "grad_policy_rejected": L(gr),
        "metrics": {
            "rewards/chosen": L(chosen_rewards.mean()),
            "rewards/rejected": L(rejected_rewards.mean()),
            "rewards/accuracies": L((chosen_rewards > rejected_rewards).double().mean()),
            "rewards/margins": L((chosen_rewards - rejected_rewards).mean()),
            "logps/chosen": L(pc.detach().mean()),
            "logps/rejected": L(pr.detach().mean()),
        },
    }


def ppo_case():
    B, T = 3, 6
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float64)
    logprobs = (-rnd(B, T).abs() - 0.5) * mask
    ref_logprobs = (logprobs + rnd(B, T, scale=0.3)) * mask
    scores = rnd(B)
    values = rnd(B, T) * mask
    kl_coef = 0.05
    out = {"mask": mask.int().tolist(), "logprobs": L(logprobs), "ref_logprobs": L(ref_logprobs), "scores": L(scores), "values": L(values), "kl_coef": kl_coef}
    for est in ("k1", "k3"):
        logr = ref_logprobs - logprobs
        kl = (-logr if est == "k1" else (logr.exp() - 1) - logr) * mask
        non_score_reward = -kl_coef * kl
        rewards = non_score_reward.clone()
        last = (mask.sum(1) - 1).long()  # the last completion token of each row
        rewards[torch.arange(B), last] += scores
        out[est] = {"kl": L(kl), "non_score_reward": L(non_score_reward), "rewards": L(rewards)}
        if est == "k1":
            mean_kl = kl.sum(1).mean()
            mean_entropy = (-logprobs).sum(1).mean()
            mean_non_score = non_score_reward.sum(1).mean()
            out["metrics"] = {
                "objective/kl": L(mean_kl),
                "objective/entropy": L(mean_entropy),
                "objective/non_score_reward": L(mean_non_score),
                "objective/rlhf_reward": L(mean_non_score + scores.mean()),
                "objective/scores": L(scores.mean()),
            }
            k1_rewards = rewards
    for gamma, lam in ((1.0, 0.95), (0.99, 0.9)):
        lastgaelam = 0
        advantages_reversed = []
        for t in reversed(range(T)):
            nextvalues = values[:, t + 1] if t < T - 1 else 0.0
            delta = k1_rewards[:, t] + gamma * nextvalues - values[:, t]
            lastgaelam = delta + gamma * lam * lastgaelam
            advantages_reversed.append(lastgaelam)
        advantages = torch.stack(advantages_reversed[::-1], axis=1)
        returns = advantages + values
        advantages = masked_whiten(advantages, mask)
        advantages = torch.masked_fill(advantages, ~mask.bool(), 0)
        out[f"gae_{gamma}_{lam}"] = {"gamma": gamma, "lam": lam, "advantages": L(advantages), "returns": L(returns)}
    # Clipped losses: a new policy some tokens of which moved outside the clip range.
    adv = torch.tensor(out["gae_1.0_0.95"]["advantages"])
    ret = torch.tensor(out["gae_1.0_0.95"]["returns"])
    cliprange, cliprange_value = 0.2, 0.2
    new_logprobs = (logprobs + rnd(B, T, scale=0.3)).requires_grad_()
    logprobs_diff = new_logprobs - logprobs
    ratio = torch.exp(logprobs_diff)
    pg_losses = -adv * ratio
    pg_losses2 = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    (g_pg,) = torch.autograd.grad(pg_loss, new_logprobs)
    vpred = (values + rnd(B, T, scale=0.5)).requires_grad_()
    vpredclipped = torch.clamp(vpred, values - cliprange_value, values + cliprange_value)
    vf_losses1 = torch.square(vpred - ret)
    vf_losses2 = torch.square(vpredclipped - ret)
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    (g_vf,) = torch.autograd.grad(vf_loss, vpred)
    out["clipped"] = {
        "cliprange": cliprange, "cliprange_value": cliprange_value,
        "new_logprobs": L(new_logprobs), "vpred": L(vpred),
        "pg_loss": L(pg_loss), "grad_new_logprobs": L(g_pg),
        "vf_loss": L(vf_loss), "grad_vpred": L(g_vf),
        "metrics": {
            "policy/clipfrac_avg": L(masked_mean((pg_losses2 > pg_losses).double(), mask)),
            "policy/approxkl_avg": L(0.5 * (logprobs_diff**2).mean()),
            "val/ratio": L(ratio.mean()),
            "val/clipfrac_avg": L(masked_mean((vf_losses2 > vf_losses1).double(), mask)),
        },
    }
    return out


def grpo_case():
    G, n_prompts, T = 4, 2, 5
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.2, 0.2, 0.9, -0.3])
    grouped = rewards.view(-1, G)
    mean_g = grouped.mean(dim=1).repeat_interleave(G, dim=0)
    std_g = grouped.std(dim=1).repeat_interleave(G, dim=0)
    adv_unscaled = rewards - mean_g
    adv = adv_unscaled / (std_g + 1e-4)
    B = G * n_prompts
    mask = torch.ones(B, T)
    mask[1, 3:] = 0
    mask[6, 4:] = 0
    old = -rnd(B, T).abs() - 0.3
    ref = old + rnd(B, T, scale=0.2)
    logps = (old + rnd(B, T, scale=0.3)).requires_grad_()
    eps, beta = 0.2, 0.04
    coef_1 = torch.exp(logps - old)
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps)
    per_token_loss = -torch.min(coef_1 * adv.unsqueeze(1), coef_2 * adv.unsqueeze(1))
    per_token_kl = torch.exp(ref - logps) - (ref - logps) - 1
    per_token_loss = per_token_loss + beta * per_token_kl
    loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    (g_l,) = torch.autograd.grad(loss, logps)
    region = ((coef_1 < 1 - eps) & (adv.unsqueeze(1) < 0)) | ((coef_1 > 1 + eps) & (adv.unsqueeze(1) > 0))
    return {
        "group_size": G, "rewards": L(rewards), "advantages": L(adv), "advantages_unscaled": L(adv_unscaled),
        "mask": mask.int().tolist(), "old_logprobs": L(old), "ref_logprobs": L(ref), "logprobs": L(logps),
        "epsilon": eps, "beta": beta, "loss": L(loss), "grad_logprobs": L(g_l),
        "metrics": {"kl": L(masked_mean(per_token_kl, mask)), "clip_ratio/region_mean": L(masked_mean(region.double(), mask))},
    }


def main():
    out = {
        "generator": "tools/torch_rlhf.py",
        "torch": torch.__version__,
        "logprobs": logprobs_case(),
        "reward": reward_case(),
        "dpo": dpo_case(0.0),
        "cdpo": dpo_case(0.1),
        "ppo": ppo_case(),
        "grpo": grpo_case(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
