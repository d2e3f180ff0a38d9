// Llama-family models as GGUF, llama.cpp's file format: the `llama`, `qwen2` and `qwen3`
// architectures (Mistral and SmolLM2 files are `llama`), read and written with their tokenizers.
//
// Tensors (llama.cpp's names; GGML dims are the row-major shape reversed):
//   token_embd.weight         model.embed_tokens.weight            output.weight  lm_head.weight (absent: tied)
//   output_norm.weight        model.norm.weight                    rope_freqs.weight  Llama 3's frequency divisors
//   blk.N.attn_norm.weight    model.layers.N.input_layernorm.weight
//   blk.N.attn_{q,k,v}.weight/.bias, blk.N.attn_output.weight/.bias   self_attn.{q,k,v,o}_proj
//   blk.N.attn_{q,k}_norm.weight   self_attn.{q,k}_norm (qwen3)
//   blk.N.ffn_norm.weight     post_attention_layernorm.weight
//   blk.N.ffn_{gate,up,down}.weight   mlp.{gate,up,down}_proj.weight
// In the `llama` architecture llama.cpp rotates adjacent pairs of each head's dims (Meta's original
// layout), so its converter permutes the rows of attn_q and attn_k from Hugging Face's rotate-half
// layout; reading undoes that permutation and writing applies it. qwen2/qwen3 use rotate-half as is.
//
// Reading is lazy and in place: the header is parsed first, then the model is built. With the
// native addon the file is memory-mapped (copy-on-write, never written back) and every quantised or
// float16 matrix is a view of its bytes in the mapping: nothing is copied, pages come from the page
// cache as the kernels first touch them and are shared with it. Without the addon (or with
// MOXING_MMAP=0) every tensor's bytes are read straight into a buffer of its own type. Either way
// matrices stay in their GGML type (nn/quantized.ts computes on the blocks), so resident memory
// after loading is about the file's size; only float32 tensors (norm gains, biases) are copied.
//
// Tokenizers: tokenizer.ggml.model "gpt2" (byte-level BPE, with the pre-tokenizer named by
// tokenizer.ggml.pre: llama-bpe, qwen2, smollm, gpt-2) and "llama" (SentencePiece with byte
// fallback; merges are rebuilt from the scores as transformers' converter does). Both become an
// HFTokenizer running the same pipeline as the model's tokenizer.json.

import { closeSync, openSync } from "node:fs";
import { basename } from "node:path";
import { nativeMapFile } from "../backends/native/index.js";
import type { Llama, LlamaConfig, LlamaModelType } from "../models/llama.js";
import type { AnyWeight } from "../nn/quantized.js";
import type { RopeScaling } from "../nn/rotary.js";
import { GGML_TYPE_INFO, type GGMLTypeName, ggmlTypeById, QuantizedTensor, tensorBytes } from "../quant/ggml.js";
import type { Tensor } from "../tensor/tensor.js";
import { HFTokenizer } from "../tokenizers/hf-tokenizer.js";
import { CheckpointError } from "./checkpoint.js";
import {
  GGUFError,
  type GGUFFile,
  type GGUFTensorInfo,
  type GGUFTensorOut,
  type GGUFValue,
  metadataReader,
  readGGUFHeader,
  writeGGUF,
} from "./gguf.js";
import { emptyLlama, readFully, readIntoTensor } from "./llama.js";
import { quoteName } from "./safetensors.js";

export const LLAMA_GGUF_ARCHS = ["llama", "qwen2", "qwen3"] as const;
export type LlamaGGUFArch = (typeof LLAMA_GGUF_ARCHS)[number];

const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;
const TOKEN_UNUSED = 5;
const TOKEN_BYTE = 6;

// ---- names -------------------------------------------------------------------------------------------

const LAYER_PARTS: [hf: string, gguf: string][] = [
  ["input_layernorm.weight", "attn_norm.weight"],
  ["self_attn.q_proj.weight", "attn_q.weight"],
  ["self_attn.q_proj.bias", "attn_q.bias"],
  ["self_attn.k_proj.weight", "attn_k.weight"],
  ["self_attn.k_proj.bias", "attn_k.bias"],
  ["self_attn.v_proj.weight", "attn_v.weight"],
  ["self_attn.v_proj.bias", "attn_v.bias"],
  ["self_attn.o_proj.weight", "attn_output.weight"],
  ["self_attn.o_proj.bias", "attn_output.bias"],
  ["self_attn.q_norm.weight", "attn_q_norm.weight"],
  ["self_attn.k_norm.weight", "attn_k_norm.weight"],
  ["post_attention_layernorm.weight", "ffn_norm.weight"],
  ["mlp.gate_proj.weight", "ffn_gate.weight"],
  ["mlp.up_proj.weight", "ffn_up.weight"],
  ["mlp.down_proj.weight", "ffn_down.weight"],
];
const FIXED: [hf: string, gguf: string][] = [
  ["model.embed_tokens.weight", "token_embd.weight"],
  ["model.norm.weight", "output_norm.weight"],
  ["lm_head.weight", "output.weight"],
];

