// `moxing ppo` and `moxing grpo`: thin shells over src/rlhf/ppo.ts and grpo.ts. The reward is a reward
// model directory or a JavaScript module exporting a reward function.

import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { grpo } from "../rlhf/grpo.js";
import type { OnlineArgs } from "../rlhf/online.js";
import { ppo } from "../rlhf/ppo.js";
import type { RewardFunction } from "../rlhf/rollout.js";
import { RLHF_FLAGS, RLHF_FLAGS_HELP, rlhfArgsFromFlags, trainingReport } from "./rlhf.js";
import { type Command, type FlagValues, num, parseFlags, runWithProgress, UsageError } from "./util.js";

const ONLINE_FLAGS = {
  ...RLHF_FLAGS,
  "reward-model": { type: "string" },
  "reward-function": { type: "string" },
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "missing-eos-penalty": { type: "string" },
  ref: { type: "string" },
} as const;

const ONLINE_HELP = `Reward (one of):
  --reward-model DIR        a reward model (\`moxing reward\`), scoring prompt + completion at its last token
  --reward-function FILE    a JavaScript module whose default export (or export \`reward\`) is
                            ({ prompt, completion, stopped, fields }) => number; fields are the dataset line's
  --missing-eos-penalty X   subtracted from the score of a completion that never ended its turn
Sampling (rollouts use the KV cache, prompts of one length batched together):
  --max-new-tokens 64  --temperature T  --top-k 0  --top-p 1
Reference (what the KL penalty measures against):
  --ref DIR                 default: --model itself, frozen; with --lora-r: the model with its adapters off
Data: prompts, one JSON object a line: {"prompt": "..."} or {"prompt": [...messages]} (TRL's prompt-only
format); SFT and preference files work too (their prompts; other fields reach the reward function).`;

/** The online (PPO, GRPO) arguments given on the command line, the reward loaded. */
async function onlineArgs(
  cmd: string,
  v: FlagValues<typeof ONLINE_FLAGS>,
): Promise<Partial<OnlineArgs> & { out: string; resume: boolean; overwrite: boolean; reward?: RewardFunction }> {
  const base = rlhfArgsFromFlags(cmd, v);
  const opt = (flag: keyof typeof v, o: { int?: boolean; min?: number } = {}) => {
    const value = v[flag];
    return typeof value === "string" ? num(cmd, flag, value, 0, o) : undefined;
  };
  if (!v.resume && !v["reward-model"] && !v["reward-function"])
    throw new UsageError(`${cmd}: give a reward: --reward-model DIR or --reward-function FILE.mjs`);
  if (v["reward-model"] && v["reward-function"]) throw new UsageError(`${cmd}: give --reward-model or --reward-function, not both`);
  const temperature = opt("temperature", { min: 0 });
  if (temperature === 0) throw new UsageError(`${cmd}: --temperature must be above 0 (the policy learns from its samples)`);
  const topP = opt("top-p", { min: 0 });
  if (topP !== undefined && (topP <= 0 || topP > 1)) throw new UsageError(`${cmd}: --top-p must be in (0, 1] (got '${v["top-p"]}')`);
  const rewardModule = v["reward-function"] ? resolve(v["reward-function"]) : undefined;
  const path = rewardModule ?? (base.resume ? savedRewardModule(base.out) : null);
  return {
    ...base,
    reward: path ? await importRewardFunction(path) : undefined,
    rewardModel: v["reward-model"],
    rewardModule,
    maxNewTokens: opt("max-new-tokens", { int: true, min: 1 }),
    temperature,
    topK: opt("top-k", { int: true, min: 0 }),
    topP,
    missingEosPenalty: opt("missing-eos-penalty"),
    ref: v.ref,
  };
}

/** Import a reward module: its default export or `reward` must be a function. */
export async function importRewardFunction(path: string): Promise<RewardFunction> {
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (e) {
    throw new UsageError(`cannot load the reward function ${path}: ${(e as Error).message.split("\n")[0]}`);
  }
  const fn = mod.default ?? mod.reward;
  if (typeof fn !== "function") throw new UsageError(`${path}: export a reward function (export default (sample) => number)`);
  return fn as RewardFunction;
}

function savedRewardModule(out: string): string | null {
  try {
    const state = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8")) as { args?: { rewardModule?: string | null } };
    return state.args?.rewardModule ?? null;
  } catch {
    return null; // the trainer reports a missing or broken checkpoint itself
  }
}

const PPO_FLAGS = {
  ...ONLINE_FLAGS,
  "ppo-epochs": { type: "string" },
  "mini-batch-size": { type: "string" },
  "kl-coef": { type: "string" },
  "kl-estimator": { type: "string" },
  gamma: { type: "string" },
  lam: { type: "string" },
  cliprange: { type: "string" },
  "cliprange-value": { type: "string" },
  "vf-coef": { type: "string" },
} as const;

