// Model directories and training checkpoints.
//
// A model directory is laid out as Hugging Face lays out a GPT-2 checkpoint, so each side reads the
// other's:
//   config.json            GPT2Config's keys (architectures ["GPT2LMHeadModel"], model_type "gpt2",
//                          n_layer, n_head, n_embd, n_positions = block_size, vocab_size,
//                          layer_norm_epsilon, activation_function "gelu_new", ...) plus moxing's own
//                          settings under "moxing" (positional encoding, biases, tying)
//   model.safetensors      GPT2LMHeadModel's state dict, F32, metadata format "pt": transformer.wte.weight,
//                          transformer.h.N.attn.c_attn.weight, ... with the four projections of each
//                          block in GPT-2's Conv1D (in, out) orientation and no lm_head.weight when the
//                          head is tied (see loadHFStateDict in models/gpt.ts)
//   tokenizer.json         the tokenizer's toJSON(): Hugging Face's tokenizer.json for byte-level BPE,
//                          moxing's own JSON for the char tokenizer
// Reading also takes what Hugging Face directories may have instead: names without "transformer.",
// mask buffers, F16/BF16 weights, shards listed in model.safetensors.index.json, and GPT-2's
// vocab.json + merges.txt in place of tokenizer.json. Files written by moxing 0.1 (metadata format
// "moxing": projections stored (out, in)) still load.
// A training checkpoint also holds
//   optimizer.safetensors  AdamW's moments: "<param>.exp_avg" and "<param>.exp_avg_sq" per parameter,
//                          in the parameters' own (moxing) shapes
//   trainer_state.json     step, RNG states, data sampler state, training arguments, best val loss
//
// Crash safety. A checkpoint is never half-written, and its files always belong together. Writing is
// a small journal in the model directory:
//   1. every file is written and fsynced into DIR/.checkpoint-tmp-<pid>/, with a MANIFEST.json
//      listing the files and any stale files to delete (e.g. trainer_state.json when only a model
//      is saved);
//   2. that directory is renamed to DIR/.checkpoint-commit: the COMMIT POINT (one atomic rename);
//   3. each file is renamed from there into DIR (each rename atomic), stale files are deleted, and
//      .checkpoint-commit is removed.
// A crash before 2 leaves the previous checkpoint untouched (the temp dir is garbage, removed later).
// A crash during 3 leaves a complete new set in .checkpoint-commit: readers here take each file from
// there when present (so they see the new set), and the next writer or resume rolls it forward
// (`recoverCheckpoint`). Files of DIR that are not part of checkpoints (metrics.jsonl, data) are
// never touched.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  canonicalWeightName,
  GPT,
  type GPTConfig,
  hfStateDict,
  loadHFStateDict,
  type PositionalEncoding,
  validateGPTConfig,
  type WeightTensor,
} from "../models/gpt.js";
import type { AdamW } from "../optim/adamw.js";
import type { Generator } from "../tensor/random.js";
import {
  ByteLevelBPE,
  loadTokenizer,
  readTokenizerConfig,
  TOKENIZER_CONFIG_FILE,
  type Tokenizer,
  tokenizerConfigToJSON,
} from "../tokenizers/index.js";
import { fsyncDir, writeFileSynced } from "./atomic.js";
import { FILE_LIMITS, makeOutputDir, readJSONFile as readJSON } from "./files.js";
import { checkFiniteWeights } from "./finite.js";
import { loadOptimizerFile, optimizerToSafetensors } from "./optimizer.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

export const CONFIG_FILE = "config.json";
export const MODEL_FILE = "model.safetensors";
export const TOKENIZER_FILE = "tokenizer.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const TRAINER_STATE_FILE = "trainer_state.json";
/** Hugging Face's index of a model saved in several safetensors shards. */
export const MODEL_INDEX_FILE = "model.safetensors.index.json";
const CHECKPOINT_FILES = [CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE];
const COMMIT_DIR = ".checkpoint-commit";
const TMP_PREFIX = ".checkpoint-tmp-";
const MANIFEST = "MANIFEST.json";

/** Errors about files on disk; the message names the file. */
export class CheckpointError extends Error {}

// ---- config.json ------------------------------------------------------------------------------