/** A Hugging Face parameter name as llama.cpp names the tensor, or null. */
export function ggufNameOf(hf: string): string | null {
  const fixed = FIXED.find(([h]) => h === hf);
  if (fixed) return fixed[1];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  const part = m ? LAYER_PARTS.find(([h]) => h === m[2]) : undefined;
  return m && part ? `blk.${m[1]}.${part[1]}` : null;
}

/** The Hugging Face parameter name of a llama.cpp tensor, or null. */
export function hfNameOf(gguf: string): string | null {
  const fixed = FIXED.find(([, g]) => g === gguf);
  if (fixed) return fixed[0];
  const m = /^blk\.(\d+)\.(.+)$/.exec(gguf);
  const part = m ? LAYER_PARTS.find(([, g]) => g === m[2]) : undefined;
  return m && part ? `model.layers.${m[1]}.${part[0]}` : null;
}

/**
 * Reorder the rows of a q or k projection (nHeads heads of headDim rows each) between Hugging
 * Face's rotate-half layout and llama.cpp's adjacent-pair layout (toGGUF), as convert_hf_to_gguf's
 * LlamaModel.permute does: GGUF row h·d + 2i + j is Hugging Face row h·d + j·d/2 + i.
 */
export function permuteRows(data: Uint8Array | Float32Array, rowLen: number, nHeads: number, headDim: number, toGGUF: boolean): void {
  const half = headDim / 2;
  const src = data.slice(0, nHeads * headDim * rowLen);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const g = h * headDim + 2 * i + j;
        const f = h * headDim + j * half + i;
        const [from, to] = toGGUF ? [f, g] : [g, f];
        data.set(src.subarray(from * rowLen, (from + 1) * rowLen), to * rowLen);
      }
    }
  }
}

// ---- reading --------------------------------------------------------------------------------------------

/** Whether a GGUF header is one of the architectures this file reads. */
export function isLlamaGGUF(file: GGUFFile): boolean {
  const a = file.metadata.get("general.architecture");
  return a?.type === "string" && (LLAMA_GGUF_ARCHS as readonly string[]).includes(a.value as string);
}

/** The LlamaConfig a llama/qwen2/qwen3 GGUF file describes; errors name the file and the key. */
export function llamaConfigFromGGUF(file: GGUFFile, source: string): { config: LlamaConfig; arch: LlamaGGUFArch } {
  const m = metadataReader(file, source);
  const fail = (msg: string): never => {
    throw new GGUFError(`${source}: ${msg}`);
  };
  const arch = m.string("general.architecture") as string;
  if (!(LLAMA_GGUF_ARCHS as readonly string[]).includes(arch)) {
    fail(`general.architecture is ${quoteName(arch)}; the Llama reader reads ${LLAMA_GGUF_ARCHS.join(", ")}`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = m.number(`${arch}.${key}`, fallback === undefined) ?? fallback;
    if (!Number.isInteger(v) || (v as number) < 1) fail(`metadata '${arch}.${key}' must be a positive integer (got ${v})`);
    return v as number;
  };
  const tensor = (name: string) => file.tensors.find((t) => t.name === name);
  const embd = tensor("token_embd.weight") ?? fail("has no tensor 'token_embd.weight'");
  const hidden = int("embedding_length");
  const heads = int("attention.head_count");
  const headDim = int("attention.key_length", hidden / heads);
  if (int("attention.value_length", headDim) !== headDim)
    fail(`${arch}.attention.value_length differs from key_length; moxing needs them equal`);
  const ropeDim = int("rope.dimension_count", headDim);
  if (ropeDim !== headDim)
    fail(`${arch}.rope.dimension_count is ${ropeDim}, not the head size ${headDim}; partial rotary embeddings are not supported`);
  const scalingType = m.string(`${arch}.rope.scaling.type`, false);
  let rope_scaling: RopeScaling | null = null;
  if (scalingType === "linear") rope_scaling = { rope_type: "linear", factor: m.number(`${arch}.rope.scaling.factor`) as number };
  else if (scalingType !== undefined && scalingType !== "none")
    fail(`${arch}.rope.scaling.type is ${quoteName(scalingType)}; moxing implements linear and Llama 3's (rope_freqs)`);
  const has = (n: string) => file.tensors.some((t) => t.name === n);
  const type: LlamaModelType = arch === "llama" ? "llama" : (arch as LlamaModelType);
  const bias = has("blk.0.attn_q.bias");
  if (arch === "qwen2" && !bias) fail("is qwen2 but blk.0.attn_q.bias is missing; qwen2 has q/k/v biases");
  if (arch === "llama" && bias !== has("blk.0.attn_output.bias")) fail("has biases on some attention projections but not on all four");
  const config: LlamaConfig = {
    model_type: type,
    vocab_size: embd.shape[0] as number,
    hidden_size: hidden,
    intermediate_size: int("feed_forward_length"),
    num_hidden_layers: int("block_count"),
    num_attention_heads: heads,
    num_key_value_heads: int("attention.head_count_kv", heads),
    head_dim: headDim,
    max_position_embeddings: int("context_length", 2048),
    rms_norm_eps: m.number(`${arch}.attention.layer_norm_rms_epsilon`, false) ?? 1e-6,
    rope_theta: m.number(`${arch}.rope.freq_base`, false) ?? 10000,
    rope_scaling,
    attention_bias: arch === "llama" && bias,
    tie_word_embeddings: !has("output.weight"),
    initializer_range: 0.02,
    bos_token_id: m.number("tokenizer.ggml.bos_token_id", false) ?? null,
    eos_token_id: m.number("tokenizer.ggml.eos_token_id", false) ?? null,
    sliding_window: null,
  };
  if (!Number.isInteger(config.head_dim))
    fail(`embedding_length ${hidden} is not divisible by head_count ${heads}; give attention.key_length`);
  return { config, arch: arch as LlamaGGUFArch };
}

const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const BYTE_LEVEL = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };

