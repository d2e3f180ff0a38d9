// BERT model directories, laid out as Hugging Face lays out a BERT checkpoint so each side reads
// the other's:
//   config.json            BertConfig's keys (architectures ["BertForMaskedLM"], model_type "bert",
//                          hidden_size, num_hidden_layers, ..., id2label / label2id for classifiers),
//                          plus moxing's notes under "moxing" (task, where the training data came from)
//   model.safetensors      the state dict under Hugging Face's names, F32, metadata format "pt"; the
//                          masked-LM decoder is tied to the word embeddings and not stored (as
//                          save_pretrained does)
//   tokenizer.json         the WordPiece tokenizer (Hugging Face's tokenizer.json), and vocab.txt +
//                          tokenizer_config.json for BertTokenizer
// A training checkpoint adds optimizer.safetensors (AdamW moments by parameter name) and
// trainer_state.json. Each file is written atomically (temporary file, then rename); the trainer
// state is written last.
//
// Reading accepts what Hugging Face BERT files may also hold: names without "bert." (a bare
// BertModel), the old LayerNorm names gamma/beta, the position_ids buffer (I64), the tied
// cls.predictions.decoder weight and bias, the next-sentence head cls.seq_relationship (ignored),
// and F16/BF16 weights. Loading a directory for another task keeps the encoder and starts the new
// head from Hugging Face's initialisation, saying which weights are new.

