// Direct preference optimisation (Rafailov et al. 2023; TRL's DPOTrainer) on the one training loop.
//
//   reference  a frozen copy of the starting model (`ref`, default `model`), or, with LoRA, the policy
//              itself with its adapters disabled: no second copy of the weights
//   batch      batchSize preference pairs drawn at random; chosen and rejected sequences in one padded
//              batch through the policy, and (without gradients) through the reference
//   loss       dpoLoss on the summed completion log-probs (beta, cDPO label smoothing)
//   metrics    each step TRL's rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
//              logps/chosen, logps/rejected of its batch
//   eval       over the held-out pairs: eval_loss and TRL's eval_rewards/chosen, eval_rewards/rejected,
//              eval_rewards/accuracies, eval_rewards/margins, eval_logps/chosen, eval_logps/rejected

import { prepareChatModel } from "../chat/model.js";
import { loadTrainableLM } from "../io/causal-lm.js";
import type { LanguageModel } from "../models/causal.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import {
  dataDigest,
  drawBatch,
  loadPolicy,
  padBatch,
  policyFiles,
  type RlhfArgs,
  splitRecords,
  type TrainedCounts,
  trainedCounts,
} from "./common.js";
import { DatasetError, type EncodedExample, encodePreference, readPreferenceDataset } from "./datasets.js";
import { dpoLoss, type Metrics, sequenceLogprobs } from "./losses.js";
import { encodeAll, resolveArgs } from "./sft.js";

export const DPO_FORMAT = "moxing-dpo-state";

export interface DpoArgs extends RlhfArgs {
  beta: number;
  labelSmoothing: number;
  /** The reference model directory (default: `model`); not used with LoRA. */
  ref: string | null;
}

export interface DpoOptions extends Partial<DpoArgs> {
  out: string;
  resume?: boolean;
  overwrite?: boolean;
}

type Pair = { chosen: EncodedExample; rejected: EncodedExample };

/** Summed completion log-probs of B pairs under `model`: chosen (B,) and rejected (B,). */
function pairLogps(model: LanguageModel, batch: readonly Pair[]): { chosen: Tensor; rejected: Tensor; tokens: number } {
  const seqs = [...batch.map((p) => p.chosen), ...batch.map((p) => p.rejected)];
  const b = padBatch(seqs);
  const { sum } = sequenceLogprobs(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask);
  const B = batch.length;
  return { chosen: sum.slice(0, 0, B), rejected: sum.slice(0, B, 2 * B), tokens: b.tokens };
}