/** config.json as moxing writes it: Hugging Face's GPT2Config keys, plus moxing's own under "moxing". */
export interface GPT2StyleConfig {
  architectures: ["GPT2LMHeadModel"];
  model_type: "gpt2";
  vocab_size: number;
  n_positions: number;
  /** The old name of n_positions, still read by some tools (llama.cpp's converter among them). */
  n_ctx: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: null;
  activation_function: "gelu_new";
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  layer_norm_epsilon: number;
  initializer_range: number;
  scale_attn_weights: true;
  scale_attn_by_inverse_layer_idx: false;
  reorder_and_upcast_attn: false;
  use_cache: true;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
  torch_dtype: "float32";
  moxing: { pos_encoding: PositionalEncoding; tie_weights: boolean; bias: boolean; dropout: number };
}

/** GPT-2's LayerNorm epsilon; moxing's GPT uses it and no other. */
const LAYER_NORM_EPS = 1e-5;
/** Hugging Face's names for GELU with the tanh approximation, which GPT-2 (and moxing) uses. */
const TANH_GELU = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/** The end-of-text token of a tokenizer (tokenizer_config.json's eos_token, e.g. a chat model's
 *  "<|im_end|>"; else "<|endoftext|>", else its only special token), or null. */
export function endOfTextId(tokenizer: Tokenizer | undefined): number | null {
  if (!tokenizer) return null;
  const eos = tokenizer.config?.eos_token;
  if (eos !== undefined && tokenizer.specialTokens.has(eos)) return tokenizer.specialTokens.get(eos) as number;
  const eot = tokenizer.specialTokens.get("<|endoftext|>");
  if (eot !== undefined) return eot;
  return tokenizer.specialTokens.size === 1 ? ([...tokenizer.specialTokens.values()][0] as number) : null;
}

export function configToJSON(c: GPTConfig, opts: { tokenizer?: Tokenizer } = {}): GPT2StyleConfig {
  const eot = endOfTextId(opts.tokenizer);
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: c.vocab_size,
    n_positions: c.block_size,
    n_ctx: c.block_size,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_inner: null,
    activation_function: "gelu_new",
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: LAYER_NORM_EPS,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    use_cache: true,
    tie_word_embeddings: c.tie_weights,
    bos_token_id: eot,
    eos_token_id: eot,
    torch_dtype: "float32",
    moxing: { pos_encoding: c.pos_encoding, tie_weights: c.tie_weights, bias: c.bias, dropout: c.dropout },
  };
}

/**
 * Read a GPT config from parsed config.json: moxing's own, or a Hugging Face GPT-2 config. Features
 * of GPT2Config that moxing's GPT does not implement (another activation, n_inner, epsilon, attention
 * scaling variants, cross-attention) are refused by name. `source` names the file in errors.
 */
export function configFromJSON(json: unknown, source = CONFIG_FILE): GPTConfig {
  const bad = (msg: string): never => {
    throw new CheckpointError(`${source}: ${msg}`);
  };
  if (!isRecord(json)) return bad("expected a JSON object");
  if (json.model_type !== "gpt2") bad(`model_type is ${JSON.stringify(json.model_type)}; moxing reads "gpt2" configs`);
  const int = (k: string, fallbackKey?: string): number => {
    const key = json[k] === undefined && fallbackKey !== undefined && json[fallbackKey] !== undefined ? fallbackKey : k;
    const v = json[key];
    if (!Number.isInteger(v) || (v as number) < 1) bad(`${key} must be a positive integer (got ${JSON.stringify(v)})`);
    return v as number;
  };
  const mx = json.moxing === undefined ? {} : json.moxing;
  if (!isRecord(mx)) return bad('"moxing" must be an object');
  const bool = (k: string, fallback: boolean): boolean => {
    const v = mx[k] ?? fallback;
    if (typeof v !== "boolean") bad(`moxing.${k} must be true or false (got ${JSON.stringify(v)})`);
    return v as boolean;
  };
  const act = json.activation_function ?? "gelu_new";
  if (typeof act !== "string" || !TANH_GELU.includes(act)) {
    bad(`activation_function is ${JSON.stringify(act)}; moxing's GPT uses GELU with the tanh approximation ("gelu_new")`);
  }
  const n_embd = int("n_embd");
  if (json.n_inner != null && json.n_inner !== 4 * n_embd) {
    bad(`n_inner is ${JSON.stringify(json.n_inner)}; moxing's GPT has a feed-forward width of 4 * n_embd (${4 * n_embd}); use null`);
  }
  const eps = json.layer_norm_epsilon ?? LAYER_NORM_EPS;
  if (typeof eps !== "number" || Math.abs(eps - LAYER_NORM_EPS) > 1e-12) {
    bad(`layer_norm_epsilon is ${JSON.stringify(eps)}; moxing's GPT uses ${LAYER_NORM_EPS}`);
  }
  if (json.scale_attn_weights === false) bad("scale_attn_weights is false; moxing's attention always scales by 1/sqrt(head size)");
  if (json.scale_attn_by_inverse_layer_idx === true) bad("scale_attn_by_inverse_layer_idx is true, which moxing's GPT does not implement");
  if (json.add_cross_attention === true) bad("add_cross_attention is true; moxing's GPT is decoder-only");
  const dropout = mx.dropout ?? json.resid_pdrop ?? 0;
  if (typeof dropout !== "number") bad(`moxing.dropout must be a number (got ${JSON.stringify(dropout)})`);
  const pos = mx.pos_encoding ?? "learned";
  const config: GPTConfig = {
    n_layer: int("n_layer"),
    n_head: int("n_head"),
    n_embd,
    block_size: int("n_positions", "n_ctx"),
    vocab_size: int("vocab_size"),
    dropout: dropout as number,
    bias: bool("bias", true),
    tie_weights: bool("tie_weights", typeof json.tie_word_embeddings === "boolean" ? json.tie_word_embeddings : true),
    pos_encoding: pos as PositionalEncoding,
  };
  try {
    validateGPTConfig(config);
  } catch (e) {
    bad((e as Error).message);
  }
  return config;
}

