// `moxing export`: write a model as one file for another program: GGUF for llama.cpp, or the
// weights as a .safetensors state dict for PyTorch / Hugging Face.

import { outputFormat } from "../io/model-files.js";
import { convertModel } from "./convert.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing export: write a model as a GGUF file for llama.cpp (or a .safetensors file)

Usage: moxing export --model PATH --format gguf --out FILE.gguf

  --model PATH   a model directory, a .gguf file, or a .safetensors file with config.json and
                 tokenizer.json beside it
  --format F     gguf (default for a .gguf --out) or safetensors (GPT2LMHeadModel's state dict)
  --out FILE     the file to write (replaced atomically)

GGUF: version 3, llama.cpp's "gpt2" architecture, all tensors F32, with the tokenizer embedded
(tokenizer.ggml.model "gpt2", pre-tokenizer "gpt-2", tokens, token types, merges, and
<|endoftext|> as bos/eos when the tokenizer has it). llama.cpp and tools built on it
(node-llama-cpp, llama-cli) load the file, tokenize text to the same ids and continue it greedily
as moxing does (scripts/test-llamacpp.mjs checks this). Without special tokens the file has no
bos/eos ids and llama.cpp assumes id 11.

What exports: byte-level BPE tokenizers (moxing train --tokenizer bpe, or GPT-2's). A
character-level tokenizer cannot be expressed in llama.cpp's GPT-2 vocabulary (it needs byte tokens
and merges), so such models are refused: train with --tokenizer bpe to export. Learned and
sinusoidal positions export (sinusoidal as a fixed position table); rotary (rope) positions do
not. A model without biases is written with zero biases.`;

export const exportCommand: Command = {
  summary: "write a model as GGUF for llama.cpp (or .safetensors)",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("export", argv, {
      model: { type: "string" },
      out: { type: "string" },
      format: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`export: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("export: --model PATH is required");
    if (!v.out) throw new UsageError("export: --out FILE is required");
    if (v.format !== undefined && v.format !== "gguf" && v.format !== "safetensors") {
      throw new UsageError(`export: --format must be gguf or safetensors (got '${v.format}'); for a model directory use 'moxing convert'`);
    }
    const format = outputFormat(v.out, v.format);
    if (format === "dir") throw new UsageError("export: give --format gguf (or safetensors), or an --out path ending in .gguf");
    console.log(convertModel(v.model, v.out, format, "export"));
    return 0;
  },
};
