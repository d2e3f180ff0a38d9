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
import { BERT_ARCHITECTURES, BERT_DEFAULTS, Bert, type BertConfig, type BertTask, validateBertConfig } from "../models/bert.js";
import type { AdamW } from "../optim/adamw.js";
import { tensor } from "../tensor/creation.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { loadTokenizer } from "../tokenizers/tokenizer.js";
import { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { checkModelDir, checkpointFile, commitFiles, readJSONFile } from "./checkpoint.js";
import { FILE_LIMITS } from "./files.js";
import { checkFiniteWeights } from "./finite.js";
import { loadOptimizerFile, optimizerToSafetensors } from "./optimizer.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

export const BERT_CONFIG_FILE = "config.json";
export const BERT_MODEL_FILE = "model.safetensors";
export const BERT_TOKENIZER_FILE = "tokenizer.json";
export const BERT_OPTIMIZER_FILE = "optimizer.safetensors";
export const BERT_TRAINER_STATE_FILE = "trainer_state.json";

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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

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
export function bertConfigFromJSON(json: unknown, source = BERT_CONFIG_FILE): { config: BertConfig; info: BertDirInfo } {
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

/** A file's tensor name as moxing names it, or null for tensors that are not weights of any head
 *  moxing builds (the position_ids buffer, the tied decoder, the next-sentence head). */
export function canonicalBertName(name: string): string | null {
  let n = name;
  if (/^(embeddings|encoder|pooler)\./.test(n)) n = `bert.${n}`;
  n = n.replace(/LayerNorm\.gamma$/, "LayerNorm.weight").replace(/LayerNorm\.beta$/, "LayerNorm.bias");
  if (n === "bert.embeddings.position_ids" || n === "bert.embeddings.token_type_ids") return null;
  if (n === "cls.predictions.decoder.weight" || n === "cls.predictions.decoder.bias") return null; // tied
  if (n.startsWith("cls.seq_relationship.")) return null; // next-sentence prediction, not built
  return n;
}

/** The head a weight name belongs to, or null for the encoder. */
function headOf(name: string): string | null {
  if (name.startsWith("cls.")) return "fill-mask";
  if (name.startsWith("classifier.")) return "classifier";
  if (name.startsWith("qa_outputs.")) return "question-answering";
  return null;
}

export interface LoadReport {
  /** Parameters the file lacked, initialised afresh (a new head, or a pooler). */
  initialised: string[];
  /** Tensors of the file this model has no use for (another task's head, the tied decoder, ...). */
  ignored: string[];
}

/**
 * Copy weights (Hugging Face names) into `model`. Every encoder weight must be there with its shape;
 * the pooler and the head may be missing only when `allowNewHead` (fine-tuning a pretrained encoder
 * for a task), and are then initialised. Errors name the tensor and what was expected.
 */
export function loadBertStateDict(
  model: Bert,
  tensors: Map<string, SafeTensor | { shape: number[]; data: Float32Array | Int32Array }>,
  opts: { allowNewHead?: boolean; source?: string } = {},
): LoadReport {
  const where = opts.source ? `${opts.source}: ` : "";
  const own = model.stateDict();
  const found = new Map<string, Tensor>();
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const [fileName, t] of tensors) {
    const name = canonicalBertName(fileName);
    if (name === null) {
      ignored.push(fileName);
      continue;
    }
    const want = own.get(name);
    if (!want) {
      if (headOf(name) !== null || name.startsWith("bert.pooler.")) ignored.push(fileName);
      else unexpected.push(fileName);
      continue;
    }
    if (found.has(name)) throw new BertFileError(`${where}tensors '${fileName}' and another name for '${name}' are both present; keep one`);
    if (t.shape.length !== want.ndim || t.shape.some((d, i) => d !== want.shape[i])) {
      const hint =
        name.startsWith("classifier.") && t.shape[0] !== want.shape[0]
          ? ` (the file's classifier has ${t.shape[0]} labels, this task has ${want.shape[0]})`
          : "";
      throw new BertFileError(
        `${where}tensor '${fileName}' has shape [${t.shape.join(", ")}] but this model needs [${want.shape.join(", ")}]${hint}`,
      );
    }
    if (!(t.data instanceof Float32Array))
      throw new BertFileError(`${where}tensor '${fileName}' holds integers; weights must be floating point`);
    found.set(name, tensor(t.data, { shape: [...want.shape] }));
  }
  if (unexpected.length) {
    const list = unexpected.slice(0, 3).join("', '") + (unexpected.length > 3 ? `' (+${unexpected.length - 3} more)` : "'");
    throw new BertFileError(
      `${where}unexpected tensor '${list}: not a weight of a BERT with this config (${model.config.num_hidden_layers} layers); do config.json and the weights belong together?`,
    );
  }
  const missing = [...own.keys()].filter((k) => !found.has(k));
  const encoderMissing = missing.filter((k) => headOf(k) === null && !k.startsWith("bert.pooler."));
  const list = (ks: string[]) => `'${ks.slice(0, 3).join("', '")}'${ks.length > 3 ? ` (+${ks.length - 3} more)` : ""}`;
  if (encoderMissing.length)
    throw new BertFileError(`${where}missing tensor ${list(encoderMissing)}; is this a BERT checkpoint of this config?`);
  if (missing.length && !opts.allowNewHead) {
    throw new BertFileError(
      `${where}missing tensor ${list(missing)}: the file has no ${model.task} head (load it for that task to start a new head)`,
    );
  }
  model.loadStateDict(found, false);
  if (missing.length) {
    const set = new Set(missing);
    model.initWeights(model.generator, (n) => set.has(n));
  }
  return { initialised: missing, ignored };
}

/** The model's weights under Hugging Face's names (the tied decoder left out, as save_pretrained does). */
export function bertStateDict(model: Bert): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of model.stateDict()) {
    out.set(name, { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) });
  }
  return out;
}

