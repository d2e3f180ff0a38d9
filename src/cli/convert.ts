// `moxing convert`: a model from one file format to another - model directory (moxing's or
// Hugging Face's GPT-2 layout), weights-only .safetensors, or GGUF for llama.cpp.

import { statSync } from "node:fs";
import { resolve } from "node:path";
import { detectFormat, loadModelFrom, type ModelFormat, outputFormat, saveModelAs } from "../io/model-files.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing convert: convert a model between file formats

Usage: moxing convert --model PATH --out PATH [--format dir|safetensors|gguf]

  --model PATH   the model: a directory (moxing's, or a Hugging Face GPT-2 checkpoint with
                 config.json, model.safetensors and tokenizer.json or vocab.json + merges.txt),
                 a .safetensors file with config.json and tokenizer.json beside it, or a .gguf file
                 of llama.cpp's gpt2 architecture
  --out PATH     where to write
  --format F     dir: a model directory in Hugging Face's GPT-2 layout (config.json,
                      model.safetensors, tokenizer.json), which transformers loads as it is
                 safetensors: the weights alone, as GPT2LMHeadModel's state dict
                 gguf: one file for llama.cpp (see 'moxing export --help' for what maps)
                 Default: from --out's extension (.gguf, .safetensors), else dir.

Converting a directory written by an older moxing to 'dir' rewrites it in the current layout.
F16 and BF16 weights are widened to F32.`;

/** Shared by convert and export: load, write, and say what was written. */
export function convertModel(input: string, out: string, format: ModelFormat, cmd: string): string {
  if (resolve(input) === resolve(out)) throw new UsageError(`${cmd}: --out is the same path as --model; write somewhere else`);
  const { model, tokenizer, format: from } = loadModelFrom(input);
  saveModelAs(out, format, model, tokenizer);
  const c = model.config;
  const size = format === "dir" ? "" : `, ${(statSync(out).size / 1e6).toFixed(1)} MB`;
  return (
    `wrote ${out} (${format}${size}) from ${input} (${from}): ${c.n_layer} layers, n_embd ${c.n_embd}, ${c.n_head} heads, ` +
    `context ${c.block_size}, vocab ${c.vocab_size}, ${tokenizer.type} tokenizer`
  );
}

export const convertCommand: Command = {
  summary: "convert a model between directory, .safetensors and .gguf",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("convert", argv, {
      model: { type: "string" },
      out: { type: "string" },
      format: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`convert: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("convert: --model PATH is required");
    if (!v.out) throw new UsageError("convert: --out PATH is required");
    if (v.format !== undefined && !["dir", "safetensors", "gguf"].includes(v.format)) {
      throw new UsageError(`convert: --format must be dir, safetensors or gguf (got '${v.format}')`);
    }
    detectFormat(v.model); // a missing input is reported before anything else
    console.log(convertModel(v.model, v.out, outputFormat(v.out, v.format), "convert"));
    return 0;
  },
};
