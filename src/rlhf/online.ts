// The plumbing PPO (ppo.ts) and GRPO (grpo.ts) share: learning from the policy's own samples rather
// than from a fixed data set. Their arguments, the prompts (encoded once), the policy (full or LoRA),
// the frozen reference (a copy of the starting model, or the policy with its adapters off), the
// reward (a TypeScript function or a reward model directory) and the held-out evaluation: greedy
// answers to held-out prompts, their mean score and the mean per-token KL to the reference.

import { prepareChatModel } from "../chat/model.js";
import { loadTrainableLM } from "../io/causal-lm.js";
import type { LanguageModel } from "../models/causal.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { RunDirectory } from "../train/run.js";
import { dataDigest, loadPolicy, type Policy, padBatch, type RlhfArgs, splitRecords } from "./common.js";
import { DatasetError } from "./datasets.js";
import type { Metrics } from "./losses.js";
import {
  type Completion,
  completionExample,
  completionText,
  encodePromptRecord,
  type PromptRecord,
  type RewardFunction,
  type RewardSample,
  type RolloutOptions,
  readPromptDataset,
  rewardModelFunction,
  sampleCompletions,
  stopTokenIds,
  tokenKL,
} from "./rollout.js";
import { resolveArgs } from "./sft.js";

/** The settings of every online trainer (PPO, GRPO), beyond the common ones. */
export interface OnlineArgs extends RlhfArgs {
  /** Longest completion sampled, in tokens (TRL's response_length / max_completion_length). */
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  /** A reward model directory (`moxing reward`); or null with a reward function. */
  rewardModel: string | null;
  /** A JavaScript module whose default export (or `reward`) is the reward function (the CLI's --reward-function). */
  rewardModule: string | null;
  /** Subtracted from the score of a completion that never ended its turn (TRL's missing_eos_penalty). */
  missingEosPenalty: number | null;
  /** The reference model directory (default: `model`); not used with LoRA (the reference is the adapters off). */
  ref: string | null;
}

export const ONLINE_DEFAULTS = {
  maxNewTokens: 64,
  temperature: 0.7,
  topK: 0,
  topP: 1,
  rewardModel: null,
  rewardModule: null,
  missingEosPenalty: null,
  ref: null,
} satisfies Partial<OnlineArgs>;

export interface OnlineOptions extends Partial<OnlineArgs> {
  out: string;
  resume?: boolean;
  overwrite?: boolean;
  /** The reward as a TypeScript function (instead of rewardModel); give it again when resuming. */
  reward?: RewardFunction;
}

export interface OnlineSetup<A extends OnlineArgs> {
  args: A;
  policy: Policy;
  train: PromptRecord[];
  heldOut: PromptRecord[];
  /** The prompts' token ids (with the generation prompt), in the order of train / heldOut. */
  trainIds: number[][];
  evalIds: number[][];
  stopIds: Set<number>;
  digest: string;
  /** Run fn on the frozen reference (no gradients). */
  reference<T>(fn: (m: LanguageModel) => T): T;
  /** Score completions of the given prompts. */
  score(prompts: readonly PromptRecord[], completions: readonly Completion[]): number[];
  /** Rollout settings with a generator. */
  rolloutOptions(generator: Generator, greedy?: boolean): RolloutOptions;
  /** Greedy answers to the held-out prompts: score, kl_per_token, stopped, length. */
  evaluate(): Metrics;
}

