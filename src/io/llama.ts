// Llama-family models in Hugging Face's layout: a directory with config.json (LlamaConfig,
// MistralConfig, Qwen2Config or Qwen3Config keys), the weights in model.safetensors or in shards
// listed by model.safetensors.index.json (float32, float16 or bfloat16, Hugging Face's parameter
// names), tokenizer.json and tokenizer_config.json. Read and written.
//
// Loading builds the model with uninitialised weights (nn/quantized.ts ParamFactory), moves them
// into their final memory, and then reads each tensor of the files straight into its parameter:
// float32 bytes land in place; float16/bfloat16 go through a bounded buffer and are widened into
// it. Nothing is read twice and no second copy of the model is ever alive.

import { closeSync, existsSync, mkdirSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import {
  LLAMA_MODEL_TYPES,
  Llama,
  type LlamaConfig,
  type LlamaModelType,
  type LlamaOptions,
  validateLlamaConfig,
} from "../models/llama.js";
import type { AnyWeight } from "../nn/quantized.js";
import type { RopeScaling } from "../nn/rotary.js";
import { halfToFloatTable, QuantizedTensor } from "../quant/ggml.js";
import { empty } from "../tensor/creation.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { readTokenizerConfig, TOKENIZER_CONFIG_FILE, tokenizerConfigToJSON } from "../tokenizers/config.js";
import { HFTokenizer } from "../tokenizers/hf-tokenizer.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import {
  CheckpointError,
  CONFIG_FILE,
  checkModelDir,
  commitFiles,
  MODEL_FILE,
  readJSONFile,
  readTokenizer,
  TOKENIZER_FILE,
  weightFiles,
} from "./checkpoint.js";
import { encodeSafetensors, quoteName, readSafetensorsHeader, type SafeTensor, SafetensorsError } from "./safetensors.js";

const ARCHITECTURES: Record<LlamaModelType, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Whether a parsed config.json describes a model this file loads (by model_type or architecture). */
export function isLlamaConfigJSON(json: unknown): boolean {
  if (!isRecord(json)) return false;
  if ((LLAMA_MODEL_TYPES as readonly unknown[]).includes(json.model_type)) return true;
  const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  return Object.values(ARCHITECTURES).includes(arch as string);
}

/**
 * A LlamaConfig from parsed config.json. Features the model file does not implement (another
 * activation, MLP biases, YaRN / dynamic / LongRoPE scaling, quantisation schemes such as GPTQ)
 * are refused by name; `source` names the file in errors.
 */