/** The tokenizer.json pre-tokenizer (and normalizer) of each llama.cpp pre-tokenizer name moxing reads. */
const PRE_TOKENIZERS: Record<string, { pre: unknown; normalizer: unknown; ignoreMerges: boolean }> = {
  "llama-bpe": {
    pre: {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: LLAMA3_REGEX }, behavior: "Isolated", invert: false }, BYTE_LEVEL],
    },
    normalizer: null,
    ignoreMerges: true,
  },
  qwen2: {
    pre: {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: QWEN2_REGEX }, behavior: "Isolated", invert: false }, BYTE_LEVEL],
    },
    normalizer: { type: "NFC" },
    ignoreMerges: false,
  },
  smollm: {
    pre: {
      type: "Sequence",
      pretokenizers: [
        { type: "Digits", individual_digits: true },
        { ...BYTE_LEVEL, use_regex: true },
      ],
    },
    normalizer: null,
    ignoreMerges: false,
  },
  "gpt-2": { pre: { ...BYTE_LEVEL, use_regex: true }, normalizer: null, ignoreMerges: false },
};
PRE_TOKENIZERS.default = PRE_TOKENIZERS["gpt-2"] as (typeof PRE_TOKENIZERS)[string];

function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

const MAX_PIECE_CHARS = 64;

/** transformers' SentencePieceExtractor: merges from the scores, each piece split every way into
 *  two vocabulary pieces, ordered by the piece's score (highest first), then by the parts' ids. */
function mergesFromScores(tokens: string[], scores: number[], mergeable: (id: number) => boolean): [string, string][] {
  const vocab = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (mergeable(id)) vocab.set(t, id);
  });
  const merges: [string, string, number][] = [];
  for (const [piece, id] of vocab) {
    const chars = Array.from(piece);
    // SentencePiece pieces are short (max_piece_length is 16 by default); a longer one cannot be
    // split into pieces worth a merge, and skipping it bounds the work a hostile file can ask for.
    if (chars.length > MAX_PIECE_CHARS) continue;
    const local: [string, string, number][] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join("");
      const r = chars.slice(k).join("");
      if (vocab.has(l) && vocab.has(r)) local.push([l, r, scores[id] ?? 0]);
    }
    local.sort(
      (a, b) => (vocab.get(a[0]) as number) - (vocab.get(b[0]) as number) || (vocab.get(a[1]) as number) - (vocab.get(b[1]) as number),
    );
    merges.push(...local);
  }
  // A stable sort keeps the order above among equal scores, as Python's sorted does.
  merges.sort((a, b) => b[2] - a[2]);
  return merges.map(([l, r]) => [l, r]);
}