import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  BERT_ARCHITECTURES,
  BERT_DEFAULTS,
  Bert,
  type BertConfig,
  type BertTask,
  canonicalBertName,
  loadBertWeights,
  validateBertConfig,
} from "../models/bert.js";
import { exportNamedWeights } from "../nn/state-dict.js";
import type { AdamW } from "../optim/adamw.js";
import type { Generator } from "../tensor/random.js";
import { loadTokenizer } from "../tokenizers/tokenizer.js";
import { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { isRecord } from "../util/json.js";
import { FILE_LIMITS } from "./files.js";
import { checkFiniteWeights } from "./finite.js";
import { commitFiles } from "./journal.js";
import {
  CONFIG_FILE,
  checkModelDir,
  checkpointFile,
  MODEL_FILE,
  OPTIMIZER_FILE,
  readJSONFile,
  TOKENIZER_FILE,
  TRAINER_STATE_FILE,
} from "./model-dir.js";
import { loadOptimizerFile, optimizerToSafetensors } from "./optimizer.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

/** Errors about BERT files; the message names the file. */
export class BertFileError extends Error {}

/** What config.json says beyond the model's shape. */
export interface BertDirInfo {
  task: BertTask;
  /** Class names by id, for classifiers (Hugging Face's id2label). */
  labels: string[] | null;
  /** Whether the encoder has a pooler. */
  pooler: boolean;
  /** moxing's notes (training data and the like), as written. */
  notes: Record<string, unknown>;
}

const TASK_OF_ARCHITECTURE: Record<string, BertTask> = {
  BertModel: "feature-extraction",
  BertForMaskedLM: "fill-mask",
  BertForPreTraining: "fill-mask",
  BertForSequenceClassification: "text-classification",
  BertForTokenClassification: "token-classification",
  BertForQuestionAnswering: "question-answering",
};

// ---- config.json ----------------------------------------------------------------------------------

export function bertConfigToJSON(model: Bert, opts: { labels?: readonly string[] | null; notes?: Record<string, unknown> } = {}): object {
  const c = model.config;
  const labels = opts.labels ?? null;
  return {
    architectures: [BERT_ARCHITECTURES[model.task]],
    model_type: "bert",
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    intermediate_size: c.intermediate_size,
    hidden_act: "gelu",
    hidden_dropout_prob: c.hidden_dropout_prob,
    attention_probs_dropout_prob: c.attention_probs_dropout_prob,
    max_position_embeddings: c.max_position_embeddings,
    type_vocab_size: c.type_vocab_size,
    initializer_range: c.initializer_range,
    layer_norm_eps: c.layer_norm_eps,
    pad_token_id: c.pad_token_id,
    position_embedding_type: "absolute",
    classifier_dropout: null,
    use_cache: true,
    torch_dtype: "float32",
    ...(labels
      ? {
          id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
          label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
        }
      : {}),
    moxing: { task: model.task, pooler: model.bert.pooler !== null, ...(opts.notes ?? {}) },
  };
}

/** A BERT config and what the directory is for, from parsed config.json (moxing's or Hugging Face's). */
export function bertConfigFromJSON(json: unknown, source = CONFIG_FILE): { config: BertConfig; info: BertDirInfo } {
  const bad = (msg: string): never => {
    throw new BertFileError(`${source}: ${msg}`);
  };
  if (!isRecord(json)) return bad("expected a JSON object");
  if (json.model_type !== "bert") bad(`model_type is ${JSON.stringify(json.model_type)}; this is not a BERT config (expected "bert")`);
  const act = json.hidden_act ?? "gelu";
  if (act !== "gelu") bad(`hidden_act is ${JSON.stringify(act)}; moxing's BERT uses exact GELU ("gelu")`);
  const pos = json.position_embedding_type ?? "absolute";
  if (pos !== "absolute") bad(`position_embedding_type is ${JSON.stringify(pos)}; moxing's BERT has absolute positions only`);
  if (json.is_decoder === true || json.add_cross_attention === true)
    bad("is_decoder / add_cross_attention: moxing's BERT is an encoder only");
  const num = (k: keyof BertConfig): number => {
    const v = json[k] ?? BERT_DEFAULTS[k];
    if (typeof v !== "number") bad(`${k} must be a number (got ${JSON.stringify(v)})`);
    return v as number;
  };
  const config: BertConfig = {
    vocab_size: num("vocab_size"),
    hidden_size: num("hidden_size"),
    num_hidden_layers: num("num_hidden_layers"),
    num_attention_heads: num("num_attention_heads"),
    intermediate_size: num("intermediate_size"),
    max_position_embeddings: num("max_position_embeddings"),
    type_vocab_size: num("type_vocab_size"),
    layer_norm_eps: num("layer_norm_eps"),
    hidden_dropout_prob: num("hidden_dropout_prob"),
    attention_probs_dropout_prob: num("attention_probs_dropout_prob"),
    initializer_range: num("initializer_range"),
    pad_token_id: json.pad_token_id == null ? 0 : num("pad_token_id"),
  };
  try {
    validateBertConfig(config);
  } catch (e) {
    bad((e as Error).message);
  }
  const mx = isRecord(json.moxing) ? json.moxing : {};
  const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  let task: BertTask = "fill-mask";
  if (typeof mx.task === "string") {
    if (!(mx.task in BERT_ARCHITECTURES)) bad(`moxing.task ${JSON.stringify(mx.task)} is not a BERT task`);
    task = mx.task as BertTask;
  } else if (typeof arch === "string") {
    const t = TASK_OF_ARCHITECTURE[arch];
    if (!t) bad(`architecture ${arch} is not one moxing builds (${Object.keys(TASK_OF_ARCHITECTURE).join(", ")})`);
    task = t as BertTask;
  }
  let labels: string[] | null = null;
  if (isRecord(json.id2label) && (task === "text-classification" || task === "token-classification")) {
    const entries = Object.entries(json.id2label);
    labels = entries.map((_, i) => {
      const l = (json.id2label as Record<string, unknown>)[String(i)];
      if (typeof l !== "string") return bad(`id2label has no string label for id ${i} (ids must run 0..${entries.length - 1})`);
      return l;
    });
  }
  const { task: _t, pooler, ...notes } = mx;
  return { config, info: { task, labels, pooler: pooler !== false, notes } };
}

// ---- weights --------------------------------------------------------------------------------------
// Loading goes through the one named-weight loader with BERT's name map (bertWeightNames in models/bert.ts).

/** What loading a file into a BERT found: new parameters (a head or pooler the file lacked,
 *  initialised afresh) and tensors it had no use for (another task's head, the tied decoder, ...). */
export interface LoadReport {
  initialised: string[];
  ignored: string[];
}

/** The model's weights under Hugging Face's names (the tied decoder left out, as save_pretrained does). */
export function bertStateDict(model: Bert): Map<string, SafeTensor> {
  return new Map([...exportNamedWeights(model, {})].map(([name, t]) => [name, { dtype: "F32", ...t }]));
}

// ---- directories ----------------------------------------------------------------------------------

const readJSON = (path: string) => readJSONFile(path, BertFileError);
const checkDir = (dir: string) => checkModelDir(dir, BertFileError);

/** config.json of a BERT model directory. */
export function readBertConfig(dir: string): { config: BertConfig; info: BertDirInfo } {
  checkDir(dir);
  const p = fileIn(dir, CONFIG_FILE);
  if (!existsSync(p)) throw new BertFileError(`${p}: file not found; is '${dir}' a model directory?`);
  return bertConfigFromJSON(readJSON(p), p);
}

/** The WordPiece tokenizer of a directory: tokenizer.json, else vocab.txt (+ tokenizer_config.json's do_lower_case). */
export function readBertTokenizer(dir: string): WordPieceTokenizer {
  const p = fileIn(dir, TOKENIZER_FILE);
  if (existsSync(p)) {
    let tok: unknown;
    try {
      tok = loadTokenizer(readJSONFile(p, BertFileError, FILE_LIMITS.tokenizer));
    } catch (e) {
      if (e instanceof BertFileError) throw e;
      throw new BertFileError(`${p}: ${(e as Error).message}`);
    }
    if (!(tok instanceof WordPieceTokenizer)) throw new BertFileError(`${p}: a BERT model needs a WordPiece tokenizer`);
    return tok;
  }
  const vocab = fileIn(dir, "vocab.txt");
  if (!existsSync(vocab)) throw new BertFileError(`${p}: file not found (nor vocab.txt); the directory has no tokenizer`);
  const cfgPath = fileIn(dir, "tokenizer_config.json");
  const cfg = existsSync(cfgPath) ? readJSON(cfgPath) : {};
  const lowercase = isRecord(cfg) && typeof cfg.do_lower_case === "boolean" ? cfg.do_lower_case : true;
  return WordPieceTokenizer.fromVocabFile(vocab, { lowercase });
}

export interface LoadedBert {
  model: Bert;
  tokenizer: WordPieceTokenizer;
  config: BertConfig;
  info: BertDirInfo;
  report: LoadReport;
}

/**
 * Load a BERT model directory. With `task` other than the directory's own, the encoder is loaded and
 * the task's head starts fresh (seeded by `generator`); `numLabels` sizes a classifier head. The model
 * is returned in eval mode.
 */
export function loadBert(
  dir: string,
  opts: { task?: BertTask; numLabels?: number; generator?: Generator; seed?: number } = {},
): LoadedBert {
  const { config, info } = readBertConfig(dir);
  const tokenizer = readBertTokenizer(dir);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new BertFileError(
      `${join(dir, TOKENIZER_FILE)}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocab_size}`,
    );
  }
  const task = opts.task ?? info.task;
  const sameTask = task === info.task;
  const numLabels = opts.numLabels ?? (sameTask && info.labels ? info.labels.length : 2);
  const path = fileIn(dir, MODEL_FILE);
  let file: ReturnType<typeof readSafetensors>;
  try {
    file = readSafetensors(path, { only: (name) => canonicalBertName(name) !== null });
  } catch (e) {
    if (e instanceof SafetensorsError) throw new BertFileError(e.message);
    throw e;
  }
  // Hugging Face's BertForMaskedLM (and token classification, QA) have no pooler: follow the file.
  const hasPooler = [...file.tensors.keys()].some((n) => canonicalBertName(n)?.startsWith("bert.pooler."));
  const model = new Bert(config, {
    task,
    numLabels,
    init: "none",
    generator: opts.generator,
    seed: opts.seed ?? 0,
    addPoolingLayer: task === "text-classification" || hasPooler,
  });
  let report: LoadReport;
  try {
    report = loadBertWeights(model, file.tensors, { allowNewHead: !sameTask });
  } catch (e) {
    throw new BertFileError(`${path}: ${(e as Error).message}`);
  }
  checkFiniteWeights(model.namedParameters(), path, BertFileError);
  model.eval();
  return { model, tokenizer, config, info: { ...info, task, labels: sameTask ? info.labels : null }, report };
}