export function llamaConfigFromJSON(json: unknown, source = CONFIG_FILE): LlamaConfig {
  const bad = (msg: string): never => {
    throw new CheckpointError(`${source}: ${msg}`);
  };
  if (!isRecord(json)) return bad("expected a JSON object");
  let type = json.model_type as LlamaModelType;
  if (!(LLAMA_MODEL_TYPES as readonly unknown[]).includes(type)) {
    const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
    const found = Object.entries(ARCHITECTURES).find(([, a]) => a === arch);
    if (!found) {
      bad(
        `model_type is ${JSON.stringify(json.model_type)}; the Llama loader reads ${LLAMA_MODEL_TYPES.join(", ")} (${Object.values(ARCHITECTURES).join(", ")})`,
      );
    }
    type = (found as [LlamaModelType, string])[0];
  }
  const int = (k: string, fallback?: number): number => {
    const v = json[k] ?? fallback;
    if (!Number.isInteger(v) || (v as number) < 1) bad(`${k} must be a positive integer (got ${JSON.stringify(json[k])})`);
    return v as number;
  };
  const num = (k: string, fallback: number): number => {
    const v = json[k] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) bad(`${k} must be a number (got ${JSON.stringify(json[k])})`);
    return v as number;
  };
  const act = json.hidden_act ?? "silu";
  if (act !== "silu" && act !== "swish") bad(`hidden_act is ${JSON.stringify(act)}; Llama-family models use "silu"`);
  if (json.mlp_bias === true) bad("mlp_bias is true; the Llama model file has bias-free MLPs");
  if (json.quantization_config != null) {
    const method = isRecord(json.quantization_config) ? json.quantization_config.quant_method : undefined;
    bad(
      `the weights are quantised with ${JSON.stringify(method ?? "an unknown method")} (quantization_config); use the model's GGUF file instead`,
    );
  }
  const heads = int("num_attention_heads");
  const hidden = int("hidden_size");
  const config: LlamaConfig = {
    model_type: type,
    vocab_size: int("vocab_size"),
    hidden_size: hidden,
    intermediate_size: int("intermediate_size"),
    num_hidden_layers: int("num_hidden_layers"),
    num_attention_heads: heads,
    num_key_value_heads: int("num_key_value_heads", heads),
    head_dim: json.head_dim == null ? hidden / heads : int("head_dim"),
    max_position_embeddings: int("max_position_embeddings", 2048),
    rms_norm_eps: num("rms_norm_eps", 1e-6),
    rope_theta: num("rope_theta", 10000),
    rope_scaling: ropeScalingFromJSON(json.rope_scaling, bad),
    attention_bias: json.attention_bias === true,
    tie_word_embeddings: json.tie_word_embeddings === true,
    initializer_range: num("initializer_range", 0.02),
    bos_token_id: Number.isInteger(json.bos_token_id) ? (json.bos_token_id as number) : null,
    eos_token_id: Number.isInteger(json.eos_token_id) || Array.isArray(json.eos_token_id) ? (json.eos_token_id as number | number[]) : null,
    sliding_window: slidingWindow(json, type),
  };
  if (!Number.isInteger(config.head_dim)) bad(`hidden_size ${hidden} is not divisible by num_attention_heads ${heads}; give head_dim`);
  try {
    validateLlamaConfig(config);
  } catch (e) {
    bad((e as Error).message);
  }
  return config;
}

/** The window of sliding-window attention when it is on (Mistral v0.1; Qwen with use_sliding_window). */
function slidingWindow(json: Record<string, unknown>, type: LlamaModelType): number | null {
  const w = json.sliding_window;
  if (!Number.isInteger(w) || (w as number) < 1) return null;
  if (type === "qwen2" || type === "qwen3") return json.use_sliding_window === true ? (w as number) : null;
  return w as number;
}

function ropeScalingFromJSON(v: unknown, bad: (msg: string) => never): RopeScaling | null {
  if (v == null) return null;
  if (!isRecord(v)) return bad(`rope_scaling must be an object or null (got ${JSON.stringify(v)})`);
  const type = v.rope_type ?? v.type;
  const n = (k: string, fallback?: number): number => {
    const x = v[k] ?? fallback;
    if (typeof x !== "number" || !(x > 0)) bad(`rope_scaling.${k} must be a positive number (got ${JSON.stringify(v[k])})`);
    return x as number;
  };
  if (type === "default") return null;
  if (type === "linear") return { rope_type: "linear", factor: n("factor") };
  if (type === "llama3") {
    return {
      rope_type: "llama3",
      factor: n("factor"),
      low_freq_factor: n("low_freq_factor", 1),
      high_freq_factor: n("high_freq_factor", 4),
      original_max_position_embeddings: n("original_max_position_embeddings", 8192),
    };
  }
  return bad(`rope_scaling type ${JSON.stringify(type)} is not supported (moxing implements "llama3" and "linear")`);
}

/** config.json for a LlamaConfig, with the keys its Hugging Face class writes. */
export function llamaConfigToJSON(c: LlamaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [ARCHITECTURES[c.model_type]],
    model_type: c.model_type,
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    hidden_act: "silu",
    max_position_embeddings: c.max_position_embeddings,
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    rope_scaling: c.rope_scaling,
    attention_bias: c.attention_bias,
    attention_dropout: 0,
    tie_word_embeddings: c.tie_word_embeddings,
    initializer_range: c.initializer_range,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id,
    torch_dtype: "float32",
    use_cache: true,
  };
  if (c.sliding_window !== null) {
    out.sliding_window = c.sliding_window;
    if (c.model_type === "qwen2" || c.model_type === "qwen3") out.use_sliding_window = true;
  }
  return out;
}