/** The tokenizer a llama/qwen2/qwen3 GGUF file carries, as an HFTokenizer. */
export function llamaTokenizerFromGGUF(file: GGUFFile, source: string): HFTokenizer {
  const m = metadataReader(file, source);
  const fail = (msg: string): never => {
    throw new GGUFError(`${source}: ${msg}`);
  };
  const model = m.string("tokenizer.ggml.model") as string;
  const tokens = m.array("tokenizer.ggml.tokens", "string") as string[];
  const types = (m.array("tokenizer.ggml.token_type", ["i32", "u32"], false) as number[] | undefined) ?? tokens.map(() => TOKEN_NORMAL);
  if (types.length !== tokens.length) fail(`tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const id = (key: string) => m.number(`tokenizer.ggml.${key}`, false);
  const bos = id("bos_token_id");
  const eos = id("eos_token_id");
  const addBos = m.bool("tokenizer.ggml.add_bos_token") ?? model === "llama";
  const vocab: Record<string, number> = {};
  const added: ReturnType<typeof addedToken>[] = [];
  const seen = new Set<string>();
  tokens.forEach((t, i) => {
    const ty = types[i] as number;
    // Every id needs a distinct string; unused padding slots are named after their id.
    const text = ty === TOKEN_UNUSED || seen.has(t) ? `[PAD${i}]` : t;
    seen.add(text);
    if (ty === TOKEN_CONTROL || ty === TOKEN_UNUSED) added.push(addedToken(i, text, true));
    else if (ty === TOKEN_USER_DEFINED) added.push(addedToken(i, text, false));
    else vocab[text] = i;
  });
  const post =
    addBos && bos !== undefined
      ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [],
          special_tokens: {},
        }
      : null;
  let json: Record<string, unknown>;
  if (model === "gpt2") {
    const pre = m.string("tokenizer.ggml.pre", false) ?? "default";
    const p = PRE_TOKENIZERS[pre];
    if (!p) fail(`tokenizer.ggml.pre is ${quoteName(pre)}; moxing reads ${Object.keys(PRE_TOKENIZERS).join(", ")}`);
    const merges = m.array("tokenizer.ggml.merges", "string") as string[];
    json = {
      added_tokens: added,
      normalizer: p?.normalizer,
      pre_tokenizer: p?.pre,
      post_processor: post,
      decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: { type: "BPE", dropout: null, unk_token: null, byte_fallback: false, ignore_merges: p?.ignoreMerges, vocab, merges },
    };
  } else if (model === "llama") {
    const scores = (m.array("tokenizer.ggml.scores", "f32", false) as number[] | undefined) ?? tokens.map(() => 0);
    const unk = id("unknown_token_id") ?? 0;
    const prefix = m.bool("tokenizer.ggml.add_space_prefix") ?? true;
    const merges = mergesFromScores(tokens, scores, (i) => types[i] === TOKEN_NORMAL);
    json = {
      added_tokens: added,
      normalizer: {
        type: "Sequence",
        normalizers: [...(prefix ? [{ type: "Prepend", prepend: "▁" }] : []), { type: "Replace", pattern: { String: " " }, content: "▁" }],
      },
      pre_tokenizer: null,
      post_processor: post,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "▁" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          ...(prefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: { type: "BPE", dropout: null, unk_token: tokens[unk], byte_fallback: true, fuse_unk: true, vocab, merges },
    };
    if (!types.some((t) => t === TOKEN_BYTE))
      fail("is a SentencePiece vocabulary without byte tokens (<0xXX>); moxing needs byte fallback");
  } else {
    return fail(`tokenizer.ggml.model is ${quoteName(model)}; moxing reads "gpt2" (byte-level BPE) and "llama" (SentencePiece BPE)`);
  }
  const config = {
    bos_token: bos !== undefined ? tokens[bos] : null,
    eos_token: eos !== undefined ? tokens[eos] : null,
    chat_template: m.string("tokenizer.chat_template", false) ?? null,
  };
  try {
    return new HFTokenizer({ version: "1.0", truncation: null, padding: null, ...json }, config);
  } catch (e) {
    return fail(`its tokenizer cannot be read: ${(e as Error).message}`);
  }
}

/** Load a llama/qwen2/qwen3 GGUF file (eval mode) with its tokenizer; matrices stay in their GGML types. */
export function loadLlamaGGUF(path: string): { model: Llama; tokenizer: HFTokenizer; config: LlamaConfig; file: GGUFFile } {
  const file = readGGUFHeader(path);
  const { config, arch } = llamaConfigFromGGUF(file, path);
  const tokenizer = llamaTokenizerFromGGUF(file, path);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new GGUFError(`${path}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd only ${config.vocab_size} rows`);
  }
  const byHF = new Map<string, GGUFTensorInfo>();
  let ropeFreqs: GGUFTensorInfo | null = null;
  for (const t of file.tensors) {
    if (t.name === "rope_freqs.weight") {
      ropeFreqs = t;
      continue;
    }
    const hf = hfNameOf(t.name);
    if (!hf) throw new GGUFError(`${path}: tensor ${quoteName(t.name)} is not part of a ${arch} model`);
    if (!ggmlTypeById(t.type)) {
      throw new GGUFError(
        `${path}: tensor ${quoteName(t.name)} is ${t.typeName}; moxing reads F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q4_K, Q5_K and Q6_K`,
      );
    }
    byHF.set(hf, t);
  }
  const fd = openSync(path, "r");
  // The whole file mapped (null: read instead). Views of it are bounds-checked against its length.
  const mapped = nativeMapFile(path);
  const views = new Set<QuantizedTensor>(); // weights that are views of the mapping: nothing to read
  try {
    let freqFactors: Float32Array | undefined;
    if (ropeFreqs) {
      if (ropeFreqs.typeName !== "F32" || ropeFreqs.shape.length !== 1)
        throw new GGUFError(`${path}: rope_freqs.weight must be a 1-D F32 tensor`);
      freqFactors = new Float32Array(ropeFreqs.shape[0] as number);
      readFully(fd, new Uint8Array(freqFactors.buffer), file.dataStart + ropeFreqs.offset);
    }
    const { model, weights } = emptyLlama(config, {
      ropeFreqFactors: freqFactors,
      quantized: (name, shape) => {
        const t = byHF.get(name);
        const info = t ? ggmlTypeById(t.type) : undefined;
        if (!t || !info || info.name === "F32") return null;
        if (!mapped || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
          return new QuantizedTensor(info.name, shape); // read below (or refused there, naming the shapes)
        }
        const start = file.dataStart + t.offset;
        const bytes = tensorBytes(info.name, shape);
        if (start + bytes > mapped.byteLength) {
          throw new GGUFError(`${path}: tensor ${quoteName(t.name)}: the file ended inside it`);
        }
        const q = new QuantizedTensor(info.name, shape, new Uint8Array(mapped, start, bytes));
        views.add(q);
        return q;
      },
    });
    for (const [name, w] of weights) {
      const t = byHF.get(name);
      const gguf = ggufNameOf(name) as string;
      if (!t)
        throw new GGUFError(
          `${path}: tensor ${quoteName(gguf)} is missing (a ${arch} model with ${config.num_hidden_layers} blocks has it)`,
        );
      const where = `${path}: tensor ${quoteName(gguf)}`;
      if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
        throw new GGUFError(`${where} has shape [${t.shape.join(", ")}] but the model needs [${w.shape.join(", ")}]`);
      }
      if (!(w instanceof QuantizedTensor && views.has(w))) readWeight(fd, file.dataStart + t.offset, t, w, where);
      byHF.delete(name);
      if (arch === "llama" && /self_attn\.[qk]_proj\.(weight|bias)$/.test(name)) {
        const heads = name.includes(".q_proj.") ? config.num_attention_heads : config.num_key_value_heads;
        const data = w instanceof QuantizedTensor ? w.data : (w.data as Float32Array).subarray(w.offset, w.offset + w.size);
        const rowLen = w instanceof QuantizedTensor ? w.rowBytes : w.shape.length === 2 ? (w.shape[1] as number) : 1;
        permuteRows(data, rowLen, heads, config.head_dim, false);
      }
    }
    const extra = [...byHF.keys()].filter((n) => !(n === "lm_head.weight" && config.tie_word_embeddings));
    if (extra.length)
      throw new GGUFError(`${path}: tensor ${quoteName(ggufNameOf(extra[0] as string) as string)} does not belong to this model`);
    model.eval();
    return { model, tokenizer, config, file };
  } catch (e) {
    if (e instanceof CheckpointError) throw new GGUFError(e.message);
    throw e;
  } finally {
    closeSync(fd);
  }
}

function readWeight(fd: number, pos: number, t: GGUFTensorInfo, w: AnyWeight, where: string): void {
  if (w instanceof QuantizedTensor) {
    if (!readFully(fd, w.data, pos)) throw new GGUFError(`${where}: the file ended inside it`);
    return;
  }
  const name = t.typeName;
  if (name === "F32" || name === "F16" || name === "BF16") {
    readIntoTensor(fd, pos, name, w, where);
    return;
  }
  // A quantised vector (rare): decode it into its float32 tensor.
  const q = new QuantizedTensor(name as GGMLTypeName, t.shape);
  if (!readFully(fd, q.data, pos)) throw new GGUFError(`${where}: the file ended inside it`);
  (w.data as Float32Array).set(q.toFloat32(), w.offset);
}

// ---- writing -----------------------------------------------------------------------------------------------

/** GGUF's general.file_type for a model whose matrices are all `type` (llama_ftype). */
const FILE_TYPES: Record<GGMLTypeName, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q5_0: 8, Q4_K: 14, Q5_K: 16, Q6_K: 18, BF16: 32 };

/** The type a matrix with rows of `cols` values is written in when `type` is asked for: llama.cpp's
 *  llama-quantize rules (tensor_type_fallback): a K-quant needs rows of whole 256-value blocks, else
 *  Q4_K becomes Q5_0 (and Q5_K/Q6_K the nearest 32-block types); a row that fits no block becomes F16. */
export function typeForRow(type: GGMLTypeName, cols: number): GGMLTypeName {
  const fits = (t: GGMLTypeName) => cols % GGML_TYPE_INFO[t].blockSize === 0;
  if (fits(type)) return type;
  const fallback: Partial<Record<GGMLTypeName, GGMLTypeName>> = { Q4_K: "Q5_0", Q5_K: "Q5_0", Q6_K: "Q8_0" };
  const f = fallback[type];
  return f && fits(f) ? f : "F16";
}

const u32 = (value: number): GGUFValue => ({ type: "u32", value });
const f32 = (value: number): GGUFValue => ({ type: "f32", value });
const str = (value: string): GGUFValue => ({ type: "string", value });
const bool = (value: boolean): GGUFValue => ({ type: "bool", value });

/** llama.cpp's pre-tokenizer name for a tokenizer.json pre-tokenizer, or null if it has none. */
function preTokenizerName(json: Record<string, unknown>): string | null {
  const pre = json.pre_tokenizer as {
    type?: string;
    pretokenizers?: { type?: string; pattern?: { Regex?: string }; use_regex?: boolean; individual_digits?: boolean }[];
  } | null;
  if (pre?.type === "ByteLevel" && (pre as { use_regex?: boolean }).use_regex !== false) return "gpt-2";
  const parts = pre?.type === "Sequence" ? (pre.pretokenizers ?? []) : [];
  const regex = parts.find((p) => p.type === "Split")?.pattern?.Regex;
  if (regex === LLAMA3_REGEX) return "llama-bpe";
  if (regex === QWEN2_REGEX) return "qwen2";
  if (
    parts.length === 2 &&
    parts[0]?.type === "Digits" &&
    parts[0].individual_digits &&
    parts[1]?.type === "ByteLevel" &&
    parts[1].use_regex !== false
  ) {
    return "smollm";
  }
  return null;
}

/** tokenizer.ggml.* metadata for an HFTokenizer: "gpt2" for byte-level BPE, "llama" for SentencePiece-style. */
export function tokenizerMetadata(tokenizer: HFTokenizer, vocabSize: number): [string, GGUFValue][] {
  const json = tokenizer.toJSON() as Record<string, unknown> & { model: Record<string, unknown> };
  const n = tokenizer.vocabSize;
  if (n > vocabSize) throw new GGUFError(`the tokenizer has ${n} tokens but the model only ${vocabSize} embeddings`);
  const addedList = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as { id: number; content: string; special?: boolean }[];
  const added = new Map(addedList.map((a) => [a.id, a]));
  const tokens: string[] = [];
  const types: number[] = [];
  const spm = json.model.byte_fallback === true;
  for (let id = 0; id < vocabSize; id++) {
    const a = added.get(id);
    const t = id < n ? (tokenizer.idToToken(id) as string) : `[PAD${id}]`;
    tokens.push(t);
    if (id >= n) types.push(TOKEN_UNUSED);
    else if (a) types.push(a.special === false ? TOKEN_USER_DEFINED : TOKEN_CONTROL);
    else if (spm && /^<0x[0-9A-F]{2}>$/.test(t)) types.push(TOKEN_BYTE);
    else if (spm && t === json.model.unk_token) types.push(TOKEN_UNKNOWN);
    else types.push(TOKEN_NORMAL);
  }
  const merges = ((json.model.merges as unknown[]) ?? []).map((m) => (typeof m === "string" ? m : (m as string[]).join(" ")));
  const meta: [string, GGUFValue][] = [];
  if (spm) {
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result scores highest:
    // a piece scores minus the rank of the first merge that makes it, so it merges in BPE's order.
    const scores = new Array<number>(vocabSize).fill(0);
    const made = new Set<string>();
    merges.forEach((mg, rank) => {
      const piece = mg.replace(" ", "");
      if (made.has(piece)) return;
      made.add(piece);
      const id = tokenizer.tokenToId(piece);
      if (id !== undefined) scores[id] = -(rank + 1);
    });
    const prepend = JSON.stringify(json.normalizer ?? "").includes('"Prepend"');
    meta.push(
      ["tokenizer.ggml.model", str("llama")],
      ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: tokens }],
      ["tokenizer.ggml.scores", { type: "array", itemType: "f32", value: scores }],
      ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: types }],
      ["tokenizer.ggml.add_space_prefix", bool(prepend)],
    );
    const unk = typeof json.model.unk_token === "string" ? tokenizer.tokenToId(json.model.unk_token) : undefined;
    if (unk !== undefined) meta.push(["tokenizer.ggml.unknown_token_id", u32(unk)]);
  } else {
    const pre = preTokenizerName(json);
    if (!pre)
      throw new GGUFError(`the tokenizer's pre-tokenizer ${JSON.stringify(json.pre_tokenizer).slice(0, 120)} has no llama.cpp equivalent`);
    meta.push(
      ["tokenizer.ggml.model", str("gpt2")],
      ["tokenizer.ggml.pre", str(pre)],
      ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: tokens }],
      ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: types }],
      ["tokenizer.ggml.merges", { type: "array", itemType: "string", value: merges }],
    );
  }
  const bos = tokenizer.prefixIds[0] ?? tokenizer.bosTokenId;
  if (bos !== null && bos !== undefined) meta.push(["tokenizer.ggml.bos_token_id", u32(bos)]);
  if (tokenizer.eosTokenId !== null) meta.push(["tokenizer.ggml.eos_token_id", u32(tokenizer.eosTokenId)]);
  meta.push(["tokenizer.ggml.add_bos_token", bool(tokenizer.prefixIds.length > 0)], ["tokenizer.ggml.add_eos_token", bool(false)]);
  if (tokenizer.chatTemplate) meta.push(["tokenizer.chat_template", str(tokenizer.chatTemplate)]);
  return meta;
}

