// GRPO, group relative policy optimisation (Shao et al. 2024, DeepSeekMath; TRL's GRPOTrainer), on
// the one training loop and the rollout code PPO uses. No value head: each prompt gets numGenerations
// completions, and a completion's advantage is its reward against the others of its group.
//
//   rollout    batchSize prompts drawn at random, each sampled numGenerations times (the group of a
//              prompt shares one batched KV cache in rollout.ts); rewards; grpoAdvantages: reward minus
//              the group's mean, over its standard deviation (scaleRewards)
//   steps      numIterations optimizer steps on each rollout (TRL's num_iterations, μ): grpoLoss, the
//              clipped ratio to the rollout's log-probs (exactly 1 on the first iteration) plus
//              beta × k3 KL to the frozen reference, averaged over each completion's tokens
//   metrics    TRL's names: reward, reward_std, frac_reward_zero_std, kl, clip_ratio/region_mean,
//              completions/mean_length, completions/clipped_ratio; and PPO's objective/scores and
//              objective/kl (mean summed log-ratio to the reference) to compare the two; held out:
//              eval_score, eval_kl_per_token (greedy answers)

import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import { drawBatch, padBatch, policyFiles, type TrainedCounts, trainedCounts } from "./common.js";
import { DatasetError, type EncodedExample } from "./datasets.js";
import { grpoAdvantages, grpoLoss, type Metrics } from "./losses.js";
import { type OnlineArgs, type OnlineOptions, setupOnline } from "./online.js";
import { completionExample, padRows, rowsOf, sampleCompletions, tokenLogprobs } from "./rollout.js";

export const GRPO_FORMAT = "moxing-grpo-state";

export interface GrpoArgs extends OnlineArgs {
  /** Completions sampled per prompt (TRL's num_generations, G); at least 2. */
  numGenerations: number;
  /** Weight of the k3 KL to the reference in the loss (0: no reference pass). */
  beta: number;
  /** Clipping of the ratio (TRL's epsilon). */
  epsilon: number;
  /** Optimizer steps per rollout (TRL's num_iterations, μ). */
  numIterations: number;
  /** Divide advantages by the group's standard deviation (TRL's scale_rewards). */
  scaleRewards: boolean;
}

export const GRPO_DEFAULTS = { numGenerations: 4, beta: 0.04, epsilon: 0.2, numIterations: 1, scaleRewards: true, temperature: 1 };

export type GrpoOptions = OnlineOptions & Partial<GrpoArgs>;

/** One rollout (prompts × numGenerations completions) and how many steps have used it. */
interface GrpoRollout {
  seqs: EncodedExample[];
  mask: number[][];
  advantages: number[];
  /** The policy's log-probs at sampling time (only kept when numIterations > 1). */
  old: number[][] | null;
  ref: number[][] | null;
  metrics: Metrics;
  cursor: number;
}

