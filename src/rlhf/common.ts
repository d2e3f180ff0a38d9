// What the SFT, reward-model and DPO trainers share: their arguments, loading the policy (with or
// without LoRA), the random batches, padding, and the files a checkpoint holds. The loop itself is
// src/train/loop.ts's runLoop, the same for every trainer in moxing.

import { prepareChatModel } from "../chat/model.js";
import { endOfTurnIds } from "../chat/template.js";
import { textDigest } from "../data/text.js";
import { causalModelFiles, isLlamaPath, loadTrainableLM } from "../io/causal-lm.js";
import { CheckpointError, TOKENIZER_FILE } from "../io/checkpoint.js";
import { FILE_LIMITS, readTextFileChecked } from "../io/files.js";
import { adapterFiles, loadAdapter } from "../io/lora.js";
import type { GPT } from "../models/gpt.js";
import type { Llama } from "../models/llama.js";
import { type LoraConfig, LoraModel } from "../nn/lora.js";
import type { Module } from "../nn/module.js";
import { AdamW } from "../optim/adamw.js";
import { tensor } from "../tensor/creation.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { TOKENIZER_CONFIG_FILE, type Tokenizer, tokenizerConfigToJSON } from "../tokenizers/index.js";
import type { RunDirectory } from "../train/run.js";
import type { EncodedExample } from "./datasets.js";

/** The settings every one of these trainers takes; saved in trainer_state.json. */
export interface RlhfArgs {
  /** The starting model directory (and, for LoRA runs and DPO, the base / reference). */
  model: string;
  data: string;
  /** Held-out data; without it, evalFraction of `data` is held out. */
  eval: string | null;
  evalFraction: number;
  batchSize: number;
  maxSteps: number;
  learningRate: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  evalInterval: number;
  checkpointInterval: number;
  seed: number;
  /** Longest sequence in tokens; 0: the model's block_size. */
  maxLength: number;
  /** LoRA adapters instead of full fine-tuning (null: full). */
  lora: LoraConfig | null;
}

export const RLHF_DEFAULTS: Omit<RlhfArgs, "model" | "data"> = {
  eval: null,
  evalFraction: 0.1,
  batchSize: 8,
  maxSteps: 200,
  learningRate: 1e-4,
  minLr: 1e-5,
  warmupSteps: 10,
  weightDecay: 0,
  gradClip: 1,
  evalInterval: 50,
  checkpointInterval: 100,
  seed: 1,
  maxLength: 0,
  lora: null,
};

export interface Policy {
  /** A GPT or a Llama-family model (both are LanguageModels). */
  model: GPT | Llama;
  tokenizer: Tokenizer;
  lora: LoraModel | null;
  /** What the loop trains and saves optimizer state for: the adapters, or the whole model. */
  trainable: Module;
  optimizer: AdamW;
  /** Dropout's random stream (the model's, and the adapters'), saved for exact resume. */
  dropout: Generator;
  /** Special tokens added to make the base a chat model (0 when it was one). */
  addedTokens: number;
}

/**
 * The model being trained. A fresh full fine-tune starts from `args.model`, made a chat model when
 * its tokenizer has no end-of-turn token; a resumed one continues from the checkpoint in `run.out`.
 * With LoRA the base stays `args.model` (it must be a chat model already: its frozen embedding cannot
 * learn new tokens) and the adapters start fresh or come from the checkpoint.
 */
export function loadPolicy(args: RlhfArgs, run: RunDirectory): Policy {
  const p = buildPolicy(args, run, new Generator(args.seed + 1000));
  // Restored only now: building the model and the adapters draws their initial weights from it.
  if (run.saved?.rng.dropout) p.dropout.setState(run.saved.rng.dropout);
  return p;
}

function buildPolicy(args: RlhfArgs, run: RunDirectory, dropout: Generator): Policy {
  if (args.lora) {
    // A quantised base (a Q8_0/Q4 GGUF file) is allowed here: the adapters train on its frozen blocks (QLoRA).
    const { model, tokenizer } = loadTrainableLM(args.model, { generator: dropout, forLora: true });
    if (endOfTurnIds(tokenizer).length === 0) {
      throw new CheckpointError(
        `${args.model}: its tokenizer has no end-of-turn token (e.g. <|im_end|>), and LoRA keeps the embedding frozen, so it ` +
          "could not learn one; fine-tune it fully first (`moxing sft` without --lora-r adds ChatML's tokens) and train adapters on that",
      );
    }
    const lora = run.saved ? loadAdapter(run.out, model, { generator: dropout }) : new LoraModel(model, args.lora, { generator: dropout });
    const optimizer = new AdamW([{ params: lora.parameters(), weightDecay: args.weightDecay }], { lr: args.learningRate });
    return { model, tokenizer, lora, trainable: lora, optimizer, dropout, addedTokens: 0 };
  }
  const loaded = loadTrainableLM(run.saved ? run.out : args.model, { generator: dropout });
  const { model, added } = prepareChatModel(loaded.model, loaded.tokenizer);
  const optimizer = new AdamW(model.optimGroups(args.weightDecay), { lr: args.learningRate });
  return { model, tokenizer: loaded.tokenizer, lora: null, trainable: model, optimizer, dropout, addedTokens: added };
}