export interface BertSaveParts {
  model: Bert;
  tokenizer: WordPieceTokenizer;
  labels?: readonly string[] | null;
  notes?: Record<string, unknown>;
  /** A training checkpoint also holds the optimizer's moments and the trainer's state. */
  optimizer?: AdamW;
  trainerState?: object;
}

/** The files of a BERT model directory: weights, tokenizer.json, vocab.txt, tokenizer_config.json, config.json. */
export function bertModelFiles(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  opts: { labels?: readonly string[] | null; notes?: Record<string, unknown> } = {},
): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  files.set(MODEL_FILE, encodeSafetensors(bertStateDict(model), { format: "pt" }));
  files.set(TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON()));
  files.set("vocab.txt", tokenizer.toVocabTxt());
  files.set(
    "tokenizer_config.json",
    `${JSON.stringify(
      {
        tokenizer_class: "BertTokenizer",
        do_lower_case: tokenizer.options.lowercase,
        model_max_length: model.config.max_position_embeddings,
        unk_token: tokenizer.unkToken,
        sep_token: tokenizer.sepToken,
        pad_token: tokenizer.padToken,
        cls_token: tokenizer.clsToken,
        mask_token: tokenizer.maskToken,
      },
      null,
      2,
    )}\n`,
  );
  files.set(CONFIG_FILE, `${JSON.stringify(bertConfigToJSON(model, opts), null, 2)}\n`);
  return files;
}

