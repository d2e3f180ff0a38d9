// A moxing GPT as GGUF for llama.cpp's "gpt2" architecture, and back.
//
// Tensors (llama.cpp's names; GGML dims are the row-major shape reversed):
//   token_embd.weight      transformer.wte.weight      [vocab, C]
//   position_embd.weight   transformer.wpe.weight      [block_size, C]
//   output_norm.weight/bias  transformer.ln_f
//   output.weight          lm_head.weight (only when the head is not tied; llama.cpp reuses token_embd)
//   blk.N.attn_norm        h.N.ln_1        blk.N.attn_qkv     h.N.attn.c_attn   [3C, C]
//   blk.N.attn_output      h.N.attn.c_proj [C, C]
//   blk.N.ffn_norm         h.N.ln_2        blk.N.ffn_up       h.N.mlp.c_fc      [4C, C]
//   blk.N.ffn_down         h.N.mlp.c_proj  [C, 4C]
// The projections are stored as Linear weights (out, in), i.e. GGML dims [in, out], which is what
// llama.cpp's converter produces by transposing Hugging Face's Conv1D weights. All tensors are F32.
//
// Metadata: general.architecture "gpt2", gpt2.{context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count, attention.layer_norm_epsilon}, and the tokenizer:
// tokenizer.ggml.model "gpt2" with pre-tokenizer "gpt-2" (GPT-2's regex, which moxing's byte-level
// BPE uses), tokens in GPT-2's byte-level spelling, token_type (1 normal, 3 control for special
// tokens, 5 unused for padding ids), merges as "left right", and bos/eos = <|endoftext|>.
//
// What maps and what does not:
//   - Byte-level BPE tokenizers export as they are. Char-level (and other) tokenizers are refused:
//     llama.cpp's GPT-2 tokenizer works on UTF-8 bytes with merges, and a character vocabulary has
//     neither the 256 byte tokens nor merges, so its ids could not be reproduced. Train with
//     `--tokenizer bpe` to get a model that exports.
//   - A tokenizer without special tokens gets no bos/eos ids in the file; llama.cpp then assumes id
//     11 for both (for a vocabulary trained by moxing, the byte 0x0B, which text practically never
//     contains). Add "<|endoftext|>" as a special token to have a real end-of-text id.
//   - vocab_size larger than the tokenizer: the extra ids are written as "[PAD<id>]" unused tokens.
//   - Sinusoidal positions are fixed, so they are written as the position_embd table (exact).
//     RoPE has no place in the gpt2 architecture and is refused.
//   - Models without biases get zero biases (llama.cpp's gpt2 requires them); same outputs.
// Reading a GGUF back gives a model with learned positions and biases; a tied head stays tied.

import { basename } from "node:path";
import { GPT, type GPTConfig, loadHFStateDict, type WeightTensor } from "../models/gpt.js";
import { sinusoidalTable } from "../nn/positional.js";
import { ByteLevelBPE } from "../tokenizers/bpe.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { endOfTextId } from "./checkpoint.js";
import { checkFiniteWeights } from "./finite.js";
import {
  GGUFError,
  type GGUFFile,
  type GGUFTensorOut,
  type GGUFValue,
  metadataReader,
  readGGUF,
  readGGUFHeader,
  writeGGUF,
} from "./gguf.js";
import { quoteName } from "./safetensors.js";

export const TOKEN_NORMAL = 1;
export const TOKEN_CONTROL = 3;
export const TOKEN_UNUSED = 5;
const LAYER_NORM_EPS = 1e-5;

/** moxing name -> llama.cpp name, for every tensor the gpt2 architecture has. */
export function ggufTensorName(name: string): string | null {
  const fixed: Record<string, string> = {
    "transformer.wte.weight": "token_embd.weight",
    "transformer.wpe.weight": "position_embd.weight",
    "transformer.ln_f.weight": "output_norm.weight",
    "transformer.ln_f.bias": "output_norm.bias",
    "lm_head.weight": "output.weight",
  };
  if (fixed[name]) return fixed[name];
  const m = /^transformer\.h\.(\d+)\.(ln_1|attn\.c_attn|attn\.c_proj|ln_2|mlp\.c_fc|mlp\.c_proj)\.(weight|bias)$/.exec(name);
  if (!m) return null;
  const part: Record<string, string> = {
    ln_1: "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    ln_2: "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
  };
  return `blk.${m[1]}.${part[m[2] as string]}.${m[3]}`;
}