/** Load everything an online trainer needs; `defaults` are the trainer's own argument defaults. */
export function setupOnline<A extends OnlineArgs>(
  opts: OnlineOptions & Partial<A>,
  run: RunDirectory,
  command: string,
  defaults: Omit<A, keyof RlhfArgs | keyof typeof ONLINE_DEFAULTS>,
): OnlineSetup<A> {
  const { reward, ...rest } = opts;
  const base = resolveArgs(rest, run, command);
  const args = (run.saved ? base : { ...ONLINE_DEFAULTS, ...defaults, ...base }) as unknown as A;
  if (!(args.temperature > 0)) {
    throw new DatasetError(`${command}: temperature must be above 0 (got ${args.temperature}); the policy learns from its samples`);
  }
  if (!Number.isInteger(args.maxNewTokens) || args.maxNewTokens < 1)
    throw new DatasetError(`${command}: maxNewTokens must be a positive integer (got ${args.maxNewTokens})`);
  if (args.lora && args.ref)
    throw new DatasetError(`${command}: with LoRA the reference is the base model with its adapters disabled; drop --ref`);
  const sources = [reward ? "a reward function" : null, args.rewardModel ? "a reward model" : null].filter(Boolean);
  if (sources.length !== 1) {
    throw new DatasetError(
      sources.length === 0
        ? `${command}: no reward: give a reward model directory (--reward-model DIR) or a reward function (--reward-function FILE.mjs)`
        : `${command}: give either a reward model or a reward function, not both`,
    );
  }

  const { train, heldOut } = splitRecords(
    readPromptDataset(args.data),
    args.eval ? readPromptDataset(args.eval) : null,
    args.evalFraction,
    args.seed,
  );
  const policy = loadPolicy(args, run);
  const { model, tokenizer } = policy;
  const block = model.blockSize;
  const maxPrompt = Math.min(args.maxLength || block, block) - 1;
  const encode = (records: PromptRecord[], what: string) => {
    const ids = records.map((r) => encodePromptRecord(tokenizer, r));
    const keep = ids.map((p) => p.length <= maxPrompt);
    if (!keep.some(Boolean)) throw new DatasetError(`${what}: no prompt leaves room for an answer in ${maxPrompt + 1} tokens`);
    return { records: records.filter((_, i) => keep[i]), ids: ids.filter((_, i) => keep[i]) };
  };
  const tr = encode(train, args.data);
  const ev = heldOut.length ? encode(heldOut, args.eval ?? args.data) : { records: [], ids: [] };

  let reference: <T>(fn: (m: LanguageModel) => T) => T;
  if (policy.lora) {
    const lora = policy.lora;
    reference = (fn) => noGrad(() => lora.withAdaptersDisabled(() => fn(model)));
  } else {
    const loaded = loadTrainableLM(args.ref ?? args.model);
    const ref = prepareChatModel(loaded.model, loaded.tokenizer).model;
    if (ref.vocabSize !== model.vocabSize || loaded.tokenizer.vocabSize !== tokenizer.vocabSize) {
      throw new DatasetError(`${command}: the reference ${args.ref ?? args.model} has another vocabulary than the policy`);
    }
    for (const p of ref.parameters()) p.requiresGrad = false;
    ref.eval();
    reference = (fn) => noGrad(() => fn(ref));
  }

  const byModel = args.rewardModel ? rewardModelFunction(args.rewardModel, { batchSize: args.batchSize }) : null;
  const score = (prompts: readonly PromptRecord[], completions: readonly Completion[]): number[] => {
    const samples: RewardSample[] = completions.map((c, i) => {
      const p = prompts[i] as PromptRecord;
      return { prompt: p.prompt, completion: completionText(tokenizer, c), stopped: c.stopped, fields: p.fields };
    });
    const raw = byModel ? byModel(samples) : samples.map((s) => (reward as RewardFunction)(s));
    return raw.map((v, i) => {
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new DatasetError(`${command}: the reward of completion ${i} is ${String(v)}; a reward must be a finite number`);
      }
      return args.missingEosPenalty !== null && !completions[i]?.stopped ? v - args.missingEosPenalty : v;
    });
  };

  const stopIds = stopTokenIds(tokenizer);
  if (stopIds.size === 0) throw new DatasetError(`${command}: the tokenizer has no end-of-turn token, so no completion could end`);
  const rolloutOptions = (generator: Generator, greedy = false): RolloutOptions => ({
    maxNewTokens: args.maxNewTokens,
    temperature: greedy ? 0 : args.temperature,
    topK: args.topK,
    topP: args.topP,
    stopIds,
    generator,
    maxBatch: Math.max(args.batchSize, 8),
  });

  const evaluate = (): Metrics => {
    const comps = sampleCompletions(model, ev.ids, rolloutOptions(new Generator(0), true));
    const scores = score(ev.records, comps);
    let klSum = 0;
    let tokens = 0;
    for (let i = 0; i < comps.length; i += args.batchSize) {
      const chunk = comps.slice(i, i + args.batchSize).map(completionExample);
      const r = scoped(() => {
        const b = padBatch(chunk);
        const lp = model.forward(b.x, { lengths: b.lengths }).logits;
        const lr = reference((m) => m.forward(b.x, { lengths: b.lengths }).logits);
        const kl = tokenKL(lp, lr).tolist() as number[][];
        let s = 0;
        let n = 0;
        b.mask.forEach((row, r) => {
          row.slice(1).forEach((m, t) => {
            if (m) {
              s += kl[r]?.[t] as number;
              n++;
            }
          });
        });
        return { s, n };
      });
      klSum += r.s;
      tokens += r.n;
    }
    const n = Math.max(comps.length, 1);
    return {
      score: scores.reduce((a, b) => a + b, 0) / n,
      kl_per_token: tokens ? klSum / tokens : 0,
      stopped: comps.filter((c) => c.stopped).length / n,
      length: comps.reduce((a, c) => a + c.completion.length, 0) / n,
    };
  };

  const digest = dataDigest(args);
  run.checkData(digest, `the data '${args.data}'`);
  return {
    args,
    policy,
    train: tr.records,
    heldOut: ev.records,
    trainIds: tr.ids,
    evalIds: ev.ids,
    stopIds,
    digest,
    reference,
    score,
    rolloutOptions,
    evaluate,
  };
}

/** `n` numbers of [0, size) in a random order, one permutation after another, drawn from g. */
export function permutations(g: Generator, size: number, n: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const p = Array.from({ length: size }, (_, i) => i);
    for (let i = size - 1; i > 0; i--) {
      const j = g.randint(i + 1);
      [p[i], p[j]] = [p[j] as number, p[i] as number];
    }
    out.push(...p);
  }
  return out;
}