export async function grpo(opts: GrpoOptions, hooks: LoopHooks = {}): Promise<LoopResult & TrainedCounts & { args: GrpoArgs }> {
  const run = RunDirectory.open({ out: opts.out, resume: opts.resume, overwrite: opts.overwrite, format: GRPO_FORMAT, kind: "GRPO run" });
  // GRPO samples at temperature 1 by default (TRL's GRPOConfig), PPO at 0.7.
  const s = setupOnline<GrpoArgs>(opts, run, "grpo", GRPO_DEFAULTS);
  const { args, policy } = s;
  const { model } = policy;
  const G = args.numGenerations;
  if (!Number.isInteger(G) || G < 2) throw new DatasetError(`grpo: numGenerations must be an integer >= 2 (got ${G}); a group needs two`);
  if (!Number.isInteger(args.numIterations) || args.numIterations < 1)
    throw new DatasetError(`grpo: numIterations must be >= 1 (got ${args.numIterations})`);
  if (!(args.beta >= 0)) throw new DatasetError(`grpo: beta must be >= 0 (got ${args.beta})`);

  const batches = new Generator(args.seed);
  const sampling = new Generator(args.seed + 3000);
  if (run.saved?.rng.batches) batches.setState(run.saved.rng.batches);
  if (run.saved?.rng.sampling) sampling.setState(run.saved.rng.sampling);
  let rollout = (run.saved?.rollout as GrpoRollout | undefined) ?? null;
  let episode = (run.saved?.episode as number | undefined) ?? 0;
  let last: Metrics = {};

  const newRollout = (): GrpoRollout => {
    const picks = drawBatch(batches, s.trainIds.length, args.batchSize).flatMap((i) => new Array<number>(G).fill(i));
    const prompts = picks.map((i) => s.train[i] as (typeof s.train)[number]);
    const comps = sampleCompletions(
      model,
      picks.map((i) => s.trainIds[i] as number[]),
      s.rolloutOptions(sampling),
    );
    const rewards = s.score(prompts, comps);
    const advantages = grpoAdvantages(rewards, G, { scaleRewards: args.scaleRewards });
    const seqs = comps.map(completionExample);
    const lengths = seqs.map((q) => q.ids.length - 1);
    const mask = seqs.map((q) => q.mask.slice(1));
    const needOld = args.numIterations > 1;
    const { old, ref } = scoped(() =>
      noGrad(() => {
        const b = padBatch(seqs);
        return {
          old: needOld
            ? rowsOf(tokenLogprobs(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask, args.temperature), lengths)
            : null,
          ref:
            args.beta > 0
              ? rowsOf(
                  tokenLogprobs(
                    s.reference((m) => m.forward(b.x, { lengths: b.lengths }).logits),
                    b.ids,
                    b.mask,
                    args.temperature,
                  ),
                  lengths,
                )
              : null,
        };
      }),
    );
    episode += seqs.length;
    const groupStd: number[] = [];
    for (let g = 0; g < rewards.length; g += G) {
      const grp = rewards.slice(g, g + G);
      const mu = grp.reduce((a, b) => a + b, 0) / G;
      groupStd.push(Math.sqrt(grp.reduce((a, b) => a + (b - mu) ** 2, 0) / (G - 1)));
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const metrics: Metrics = {
      reward: mean(rewards),
      reward_std: mean(groupStd),
      frac_reward_zero_std: groupStd.filter((v) => v === 0).length / groupStd.length,
      "completions/mean_length": mean(comps.map((c) => c.completion.length)),
      "completions/clipped_ratio": comps.filter((c) => !c.stopped).length / comps.length,
      "objective/scores": mean(rewards),
    };
    return { seqs, mask, advantages, old, ref, metrics, cursor: 0 };
  };

  const counts = policy.lora ? policy.lora.trainableParameters() : { trainable: model.numParameters(), total: model.numParameters() };
  const what = policy.lora ? `LoRA r=${args.lora?.r}, reference = adapters off` : `reference ${args.ref ?? args.model}`;
  const reward = args.rewardModel ? `reward model ${args.rewardModel}` : "a reward function";
  const result = await runLoop(
    {
      run,
      model: policy.trainable,
      optimizer: policy.optimizer,
      schedule: { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps },
      maxSteps: args.maxSteps,
      gradClip: args.gradClip,
      evalInterval: args.evalInterval,
      checkpointInterval: args.checkpointInterval,
      title:
        `GRPO of ${args.model} (${what}; ${counts.trainable.toLocaleString("en-US")} parameters trained) with ${reward}: ` +
        `${args.batchSize} prompts x ${G} completions per rollout, ${args.numIterations} step(s) each; ${s.train.length} prompts, ${s.heldOut.length} held out`,
      trainStep: () => {
        policy.trainable.eval(); // no dropout, as in PPO: the first iteration's ratio is exactly 1
        model.eval();
        if (!rollout || rollout.cursor >= args.numIterations) rollout = newRollout();
        const r = rollout;
        r.cursor++;
        const b = padBatch(r.seqs);
        const T1 = (b.ids[0]?.length ?? 1) - 1;
        const logprobs = tokenLogprobs(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask, args.temperature); // (B, T-1)
        const old = r.old ? padRows(r.old, T1) : (logprobs.detach().tolist() as number[][]);
        const l = grpoLoss(logprobs, old, r.advantages, padRows(r.mask, T1), {
          epsilon: args.epsilon,
          beta: args.beta,
          refLogprobs: r.ref ? padRows(r.ref, T1) : undefined,
        });
        const kl: Metrics = {};
        if (r.ref) {
          // PPO's objective/kl: the summed log-ratio to the reference, averaged over completions.
          const lp = logprobs.detach().tolist() as number[][];
          const sums = r.mask.map((row, i) =>
            row.reduce((a, m, t) => a + (m ? (lp[i]?.[t] as number) - (r.ref?.[i]?.[t] as number) : 0), 0),
          );
          kl["objective/kl"] = sums.reduce((a, v) => a + v, 0) / sums.length;
        }
        last = { ...r.metrics, ...l.metrics, ...kl, episode };
        return { loss: l.loss, tokens: b.tokens };
      },
      stepMetrics: () => last,
      evaluate: s.heldOut.length ? s.evaluate : undefined,
      describeEval: (m) => `eval score ${m.score?.toFixed(4)}, KL/token ${m.kl_per_token?.toFixed(4)}, stopped ${m.stopped?.toFixed(2)}`,
      modelFiles: () => policyFiles(policy, args),
      state: () => ({
        format: GRPO_FORMAT,
        args,
        data: { sha256: s.digest, train: s.train.length, eval: s.heldOut.length },
        rng: { batches: batches.getState(), sampling: sampling.getState(), dropout: policy.dropout.getState() },
        rollout,
        episode,
      }),
    },
    hooks,
  );
  return { ...result, ...trainedCounts(policy), args };
}