/** The gpt2 architecture's tensor names for a config, in llama.cpp's order, mapped to moxing names. */
function gpt2TensorNames(c: GPTConfig): [moxing: string, gguf: string][] {
  const names = ["transformer.wte.weight", "transformer.wpe.weight"];
  for (let i = 0; i < c.n_layer; i++) {
    for (const part of ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"]) {
      names.push(`transformer.h.${i}.${part}.weight`, `transformer.h.${i}.${part}.bias`);
    }
  }
  names.push("transformer.ln_f.weight", "transformer.ln_f.bias");
  if (!c.tie_weights) names.push("lm_head.weight");
  return names.map((n) => [n, ggufTensorName(n) as string]);
}

const u32 = (value: number): GGUFValue => ({ type: "u32", value });
const f32 = (value: number): GGUFValue => ({ type: "f32", value });
const str = (value: string): GGUFValue => ({ type: "string", value });

/** The vocabulary as llama.cpp's gpt2 tokenizer wants it, or an error saying why it cannot be. */
function tokenizerMetadata(tokenizer: Tokenizer, vocabSize: number): [string, GGUFValue][] {
  if (!(tokenizer instanceof ByteLevelBPE)) {
    const kind = tokenizer.type === "char" ? "character-level" : `"${tokenizer.type}"`;
    throw new GGUFError(
      `the model's tokenizer is ${kind}; GGUF export needs a byte-level BPE tokenizer, which llama.cpp's GPT-2 tokenizer ` +
        "reproduces exactly. Train the model with --tokenizer bpe to export it",
    );
  }
  if (tokenizer.vocabSize > vocabSize) {
    throw new GGUFError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${vocabSize} embeddings`);
  }
  const special = new Set(tokenizer.specialTokens.values());
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    tokens.push(tokenizer.idToToken(id) as string);
    types.push(special.has(id) ? TOKEN_CONTROL : TOKEN_NORMAL);
  }
  const seen = new Set(tokens);
  for (let id = tokenizer.vocabSize; id < vocabSize; id++) {
    let pad = `[PAD${id}]`;
    while (seen.has(pad)) pad = `[${pad}]`;
    seen.add(pad);
    tokens.push(pad);
    types.push(TOKEN_UNUSED);
  }
  const meta: [string, GGUFValue][] = [
    ["tokenizer.ggml.model", str("gpt2")],
    ["tokenizer.ggml.pre", str("gpt-2")],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: tokens }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: types }],
    ["tokenizer.ggml.merges", { type: "array", itemType: "string", value: tokenizer.toJSON().model.merges }],
  ];
  const eot = endOfTextId(tokenizer);
  if (eot !== null) meta.push(["tokenizer.ggml.bos_token_id", u32(eot)], ["tokenizer.ggml.eos_token_id", u32(eot)]);
  meta.push(
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: false }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  );
  return meta;
}

/** Metadata and tensors of a GGUF file for `model` and `tokenizer` (see the top of this file). */
export function gpt2GGUF(
  model: GPT,
  tokenizer: Tokenizer,
  opts: { name?: string } = {},
): { metadata: [string, GGUFValue][]; tensors: GGUFTensorOut[] } {
  const c = model.config;
  if (c.pos_encoding === "rope") {
    throw new GGUFError(
      "the model uses rotary position embeddings (rope), which llama.cpp's gpt2 architecture does not have; only learned and sinusoidal positions export",
    );
  }
  const metadata: [string, GGUFValue][] = [
    ["general.architecture", str("gpt2")],
    ["general.name", str(opts.name ?? "moxing GPT")],
    ["general.file_type", u32(0)], // ALL_F32
    ["general.alignment", u32(32)],
    ["gpt2.context_length", u32(c.block_size)],
    ["gpt2.embedding_length", u32(c.n_embd)],
    ["gpt2.feed_forward_length", u32(4 * c.n_embd)],
    ["gpt2.block_count", u32(c.n_layer)],
    ["gpt2.attention.head_count", u32(c.n_head)],
    ["gpt2.attention.layer_norm_epsilon", f32(LAYER_NORM_EPS)],
    ...tokenizerMetadata(tokenizer, c.vocab_size),
  ];
  const sd = model.stateDict();
  const tensors: GGUFTensorOut[] = [];
  for (const [name, gguf] of gpt2TensorNames(c)) {
    let t = sd.get(name);
    if (!t && name === "transformer.wpe.weight") t = sinusoidalTable(c.block_size, c.n_embd); // fixed positions as a table
    if (t) {
      tensors.push({ name: gguf, shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) });
    } else if (name.endsWith(".bias")) {
      const weight = sd.get(name.replace(/\.bias$/, ".weight"));
      const out = name.includes(".ln_") ? c.n_embd : (weight?.shape[0] as number);
      tensors.push({ name: gguf, shape: [out], data: new Float32Array(out) }); // no biases: zeros
    } else {
      throw new GGUFError(`internal error: the model has no '${name}'`);
    }
  }
  return { metadata, tensors };
}

/** Write `model` and `tokenizer` as a GGUF file for llama.cpp (atomically). */
export function exportGGUF(path: string, model: GPT, tokenizer: Tokenizer, opts: { name?: string } = {}): void {
  const { metadata, tensors } = gpt2GGUF(model, tokenizer, { name: opts.name ?? basename(path).replace(/\.gguf$/i, "") });
  writeGGUF(path, metadata, tensors);
}

// ---- reading --------------------------------------------------------------------------------------

/** The GPT config a gpt2 GGUF file describes; errors name the file and the key. */
export function ggufConfig(file: GGUFFile, source: string): GPTConfig {
  const m = metadataReader(file, source);
  const fail = (msg: string): never => {
    throw new GGUFError(`${source}: ${msg}`);
  };
  const arch = m.string("general.architecture");
  if (arch !== "gpt2") fail(`general.architecture is ${quoteName(arch as string)}; moxing reads the "gpt2" architecture`);
  const int = (key: string): number => {
    const v = m.number(key) as number;
    if (!Number.isInteger(v) || v < 1) fail(`metadata '${key}' must be a positive integer (got ${v})`);
    return v;
  };
  const n_embd = int("gpt2.embedding_length");
  const ff = m.number("gpt2.feed_forward_length", false);
  if (ff !== undefined && ff !== 4 * n_embd) fail(`gpt2.feed_forward_length is ${ff}; moxing's GPT has 4 * n_embd (${4 * n_embd})`);
  const eps = m.number("gpt2.attention.layer_norm_epsilon") as number;
  if (Math.abs(eps - LAYER_NORM_EPS) > 1e-9) fail(`gpt2.attention.layer_norm_epsilon is ${eps}; moxing's GPT uses ${LAYER_NORM_EPS}`);
  const embd = file.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) fail("has no tensor 'token_embd.weight'");
  const vocab = (embd as { shape: number[] }).shape[0] as number;
  const config: GPTConfig = {
    n_layer: int("gpt2.block_count"),
    n_head: int("gpt2.attention.head_count"),
    n_embd,
    block_size: int("gpt2.context_length"),
    vocab_size: vocab,
    dropout: 0,
    bias: true,
    tie_weights: !file.tensors.some((t) => t.name === "output.weight"),
    pos_encoding: "learned",
  };
  if (n_embd % config.n_head !== 0) fail(`embedding_length ${n_embd} is not divisible by head_count ${config.n_head}`);
  return config;
}

