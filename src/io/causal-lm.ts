// Any decoder-only model moxing runs, from whatever file it is in: a GPT (moxing's or Hugging
// Face's GPT-2 layout, .safetensors, gpt2 GGUF) or a Llama-family model (a Hugging Face directory
// of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM, or a llama /
// qwen2 / qwen3 GGUF file). Used by the commands that generate text.

import type { GPT } from "../models/gpt.js";
import type { Llama } from "../models/llama.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { CheckpointError } from "./checkpoint.js";
import { GGUFError, readGGUFHeader } from "./gguf.js";
import { isLlamaGGUF, loadLlamaGGUF } from "./gguf-llama.js";
import { isLlamaDir, loadLlamaDir } from "./llama.js";
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

/** Load a model for generation from a directory, .safetensors or .gguf file (eval mode). */
export function loadCausalLM(path: string): LoadedCausalLM {
  const format = detectFormat(path);
  try {
    if (format === "dir" && isLlamaDir(path)) {
      const { model, tokenizer, config } = loadLlamaDir(path);
      return { model, tokenizer, format, family: config.model_type, eosTokenId: tokenizer.eosTokenId ?? firstId(config.eos_token_id) };
    }
    if (format === "gguf" && isLlamaGGUF(readGGUFHeader(path))) {
      const { model, tokenizer, config } = loadLlamaGGUF(path);
      return { model, tokenizer, format, family: config.model_type, eosTokenId: tokenizer.eosTokenId ?? firstId(config.eos_token_id) };
    }
  } catch (e) {
    if (e instanceof GGUFError) throw new CheckpointError(e.message);
    throw e;
  }
  const { model, tokenizer } = loadModelFrom(path);
  return { model, tokenizer, format, family: "gpt2", eosTokenId: null };
}

function firstId(v: number | number[] | null): number | null {
  return Array.isArray(v) ? (v[0] ?? null) : v;
}