/** Parameters trained and parameters in all (with LoRA: the adapters, and the base plus them). */
export interface TrainedCounts {
  trainable: number;
  total: number;
}

export function trainedCounts(p: Policy, extra = 0): TrainedCounts {
  const c = p.lora ? p.lora.trainableParameters() : { trainable: p.model.numParameters(), total: p.model.numParameters() };
  return { trainable: c.trainable + extra, total: c.total + extra };
}

/** tokenizer.json (+ tokenizer_config.json) of a tokenizer, as files. */
export function tokenizerFiles(tokenizer: Tokenizer): Map<string, string> {
  const files = new Map<string, string>([[TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON())]]);
  const config = tokenizerConfigToJSON(tokenizer);
  if (config) files.set(TOKENIZER_CONFIG_FILE, `${JSON.stringify(config, null, 2)}\n`);
  return files;
}

/** A checkpoint's model files: the adapters in PEFT's layout with the tokenizer, or the whole model. */
export function policyFiles(p: Policy, args: RlhfArgs): Map<string, Uint8Array | string> {
  return p.lora
    ? adapterFiles(p.lora, { baseModel: args.model, extra: tokenizerFiles(p.tokenizer) })
    : causalModelFiles(p.model, p.tokenizer);
}

/** The sha256 of the data files, so a resumed run refuses other data. */
export function dataDigest(args: RlhfArgs): string {
  const read = (path: string | null) => (path ? readTextFileChecked(path, { maxBytes: FILE_LIMITS.text }) : "");
  return textDigest(JSON.stringify([read(args.data), read(args.eval), args.evalFraction]));
}

/** Train and held-out records: the eval file's, or a deterministic evalFraction of the data. */
export function splitRecords<R>(records: R[], evalRecords: R[] | null, fraction: number, seed: number): { train: R[]; heldOut: R[] } {
  if (evalRecords) return { train: records, heldOut: evalRecords };
  const g = new Generator(seed + 7);
  const order = records.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = g.randint(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const n = Math.min(records.length - 1, Math.max(fraction > 0 ? 1 : 0, Math.round(records.length * fraction)));
  const held = new Set(order.slice(0, n));
  return { train: records.filter((_, i) => !held.has(i)), heldOut: records.filter((_, i) => held.has(i)) };
}

/** `n` indices drawn uniformly (with replacement) from [0, size). */
export function drawBatch(g: Generator, size: number, n: number): number[] {
  return Array.from({ length: n }, () => g.randint(size));
}

/** Right-pad sequences to one length: ids (B, T) as a tensor and as rows, masks as rows; causal
 *  attention means padding at the end never changes the positions before it. */
export function padBatch(
  examples: readonly EncodedExample[],
  padId = 0,
): { x: Tensor; ids: number[][]; mask: number[][]; tokens: number; lengths: number[] } {
  const T = Math.max(...examples.map((e) => e.ids.length));
  const ids = examples.map((e) => [...e.ids, ...new Array<number>(T - e.ids.length).fill(padId)]);
  const mask = examples.map((e) => [...e.mask, ...new Array<number>(T - e.mask.length).fill(0)]);
  // The row lengths let the model skip the padding (forward's `lengths`: padding-free training).
  const lengths = examples.map((e) => e.ids.length);
  return { x: tensor(ids, { dtype: "int32" }), ids, mask, tokens: lengths.reduce((s, l) => s + l, 0), lengths };
}

/** The Linear layers LoRA adapts unless told otherwise: GPT-2's c_attn and c_proj, or every
 *  projection of a Llama-family model (PEFT's names; what QLoRA adapts). */
export const GPT_LORA_TARGETS = ["c_attn", "c_proj"];
export const LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/** The default targets for the model at `path` (a Llama-family directory or GGUF file, else a GPT). */
export function defaultLoraTargetsFor(path: string): string[] {
  return isLlamaPath(path) ? [...LLAMA_LORA_TARGETS] : [...GPT_LORA_TARGETS];
}

/** Parse a --lora-targets list ("c_attn,c_proj"). */
export function parseTargets(list: string): string[] {
  return list
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}