// ---- reading ------------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The stale-file list of an interrupted commit, if any. */
function pendingCommit(dir: string): { files: string[]; remove: string[] } | null {
  const commit = join(dir, COMMIT_DIR);
  if (!existsSync(commit)) return null;
  let remove: string[] = [];
  try {
    const m = JSON.parse(readFileSync(join(commit, MANIFEST), "utf8")) as { remove?: unknown };
    if (Array.isArray(m.remove)) remove = m.remove.filter((x): x is string => typeof x === "string");
  } catch {
    // A commit directory always has its manifest; without one, move what is there and delete nothing.
  }
  const files = readdirSync(commit).filter((f) => f !== MANIFEST);
  return { files, remove };
}

/**
 * Where to read checkpoint file `name` of `dir`: from an interrupted commit when it holds the file
 * (it is newer), else from the directory. null when the file is absent (or an interrupted commit deletes it).
 */
export function checkpointFile(dir: string, name: string): string | null {
  const pending = pendingCommit(dir);
  if (pending?.files.includes(name)) return join(dir, COMMIT_DIR, name);
  if (pending?.remove.includes(name)) return null;
  const p = join(dir, name);
  return existsSync(p) ? p : null;
}

function requireFile(dir: string, name: string): string {
  const p = checkpointFile(dir, name);
  if (!p) throw new CheckpointError(`${join(dir, name)}: file not found; is '${dir}' a moxing model directory?`);
  return p;
}

type FileErrorClass = new (message: string) => Error;

/** A JSON file's contents; unreadable or invalid files raise `Err` naming the file (see io/files.ts:
 *  regular files only, at most maxBytes, syntax errors by line and column). */
export function readJSONFile(path: string, Err: FileErrorClass = CheckpointError, maxBytes: number = FILE_LIMITS.config): unknown {
  return readJSON(path, { Err, maxBytes });
}

/** Raise `Err` unless `dir` is an existing directory. */
export function checkModelDir(dir: string, Err: FileErrorClass = CheckpointError): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new Err(`model directory '${dir}' does not exist`);
  }
  if (!isDir) throw new Err(`'${dir}' is a file, not a model directory`);
}

export function readConfig(dir: string): GPTConfig {
  checkModelDir(dir);
  const p = requireFile(dir, CONFIG_FILE);
  return configFromJSON(readJSONFile(p), p);
}

/** The parsed config.json as written (for display). */
export function readRawConfig(dir: string): Record<string, unknown> {
  checkModelDir(dir);
  const p = requireFile(dir, CONFIG_FILE);
  const json = readJSONFile(p);
  configFromJSON(json, p); // validate
  return json as Record<string, unknown>;
}

