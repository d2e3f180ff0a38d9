// The reward model: a causal transformer with a scalar head, trained on preference pairs with the
// Bradley-Terry loss (TRL's RewardTrainer), saved in Hugging Face's GPT2ForSequenceClassification
// layout (num_labels 1): transformer.* weights plus score.weight (1, n_embd), no bias; or, for a
// Llama-family trunk, LlamaForSequenceClassification's (Qwen2..., Qwen3..., Mistral...): model.*
// weights plus score.weight (1, hidden_size). The reward of a sequence is the head applied to the
// hidden state of its last token, as transformers computes it (the last token before padding).
//
//   batch      batchSize pairs drawn at random; chosen and rejected sequences in one padded batch
//   loss       -log σ(r_chosen - r_rejected)
//   eval       held-out pairwise accuracy and mean margin, and the loss: eval_accuracy, eval_margin, eval_loss
//   LoRA       adapters on the trunk, the score head trained whole (PEFT's modules_to_save): --out holds
//              the merged reward model, ready to use, and the trunk's adapters (PEFT layout) with which
//              --resume continues from the same frozen base

import { join } from "node:path";
import { CheckpointError, configToJSON, readConfig, readRawConfig, readTokenizer, readWeights, weightFiles } from "../io/checkpoint.js";
import { emptyLlama, isLlamaDir, llamaConfigToJSON, loadLlamaWeights, readLlamaConfig, readLlamaTokenizer } from "../io/llama.js";
import { adapterFiles, loadAdapter } from "../io/lora.js";
import { readJSONFile } from "../io/model-dir.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "../io/safetensors.js";
import { GPT, hfStateDict, isConv1DWeight, loadGPTWeights, type WeightTensor } from "../models/gpt.js";
import { Llama } from "../models/llama.js";
import { LoraModel } from "../nn/lora.js";
import { Module } from "../nn/module.js";
import { transpose2d } from "../nn/state-dict.js";
import { AdamW } from "../optim/adamw.js";
import { QuantizedTensor } from "../quant/ggml.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { scoped } from "../tensor/memory.js";
import { embedding, linear, reshape } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type LoopHooks, type LoopResult, runLoop } from "../train/loop.js";
import { RunDirectory } from "../train/run.js";
import { dataDigest, drawBatch, padBatch, type RlhfArgs, splitRecords, type TrainedCounts, tokenizerFiles } from "./common.js";
import { type EncodedExample, encodePreference, readPreferenceDataset } from "./datasets.js";
import { rewardLoss } from "./losses.js";
import { encodeAll, resolveArgs } from "./sft.js";

export const REWARD_FORMAT = "moxing-reward-state";

/** A GPT or Llama trunk with a scalar head; parameters named as GPT2ForSequenceClassification's
 *  (transformer.*, score.weight) or LlamaForSequenceClassification's (model.*, score.weight). */
export class RewardModel extends Module {
  readonly score: Tensor;

  constructor(
    readonly lm: GPT | Llama,
    opts: { generator?: Generator } = {},
  ) {
    super();
    if (lm instanceof Llama) this.module("model", lm.model);
    else this.module("transformer", lm.transformer);
    // transformers initialises the head N(0, initializer_range = 0.02).
    const C = lm.hiddenSize;
    this.score = this.param("score.weight", tensor(new Float32Array(C), { shape: [1, C] }));
    noGrad(() => this.score.normal_({ std: 0.02, generator: opts.generator ?? new Generator(0) }));
  }

  /** The trunk's language model (named for the GPT it first was). */
  get gpt(): GPT | Llama {
    return this.lm;
  }

  /** The language model object itself is not in this module tree (its trunk is): keep its mode in
   *  step, so what reads it (LoRA adapters attached to it) sees the reward model's mode. */
  override train(mode = true): this {
    super.train(mode);
    this.lm.train(mode);
    return this;
  }

  /** ids (B, T), right-padded, and each row's length -> rewards (B,): the score of each row's last
   *  real token. The trunk runs padding-free (only the real positions). */
  rewards(ids: Tensor, lengths: readonly number[]): Tensor {
    const B = ids.shape[0] as number;
    const { h } = this.lm.packedHiddenStates(ids, lengths); // (N, C), row by row
    // Row b's last real token is packed row lengths[0] + ... + lengths[b] - 1.
    const last = new Int32Array(B);
    let end = 0;
    for (let b = 0; b < B; b++) {
      end += lengths[b] as number;
      last[b] = end - 1;
    }
    const picked = embedding(h, new Tensor(last, [B])); // (B, C)
    return reshape(linear(picked, this.score), [B]);
  }
}

/** What a LoRA reward model trains: the trunk's adapters and the whole score head. */
class AdaptedRewardModel extends Module {
  constructor(
    readonly lora: LoraModel,
    rm: RewardModel,
  ) {
    super();
    this.module("lora", lora);
    this.param("score.weight", rm.score);
  }
  /** Training mode reaches the frozen trunk too (its dropout), which is not in this module tree. */
  override train(mode = true): this {
    super.train(mode);
    this.lora.train(mode);
    return this;
  }
}