// ---- building a model for a loader -------------------------------------------------------------------

/**
 * A Llama whose weights are uninitialised buffers, handed out by name so a loader can fill them in
 * place: float32 tensors, or QuantizedTensors where `quantized` gives a GGML type for the name.
 * Returns the model and every weight by its Hugging Face name.
 */
export function emptyLlama(
  config: LlamaConfig,
  opts: Omit<LlamaOptions, "params"> & { quantized?: (name: string, shape: number[]) => QuantizedTensor | null } = {},
): { model: Llama; weights: Map<string, AnyWeight> } {
  const weights = new Map<string, AnyWeight>();
  const model = new Llama(config, {
    ...opts,
    params: (name, shape) => {
      const w: AnyWeight = (shape.length === 2 ? opts.quantized?.(name, shape) : null) ?? empty(shape);
      weights.set(name, w);
      return w;
    },
  });
  return { model, weights };
}

/** The bytes of a float32 tensor's elements, as a view of its own memory. */
export function tensorBytesView(t: Tensor): Uint8Array {
  const d = t.data as Float32Array;
  return new Uint8Array(d.buffer, d.byteOffset + 4 * t.offset, 4 * t.size);
}

/** Read `length` bytes at file position `pos` into `dst`; false if the file ends first. */
export function readFully(fd: number, dst: Uint8Array, pos: number): boolean {
  let got = 0;
  while (got < dst.length) {
    const n = readSync(fd, dst, got, dst.length - got, pos + got);
    if (n === 0) return false;
    got += n;
  }
  return true;
}

/** Widen little-endian float16/bfloat16 values into float32 (exact). */
export function widenInto(dtype: "F16" | "BF16", src: Uint8Array, dst: Float32Array, dstOff: number): void {
  const n = src.length / 2;
  if (dtype === "F16") {
    const half = halfToFloatTable();
    for (let i = 0; i < n; i++) dst[dstOff + i] = half[(src[2 * i] as number) | ((src[2 * i + 1] as number) << 8)] as number;
  } else {
    const bits = new Uint32Array(dst.buffer, dst.byteOffset + 4 * dstOff, n);
    for (let i = 0; i < n; i++) bits[i] = (((src[2 * i] as number) | ((src[2 * i + 1] as number) << 8)) << 16) >>> 0;
  }
}

/** Widening reads go through a buffer of at most this many bytes. */
const CHUNK = 8 << 20;

/** Read a tensor of `dtype` at file position `pos` into a float32 tensor (F32 in place; F16/BF16 widened). */
export function readIntoTensor(fd: number, pos: number, dtype: "F32" | "F16" | "BF16", t: Tensor, what: string): void {
  if (dtype === "F32") {
    if (!readFully(fd, tensorBytesView(t), pos)) throw new CheckpointError(`${what}: the file ended inside it; it is truncated`);
    return;
  }
  const d = t.data as Float32Array;
  const total = t.size;
  const per = CHUNK / 2;
  const buf = new Uint8Array(2 * Math.min(per, total));
  for (let i = 0; i < total; i += per) {
    const n = Math.min(per, total - i);
    const b = buf.subarray(0, 2 * n);
    if (!readFully(fd, b, pos + 2 * i)) throw new CheckpointError(`${what}: the file ended inside it; it is truncated`);
    widenInto(dtype, b, d, t.offset + i);
  }
}

// ---- reading a directory -----------------------------------------------------------------------------

/** Whether `dir` holds a Llama-family model (its config.json says so). */
export function isLlamaDir(dir: string): boolean {
  const p = join(dir, CONFIG_FILE);
  if (!existsSync(p)) return false;
  try {
    return isLlamaConfigJSON(readJSONFile(p));
  } catch {
    return false;
  }
}

