// `moxing quantize`: write a Llama-family model as a GGUF file whose matrices are in a smaller GGML
// type (8-bit Q8_0, 4- to 6-bit Q4_0, Q5_0 and the K-quants, llama.cpp's Q4_K_M and Q5_K_M mixes, or
// float16/bfloat16), quantised as ggml's reference quantisers do, for llama.cpp and for moxing itself.

import { existsSync, realpathSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { CheckpointError } from "../io/checkpoint.js";
import { GGUFError, readGGUFHeader } from "../io/gguf.js";
import { isLlamaGGUF, type LlamaGGUFMix, loadLlamaGGUF, writeLlamaGGUF } from "../io/gguf-llama.js";
import { isLlamaDir, loadLlamaDir } from "../io/llama.js";
import { detectFormat } from "../io/model-files.js";
import type { GGMLTypeName } from "../quant/ggml.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const TYPES: Record<string, GGMLTypeName | LlamaGGUFMix> = {
  q8_0: "Q8_0",
  q5_0: "Q5_0",
  q4_0: "Q4_0",
  q4_k: "Q4_K",
  q5_k: "Q5_K",
  q6_k: "Q6_K",
  q4_k_m: "Q4_K_M",
  q5_k_m: "Q5_K_M",
  f16: "F16",
  bf16: "BF16",
  f32: "F32",
};

const HELP = `moxing quantize: write a Llama-family model as a quantised GGUF file

Usage: moxing quantize --model PATH --type TYPE --out FILE.gguf

  --model PATH   a Hugging Face directory of a Llama, Mistral, Qwen2 or Qwen3 model
                 (config.json, safetensors, tokenizer.json), or a llama/qwen2/qwen3 .gguf file
  --type TYPE    q8_0 (8.5 bits per weight with the scales), q5_0 (5.5), q4_0 (4.5), q4_k (4.5,
                 K-quant super-blocks), q5_k (5.5), q6_k (6.56), f16, bf16 or f32; or llama.cpp's
                 mixes q4_k_m and q5_k_m: q4_k (q5_k) with the output head (the embedding, where
                 tied) in q6_k, and attn_v and ffn_down in q6_k in the first and last eighth of the
                 layers and every third layer between, as llama-quantize picks them
  --out FILE     the GGUF file to write (replaced atomically; not the input file)

Every matrix is quantised, the token embedding and the output head included; norms and biases stay
float32. A matrix whose rows are not whole blocks of the type (32 values; 256 for the K-quants)
falls back as llama.cpp's llama-quantize does: q4_k and q5_k to q5_0, q6_k to q8_0, anything else to
f16. Quantisation is ggml's reference (quantize_row_q8_0_ref, _q5_0_ref, _q4_0_ref, _q4_K_ref,
_q5_K_ref, _q6_K_ref), so the bytes are those
llama.cpp's own quantiser writes for these types without an importance matrix. Matrices already in
the asked type are copied as they are.
Prints the input and output sizes as JSON.`;

export const quantizeCommand: Command = {
  summary: "write a Llama-family model as a quantised GGUF (q8_0, q4_0, q4_k, q6_k, q4_k_m, ...)",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("quantize", argv, {
      model: { type: "string" },
      type: { type: "string" },
      out: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`quantize: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("quantize: --model PATH is required");
    if (!v.out) throw new UsageError("quantize: --out FILE.gguf is required");
    if (!v.type) throw new UsageError(`quantize: --type is required (${Object.keys(TYPES).join(", ")})`);
    const type = TYPES[v.type.toLowerCase()];
    if (!type) throw new UsageError(`quantize: --type must be one of ${Object.keys(TYPES).join(", ")} (got '${v.type}')`);
    if (!v.out.toLowerCase().endsWith(".gguf")) throw new UsageError(`quantize: --out must be a .gguf file (got '${v.out}')`);
    if (existsSync(v.out) && statSync(v.out).isDirectory()) throw new UsageError(`quantize: --out '${v.out}' is a directory`);
    if (existsSync(v.out) && existsSync(v.model) && realpathSync(v.out) === realpathSync(v.model)) {
      throw new UsageError("quantize: --out is the input file; write to another file");
    }
    const format = detectFormat(v.model);
    const t0 = Date.now();
    let loaded: ReturnType<typeof loadLlamaDir>;
    try {
      if (format === "dir" && isLlamaDir(v.model)) loaded = loadLlamaDir(v.model);
      else if (format === "gguf" && isLlamaGGUF(readGGUFHeader(v.model))) loaded = loadLlamaGGUF(v.model);
      else {
        throw new CheckpointError(
          `${v.model}: not a Llama-family model (a Hugging Face Llama/Mistral/Qwen2/Qwen3 directory or a llama/qwen2/qwen3 GGUF); ` +
            "GPT models export as F32 GGUF with 'moxing export'",
        );
      }
    } catch (e) {
      if (e instanceof GGUFError) throw new CheckpointError(e.message);
      throw e;
    }
    const { model, tokenizer } = loaded;
    const tty = process.stderr.isTTY;
    try {
      const mix = type === "Q4_K_M" || type === "Q5_K_M" ? type : undefined;
      writeLlamaGGUF(v.out, model, tokenizer, {
        ...(mix ? { mix } : { type: type as GGMLTypeName }),
        onTensor: (name, i, n) => {
          if (tty) process.stderr.write(`\rquantize: ${i + 1}/${n} ${name.padEnd(32)}`);
        },
      });
    } catch (e) {
      if (e instanceof GGUFError) throw new CheckpointError(e.message);
      throw e;
    } finally {
      if (tty) process.stderr.write("\n");
    }
    const size = (p: string) => {
      const st = statSync(p);
      if (!st.isDirectory()) return st.size;
      return 0;
    };
    const out = readGGUFHeader(v.out);
    const types: Record<string, number> = {};
    for (const t of out.tensors) types[t.typeName] = (types[t.typeName] ?? 0) + 1;
    console.log(
      JSON.stringify(
        {
          model: v.model,
          out: resolve(v.out),
          type,
          architecture: out.metadata.get("general.architecture")?.value,
          tensor_types: types,
          bytes: { in: format === "dir" ? null : size(v.model), out: size(v.out) },
          seconds: Math.round((Date.now() - t0) / 100) / 10,
        },
        null,
        2,
      ),
    );
    return 0;
  },
};