// ---- directories ----------------------------------------------------------------------------------

const readJSON = (path: string) => readJSONFile(path, BertFileError);
const checkDir = (dir: string) => checkModelDir(dir, BertFileError);

/** config.json of a BERT model directory. */
export function readBertConfig(dir: string): { config: BertConfig; info: BertDirInfo } {
  checkDir(dir);
  const p = fileIn(dir, BERT_CONFIG_FILE);
  if (!existsSync(p)) throw new BertFileError(`${p}: file not found; is '${dir}' a model directory?`);
  return bertConfigFromJSON(readJSON(p), p);
}

/** The WordPiece tokenizer of a directory: tokenizer.json, else vocab.txt (+ tokenizer_config.json's do_lower_case). */
export function readBertTokenizer(dir: string): WordPieceTokenizer {
  const p = fileIn(dir, BERT_TOKENIZER_FILE);
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
      `${join(dir, BERT_TOKENIZER_FILE)}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocab_size}`,
    );
  }
  const task = opts.task ?? info.task;
  const sameTask = task === info.task;
  const numLabels = opts.numLabels ?? (sameTask && info.labels ? info.labels.length : 2);
  const path = fileIn(dir, BERT_MODEL_FILE);
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
  const report = loadBertStateDict(model, file.tensors, { allowNewHead: !sameTask, source: path });
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
  files.set(BERT_MODEL_FILE, encodeSafetensors(bertStateDict(model), { format: "pt" }));
  files.set(BERT_TOKENIZER_FILE, JSON.stringify(tokenizer.toJSON()));
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
  files.set(BERT_CONFIG_FILE, `${JSON.stringify(bertConfigToJSON(model, opts), null, 2)}\n`);
  return files;
}

/** Write a BERT model directory (and, with optimizer and trainerState, a training checkpoint),
 *  atomically as a set: a crash leaves either the previous checkpoint or this one, never a mix
 *  (the journal of checkpoint.ts). Saving a plain model deletes a stale optimizer and trainer state. */
export function saveBert(dir: string, parts: BertSaveParts): void {
  const { model, tokenizer } = parts;
  const files = bertModelFiles(model, tokenizer, { labels: parts.labels, notes: parts.notes });
  if (parts.optimizer) files.set(BERT_OPTIMIZER_FILE, optimizerToSafetensors(model, parts.optimizer));
  if (parts.trainerState) files.set(BERT_TRAINER_STATE_FILE, `${JSON.stringify(parts.trainerState, null, 2)}\n`);
  commitFiles(
    dir,
    files,
    [BERT_OPTIMIZER_FILE, BERT_TRAINER_STATE_FILE].filter((f) => !files.has(f)),
  );
}

/** Where to read `name` of a model directory: from a checkpoint whose commit was interrupted when it
 *  holds the file (it is the newer one), else the directory's own (which may not exist). */
function fileIn(dir: string, name: string): string {
  return checkpointFile(dir, name) ?? join(dir, name);
}

/** Restore AdamW's moments saved by saveBert. */
export function loadBertOptimizer(dir: string, model: Bert, optimizer: AdamW): void {
  loadOptimizerFile(fileIn(dir, BERT_OPTIMIZER_FILE), model, optimizer, (m) => new BertFileError(m));
}

/** trainer_state.json of a directory, or null. */
export function readBertTrainerState(dir: string): Record<string, unknown> | null {
  const p = fileIn(dir, BERT_TRAINER_STATE_FILE);
  if (!existsSync(p)) return null;
  const j = readJSON(p);
  if (!isRecord(j)) throw new BertFileError(`${p}: expected a JSON object`);
  return j;
}