export function readLlamaConfig(dir: string): LlamaConfig {
  checkModelDir(dir);
  const p = join(dir, CONFIG_FILE);
  return llamaConfigFromJSON(readJSONFile(p), p);
}

/** tokenizer.json (with tokenizer_config.json when present) of a directory. */
export function readHFTokenizer(dir: string): HFTokenizer {
  const p = join(dir, TOKENIZER_FILE);
  if (!existsSync(p)) {
    throw new CheckpointError(
      `${p}: file not found; moxing reads a Llama-family tokenizer from tokenizer.json (tokenizer.model alone, SentencePiece's protobuf, is not read)`,
    );
  }
  const json = readJSONFile(p);
  const cp = join(dir, TOKENIZER_CONFIG_FILE);
  const config = existsSync(cp) ? readJSONFile(cp) : null;
  try {
    const tokenizer = HFTokenizer.fromJSON(json, config);
    readTokenizerConfig(dir, tokenizer); // also a chat_template.jinja beside it
    return tokenizer;
  } catch (e) {
    throw new CheckpointError(`${p}: ${(e as Error).message}`);
  }
}

/**
 * A Llama directory's tokenizer: a Hugging Face tokenizer.json pipeline (HFTokenizer), or one of
 * moxing's own (the character tokenizer `moxing train --arch llama --tokenizer char` saves), read as
 * a GPT directory's tokenizer is.
 */
export function readLlamaTokenizer(dir: string): Tokenizer {
  const p = join(dir, TOKENIZER_FILE);
  if (existsSync(p)) {
    const json = readJSONFile(p);
    if (isRecord(json) && typeof json.type === "string" && !isRecord(json.model)) return readTokenizer(dir);
  }
  return readHFTokenizer(dir);
}

const SKIPPED = /(^|\.)rotary_emb\.inv_freq$/; // a buffer old checkpoints saved

/** Read a directory's safetensors weights into the model's weights, by name, checking every name and shape. */
export function loadLlamaWeights(
  dir: string,
  model: Llama,
  weights: Map<string, AnyWeight>,
  opts: { skip?: (name: string) => boolean } = {},
): void {
  const files = weightFiles(dir);
  const done = new Set<string>();
  for (const file of files) {
    let header: ReturnType<typeof readSafetensorsHeader>;
    try {
      header = readSafetensorsHeader(file);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
      throw e;
    }
    const fd = openSync(file, "r");
    try {
      for (const [name, e] of header.tensors) {
        if (SKIPPED.test(name) || opts.skip?.(name)) continue;
        if (name === "lm_head.weight" && model.config.tie_word_embeddings) continue; // the tied head is embed_tokens
        const w = weights.get(name);
        const where = `${file}: tensor ${quoteName(name)}`;
        if (!w) {
          throw new CheckpointError(
            `${where} is not a weight of a ${model.config.model_type} model with this config ` +
              `(num_hidden_layers ${model.config.num_hidden_layers}${model.config.tie_word_embeddings ? ", tied head" : ""}); do config.json and the weights belong together?`,
          );
        }
        if (done.has(name)) throw new CheckpointError(`${where} is also in another shard`);
        if (e.shape.length !== w.shape.length || e.shape.some((d, i) => d !== w.shape[i])) {
          throw new CheckpointError(`${where} has shape ${fmtShape(e.shape)} but this model needs ${fmtShape(w.shape)}`);
        }
        if (e.dtype !== "F32" && e.dtype !== "F16" && e.dtype !== "BF16") {
          throw new CheckpointError(`${where} is ${e.dtype}; moxing reads F32, F16 and BF16 weights`);
        }
        if (w instanceof QuantizedTensor)
          throw new CheckpointError(`${where}: internal error, a quantised target for a safetensors weight`);
        readIntoTensor(fd, header.dataStart + e.dataOffsets[0], e.dtype, w, where);
        done.add(name);
      }
    } finally {
      closeSync(fd);
    }
  }
  const missing = [...weights.keys()].filter((n) => !done.has(n));
  if (missing.length) {
    const list = `'${missing.slice(0, 3).join("', '")}'${missing.length > 3 ? ` (+${missing.length - 3} more)` : ""}`;
    const hint = missing.includes("lm_head.weight") ? "; the config says the head is not tied (tie_word_embeddings false)" : "";
    throw new CheckpointError(`${dir}: the weights lack ${list}${hint}`);
  }
}