export async function dpo(opts: DpoOptions, hooks: LoopHooks = {}): Promise<LoopResult & TrainedCounts & { args: DpoArgs }> {
  const run = RunDirectory.open({ out: opts.out, resume: opts.resume, overwrite: opts.overwrite, format: DPO_FORMAT, kind: "DPO run" });
  const base = resolveArgs(opts, run, "dpo");
  const saved = run.saved?.args as Partial<DpoArgs> | undefined;
  const args: DpoArgs = {
    ...base,
    beta: saved?.beta ?? opts.beta ?? 0.1,
    labelSmoothing: saved?.labelSmoothing ?? opts.labelSmoothing ?? 0,
    ref: saved?.ref ?? opts.ref ?? null,
  };
  if (!(args.beta > 0)) throw new DatasetError(`dpo: beta must be > 0 (got ${args.beta})`);
  if (args.lora && args.ref)
    throw new DatasetError("dpo: with LoRA the reference is the base model with its adapters disabled; drop --ref");
  const { train, heldOut } = splitRecords(
    readPreferenceDataset(args.data),
    args.eval ? readPreferenceDataset(args.eval) : null,
    args.evalFraction,
    args.seed,
  );
  const policy = loadPolicy(args, run);
  const { model, tokenizer } = policy;

  // The reference: adapters off, or a frozen copy of the starting model (made a chat model the same way).
  let reference: (batch: readonly Pair[]) => { chosen: Tensor; rejected: Tensor };
  if (policy.lora) {
    const lora = policy.lora;
    reference = (batch) => noGrad(() => lora.withAdaptersDisabled(() => pairLogps(model, batch)));
  } else {
    const loaded = loadTrainableLM(args.ref ?? args.model);
    const ref = prepareChatModel(loaded.model, loaded.tokenizer).model;
    if (ref.vocabSize !== model.vocabSize || loaded.tokenizer.vocabSize !== tokenizer.vocabSize) {
      throw new DatasetError(
        `dpo: the reference ${args.ref ?? args.model} has another vocabulary than the policy; DPO needs the same tokenizer`,
      );
    }
    for (const p of ref.parameters()) p.requiresGrad = false;
    ref.eval();
    reference = (batch) => noGrad(() => pairLogps(ref, batch));
  }

  const maxLength = Math.min(args.maxLength || model.blockSize, model.blockSize);
  const pairs = (records: typeof train, what: string) => {
    const enc = records.map((r) => encodePreference(tokenizer, r, maxLength));
    encodeAll(enc, (e) => e.chosen, what);
    return enc;
  };
  const trainSet = pairs(train, args.data);
  const evalSet = heldOut.length ? pairs(heldOut, args.eval ?? args.data) : [];
  const digest = dataDigest(args);
  run.checkData(digest, `the data '${args.data}'`);
  const batches = new Generator(args.seed);
  if (run.saved?.rng.batches) batches.setState(run.saved.rng.batches);

  const step = (batch: readonly Pair[]) => {
    const pol = pairLogps(model, batch);
    const ref = reference(batch);
    const r = dpoLoss(
      { policyChosen: pol.chosen, policyRejected: pol.rejected, refChosen: ref.chosen, refRejected: ref.rejected },
      { beta: args.beta, labelSmoothing: args.labelSmoothing },
    );
    return { ...r, tokens: pol.tokens };
  };
  const what = policy.lora ? `LoRA r=${args.lora?.r}, reference = adapters off` : `reference ${args.ref ?? args.model}`;
  let last: Metrics = {}; // the step's rewards/* and logps/*, TRL's training metrics
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
      title: `DPO of ${args.model} (beta ${args.beta}, ${what}) on ${trainSet.length} pairs, ${evalSet.length} held out`,
      bestMetric: evalSet.length ? "loss" : undefined,
      trainStep: () => {
        const r = step(drawBatch(batches, trainSet.length, args.batchSize).map((i) => trainSet[i] as Pair));
        last = r.metrics;
        return { loss: r.loss, tokens: r.tokens };
      },
      stepMetrics: () => last,
      evaluate: evalSet.length
        ? () => {
            const total: Metrics = {};
            for (let i = 0; i < evalSet.length; i += args.batchSize) {
              const chunk = evalSet.slice(i, i + args.batchSize);
              const m = scoped(() => {
                const r = step(chunk);
                return { loss: r.loss.item(), ...r.metrics } as Metrics;
              });
              for (const [k, v] of Object.entries(m)) total[k] = (total[k] ?? 0) + v * chunk.length;
            }
            return Object.fromEntries(Object.entries(total).map(([k, v]) => [k, v / evalSet.length]));
          }
        : undefined,
      describeEval: (m) =>
        `eval loss ${m.loss?.toFixed(4)}, rewards/accuracies ${m["rewards/accuracies"]?.toFixed(3)}, rewards/margins ${m["rewards/margins"]?.toFixed(4)}`,
      modelFiles: () => policyFiles(policy, args),
      state: () => ({
        format: DPO_FORMAT,
        args,
        data: { sha256: digest, train: trainSet.length, eval: evalSet.length },
        rng: { batches: batches.getState(), dropout: policy.dropout.getState() },
      }),
    },
    hooks,
  );
  return { ...result, ...trainedCounts(policy), args };
}
