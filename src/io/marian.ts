// Marian model directories, in Hugging Face's MarianMT layout so each side reads the other's:
//   config.json            MarianConfig's keys (architectures ["MarianMTModel"], model_type "marian",
//                          d_model, encoder_layers, ..., generation defaults max_length, num_beams,
//                          bad_words_ids), plus moxing's notes under "moxing" (data, languages)
//   model.safetensors      MarianMTModel's state dict as save_pretrained writes it: of tied tensors one
//                          name (model.shared.weight), the sinusoid tables left out, final_logits_bias kept
//   tokenizer.json         the joint subword tokenizer (moxing's byte-level BPE, Hugging Face's format)
// A training checkpoint adds optimizer.safetensors and trainer_state.json, all written as one set.
//
// Reading accepts what Marian files from elsewhere hold: every tied name (model.shared.weight,
// model.encoder.embed_tokens.weight, model.decoder.embed_tokens.weight, lm_head.weight), the sinusoid
// tables model.{encoder,decoder}.embed_positions.weight (checked, not loaded: they are fixed), names
// without "model." (a bare MarianModel), a missing final_logits_bias (zeros, as transformers does), and
// F16/BF16 weights. Marian's SentencePiece files (source.spm, target.spm, vocab.json) are not read:
// a directory needs a tokenizer.json to translate text (its weights load without one).

import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  MARIAN_DEFAULTS,
  type MarianActivation,
  type MarianConfig,
  MarianMTModel,
  marianSinusoids,
  validateMarianConfig,
} from "../models/marian.js";
import type { AdamW } from "../optim/adamw.js";
import { tensor } from "../tensor/creation.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { loadTokenizer, type Tokenizer } from "../tokenizers/tokenizer.js";
import { checkModelDir, checkpointFile, commitFiles, readJSONFile } from "./checkpoint.js";
import { loadOptimizerFile, optimizerToSafetensors } from "./optimizer.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

export const MARIAN_CONFIG_FILE = "config.json";
export const MARIAN_MODEL_FILE = "model.safetensors";
export const MARIAN_TOKENIZER_FILE = "tokenizer.json";
export const MARIAN_OPTIMIZER_FILE = "optimizer.safetensors";
export const MARIAN_TRAINER_STATE_FILE = "trainer_state.json";

/** Errors about Marian files; the message names the file. */
export class MarianFileError extends Error {}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---- config.json --------------------------------------------------------------------------------------

/** MarianConfig's own defaults (transformers v4.31), for keys a config.json leaves out. */
const HF_DEFAULTS: MarianConfig = {
  vocab_size: 58101,
  decoder_vocab_size: 58101,
  d_model: 1024,
  encoder_layers: 12,
  decoder_layers: 12,
  encoder_attention_heads: 16,
  decoder_attention_heads: 16,
  encoder_ffn_dim: 4096,
  decoder_ffn_dim: 4096,
  max_position_embeddings: 1024,
  activation_function: "gelu",
  dropout: 0.1,
  attention_dropout: 0,
  activation_dropout: 0,
  scale_embedding: false,
  share_encoder_decoder_embeddings: true,
  tie_word_embeddings: true,
  init_std: 0.02,
  pad_token_id: 58100,
  eos_token_id: 0,
  decoder_start_token_id: 58100,
  forced_eos_token_id: 0,
  max_length: 20,
  num_beams: 1,
  bad_words_ids: null,
};

export function marianConfigToJSON(c: MarianConfig, notes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["MarianMTModel"],
    model_type: "marian",
    ...c,
    is_encoder_decoder: true,
    static_position_embeddings: true,
    normalize_embedding: false,
    add_bias_logits: false,
    use_cache: true,
    torch_dtype: "float32",
    ...(Object.keys(notes).length ? { moxing: notes } : {}),
  };
}

/** A MarianConfig from parsed config.json (moxing's or Hugging Face's); also moxing's notes. */
export function marianConfigFromJSON(json: unknown, source = MARIAN_CONFIG_FILE): { config: MarianConfig; notes: Record<string, unknown> } {
  const bad = (msg: string): never => {
    throw new MarianFileError(`${source}: ${msg}`);
  };
  if (!isRecord(json)) return bad("expected a JSON object");
  if (json.model_type !== "marian")
    bad(`model_type is ${JSON.stringify(json.model_type)}; this is not a Marian config (expected "marian")`);
  if (json.normalize_embedding === true) bad("normalize_embedding is true; moxing's Marian has no embedding LayerNorm");
  if (json.static_position_embeddings === false) bad("static_position_embeddings is false; moxing's Marian has sinusoidal positions only");
  const c: Record<string, unknown> = { ...HF_DEFAULTS };
  for (const k of Object.keys(HF_DEFAULTS)) if (json[k] !== undefined && json[k] !== null) c[k] = json[k];
  if (json.decoder_vocab_size == null) c.decoder_vocab_size = c.vocab_size;
  if (json.forced_eos_token_id === null) c.forced_eos_token_id = null;
  for (const [k, v] of Object.entries(c)) {
    const want = typeof (HF_DEFAULTS as unknown as Record<string, unknown>)[k];
    if (k === "bad_words_ids" || k === "forced_eos_token_id") continue;
    if (typeof v !== want) bad(`${k} must be a ${want} (got ${JSON.stringify(v)})`);
  }
  if (
    c.bad_words_ids !== null &&
    !(Array.isArray(c.bad_words_ids) && c.bad_words_ids.every((s) => Array.isArray(s) && s.length > 0 && s.every(Number.isInteger)))
  ) {
    bad(`bad_words_ids must be a list of token id lists (got ${JSON.stringify(c.bad_words_ids)})`);
  }
  const config = c as unknown as MarianConfig;
  config.activation_function = String(config.activation_function) as MarianActivation;
  try {
    validateMarianConfig(config);
  } catch (e) {
    bad((e as Error).message);
  }
  return { config, notes: isRecord(json.moxing) ? json.moxing : {} };
}