/** The byte-level BPE tokenizer a gpt2 GGUF file carries. */
export function ggufTokenizer(file: GGUFFile, source: string): ByteLevelBPE {
  const m = metadataReader(file, source);
  const fail = (msg: string): never => {
    throw new GGUFError(`${source}: ${msg}`);
  };
  const model = m.string("tokenizer.ggml.model");
  if (model !== "gpt2") fail(`tokenizer.ggml.model is ${quoteName(model as string)}; moxing reads GPT-2-style byte-level BPE ("gpt2")`);
  const pre = m.string("tokenizer.ggml.pre", false);
  if (pre !== undefined && pre !== "gpt-2" && pre !== "default") {
    fail(`tokenizer.ggml.pre is ${quoteName(pre)}; moxing's byte-level BPE splits text with GPT-2's regex ("gpt-2")`);
  }
  const tokens = m.array("tokenizer.ggml.tokens", "string") as string[];
  const types = m.array("tokenizer.ggml.token_type", ["i32", "u32"], false) as number[] | undefined;
  if (types && types.length !== tokens.length) fail(`tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const merges = m.array("tokenizer.ggml.merges", "string") as string[];
  // Trailing unused ids (padding) are dropped: the tokenizer may be smaller than the embedding.
  let n = tokens.length;
  while (n > 0 && types?.[n - 1] === TOKEN_UNUSED) n--;
  const vocab: [string, number][] = [];
  const specials: [string, number][] = [];
  for (let id = 0; id < n; id++) {
    const type = types?.[id] ?? TOKEN_NORMAL;
    (type === TOKEN_NORMAL || type === 6 /* byte */ ? vocab : specials).push([tokens[id] as string, id]);
  }
  try {
    return new ByteLevelBPE(vocab, merges, specials);
  } catch (e) {
    return fail(`its tokenizer cannot be read: ${(e as Error).message}`);
  }
}

/** The shape (row-major) each tensor of a gpt2 GGUF file must have for config c; null for a name
 *  that is not one of the architecture's. */
function gpt2TensorShape(name: string, c: GPTConfig): number[] | null {
  const C = c.n_embd;
  const fixed: Record<string, number[]> = {
    "token_embd.weight": [c.vocab_size, C],
    "position_embd.weight": [c.block_size, C],
    "output_norm.weight": [C],
    "output_norm.bias": [C],
    "output.weight": [c.vocab_size, C],
  };
  if (fixed[name]) return fixed[name];
  const m = /^blk\.(\d+)\.(attn_norm|attn_qkv|attn_output|ffn_norm|ffn_up|ffn_down)\.(weight|bias)$/.exec(name);
  if (!m || Number(m[1]) >= c.n_layer) return null;
  const [outDim, inDim] = (
    { attn_norm: [C, 0], ffn_norm: [C, 0], attn_qkv: [3 * C, C], attn_output: [C, C], ffn_up: [4 * C, C], ffn_down: [C, 4 * C] } as Record<
      string,
      [number, number]
    >
  )[m[2] as string] as [number, number];
  return m[3] === "bias" || inDim === 0 ? [outDim] : [outDim, inDim];
}

/**
 * Check the file's tensors against the config its metadata gives, before anything is allocated:
 * every block the metadata counts must be in the file and every tensor must have the config's
 * shape. The file's data was already checked to hold every tensor, so a model built from a file
 * that passes is no bigger than the file (a 97 KB file claiming 100000 blocks is refused here).
 */
function checkGGUFTensors(file: GGUFFile, c: GPTConfig, path: string): void {
  const fail = (msg: string): never => {
    throw new GGUFError(`${path}: ${msg}`);
  };
  const blocks = new Set<number>();
  for (const t of file.tensors) {
    const b = /^blk\.(\d+)\./.exec(t.name);
    if (b) blocks.add(Number(b[1]));
  }
  if (blocks.size !== c.n_layer || [...blocks].some((b) => b >= c.n_layer)) {
    fail(
      `metadata gpt2.block_count is ${c.n_layer} but the file has tensors for ${blocks.size} block(s); the file is damaged or truncated`,
    );
  }
  const have = new Map(file.tensors.map((t) => [t.name, t.shape]));
  for (const t of file.tensors) {
    const want = gpt2TensorShape(t.name, c);
    if (!want) fail(`tensor ${quoteName(t.name)} is not part of a gpt2 model with ${c.n_layer} blocks`);
    const w = want as number[];
    if (t.shape.length !== w.length || t.shape.some((d, i) => d !== w[i])) {
      fail(`tensor ${quoteName(t.name)} has shape [${t.shape.join(", ")}] but the metadata implies [${w.join(", ")}]`);
    }
  }
  const required = ["token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"];
  for (let i = 0; i < c.n_layer; i++) {
    for (const part of ["attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"]) {
      required.push(`blk.${i}.${part}.weight`, `blk.${i}.${part}.bias`);
    }
  }
  const missing = required.find((n) => !have.has(n));
  if (missing) fail(`tensor ${quoteName(missing)} is missing`);
}

/** Load a gpt2 GGUF file as a moxing model (eval mode) with its tokenizer. */
export function loadGGUFModel(path: string): { model: GPT; tokenizer: ByteLevelBPE; config: GPTConfig } {
  const header = readGGUFHeader(path);
  const config = ggufConfig(header, path);
  checkGGUFTensors(header, config, path);
  const tokenizer = ggufTokenizer(header, path);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new GGUFError(`${path}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd only ${config.vocab_size} rows`);
  }
  const byGGUF = new Map(gpt2TensorNames(config).map(([mx, gg]) => [gg, mx]));
  const unknown = header.tensors.filter((t) => !byGGUF.has(t.name)).map((t) => t.name);
  if (unknown.length)
    throw new GGUFError(`${path}: tensor ${quoteName(unknown[0] as string)} is not part of a gpt2 model with ${config.n_layer} blocks`);
  const { tensors } = readGGUF(path);
  const sd = new Map<string, WeightTensor>();
  for (const [name, t] of tensors) sd.set(byGGUF.get(name) as string, t);
  const model = new GPT(config, { seed: 0 });
  try {
    loadHFStateDict(model, sd, { layout: "linear" });
  } catch (e) {
    // Name the tensors as the file does.
    const msg = (e as Error).message.replace(/'([^']+)'/g, (all, n: string) => {
      const g = [...byGGUF].find(([, mx]) => mx === n)?.[0];
      return g ? `'${g}'` : all;
    });
    throw new GGUFError(`${path}: ${msg}`);
  }
  checkFiniteWeights(
    [...model.namedParameters()].map(([n, t]) => [ggufTensorName(n) ?? n, t]),
    path,
    GGUFError,
  );
  model.eval();
  return { model, tokenizer, config };
}
