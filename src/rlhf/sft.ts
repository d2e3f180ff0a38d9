// Supervised fine-tuning (SFT): teach a language model to answer in the chat template and stop at the
// end of its turn, from TRL's datasets (src/rlhf/datasets.ts), on the one training loop.
//
//   batch      batchSize examples drawn at random, right-padded
//   loss       next-token cross-entropy on the completion / assistant tokens only (sftLoss)
//   eval       the same loss over the held-out examples, token-weighted: eval_loss
//   model      full fine-tuning (a base without chat tokens gets ChatML's, and a grown embedding), or
//              LoRA adapters (--lora-r) saved in PEFT's layout with the tokenizer
//
// This is a library API; `moxing sft` is a thin CLI over it.

import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import { dataDigest, drawBatch, loadPolicy, padBatch, policyFiles, RLHF_DEFAULTS, type RlhfArgs, splitRecords } from "./common.js";
import { DatasetError, type EncodedExample, encodeSFT, readSFTDataset } from "./datasets.js";
import { sftLoss } from "./losses.js";

export const SFT_FORMAT = "moxing-sft-state";

export interface SftOptions extends Partial<RlhfArgs> {
  model?: string;
  data?: string;
  out: string;
  resume?: boolean;
  overwrite?: boolean;
}

export interface SftResult extends LoopResult {
  args: RlhfArgs;
  trainable: number;
  total: number;
  trainExamples: number;
  evalExamples: number;
}

/** Resolve the arguments: a resumed run keeps its saved ones (maxSteps may grow). */
export function resolveArgs(opts: SftOptions, run: RunDirectory, command: string): RlhfArgs {
  if (run.saved) {
    const saved = run.saved.args as unknown as RlhfArgs;
    return { ...saved, maxSteps: opts.maxSteps ?? saved.maxSteps };
  }
  if (!opts.model) throw new DatasetError(`${command}: a starting model directory (--model) is required`);
  if (!opts.data) throw new DatasetError(`${command}: a dataset (--data FILE.jsonl) is required`);
  const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
  const args = { ...RLHF_DEFAULTS, ...defined, model: opts.model, data: opts.data } as RlhfArgs & {
    out?: string;
    resume?: boolean;
    overwrite?: boolean;
  };
  delete args.out;
  delete args.resume;
  delete args.overwrite;
  return args;
}

/** Encode records, dropping those with no token left to learn from after truncation. */
export function encodeAll<R>(records: readonly R[], encode: (r: R) => EncodedExample, what: string): EncodedExample[] {
  const out = records.map(encode).filter((e) => e.mask.slice(1).some((m) => m === 1));
  if (out.length === 0)
    throw new DatasetError(`${what}: no example keeps a completion token within the maximum length; raise --max-length`);
  return out;
}

export async function sft(opts: SftOptions, hooks: LoopHooks = {}): Promise<SftResult> {
  const run = RunDirectory.open({ out: opts.out, resume: opts.resume, overwrite: opts.overwrite, format: SFT_FORMAT, kind: "SFT run" });
  const args = resolveArgs(opts, run, "sft");
  const records = readSFTDataset(args.data);
  const { train, heldOut } = splitRecords(records, args.eval ? readSFTDataset(args.eval) : null, args.evalFraction, args.seed);
  const policy = loadPolicy(args, run);
  const { model, tokenizer } = policy;
  const maxLength = args.maxLength || model.blockSize;
  if (maxLength > model.blockSize)
    throw new DatasetError(`sft: --max-length ${maxLength} exceeds the model's context (${model.blockSize})`);
  const trainSet = encodeAll(train, (r) => encodeSFT(tokenizer, r, maxLength), args.data);
  const evalSet = heldOut.length ? encodeAll(heldOut, (r) => encodeSFT(tokenizer, r, maxLength), args.eval ?? args.data) : [];
  const digest = dataDigest(args);
  run.checkData(digest, `the data '${args.data}'`);
  const batches = new Generator(args.seed);
  if (run.saved?.rng.batches) batches.setState(run.saved.rng.batches);

  const counts = policy.lora ? policy.lora.trainableParameters() : { trainable: model.numParameters(), total: model.numParameters() };
  const what = policy.lora ? `LoRA r=${args.lora?.r} on ${args.lora?.targetModules.join(",")}` : "full fine-tuning";
  const title =
    `SFT of ${args.model} (${what}: ${counts.trainable.toLocaleString("en-US")} of ${counts.total.toLocaleString("en-US")} parameters trained) ` +
    `on ${trainSet.length} examples, ${evalSet.length} held out${policy.addedTokens ? `; added ${policy.addedTokens} chat tokens` : ""}`;

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
      title,
      bestMetric: evalSet.length ? "loss" : undefined,
      trainStep: () => {
        const b = padBatch(drawBatch(batches, trainSet.length, args.batchSize).map((i) => trainSet[i] as EncodedExample));
        return { loss: sftLoss(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask), tokens: b.tokens };
      },
      evaluate: evalSet.length
        ? () => {
            let total = 0;
            let count = 0;
            for (let i = 0; i < evalSet.length; i += args.batchSize) {
              const chunk = evalSet.slice(i, i + args.batchSize);
              const n = chunk.reduce((s, e) => s + e.mask.slice(1).filter((m) => m === 1).length, 0);
              total +=
                scoped(() => {
                  const b = padBatch(chunk);
                  return sftLoss(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask).item();
                }) * n;
              count += n;
            }
            return { loss: total / count };
          }
        : undefined,
      modelFiles: () => policyFiles(policy, args),
      state: () => ({
        format: SFT_FORMAT,
        args,
        data: { sha256: digest, train: trainSet.length, eval: evalSet.length },
        rng: { batches: batches.getState(), dropout: policy.dropout.getState() },
      }),
    },
    hooks,
  );
  return {
    ...result,
    args,
    trainable: counts.trainable,
    total: counts.total,
    trainExamples: trainSet.length,
    evalExamples: evalSet.length,
  };
}