// ---- weights ------------------------------------------------------------------------------------------

/** The parameter a file's tensor name is (model.* prefixed; tied names mapped to the one moxing keeps),
 *  "positions" for the sinusoid tables, or null for names that are not Marian's. */
function canonicalName(fileName: string, c: MarianConfig): string | "positions" {
  let n = fileName;
  if (/^(shared|encoder|decoder)\./.test(n)) n = `model.${n}`;
  if (/^model\.(encoder|decoder)\.embed_positions\.weight$/.test(n)) return "positions";
  if (c.share_encoder_decoder_embeddings && /^model\.(encoder|decoder)\.embed_tokens\.weight$/.test(n)) return "model.shared.weight";
  if (n === "lm_head.weight" && c.tie_word_embeddings) {
    return c.share_encoder_decoder_embeddings ? "model.shared.weight" : "model.decoder.embed_tokens.weight";
  }
  return n;
}

/**
 * Copy weights under Hugging Face's names into `model`. Every weight must be there with its shape
 * (under any of its tied names, which must then agree); final_logits_bias may be missing. Errors
 * name the tensor and what was expected.
 */
export function loadMarianStateDict(
  model: MarianMTModel,
  tensors: Map<string, { shape: number[]; data: Float32Array | Int32Array }>,
  source = "weights",
): void {
  const c = model.config;
  const own = model.stateDict();
  const found = new Map<string, { file: string; t: { shape: number[]; data: Float32Array | Int32Array } }>();
  const unexpected: string[] = [];
  const fail = (msg: string): never => {
    throw new MarianFileError(`${source}: ${msg}`);
  };
  for (const [file, t] of tensors) {
    const name = canonicalName(file, c);
    if (name === "positions") {
      const want = marianSinusoids(c.max_position_embeddings, c.d_model);
      if (t.shape.length !== 2 || t.shape[1] !== c.d_model || (t.shape[0] as number) < 1)
        fail(`tensor '${file}' has shape [${t.shape.join(", ")}] but d_model is ${c.d_model}`);
      // Fixed sinusoids: a checkpoint with other values was made by another model.
      const w = want.data as Float32Array;
      const n = Math.min(t.data.length, w.length);
      for (let i = 0; i < n; i++) {
        if (Math.abs((t.data[i] as number) - (w[i] as number)) > 1e-3)
          fail(`tensor '${file}' is not Marian's sinusoid table (learned positions are not supported)`);
      }
      continue;
    }
    const want = own.get(name);
    if (!want) {
      unexpected.push(file);
      continue;
    }
    if (t.shape.length !== want.ndim || t.shape.some((d, i) => d !== want.shape[i])) {
      fail(`tensor '${file}' has shape [${t.shape.join(", ")}] but this model needs [${want.shape.join(", ")}]`);
    }
    if (!(t.data instanceof Float32Array)) fail(`tensor '${file}' holds integers; weights must be floating point`);
    const prev = found.get(name);
    if (prev) {
      // Tied names: the same values, or the config does not describe this file.
      const a = prev.t.data;
      for (let i = 0; i < a.length; i++) {
        if (a[i] !== t.data[i]) {
          fail(
            `tensors '${prev.file}' and '${file}' differ, but config.json ties them (share_encoder_decoder_embeddings / tie_word_embeddings); set those false for separate tables`,
          );
        }
      }
      continue;
    }
    found.set(name, { file, t });
  }
  const list = (ks: string[]) => `'${ks.slice(0, 3).join("', '")}'${ks.length > 3 ? ` (+${ks.length - 3} more)` : ""}`;
  if (unexpected.length)
    fail(
      `unexpected tensor ${list(unexpected)}: not a weight of a Marian model with this config (${c.encoder_layers} encoder and ${c.decoder_layers} decoder layers)`,
    );
  const missing = [...own.keys()].filter((k) => !found.has(k) && k !== "final_logits_bias");
  if (missing.length) fail(`missing tensor ${list(missing)}; do config.json and the weights belong to the same model?`);
  const sd = new Map<string, Tensor>();
  for (const [name, { t }] of found) sd.set(name, tensor(t.data as Float32Array, { shape: [...t.shape] }));
  model.loadStateDict(sd, false);
  if (!found.has("final_logits_bias")) model.final_logits_bias.fill_(0);
}

