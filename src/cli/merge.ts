// `moxing merge`: fold a LoRA adapter into its base model and save the result as a plain model.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadTrainableLM, saveCausalLM } from "../io/causal-lm.js";
import { readTokenizer, TOKENIZER_FILE } from "../io/checkpoint.js";
import { readLlamaTokenizer } from "../io/llama.js";
import { loadAdapter } from "../io/lora.js";
import { Llama } from "../models/llama.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing merge: merge a LoRA adapter into its base model

Usage: moxing merge --model DIR --adapter DIR --out DIR

--model    the base model the adapter was trained on: a GPT model directory, or a Llama-family
           Hugging Face directory or F32/F16 GGUF file (quantised weights cannot take the update:
           merge into the float model, then moxing quantize)
--adapter  an adapter directory in PEFT's layout (adapter_config.json, adapter_model.safetensors), as
           written by training with --lora-r, or by PEFT
--out      where to write the merged model (a model directory; the same layout as --model)

Each adapted weight becomes W + (lora_alpha / r) * B A, so the merged model computes what the base
with the adapter computes, at the base model's speed. When the adapter directory has its own
tokenizer.json (a chat tokenizer, say), the merged model gets that tokenizer.`;

export const mergeCommand: Command = {
  summary: "merge a LoRA adapter (PEFT layout) into its base model",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("merge", argv, {
      model: { type: "string" },
      adapter: { type: "string" },
      out: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`merge: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("merge: --model DIR is required (the base model)");
    if (!v.adapter) throw new UsageError("merge: --adapter DIR is required");
    if (!v.out) throw new UsageError("merge: --out DIR is required");
    const { model, tokenizer: baseTokenizer } = loadTrainableLM(v.model, { forLora: true });
    const readTok = model instanceof Llama ? readLlamaTokenizer : readTokenizer;
    const tokenizer = existsSync(join(v.adapter, TOKENIZER_FILE)) ? readTok(v.adapter) : baseTokenizer;
    if (tokenizer.vocabSize > model.config.vocab_size) {
      throw new UsageError(
        `merge: the adapter's tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}; was the adapter trained on another base?`,
      );
    }
    const lora = loadAdapter(v.adapter, model);
    const { trainable } = lora.trainableParameters();
    try {
      lora.merge();
    } catch (e) {
      throw new UsageError(`merge: ${(e as Error).message.replace(/^LoRA: merge: /, "")}`);
    }
    saveCausalLM(v.out, model, tokenizer);
    console.error(`merged ${lora.adapters.size} adapted layers (${trainable} adapter parameters) into ${v.out}`);
    return 0;
  },
};
