// PPO for language models (Ouyang et al. 2022, the RLHF of InstructGPT; TRL's PPOTrainer), on the one
// training loop. The policy carries a value head (TRL's AutoModelForCausalLMWithValueHead: one trunk,
// the LM head and a scalar head `v_head.summary` on the same hidden states).
//
//   rollout    batchSize prompts drawn at random; one completion each, sampled with the KV cache
//              (rollout.ts), scored by the reward; log-probs and values of the completion tokens under
//              the policy and log-probs under the frozen reference (a copy of the starting model, or
//              the policy with its LoRA adapters off)
//   rewards    per token -klCoef·KL(policy ‖ reference), the score added at the last token
//              (klPenaltyRewards); advantages and returns by GAE (γ, λ), advantages whitened
//   steps      ppoEpochs passes over the rollout in shuffled minibatches of miniBatchSize sequences;
//              each minibatch is one optimizer step of the loop: clipped policy loss + vfCoef × clipped
//              value loss. A rollout thus spans ppoEpochs × batchSize / miniBatchSize loop steps; the
//              rollout in progress is part of the checkpoint, so --resume continues it exactly
//   metrics    TRL's names each step: objective/kl, objective/entropy, objective/non_score_reward,
//              objective/rlhf_reward, objective/scores (of the current rollout), policy/approxkl_avg,
//              policy/clipfrac_avg, loss/policy_avg, loss/value_avg, val/clipfrac_avg, val/ratio,
//              val/num_eos_tokens, episode; held out: eval_score, eval_kl_per_token (greedy answers)
//
// Dropout is off in every forward pass, as TRL turns it off for PPO: the ratio of the first minibatch
// is then exactly 1.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { encodeSafetensors, readSafetensors } from "../io/safetensors.js";
import { Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { unpack } from "../nn/packing.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { scoped } from "../tensor/memory.js";
import { add, mul, reshape } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import { drawBatch, padBatch, policyFiles, type TrainedCounts, trainedCounts } from "./common.js";
import { DatasetError, type EncodedExample } from "./datasets.js";
import { gae, klPenaltyRewards, type Metrics, ppoMetrics, ppoPolicyLoss, ppoValueLoss } from "./losses.js";
import { type OnlineArgs, type OnlineOptions, permutations, setupOnline } from "./online.js";
import { completionExample, padRows, rowsOf, sampleCompletions, tokenLogprobs } from "./rollout.js";

export const PPO_FORMAT = "moxing-ppo-state";
export const VALUE_HEAD_FILE = "value_head.safetensors";

export interface PpoArgs extends OnlineArgs {
  /** Passes over each rollout (TRL's num_ppo_epochs). */
  ppoEpochs: number;
  /** Sequences per optimizer step; divides batchSize. */
  miniBatchSize: number;
  /** Weight of the per-token KL penalty in the reward (TRL's kl_coef). */
  klCoef: number;
  /** "k1" (log-ratio) or "k3" ((r - 1) - log r, never negative). */
  klEstimator: "k1" | "k3";
  gamma: number;
  lam: number;
  cliprange: number;
  cliprangeValue: number;
  /** Weight of the value loss (TRL's vf_coef). */
  vfCoef: number;
}

export const PPO_DEFAULTS = {
  ppoEpochs: 4,
  miniBatchSize: 0, // 0: batchSize (one minibatch per epoch)
  klCoef: 0.05,
  klEstimator: "k1" as "k1" | "k3",
  gamma: 1,
  lam: 0.95,
  cliprange: 0.2,
  cliprangeValue: 0.2,
  vfCoef: 0.1,
};

export type PpoOptions = OnlineOptions & Partial<PpoArgs>;

/** TRL's ValueHead: a Linear(n_embd, 1) read at every position of the trunk's hidden states. */
export class ValueHead extends Module {
  readonly summary: Linear;
  constructor(nEmbd: number, opts: { generator?: Generator } = {}) {
    super();
    this.summary = this.module("summary", new Linear(nEmbd, 1, { generator: opts.generator }));
    // Small weights and a zero bias: the first value estimates are near 0 rather than noise.
    noGrad(() => {
      this.summary.weight.normal_({ std: 0.02, generator: opts.generator ?? new Generator(0) });
      this.summary.bias?.zero_();
    });
  }
  /** h (B, T, C) -> values (B, T). */
  forward(h: Tensor): Tensor {
    const [B, T] = h.shape as [number, number, number];
    return reshape(this.summary.forward(h), [B, T]);
  }
}

/** The trained parts under TRL's names: the policy (pretrained_model: the model, or its adapters) and v_head. */
class PolicyWithValueHead extends Module {
  constructor(trainable: Module, vHead: ValueHead) {
    super();
    this.module("pretrained_model", trainable);
    this.module("v_head", vHead);
  }
}

/** The value head's file: v_head.summary.weight (1, n_embd) and v_head.summary.bias (1). */
export function valueHeadFile(v: ValueHead): Uint8Array {
  const t = (x: Tensor) => ({ dtype: "F32" as const, shape: [...x.shape], data: Float32Array.from(x.contiguousData() as Float32Array) });
  return encodeSafetensors(
    new Map([
      ["v_head.summary.weight", t(v.summary.weight)],
      ["v_head.summary.bias", t(v.summary.bias as Tensor)],
    ]),
    { format: "pt" },
  );
}

function loadValueHead(dir: string, v: ValueHead): void {
  const path = join(dir, VALUE_HEAD_FILE);
  if (!existsSync(path)) throw new DatasetError(`${path}: not found; a PPO checkpoint keeps its value head there`);
  const f = readSafetensors(path);
  const w = f.tensors.get("v_head.summary.weight");
  const b = f.tensors.get("v_head.summary.bias");
  if (!w || !b || w.data.length !== v.summary.weight.size || b.data.length !== 1) {
    throw new DatasetError(`${path}: expected v_head.summary.weight [1, ${v.summary.weight.size}] and v_head.summary.bias [1]`);
  }
  noGrad(() => {
    v.summary.weight.copy_(tensor(w.data as Float32Array, { shape: [...v.summary.weight.shape] }));
    (v.summary.bias as Tensor).copy_(tensor(b.data as Float32Array, { shape: [1] }));
  });
}

/** One rollout and where the minibatches have got to: saved with each checkpoint. */
interface PpoRollout {
  seqs: EncodedExample[];
  /** Per sequence, aligned with its tokens 1..n-1 (position t scores token t + 1). */
  mask: number[][];
  logprobs: number[][];
  values: number[][];
  advantages: number[][];
  returns: number[][];
  metrics: Metrics;
  /** ppoEpochs permutations of the sequences, one after another. */
  order: number[];
  /** Minibatches taken so far. */
  cursor: number;
}

export async function ppo(opts: PpoOptions, hooks: LoopHooks = {}): Promise<LoopResult & TrainedCounts & { args: PpoArgs }> {
  const run = RunDirectory.open({ out: opts.out, resume: opts.resume, overwrite: opts.overwrite, format: PPO_FORMAT, kind: "PPO run" });
  const s = setupOnline<PpoArgs>(opts, run, "ppo", PPO_DEFAULTS);
  const { args, policy } = s;
  const { model } = policy;
  const mb = args.miniBatchSize || args.batchSize;
  if (!Number.isInteger(mb) || mb < 1 || args.batchSize % mb !== 0) {
    throw new DatasetError(`ppo: miniBatchSize (${mb}) must divide batchSize (${args.batchSize})`);
  }
  if (!Number.isInteger(args.ppoEpochs) || args.ppoEpochs < 1)
    throw new DatasetError(`ppo: ppoEpochs must be >= 1 (got ${args.ppoEpochs})`);
  const stepsPerRollout = args.ppoEpochs * (args.batchSize / mb);

  const vHead = new ValueHead(model.hiddenSize, { generator: new Generator(args.seed + 2000) });
  if (run.saved) loadValueHead(run.out, vHead);
  const trained = new PolicyWithValueHead(policy.trainable, vHead);
  const groups = policy.lora ? [{ params: policy.lora.parameters(), weightDecay: args.weightDecay }] : model.optimGroups(args.weightDecay);
  const optimizer = new AdamW([...groups, { params: vHead.parameters(), weightDecay: 0 }], { lr: args.learningRate });

  const batches = new Generator(args.seed);
  const sampling = new Generator(args.seed + 3000);
  if (run.saved?.rng.batches) batches.setState(run.saved.rng.batches);
  if (run.saved?.rng.sampling) sampling.setState(run.saved.rng.sampling);
  let rollout = (run.saved?.rollout as PpoRollout | undefined) ?? null;
  let episode = (run.saved?.episode as number | undefined) ?? 0;
  let last: Metrics = {};

  /** Logits and values (B, T-1) of padded sequences; one padding-free forward through the trunk
   *  (values and logits at padded positions are unspecified; the losses mask them). */
  const forward = (b: ReturnType<typeof padBatch>) => {
    const { h, packing } = model.packedHiddenStates(b.x, b.lengths); // (N, C)
    const T = b.x.shape[1] as number;
    const logits = unpack(model.logitsFromHidden(h), packing); // (B, T, V)
    const values = vHead.forward(unpack(h, packing).slice(1, 0, T - 1)); // (B, T-1): the value of the state before token t + 1
    return { logits, values };
  };

  const newRollout = (): PpoRollout => {
    const picks = drawBatch(batches, s.trainIds.length, args.batchSize);
    const prompts = picks.map((i) => s.train[i] as (typeof s.train)[number]);
    const comps = sampleCompletions(
      model,
      picks.map((i) => s.trainIds[i] as number[]),
      s.rolloutOptions(sampling),
    );
    const scores = s.score(prompts, comps);
    const seqs = comps.map(completionExample);
    const lengths = seqs.map((q) => q.ids.length - 1);
    const mask = seqs.map((q) => q.mask.slice(1));
    const { logprobs, values, ref } = scoped(() =>
      noGrad(() => {
        const b = padBatch(seqs);
        const f = forward(b);
        const refLogits = s.reference((m) => m.forward(b.x, { lengths: b.lengths }).logits);
        return {
          logprobs: rowsOf(tokenLogprobs(f.logits, b.ids, b.mask, args.temperature), lengths),
          values: rowsOf(f.values, lengths).map((row, i) => row.map((v, t) => (mask[i]?.[t] ? v : 0))),
          ref: rowsOf(tokenLogprobs(refLogits, b.ids, b.mask, args.temperature), lengths),
        };
      }),
    );
    const { rewards, kl, nonScoreReward } = klPenaltyRewards(logprobs, ref, scores, mask, {
      klCoef: args.klCoef,
      estimator: args.klEstimator,
    });
    const { advantages, returns } = gae(rewards, values, mask, { gamma: args.gamma, lam: args.lam });
    episode += seqs.length;
    const metrics = {
      ...ppoMetrics(kl, nonScoreReward, logprobs, mask, scores),
      "val/num_eos_tokens": comps.filter((c) => c.stopped).length,
      "completions/mean_length": comps.reduce((a, c) => a + c.completion.length, 0) / comps.length,
    };
    return {
      seqs,
      mask,
      logprobs,
      values,
      advantages,
      returns,
      metrics,
      order: permutations(batches, seqs.length, args.ppoEpochs),
      cursor: 0,
    };
  };

  const counts = policy.lora ? policy.lora.trainableParameters() : { trainable: model.numParameters(), total: model.numParameters() };
  const what = policy.lora ? `LoRA r=${args.lora?.r}, reference = adapters off` : `reference ${args.ref ?? args.model}`;
  const reward = args.rewardModel ? `reward model ${args.rewardModel}` : "a reward function";
  const result = await runLoop(
    {
      run,
      model: trained,
      optimizer,
      schedule: { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps },
      maxSteps: args.maxSteps,
      gradClip: args.gradClip,
      evalInterval: args.evalInterval,
      checkpointInterval: args.checkpointInterval,
      title:
        `PPO of ${args.model} (${what}; ${(counts.trainable + vHead.numParameters()).toLocaleString("en-US")} parameters trained) with ${reward}: ` +
        `rollouts of ${args.batchSize} of ${s.train.length} prompts, ${stepsPerRollout} steps each; ${s.heldOut.length} held out`,
      trainStep: () => {
        // No dropout (TRL's disable_dropout): ratios compare like with like. The base model too, which
        // a LoRA policy's module tree does not reach.
        trained.eval();
        model.eval();
        if (!rollout || rollout.cursor >= stepsPerRollout) rollout = newRollout();
        const r = rollout;
        const idx = r.order.slice(r.cursor * mb, (r.cursor + 1) * mb);
        r.cursor++;
        const seqs = idx.map((i) => r.seqs[i] as EncodedExample);
        const b = padBatch(seqs);
        const T1 = (b.ids[0]?.length ?? 1) - 1;
        const pick = (rows: number[][]) =>
          padRows(
            idx.map((i) => rows[i] as number[]),
            T1,
          );
        const mask = pick(r.mask);
        const f = forward(b);
        const newLogprobs = tokenLogprobs(f.logits, b.ids, b.mask, args.temperature);
        const pg = ppoPolicyLoss(newLogprobs, pick(r.logprobs), pick(r.advantages), mask, args.cliprange);
        const vf = ppoValueLoss(f.values, pick(r.values), pick(r.returns), mask, args.cliprangeValue);
        last = { ...r.metrics, ...pg.metrics, ...vf.metrics, episode };
        return { loss: add(pg.loss, mul(vf.loss, args.vfCoef)), tokens: b.tokens };
      },
      stepMetrics: () => last,
      evaluate: s.heldOut.length ? s.evaluate : undefined,
      describeEval: (m) => `eval score ${m.score?.toFixed(4)}, KL/token ${m.kl_per_token?.toFixed(4)}, stopped ${m.stopped?.toFixed(2)}`,
      modelFiles: () => {
        const files = policyFiles(policy, args);
        files.set(VALUE_HEAD_FILE, valueHeadFile(vHead));
        return files;
      },
      state: () => ({
        format: PPO_FORMAT,
        args,
        data: { sha256: s.digest, train: s.train.length, eval: s.heldOut.length },
        rng: { batches: batches.getState(), sampling: sampling.getState(), dropout: policy.dropout.getState() },
        rollout,
        episode,
      }),
    },
    hooks,
  );
  return { ...result, ...trainedCounts(policy, vHead.numParameters()), args };
}