/** Write a BERT model directory (and, with optimizer and trainerState, a training checkpoint),
 *  atomically as a set: a crash leaves either the previous checkpoint or this one, never a mix
 *  (the journal of checkpoint.ts). Saving a plain model deletes a stale optimizer and trainer state. */
export function saveBert(dir: string, parts: BertSaveParts): void {
  const { model, tokenizer } = parts;
  const files = bertModelFiles(model, tokenizer, { labels: parts.labels, notes: parts.notes });
  if (parts.optimizer) files.set(OPTIMIZER_FILE, optimizerToSafetensors(model, parts.optimizer));
  if (parts.trainerState) files.set(TRAINER_STATE_FILE, `${JSON.stringify(parts.trainerState, null, 2)}\n`);
  commitFiles(
    dir,
    files,
    [OPTIMIZER_FILE, TRAINER_STATE_FILE].filter((f) => !files.has(f)),
  );
}

/** Where to read `name` of a model directory: from a checkpoint whose commit was interrupted when it
 *  holds the file (it is the newer one), else the directory's own (which may not exist). */
function fileIn(dir: string, name: string): string {
  return checkpointFile(dir, name) ?? join(dir, name);
}

/** Restore AdamW's moments saved by saveBert. */
export function loadBertOptimizer(dir: string, model: Bert, optimizer: AdamW): void {
  loadOptimizerFile(fileIn(dir, OPTIMIZER_FILE), model, optimizer, (m) => new BertFileError(m));
}

/** trainer_state.json of a directory, or null. */
export function readBertTrainerState(dir: string): Record<string, unknown> | null {
  const p = fileIn(dir, TRAINER_STATE_FILE);
  if (!existsSync(p)) return null;
  const j = readJSON(p);
  if (!isRecord(j)) throw new BertFileError(`${p}: expected a JSON object`);
  return j;
}