/** The files of a reward-model directory in GPT2ForSequenceClassification's layout; with `lora`, its
 *  adapters merged into the written weights (the model in memory is left as it is). */
export function rewardModelFiles(rm: RewardModel, tokenizer: Tokenizer, lora?: LoraModel | null): Map<string, Uint8Array | string> {
  if (rm.lm instanceof Llama) return llamaRewardModelFiles(rm, rm.lm, tokenizer, lora);
  const gpt = rm.lm;
  const config = {
    ...configToJSON(gpt.config, { tokenizer }),
    architectures: ["GPT2ForSequenceClassification"],
    num_labels: 1,
    id2label: { "0": "LABEL_0" },
    label2id: { LABEL_0: 0 },
    pad_token_id:
      tokenizer.specialTokens.get(tokenizer.config?.pad_token ?? "") ?? configToJSON(gpt.config, { tokenizer }).eos_token_id ?? 0,
  };
  const tensors = new Map<string, SafeTensor>();
  const sd = hfStateDict(gpt);
  for (const [path, adapter] of lora?.adapters ?? []) {
    const name = `${path}.weight`;
    const t = sd.get(name) as WeightTensor;
    const delta = adapter.deltaWeight(); // (out, in)
    const [out, inF] = delta.shape as [number, number];
    const d = isConv1DWeight(name)
      ? transpose2d(delta.contiguousData() as Float32Array, out, inF)
      : (delta.contiguousData() as Float32Array);
    const data = Float32Array.from(t.data as Float32Array);
    for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) + (d[i] as number);
    sd.set(name, { shape: t.shape, data });
  }
  for (const [name, t] of sd) if (name !== "lm_head.weight") tensors.set(name, { dtype: "F32", ...t });
  tensors.set("score.weight", {
    dtype: "F32",
    shape: [1, gpt.config.n_embd],
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
  if (isLlamaDir(dir)) return loadLlamaRewardModel(dir, opts);
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
    loadGPTWeights(gpt, tensors, { layout });
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

/** score.weight from a directory's weight files, or null when it has none. */
function readScoreWeight(dir: string): Float32Array | null {
  for (const file of weightFiles(dir)) {
    let t: ReturnType<typeof readSafetensors>["tensors"];
    try {
      t = readSafetensors(file, { only: (name) => name === "score.weight" }).tensors;
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
      throw e;
    }
    const score = t.get("score.weight");
    if (score) {
      if (!(score.data instanceof Float32Array)) throw new CheckpointError(`${file}: score.weight must be floating point`);
      return score.data;
    }
  }
  return null;
}

/** A Llama-family reward model directory (LlamaForSequenceClassification and its Qwen/Mistral
 *  siblings), or a Llama-family language model whose trunk gets a fresh head. */
function loadLlamaRewardModel(dir: string, opts: { generator?: Generator }): { model: RewardModel; tokenizer: Tokenizer; fresh: boolean } {
  const raw = readJSONFile(join(dir, "config.json")) as Record<string, unknown>;
  const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : "";
  const isReward = arch.endsWith("ForSequenceClassification");
  // The LM head is not part of a reward model: tie it, so it is neither built nor read.
  const config = { ...readLlamaConfig(dir), tie_word_embeddings: true };
  const tokenizer = readLlamaTokenizer(dir);
  const { model, weights } = emptyLlama(config);
  loadLlamaWeights(dir, model, weights, { skip: (name) => name === "score.weight" || name === "lm_head.weight" });
  const rm = new RewardModel(model, opts);
  if (isReward) {
    const score = readScoreWeight(dir);
    const C = config.hidden_size;
    if (!score || score.length !== C) throw new CheckpointError(`${dir}: a reward model needs score.weight of shape [1, ${C}]`);
    noGrad(() => rm.score.copy_(tensor(score, { shape: [1, C] })));
  }
  rm.eval();
  return { model: rm, tokenizer, fresh: !isReward };
}

/** LlamaForSequenceClassification's files (or Qwen2's, Qwen3's, Mistral's): model.* (every weight,
 *  quantised ones decoded, `lora`'s adapters merged in) and score.weight, without the LM head. */
function llamaRewardModelFiles(
  rm: RewardModel,
  llama: Llama,
  tokenizer: Tokenizer,
  lora?: LoraModel | null,
): Map<string, Uint8Array | string> {
  const base = llamaConfigToJSON(llama.config);
  const eos = Array.isArray(llama.config.eos_token_id) ? llama.config.eos_token_id[0] : llama.config.eos_token_id;
  const config = {
    ...base,
    architectures: [(base.architectures as string[])[0]?.replace(/ForCausalLM$/, "ForSequenceClassification")],
    num_labels: 1,
    id2label: { "0": "LABEL_0" },
    label2id: { LABEL_0: 0 },
    pad_token_id: tokenizer.specialTokens.get(tokenizer.config?.pad_token ?? tokenizer.config?.eos_token ?? "") ?? eos ?? 0,
  };
  const tensors = new Map<string, SafeTensor>();
  const f32 = (t: Tensor) => Float32Array.from(t.contiguousData() as Float32Array);
  for (const [name, t] of llama.stateDict())
    if (name !== "lm_head.weight") tensors.set(name, { dtype: "F32", shape: [...t.shape], data: f32(t) });
  for (const [path, m] of llama.namedModules()) {
    const w = (m as { weight?: unknown }).weight;
    if (w instanceof QuantizedTensor && path !== "lm_head")
      tensors.set(`${path}.weight`, { dtype: "F32", shape: [...w.shape], data: w.toFloat32() });
  }
  for (const [path, adapter] of lora?.adapters ?? []) {
    const t = tensors.get(`${path}.weight`) as SafeTensor;
    const d = adapter.deltaWeight().contiguousData() as Float32Array; // (out, in), as the weight
    const data = t.data as Float32Array;
    for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) + (d[i] as number);
  }
  tensors.set("score.weight", { dtype: "F32", shape: [1, llama.hiddenSize], data: f32(rm.score) });
  const files = tokenizerFiles(tokenizer) as Map<string, Uint8Array | string>;
  files.set("config.json", `${JSON.stringify(config, null, 2)}\n`);
  files.set("model.safetensors", encodeSafetensors(tensors, { format: "pt" }));
  return files;
}

export interface RewardOptions extends Partial<RlhfArgs> {
  out: string;
  resume?: boolean;
  overwrite?: boolean;
}

export async function trainRewardModel(
  opts: RewardOptions,
  hooks: LoopHooks = {},
): Promise<LoopResult & TrainedCounts & { args: RlhfArgs }> {
  const run = RunDirectory.open({
    out: opts.out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: REWARD_FORMAT,
    kind: "reward-model run",
  });
  const args = resolveArgs(opts, run, "reward");
  const { train, heldOut } = splitRecords(
    readPreferenceDataset(args.data),
    args.eval ? readPreferenceDataset(args.eval) : null,
    args.evalFraction,
    args.seed,
  );
  const dropout = new Generator(args.seed + 1000);
  // With LoRA the frozen trunk is always args.model's; the head and the adapters come from the checkpoint.
  const { model: rm, tokenizer } = loadRewardModel(run.saved && !args.lora ? run.out : args.model, { generator: dropout });
  let lora: LoraModel | null = null;
  if (args.lora) {
    if (run.saved) {
      const score = readScoreWeight(run.out);
      if (!score || score.length !== rm.score.size) throw new CheckpointError(`${run.out}: the checkpoint has no score.weight`);
      noGrad(() => rm.score.copy_(tensor(score, { shape: [...rm.score.shape] })));
    }
    lora = run.saved ? loadAdapter(run.out, rm.gpt, { generator: dropout }) : new LoraModel(rm.gpt, args.lora, { generator: dropout });
  }
  if (run.saved?.rng.dropout) dropout.setState(run.saved.rng.dropout);
  const trained: Module = lora ? new AdaptedRewardModel(lora, rm) : rm;
  const maxLength = Math.min(args.maxLength || rm.lm.blockSize, rm.lm.blockSize);
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
      { params: trained.parameters().filter((p) => p.ndim >= 2), weightDecay: args.weightDecay },
      { params: trained.parameters().filter((p) => p.ndim < 2), weightDecay: 0 },
    ],
    { lr: args.learningRate },
  );
  /** Rewards of B pairs: chosen (B,) and rejected (B,). */
  const forward = (batch: readonly { chosen: EncodedExample; rejected: EncodedExample }[]) => {
    const seqs = [...batch.map((p) => p.chosen), ...batch.map((p) => p.rejected)];
    const b = padBatch(seqs);
    const r = rm.rewards(b.x, b.lengths);
    const B = batch.length;
    return { chosen: r.slice(0, 0, B), rejected: r.slice(0, B, 2 * B), tokens: b.tokens };
  };

  return {
    ...(await runLoop(
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
          `reward model from ${args.model} (Bradley-Terry${lora ? `, LoRA r=${args.lora?.r} and the score head` : ""}; ` +
          `${trained.numParameters().toLocaleString("en-US")} parameters trained) on ${trainSet.length} pairs, ${evalSet.length} held out`,
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
        modelFiles: () => {
          const files = rewardModelFiles(rm, tokenizer, lora);
          if (lora) for (const [name, data] of adapterFiles(lora, { baseModel: args.model })) files.set(name, data);
          return files;
        },
        state: () => ({
          format: REWARD_FORMAT,
          args,
          data: { sha256: digest, train: trainSet.length, eval: evalSet.length },
          rng: { batches: batches.getState(), dropout: dropout.getState() },
        }),
      },
      hooks,
    )),
    trainable: trained.numParameters(),
    total: rm.numParameters() + (lora ? lora.numParameters() : 0),
    args,
  };
}