const PPO_HELP = `moxing ppo: reinforcement learning from a reward with PPO (TRL's PPOTrainer), the RLHF of InstructGPT

Usage: moxing ppo --model DIR --data PROMPTS.jsonl --out DIR (--reward-model DIR | --reward-function FILE) [flags]
       moxing ppo --out DIR --resume

Each rollout samples one completion for --batch-size prompts, scores it, and compares the policy with a
frozen reference: the reward of each token is -kl_coef * KL, plus the score at the last token. A value
head on the policy's trunk (v_head, saved as value_head.safetensors) gives GAE advantages; then
--ppo-epochs passes over the rollout in minibatches of --mini-batch-size, one optimizer step each, with
PPO's clipped policy and value losses. metrics.jsonl has TRL's objective/kl, objective/scores,
objective/rlhf_reward, policy/approxkl_avg, policy/clipfrac_avg, val/ratio, loss/policy_avg, loss/value_avg,
... each step, and eval_score, eval_kl_per_token (greedy answers to held-out prompts).

PPO:
  --ppo-epochs 4  --mini-batch-size B (default --batch-size)  --kl-coef 0.05  --kl-estimator k1|k3
  --gamma 1  --lam 0.95  --cliprange 0.2  --cliprange-value 0.2  --vf-coef 0.1  (--temperature 0.7)

${ONLINE_HELP}

${RLHF_FLAGS_HELP}`;

export const ppoCommand: Command = {
  summary: "RLHF with PPO: a policy with a value head, KL penalty to a reference, a reward model or function",
  help: PPO_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("ppo", argv, PPO_FLAGS);
    if (positionals.length) throw new UsageError(`ppo: unexpected argument '${positionals[0]}'`);
    const args = await onlineArgs("ppo", v);
    const opt = (flag: keyof typeof v, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag];
      return typeof value === "string" ? num("ppo", flag, value, 0, o) : undefined;
    };
    const est = v["kl-estimator"];
    if (est !== undefined && est !== "k1" && est !== "k3") throw new UsageError(`ppo: --kl-estimator must be k1 or k3 (got '${est}')`);
    const r = await runWithProgress((hooks) =>
      ppo(
        {
          ...args,
          ppoEpochs: opt("ppo-epochs", { int: true, min: 1 }),
          miniBatchSize: opt("mini-batch-size", { int: true, min: 1 }),
          klCoef: opt("kl-coef", { min: 0 }),
          klEstimator: est as "k1" | "k3" | undefined,
          gamma: opt("gamma", { min: 0 }),
          lam: opt("lam", { min: 0 }),
          cliprange: opt("cliprange", { min: 0 }),
          cliprangeValue: opt("cliprange-value", { min: 0 }),
          vfCoef: opt("vf-coef", { min: 0 }),
        },
        hooks,
      ),
    );
    return report("ppo", args.out, r);
  },
};

const GRPO_FLAGS = {
  ...ONLINE_FLAGS,
  "num-generations": { type: "string" },
  beta: { type: "string" },
  epsilon: { type: "string" },
  "num-iterations": { type: "string" },
  "no-scale-rewards": { type: "boolean" },
} as const;

const GRPO_HELP = `moxing grpo: group relative policy optimisation (TRL's GRPOTrainer; DeepSeekMath)

Usage: moxing grpo --model DIR --data PROMPTS.jsonl --out DIR (--reward-model DIR | --reward-function FILE) [flags]
       moxing grpo --out DIR --resume

Each rollout samples --num-generations completions for each of --batch-size prompts; a completion's
advantage is its reward minus its group's mean, over the group's standard deviation. No value head. The
loss is PPO's clipped ratio per token plus beta * KL(policy || reference), averaged over each completion.
metrics.jsonl has TRL's reward, reward_std, frac_reward_zero_std, kl, clip_ratio/region_mean,
completions/mean_length, completions/clipped_ratio, objective/kl, and eval_score, eval_kl_per_token.

GRPO:
  --num-generations 4  --beta 0.04  --epsilon 0.2  --num-iterations 1  --no-scale-rewards  (--temperature 1)

${ONLINE_HELP}

${RLHF_FLAGS_HELP}`;

export const grpoCommand: Command = {
  summary: "RLHF with GRPO: group-relative advantages over several completions per prompt, no value head",
  help: GRPO_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("grpo", argv, GRPO_FLAGS);
    if (positionals.length) throw new UsageError(`grpo: unexpected argument '${positionals[0]}'`);
    const args = await onlineArgs("grpo", v);
    const opt = (flag: keyof typeof v, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag];
      return typeof value === "string" ? num("grpo", flag, value, 0, o) : undefined;
    };
    const g = opt("num-generations", { int: true, min: 2 });
    const r = await runWithProgress((hooks) =>
      grpo(
        {
          ...args,
          numGenerations: g,
          beta: opt("beta", { min: 0 }),
          epsilon: opt("epsilon", { min: 0 }),
          numIterations: opt("num-iterations", { int: true, min: 1 }),
          scaleRewards: v["no-scale-rewards"] ? false : undefined,
        },
        hooks,
      ),
    );
    return report("grpo", args.out, r);
  },
};

function report(
  cmd: string,
  out: string,
  r: {
    status: string;
    step: number;
    lastLoss: number | null;
    lastEval: Record<string, number> | null;
    args: OnlineArgs;
    trainable: number;
    total: number;
    arenaBytes: number;
  },
): number {
  if (r.status === "interrupted") {
    console.log(`stopped at step ${r.step}; checkpoint saved in ${out}. Resume with: moxing ${cmd} --out ${out} --resume`);
    return 130;
  }
  const e = r.lastEval;
  const evalPart = e ? `, held-out score ${e.score?.toFixed(4)}, KL/token to the reference ${e.kl_per_token?.toFixed(4)}` : "";
  console.log(
    `${r.args.lora ? "adapter" : "model"} saved in ${out} after ${r.step} steps (train loss ${r.lastLoss?.toFixed(4)}${evalPart})`,
  );
  console.log(trainingReport(r, r.args.lora !== null));
  return 0;
}