export function readTokenizer(dir: string): Tokenizer {
  checkModelDir(dir);
  const p = checkpointFile(dir, TOKENIZER_FILE);
  if (!p) {
    // A Hugging Face GPT-2 directory may have only GPT-2's original files: vocab.json and merges.txt.
    const vocab = join(dir, "vocab.json");
    const merges = join(dir, "merges.txt");
    if (existsSync(vocab) && existsSync(merges)) {
      try {
        return ByteLevelBPE.fromGPT2Files(vocab, merges);
      } catch (e) {
        throw new CheckpointError(`${vocab}: ${(e as Error).message.split("\n")[0]}`);
      }
    }
    requireFile(dir, TOKENIZER_FILE); // throws "file not found"
  }
  const path = p as string;
  const json = readJSONFile(path, CheckpointError, FILE_LIMITS.tokenizer);
  let tokenizer: Tokenizer;
  try {
    tokenizer = loadTokenizer(json);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
  // tokenizer_config.json: the chat template and which special token ends a turn (chat models).
  try {
    readTokenizerConfig(dir, tokenizer, (name) => checkpointFile(dir, name));
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  return tokenizer;
}

/** Where a directory's weights are: model.safetensors, or the shards listed by model.safetensors.index.json. */
export function weightFiles(dir: string): string[] {
  const single = checkpointFile(dir, MODEL_FILE);
  if (single) return [single];
  const index = join(dir, MODEL_INDEX_FILE);
  if (existsSync(index)) {
    const json = readJSONFile(index);
    const map = isRecord(json) ? json.weight_map : undefined;
    if (!isRecord(map)) throw new CheckpointError(`${index}: expected { "weight_map": { tensor: file } }`);
    const files = [...new Set(Object.values(map))];
    for (const f of files) {
      if (typeof f !== "string" || f.includes("/") || f.includes("\\") || f === ".." || !f.endsWith(".safetensors")) {
        throw new CheckpointError(`${index}: weight_map names ${JSON.stringify(f)}; expected a .safetensors file in the same directory`);
      }
    }
    return (files as string[]).sort().map((f) => join(dir, f));
  }
  if (existsSync(join(dir, "pytorch_model.bin"))) {
    throw new CheckpointError(
      `${join(dir, MODEL_FILE)}: file not found; the directory has only pytorch_model.bin (a pickle, which moxing does not read): ` +
        "save the model with safe_serialization=True (transformers' default) to get model.safetensors",
    );
  }
  return [requireFile(dir, MODEL_FILE)];
}

/** The weights of a directory's safetensors files, F16/BF16 widened, mask buffers skipped; and their layout. */
export function readWeights(dir: string): { tensors: Map<string, WeightTensor>; layout: "conv1d" | "linear"; source: string } {
  const files = weightFiles(dir);
  const tensors = new Map<string, WeightTensor>();
  let layout: "conv1d" | "linear" = "conv1d";
  for (const f of files) {
    const file = readTensors(f);
    // moxing 0.1 wrote its own layout (Linear (out, in) projections), marked format "moxing".
    if (file.metadata.format === "moxing") layout = "linear";
    for (const [name, t] of file.tensors) {
      if (tensors.has(name)) throw new CheckpointError(`${f}: tensor '${name}' is also in another shard`);
      tensors.set(name, t as WeightTensor);
    }
  }
  return { tensors, layout, source: files.length === 1 ? (files[0] as string) : join(dir, MODEL_INDEX_FILE) };
}

/** Copy the weights of `dir` (model.safetensors, Hugging Face GPT-2 layout) into `model`. */
export function loadWeights(dir: string, model: GPT): void {
  const { tensors, layout, source } = readWeights(dir);
  try {
    loadHFStateDict(model, tensors, { layout });
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
}

function readTensors(path: string): ReturnType<typeof readSafetensors> {
  try {
    return readSafetensors(path, { only: (name) => canonicalWeightName(name) !== null });
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    throw e;
  }
}

/**
 * Load a model directory: config, weights and tokenizer. The model is returned in eval mode.
 * `generator` becomes the model's generator (for dropout), as in `new GPT(config, { generator })`.
 */
export function loadModel(dir: string, opts: { generator?: Generator } = {}): { model: GPT; tokenizer: Tokenizer; config: GPTConfig } {
  const config = readConfig(dir);
  const tokenizer = readTokenizer(dir);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new CheckpointError(
      `${join(dir, TOKENIZER_FILE)}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocab_size}`,
    );
  }
  const model = new GPT(config, opts.generator ? { generator: opts.generator } : { seed: 0 });
  loadWeights(dir, model);
  checkFiniteWeights(model.namedParameters(), dir, CheckpointError);
  model.eval();
  return { model, tokenizer, config };
}

/** AdamW's moments from `dir`/optimizer.safetensors, matched to parameters by name. */
export function loadOptimizerState(dir: string, model: GPT, optimizer: AdamW): void {
  loadOptimizerFile(requireFile(dir, OPTIMIZER_FILE), model, optimizer, (m) => new CheckpointError(m));
}

export function readTrainerState(dir: string): unknown | null {
  const p = checkpointFile(dir, TRAINER_STATE_FILE);
  return p ? readJSONFile(p) : null;
}

// ---- writing ------------------------------------------------------------------------------------

/** The model's weights as Hugging Face's GPT2LMHeadModel saves them (format "pt", Conv1D layout). */
export function modelToSafetensors(model: GPT): Uint8Array {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of hfStateDict(model)) tensors.set(name, { dtype: "F32", ...t });
  // transformers refuses safetensors files whose metadata lacks format "pt".
  return encodeSafetensors(tensors, { format: "pt" });
}

export interface CheckpointParts {
  model: GPT;
  tokenizer: Tokenizer;
  /** With optimizer and trainerState it is a training checkpoint; without, a model directory
   *  (stale optimizer / trainer state files in `dir` are then deleted). */
  optimizer?: AdamW;
  trainerState?: object;
}

/** Roll an interrupted commit forward and delete temp dirs of dead writers. Returns true if it rolled forward. */
export function recoverCheckpoint(dir: string): boolean {
  if (!existsSync(dir)) return false;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(name.slice(TMP_PREFIX.length));
    if (pid !== process.pid && !processAlive(pid)) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const pending = pendingCommit(dir);
  if (!pending) return false;
  const commit = join(dir, COMMIT_DIR);
  for (const f of pending.files) renameSync(join(commit, f), join(dir, f));
  for (const f of pending.remove) rmSync(join(dir, f), { force: true });
  fsyncDir(dir);
  rmSync(commit, { recursive: true, force: true });
  return true;
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The files of a GPT model directory: config.json, tokenizer.json (+ tokenizer_config.json), model.safetensors. */
export function gptModelFiles(model: GPT, tokenizer: Tokenizer): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  files.set(CONFIG_FILE, `${JSON.stringify(configToJSON(model.config, { tokenizer }), null, 2)}\n`);
  files.set(TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON()));
  // tokenizer_config.json only for tokenizers with a chat template or role tokens (chat models).
  const tokenizerConfig = tokenizerConfigToJSON(tokenizer);
  if (tokenizerConfig) files.set(TOKENIZER_CONFIG_FILE, `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
  files.set(MODEL_FILE, modelToSafetensors(model));
  return files;
}

/** Write a model directory or training checkpoint to `dir` (created if needed), atomically as a set. */
export function saveCheckpoint(dir: string, parts: CheckpointParts): void {
  const files = gptModelFiles(parts.model, parts.tokenizer);
  if (parts.optimizer) files.set(OPTIMIZER_FILE, optimizerToSafetensors(parts.model, parts.optimizer));
  if (parts.trainerState) files.set(TRAINER_STATE_FILE, `${JSON.stringify(parts.trainerState, null, 2)}\n`);
  commitFiles(
    dir,
    files,
    CHECKPOINT_FILES.filter((f) => !files.has(f)),
  );
}

/** Write `files` into `dir` as one set through the journal described at the top of this file, and
 *  delete the `remove` files (stale parts of an older checkpoint) with them. */
export function commitFiles(dir: string, files: ReadonlyMap<string, Uint8Array | string>, remove: readonly string[]): void {
  makeOutputDir(dir);
  recoverCheckpoint(dir);
  const tmp = join(dir, `${TMP_PREFIX}${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    for (const [name, data] of files) writeFileSynced(join(tmp, name), data);
    writeFileSynced(join(tmp, MANIFEST), JSON.stringify({ files: [...files.keys()], remove }));
    fsyncDir(tmp);
    renameSync(tmp, join(dir, COMMIT_DIR)); // the commit point
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(dir);
  recoverCheckpoint(dir);
}

/** Save a model and its tokenizer as a model directory (no training state). */
export function saveModel(dir: string, model: GPT, tokenizer: Tokenizer): void {
  saveCheckpoint(dir, { model, tokenizer });
}
