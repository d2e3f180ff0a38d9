// The reward model: a causal transformer with a scalar head, trained on preference pairs with the
// Bradley-Terry loss (TRL's RewardTrainer), saved in Hugging Face's GPT2ForSequenceClassification
// layout (num_labels 1): transformer.* weights plus score.weight (1, n_embd), no bias. The reward of a
// sequence is the head applied to the hidden state of its last token, as transformers computes it
// (the last token before padding).
//
//   batch      batchSize pairs drawn at random; chosen and rejected sequences in one padded batch
//   loss       -log σ(r_chosen - r_rejected)
//   eval       held-out pairwise accuracy and mean margin, and the loss: eval_accuracy, eval_margin, eval_loss

import { join } from "node:path";
import { CheckpointError, configToJSON, readConfig, readRawConfig, readTokenizer, readWeights } from "../io/checkpoint.js";
import { encodeSafetensors, type SafeTensor } from "../io/safetensors.js";
import { GPT, hfStateDict, loadHFStateDict } from "../models/gpt.js";
import { Module } from "../nn/module.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { scoped } from "../tensor/memory.js";
import { contiguous, embedding, linear, reshape } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import { dataDigest, drawBatch, padBatch, type RlhfArgs, splitRecords, tokenizerFiles } from "./common.js";
import { DatasetError, type EncodedExample, encodePreference, readPreferenceDataset } from "./datasets.js";
import { rewardLoss } from "./losses.js";
import { encodeAll, resolveArgs } from "./sft.js";

export const REWARD_FORMAT = "moxing-reward-state";

/** A GPT trunk with a scalar head; parameters named as GPT2ForSequenceClassification's. */
export class RewardModel extends Module {
  readonly score: Tensor;

  constructor(
    readonly gpt: GPT,
    opts: { generator?: Generator } = {},
  ) {
    super();
    this.module("transformer", gpt.transformer);
    // transformers initialises the head N(0, initializer_range = 0.02).
    this.score = this.param("score.weight", tensor(new Float32Array(gpt.config.n_embd), { shape: [1, gpt.config.n_embd] }));
    noGrad(() => this.score.normal_({ std: 0.02, generator: opts.generator ?? new Generator(0) }));
  }

  /** ids (B, T) and the index of each row's last real token -> rewards (B,). */
  rewards(ids: Tensor, last: readonly number[]): Tensor {
    const [B, T] = ids.shape as [number, number];
    const h = contiguous(this.gpt.hiddenStates(ids)); // (B, T, C)
    const rows = tensor(
      last.map((t, b) => b * T + t),
      { dtype: "int32" },
    );
    const picked = embedding(reshape(h, [B * T, this.gpt.config.n_embd]), rows); // (B, C)
    return reshape(linear(picked, this.score), [B]);
  }
}

/** The files of a reward-model directory in GPT2ForSequenceClassification's layout. */
export function rewardModelFiles(rm: RewardModel, tokenizer: Tokenizer): Map<string, Uint8Array | string> {
  const config = {
    ...configToJSON(rm.gpt.config, { tokenizer }),
    architectures: ["GPT2ForSequenceClassification"],
    num_labels: 1,
    id2label: { "0": "LABEL_0" },
    label2id: { LABEL_0: 0 },
    pad_token_id:
      tokenizer.specialTokens.get(tokenizer.config?.pad_token ?? "") ?? configToJSON(rm.gpt.config, { tokenizer }).eos_token_id ?? 0,
  };
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of hfStateDict(rm.gpt)) if (name !== "lm_head.weight") tensors.set(name, { dtype: "F32", ...t });
  tensors.set("score.weight", {
    dtype: "F32",
    shape: [1, rm.gpt.config.n_embd],
    data: Float32Array.from(rm.score.contiguousData() as Float32Array),
  });
  const files = tokenizerFiles(tokenizer) as Map<string, Uint8Array | string>;
  files.set("config.json", `${JSON.stringify(config, null, 2)}\n`);
  files.set("model.safetensors", encodeSafetensors(tensors, { format: "pt" }));
  return files;
}

/**
 * A reward model from a directory: a reward model (GPT2ForSequenceClassification) as saved, or a
 * language model (GPT2LMHeadModel) whose trunk gets a fresh head.
 */