/** The model's weights under Hugging Face's names, one name per tied tensor (as save_pretrained). */
export function marianStateDict(model: MarianMTModel): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of model.stateDict()) {
    out.set(name, { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) });
  }
  return out;
}

// ---- directories -----------------------------------------------------------------------------------------

function fileIn(dir: string, name: string): string {
  return checkpointFile(dir, name) ?? join(dir, name);
}

export function readMarianConfig(dir: string): { config: MarianConfig; notes: Record<string, unknown> } {
  checkModelDir(dir, MarianFileError);
  const p = fileIn(dir, MARIAN_CONFIG_FILE);
  if (!existsSync(p)) throw new MarianFileError(`${p}: file not found; is '${dir}' a model directory?`);
  return marianConfigFromJSON(readJSONFile(p, MarianFileError), p);
}

/** The directory's tokenizer.json, or null when it has none. */
export function readMarianTokenizer(dir: string): Tokenizer | null {
  const p = fileIn(dir, MARIAN_TOKENIZER_FILE);
  if (!existsSync(p)) return null;
  try {
    return loadTokenizer(readJSONFile(p, MarianFileError));
  } catch (e) {
    if (e instanceof MarianFileError) throw e;
    throw new MarianFileError(`${p}: ${(e as Error).message}`);
  }
}

export interface LoadedMarian {
  model: MarianMTModel;
  tokenizer: Tokenizer | null;
  config: MarianConfig;
  notes: Record<string, unknown>;
}

/** Load a Marian model directory (in eval mode). */
export function loadMarian(dir: string, opts: { generator?: Generator } = {}): LoadedMarian {
  const { config, notes } = readMarianConfig(dir);
  const tokenizer = readMarianTokenizer(dir);
  if (tokenizer && tokenizer.vocabSize > Math.min(config.vocab_size, config.decoder_vocab_size)) {
    throw new MarianFileError(
      `${join(dir, MARIAN_TOKENIZER_FILE)}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocab_size}`,
    );
  }
  const path = fileIn(dir, MARIAN_MODEL_FILE);
  if (!existsSync(path)) throw new MarianFileError(`${path}: file not found; the directory has no weights`);
  let file: ReturnType<typeof readSafetensors>;
  try {
    file = readSafetensors(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new MarianFileError(e.message);
    throw e;
  }
  const model = new MarianMTModel(config, { generator: opts.generator, seed: 0 });
  loadMarianStateDict(model, file.tensors, path);
  model.eval();
  return { model, tokenizer, config: model.config, notes };
}

export interface MarianSaveParts {
  model: MarianMTModel;
  tokenizer: Tokenizer;
  notes?: Record<string, unknown>;
  optimizer?: AdamW;
  trainerState?: object;
}

/** The files of a Marian model directory: config.json, model.safetensors, tokenizer.json. */
export function marianModelFiles(
  model: MarianMTModel,
  tokenizer: Tokenizer,
  notes: Record<string, unknown> = {},
): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  files.set(MARIAN_MODEL_FILE, encodeSafetensors(marianStateDict(model), { format: "pt" }));
  files.set(MARIAN_TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON()));
  files.set(MARIAN_CONFIG_FILE, `${JSON.stringify(marianConfigToJSON(model.config, notes), null, 2)}\n`);
  return files;
}

/** Write a Marian model directory (with optimizer and trainerState: a training checkpoint) as one set. */
export function saveMarian(dir: string, parts: MarianSaveParts): void {
  const files = marianModelFiles(parts.model, parts.tokenizer, parts.notes);
  if (parts.optimizer) files.set(MARIAN_OPTIMIZER_FILE, optimizerToSafetensors(parts.model, parts.optimizer));
  if (parts.trainerState) files.set(MARIAN_TRAINER_STATE_FILE, `${JSON.stringify(parts.trainerState, null, 2)}\n`);
  commitFiles(
    dir,
    files,
    [MARIAN_OPTIMIZER_FILE, MARIAN_TRAINER_STATE_FILE].filter((f) => !files.has(f)),
  );
}

/** Restore AdamW's moments saved by saveMarian. */
export function loadMarianOptimizer(dir: string, model: MarianMTModel, optimizer: AdamW): void {
  loadOptimizerFile(fileIn(dir, MARIAN_OPTIMIZER_FILE), model, optimizer, (m) => new MarianFileError(m));
}

/** trainer_state.json of a directory, or null. */
export function readMarianTrainerState(dir: string): Record<string, unknown> | null {
  const p = fileIn(dir, MARIAN_TRAINER_STATE_FILE);
  if (!existsSync(p)) return null;
  const j = readJSONFile(p, MarianFileError);
  if (!isRecord(j)) throw new MarianFileError(`${p}: expected a JSON object`);
  return j;
}

export { MARIAN_DEFAULTS };