/** Load a Llama-family model directory (Hugging Face's layout) in eval mode, with its tokenizer. */
export function loadLlamaDir(dir: string): { model: Llama; tokenizer: HFTokenizer; config: LlamaConfig } {
  return loadLlamaDirWith(dir, readHFTokenizer);
}

/** loadLlamaDir with any tokenizer moxing reads (readLlamaTokenizer): what the trainers load. */
export function loadLlamaDirWith<T extends Tokenizer>(
  dir: string,
  readTok: (dir: string) => T,
): { model: Llama; tokenizer: T; config: LlamaConfig } {
  const config = readLlamaConfig(dir);
  const tokenizer = readTok(dir);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new CheckpointError(`${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocab_size} embeddings`);
  }
  const { model, weights } = emptyLlama(config);
  loadLlamaWeights(dir, model, weights);
  model.eval();
  return { model, tokenizer, config };
}

/** The model's float32 weights as model.safetensors (Hugging Face's names, format "pt"). */
export function llamaSafetensors(model: Llama, opts: { skip?: (name: string) => boolean } = {}): Uint8Array {
  for (const [, m] of model.namedModules()) {
    const w = (m as { weight?: unknown }).weight;
    if (w instanceof QuantizedTensor) throw new CheckpointError("the model has quantised weights; write it as GGUF instead");
  }
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of model.stateDict()) {
    if (opts.skip?.(name)) continue;
    tensors.set(name, { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) });
  }
  return encodeSafetensors(tensors, { format: "pt" });
}

/** tokenizer.json and tokenizer_config.json of a Llama directory (bos/eos by name, the chat template). */
export function llamaTokenizerFiles(tokenizer: Tokenizer): Map<string, string> {
  const files = new Map<string, string>([[TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON())]]);
  const cfg: Record<string, unknown> = tokenizerConfigToJSON(tokenizer) ?? {
    tokenizer_class: tokenizer instanceof HFTokenizer ? "PreTrainedTokenizerFast" : undefined,
  };
  const hf = tokenizer instanceof HFTokenizer ? tokenizer : null;
  if (hf) cfg.tokenizer_class = "PreTrainedTokenizerFast"; // not GPT-2's: a tokenizer.json pipeline
  if (hf?.bosTokenId != null && cfg.bos_token == null) cfg.bos_token = hf.idToToken(hf.bosTokenId);
  if (hf?.eosTokenId != null && cfg.eos_token == null) cfg.eos_token = hf.idToToken(hf.eosTokenId);
  if (hf?.chatTemplate != null && cfg.chat_template === undefined) cfg.chat_template = hf.chatTemplate;
  if (Object.values(cfg).some((v) => v !== undefined)) files.set(TOKENIZER_CONFIG_FILE, `${JSON.stringify(cfg, null, 2)}\n`);
  return files;
}

/** The files of a float32 Llama directory in Hugging Face's layout: config.json, model.safetensors, the tokenizer's. */
export function llamaModelFiles(model: Llama, tokenizer?: Tokenizer): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>(tokenizer ? llamaTokenizerFiles(tokenizer) : []);
  files.set(CONFIG_FILE, `${JSON.stringify(llamaConfigToJSON(model.config), null, 2)}\n`);
  files.set(MODEL_FILE, llamaSafetensors(model));
  return files;
}

/** Write a float32 model as a Hugging Face directory: config.json, model.safetensors, and the tokenizer
 *  files, as one atomic set. */
export function saveLlamaDir(dir: string, model: Llama, tokenizer?: Tokenizer): void {
  mkdirSync(dir, { recursive: true });
  commitFiles(dir, llamaModelFiles(model, tokenizer), []);
}