export function loadRewardModel(
  dir: string,
  opts: { generator?: Generator } = {},
): { model: RewardModel; tokenizer: Tokenizer; fresh: boolean } {
  const raw = readRawConfig(dir);
  const config = { ...readConfig(dir), tie_weights: true }; // the LM head is not part of a reward model
  const tokenizer = readTokenizer(dir);
  const gpt = new GPT(config, { generator: opts.generator ?? new Generator(0) });
  const rm = new RewardModel(gpt, opts);
  const { tensors, layout, source } = readWeights(dir);
  const isReward = Array.isArray(raw.architectures) && raw.architectures.includes("GPT2ForSequenceClassification");
  const score = tensors.get("score.weight");
  tensors.delete("score.weight");
  tensors.delete("lm_head.weight");
  try {
    loadHFStateDict(gpt, tensors, { layout });
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
  if (isReward) {
    const ok = score?.shape.length === 2 && score.shape[0] === 1 && score.shape[1] === config.n_embd && score.data instanceof Float32Array;
    if (!ok || !score) {
      throw new CheckpointError(`${join(dir, "model.safetensors")}: a reward model needs score.weight of shape [1, ${config.n_embd}]`);
    }
    noGrad(() => rm.score.copy_(tensor(score.data as Float32Array, { shape: [1, config.n_embd] })));
  }
  rm.eval();
  return { model: rm, tokenizer, fresh: !isReward };
}

export interface RewardOptions extends Partial<RlhfArgs> {
  out: string;
  resume?: boolean;
  overwrite?: boolean;
}

export async function trainRewardModel(opts: RewardOptions, hooks: LoopHooks = {}): Promise<LoopResult & { args: RlhfArgs }> {
  const run = RunDirectory.open({
    out: opts.out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: REWARD_FORMAT,
    kind: "reward-model run",
  });
  const args = resolveArgs(opts, run, "reward");
  if (args.lora) throw new DatasetError("reward: LoRA is not supported for reward models yet (the head must train too); train all weights");
  const { train, heldOut } = splitRecords(
    readPreferenceDataset(args.data),
    args.eval ? readPreferenceDataset(args.eval) : null,
    args.evalFraction,
    args.seed,
  );
  const dropout = new Generator(args.seed + 1000);
  const { model: rm, tokenizer } = loadRewardModel(run.saved ? run.out : args.model, { generator: dropout });
  if (run.saved?.rng.dropout) dropout.setState(run.saved.rng.dropout);
  const maxLength = Math.min(args.maxLength || rm.gpt.config.block_size, rm.gpt.config.block_size);
  const pairs = (records: typeof train, what: string) => {
    const enc = records.map((r) => encodePreference(tokenizer, r, maxLength));
    encodeAll(enc, (e) => e.chosen, what); // every pair must keep a completion
    return enc;
  };
  const trainSet = pairs(train, args.data);
  const evalSet = heldOut.length ? pairs(heldOut, args.eval ?? args.data) : [];
  const digest = dataDigest(args);
  run.checkData(digest, `the data '${args.data}'`);
  const batches = new Generator(args.seed);
  if (run.saved?.rng.batches) batches.setState(run.saved.rng.batches);
  const optimizer = new AdamW(
    [
      { params: rm.parameters().filter((p) => p.ndim >= 2), weightDecay: args.weightDecay },
      { params: rm.parameters().filter((p) => p.ndim < 2), weightDecay: 0 },
    ],
    { lr: args.learningRate },
  );
  /** Rewards of B pairs: chosen (B,) and rejected (B,). */
  const forward = (batch: readonly { chosen: EncodedExample; rejected: EncodedExample }[]) => {
    const seqs = [...batch.map((p) => p.chosen), ...batch.map((p) => p.rejected)];
    const b = padBatch(seqs);
    const r = rm.rewards(
      b.x,
      seqs.map((s) => s.ids.length - 1),
    );
    const B = batch.length;
    return { chosen: r.slice(0, 0, B), rejected: r.slice(0, B, 2 * B), tokens: b.tokens };
  };

  return {
    ...(await runLoop(
      {
        run,
        model: rm,
        optimizer,
        schedule: { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps },
        maxSteps: args.maxSteps,
        gradClip: args.gradClip,
        evalInterval: args.evalInterval,
        checkpointInterval: args.checkpointInterval,
        title: `reward model from ${args.model} (Bradley-Terry) on ${trainSet.length} pairs, ${evalSet.length} held out`,
        bestMetric: evalSet.length ? "loss" : undefined,
        trainStep: () => {
          const { chosen, rejected, tokens } = forward(
            drawBatch(batches, trainSet.length, args.batchSize).map((i) => trainSet[i] as (typeof trainSet)[number]),
          );
          return { loss: rewardLoss(chosen, rejected).loss, tokens };
        },
        evaluate: evalSet.length
          ? () => {
              let loss = 0;
              let right = 0;
              let margin = 0;
              for (let i = 0; i < evalSet.length; i += args.batchSize) {
                const chunk = evalSet.slice(i, i + args.batchSize);
                const m = scoped(() => {
                  const { chosen, rejected } = forward(chunk);
                  const r = rewardLoss(chosen, rejected);
                  return { loss: r.loss.item(), accuracy: r.metrics.accuracy ?? 0, margin: r.metrics.margin ?? 0 };
                });
                loss += m.loss * chunk.length;
                right += m.accuracy * chunk.length;
                margin += m.margin * chunk.length;
              }
              const n = evalSet.length;
              return { loss: loss / n, accuracy: right / n, margin: margin / n };
            }
          : undefined,
        modelFiles: () => rewardModelFiles(rm, tokenizer),
        state: () => ({
          format: REWARD_FORMAT,
          args,
          data: { sha256: digest, train: trainSet.length, eval: evalSet.length },
          rng: { batches: batches.getState(), dropout: dropout.getState() },
        }),
      },
      hooks,
    )),
    args,
  };
}
