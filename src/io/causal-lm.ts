// Any decoder-only model moxing runs, from whatever file it is in: a GPT (moxing's or Hugging
// Face's GPT-2 layout, .safetensors, gpt2 GGUF) or a Llama-family model (a Hugging Face directory
// of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM, or a llama /
// qwen2 / qwen3 GGUF file). Used by the commands that generate text and by the trainers of
// src/rlhf (which load, save and merge whichever of the two they were given).

import type { GPT } from "../models/gpt.js";
import { Llama } from "../models/llama.js";
import type { Generator } from "../tensor/random.js";
import { HFTokenizer } from "../tokenizers/hf-tokenizer.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { CheckpointError } from "./checkpoint.js";
import { GGUFError, readGGUFHeader } from "./gguf.js";
import { isLlamaGGUF, loadLlamaGGUF } from "./gguf-llama.js";
import { gptModelFiles, loadModel, saveModel } from "./gpt.js";
import { isLlamaDir, llamaModelFiles, loadLlamaDirWith, readLlamaTokenizer, saveLlamaDir } from "./llama.js";
import { detectFormat, loadModelFrom, type ModelFormat } from "./model-files.js";

export interface LoadedCausalLM {
  model: GPT | Llama;
  tokenizer: Tokenizer;
  format: ModelFormat;
  /** "gpt2", or the Llama family's model_type. */
  family: string;
  /** The token that ends a reply, when the tokenizer names one. */
  eosTokenId: number | null;
}

function wrapGGUF<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GGUFError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** The Llama-family model at `path` (a directory or a GGUF file), or null when it is not one. */
function loadLlamaAt(path: string, format: ModelFormat): { model: Llama; tokenizer: Tokenizer; eos: number | null } | null {
  return wrapGGUF(() => {
    let loaded: { model: Llama; tokenizer: Tokenizer } | null = null;
    if (format === "dir" && isLlamaDir(path)) loaded = loadLlamaDirWith(path, readLlamaTokenizer);
    else if (format === "gguf" && isLlamaGGUF(readGGUFHeader(path))) loaded = loadLlamaGGUF(path);
    if (!loaded) return null;
    const own = loaded.tokenizer instanceof HFTokenizer ? loaded.tokenizer.eosTokenId : null;
    return { ...loaded, eos: own ?? firstId(loaded.model.config.eos_token_id) };
  });
}

/** Whether `path` holds a Llama-family model (a directory or GGUF file); false for anything else,
 *  a missing path included (the loader then says what is wrong). */
export function isLlamaPath(path: string): boolean {
  try {
    const format = detectFormat(path);
    return (format === "dir" && isLlamaDir(path)) || (format === "gguf" && isLlamaGGUF(readGGUFHeader(path)));
  } catch {
    return false;
  }
}

/** Load a model for generation from a directory, .safetensors or .gguf file (eval mode). */
export function loadCausalLM(path: string): LoadedCausalLM {
  const format = detectFormat(path);
  const llama = loadLlamaAt(path, format);
  if (llama) {
    const { model, tokenizer, eos } = llama;
    return { model, tokenizer, format, family: model.config.model_type, eosTokenId: eos };
  }
  const { model, tokenizer } = loadModelFrom(path);
  return { model, tokenizer, format, family: "gpt2", eosTokenId: null };
}

/**
 * Load a model to train (eval mode, as loadModel leaves it): a GPT model directory exactly as
 * loadModel reads it (`generator` drives its dropout), or a Llama-family directory or GGUF file.
 * A model with quantised weights trains only through LoRA adapters, so `forLora` must be set for one.
 */
export function loadTrainableLM(
  path: string,
  opts: { generator?: Generator; forLora?: boolean } = {},
): { model: GPT | Llama; tokenizer: Tokenizer } {
  const format = detectFormat(path);
  const llama = loadLlamaAt(path, format);
  if (!llama) {
    if (format !== "dir") throw new CheckpointError(`${path}: a GPT is trained from a model directory; convert it first (moxing convert)`);
    return loadModel(path, opts);
  }
  if (llama.model.quantized && !opts.forLora) {
    throw new CheckpointError(
      `${path}: its weights are quantised, and quantised weights cannot be trained; train LoRA adapters on it (--lora-r 8, QLoRA), ` +
        "or train the float32/F16/BF16 model (a Hugging Face directory or an F32/F16 GGUF file) fully",
    );
  }
  return { model: llama.model, tokenizer: llama.tokenizer };
}

/** The files of a model directory for either model: GPT's layout, or Hugging Face's LlamaForCausalLM. */
export function causalModelFiles(model: GPT | Llama, tokenizer: Tokenizer): Map<string, Uint8Array | string> {
  return model instanceof Llama ? llamaModelFiles(model, tokenizer) : gptModelFiles(model, tokenizer);
}

/** Save either model as a model directory. */
export function saveCausalLM(dir: string, model: GPT | Llama, tokenizer: Tokenizer): void {
  if (model instanceof Llama) saveLlamaDir(dir, model, tokenizer);
  else saveModel(dir, model, tokenizer);
}

function firstId(v: number | number[] | null): number | null {
  return Array.isArray(v) ? (v[0] ?? null) : v;
}