/** Llama 3's rope scaling as llama.cpp stores it: a divisor per frequency (convert_hf_to_gguf's rope_freqs). */
function llama3RopeFactors(c: LlamaConfig): Float32Array | null {
  const s = c.rope_scaling;
  if (s?.rope_type !== "llama3") return null;
  const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  const out = new Float32Array(c.head_dim / 2);
  for (let i = 0; i < out.length; i++) {
    const freq = Math.fround(1 / Math.fround(Math.fround(c.rope_theta) ** Math.fround((2 * i) / c.head_dim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** llama.cpp's mixed K-quant recipes (llama-quant.cpp's llama_tensor_get_type for a Llama-family
 *  model without experts): the matrices in Q4_K (Q4_K_M) or Q5_K (Q5_K_M), except the output head
 *  (the token embedding where the two are tied) in Q6_K, and attn_v and ffn_down in Q6_K in the
 *  layers use_more_bits picks: the first and last eighth of the layers and every third one between. */
export type LlamaGGUFMix = "Q4_K_M" | "Q5_K_M";
const MIX_BASE: Record<LlamaGGUFMix, GGMLTypeName> = { Q4_K_M: "Q4_K", Q5_K_M: "Q5_K" };
const MIX_FILE_TYPES: Record<LlamaGGUFMix, number> = { Q4_K_M: 15, Q5_K_M: 17 };

/** llama-quant.cpp's use_more_bits. */
function useMoreBits(i: number, n: number): boolean {
  const e = Math.floor(n / 8);
  return i < e || i >= Math.floor((7 * n) / 8) || (i - e) % 3 === 2;
}

/** The type a mix writes the GGUF tensor `gguf` in (before typeForRow's fallback for its rows). */
export function mixType(mix: LlamaGGUFMix, gguf: string, layers: number, tied: boolean): GGMLTypeName {
  if (gguf === "output.weight" || (tied && gguf === "token_embd.weight")) return "Q6_K";
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(gguf);
  if (m && useMoreBits(Number(m[1]), layers)) return "Q6_K";
  return MIX_BASE[mix];
}

export interface LlamaGGUFOptions {
  /** GGML type of the matrices (default F32; see typeForRow for rows that do not fit its blocks);
   *  vectors (norms, biases) are always F32. */
  type?: GGMLTypeName;
  /** Instead of one type: a llama.cpp mix (its matrices' types as llama-quantize picks them). */
  mix?: LlamaGGUFMix;
  name?: string;
  /** Called after each tensor is encoded (progress). */
  onTensor?: (name: string, index: number, count: number) => void;
}

/** The weight's row-major float32 values (a copy), whatever it is stored as. */
function floatValues(w: AnyWeight): Float32Array {
  return w instanceof QuantizedTensor ? w.toFloat32() : Float32Array.from((w as Tensor).contiguousData() as Float32Array);
}

/** Metadata and tensors of a GGUF file for a Llama-family model and its tokenizer. */
export function llamaGGUF(
  model: Llama,
  tokenizer: HFTokenizer,
  opts: LlamaGGUFOptions = {},
): { metadata: [string, GGUFValue][]; tensors: GGUFTensorOut[] } {
  const c = model.config;
  const arch: LlamaGGUFArch = c.model_type === "mistral" ? "llama" : c.model_type;
  const type = opts.mix ? MIX_BASE[opts.mix] : (opts.type ?? "F32");
  if (!(type in FILE_TYPES)) throw new GGUFError(`unknown GGML type ${type}`);
  if (opts.mix && !(opts.mix in MIX_BASE)) throw new GGUFError(`unknown quantisation mix ${opts.mix}`);
  if (arch === "qwen3" && c.attention_bias) throw new GGUFError("llama.cpp's qwen3 has no attention biases; this model has them");
  if (c.rope_scaling?.rope_type === "linear" && arch !== "llama")
    throw new GGUFError(`linear rope scaling is written only for the llama architecture`);
  const metadata: [string, GGUFValue][] = [
    ["general.architecture", str(arch)],
    ["general.name", str(opts.name ?? "moxing")],
    ["general.file_type", u32(opts.mix ? MIX_FILE_TYPES[opts.mix] : FILE_TYPES[type])],
    ["general.quantization_version", u32(2)],
    ["general.alignment", u32(32)],
    [`${arch}.vocab_size`, u32(c.vocab_size)],
    [`${arch}.context_length`, u32(c.max_position_embeddings)],
    [`${arch}.embedding_length`, u32(c.hidden_size)],
    [`${arch}.block_count`, u32(c.num_hidden_layers)],
    [`${arch}.feed_forward_length`, u32(c.intermediate_size)],
    [`${arch}.attention.head_count`, u32(c.num_attention_heads)],
    [`${arch}.attention.head_count_kv`, u32(c.num_key_value_heads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rms_norm_eps)],
    [`${arch}.rope.freq_base`, f32(c.rope_theta)],
    [`${arch}.rope.dimension_count`, u32(c.head_dim)],
    [`${arch}.attention.key_length`, u32(c.head_dim)],
    [`${arch}.attention.value_length`, u32(c.head_dim)],
  ];
  if (c.rope_scaling?.rope_type === "linear") {
    metadata.push([`${arch}.rope.scaling.type`, str("linear")], [`${arch}.rope.scaling.factor`, f32(c.rope_scaling.factor)]);
  }
  metadata.push(...tokenizerMetadata(tokenizer, c.vocab_size));

  const weights = new Map<string, AnyWeight>();
  for (const [path, mod] of model.namedModules()) {
    const w = (mod as { weight?: unknown }).weight;
    const b = (mod as { bias?: unknown }).bias;
    if (w && typeof w === "object" && "shape" in w) weights.set(`${path}.weight`, w as AnyWeight);
    if (b && typeof b === "object" && "shape" in b) weights.set(`${path}.bias`, b as AnyWeight);
  }
  const order: string[] = ["model.embed_tokens.weight"];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    for (const [hf] of LAYER_PARTS) if (weights.has(`model.layers.${i}.${hf}`)) order.push(`model.layers.${i}.${hf}`);
  }
  order.push("model.norm.weight");
  if (!c.tie_word_embeddings) order.push("lm_head.weight");
  const tensors: GGUFTensorOut[] = [];
  const factors = llama3RopeFactors(c);
  if (factors) tensors.push({ name: "rope_freqs.weight", shape: [factors.length], data: factors });
  order.forEach((name, index) => {
    const w = weights.get(name);
    if (!w) throw new GGUFError(`internal error: the model has no '${name}'`);
    const permute = arch === "llama" && /self_attn\.[qk]_proj\.(weight|bias)$/.test(name);
    const heads = name.includes(".q_proj.") ? c.num_attention_heads : c.num_key_value_heads;
    const shape = [...w.shape];
    const gguf = ggufNameOf(name) as string;
    const asked = opts.mix ? mixType(opts.mix, gguf, c.num_hidden_layers, c.tie_word_embeddings) : type;
    const want: GGMLTypeName = shape.length === 2 && type !== "F32" ? typeForRow(asked, shape[1] as number) : "F32";
    if (want === "F32") {
      const v = floatValues(w);
      if (permute) permuteRows(v, shape.length === 2 ? (shape[1] as number) : 1, heads, c.head_dim, true);
      tensors.push({ name: gguf, shape, data: v });
    } else {
      // Already in the wanted type: the blocks are copied, not decoded and encoded again.
      const q =
        w instanceof QuantizedTensor && w.type === want
          ? new QuantizedTensor(want, shape, w.data.slice())
          : QuantizedTensor.quantize(want, shape, floatValues(w));
      if (permute) permuteRows(q.data, q.rowBytes, heads, c.head_dim, true);
      tensors.push({ name: gguf, shape, data: q.data, type: GGML_TYPE_INFO[want].id });
    }
    opts.onTensor?.(gguf, index, order.length);
  });
  return { metadata, tensors };
}

/** Write a Llama-family model and its tokenizer as a GGUF file (atomically). */
export function writeLlamaGGUF(path: string, model: Llama, tokenizer: HFTokenizer, opts: LlamaGGUFOptions = {}): void {
  const { metadata, tensors } = llamaGGUF(model, tokenizer, { ...opts, name: opts.name ?? basename(path).replace(/\.gguf$/i, "") });
  writeGGUF(path, metadata, tensors);
}

/** Bytes of a tensor's weights as the model holds them (quantised blocks, or 4 per float). */
export function weightBytes(w: AnyWeight): number {
  return w instanceof QuantizedTensor ? w.data.length : 4 * (w as Tensor).size;
}
