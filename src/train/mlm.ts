// Masked-language-model pretraining of BERT (Devlin et al. 2019) on any text: train a WordPiece
// tokenizer on the text, cut the token stream into [CLS] ... [SEP] sequences, and train BERT to
// recover masked tokens. `moxing pretrain-mlm` is a thin CLI over `pretrainMlm`.
//
// Masking (maskTokens) follows Hugging Face's DataCollatorForLanguageModeling: every non-special
// token is selected with probability 0.15; a selected token becomes [MASK] with probability 0.8, a
// random token with 0.1, and stays itself with 0.1; its label is the original id, and every other
// label is -100 (ignored by the loss). One difference: random replacements are drawn from the
// non-special tokens only (Hugging Face draws from the whole vocabulary, [PAD] and [CLS] included).
// Masks are drawn afresh for every batch (dynamic masking, as RoBERTa) from a seeded generator; the
// evaluation batches use the same masks at every evaluation, so their losses compare.
//
// The output directory is a BERT model directory (src/io/bert.ts) plus metrics.jsonl; checkpoints
// hold the optimizer and the RNG states, and `resume` continues a run exactly where it stopped.

import { readTextFile, textDigest } from "../data/text.js";
import { bertModelFiles, loadBert } from "../io/bert.js";
import { Bert, type BertConfig, type BertPreset, bertConfig, checkBertTrainingMemory } from "../models/bert.js";
import { AdamW } from "../optim/adamw.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { type LoopHooks, type Metrics, runLoop } from "./loop.js";
import { type GenState, RunDirectory } from "./run.js";

export const IGNORE_INDEX = -100;

export interface MaskingOptions {
  /** The [MASK] token's id. */
  maskId: number;
  /** Ids that are never masked ([CLS], [SEP], [PAD], ...). */
  specialIds: ReadonlySet<number>;
  /** Ids a selected token may be replaced with (default: every id below vocabSize that is not special). */
  randomIds?: Int32Array;
  vocabSize: number;
  /** Fraction of tokens selected (default 0.15). */
  probability?: number;
  generator: Generator;
}

/** Ids [0, vocabSize) that are not special, for random replacements. */
export function ordinaryIds(vocabSize: number, specialIds: ReadonlySet<number>): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < vocabSize; i++) if (!specialIds.has(i)) out.push(i);
  return Int32Array.from(out);
}

/** BERT's masking of `ids` (any length, e.g. a flattened batch): the inputs and the labels. */
export function maskTokens(ids: Int32Array, o: MaskingOptions): { inputIds: Int32Array; labels: Int32Array; selected: number } {
  const p = o.probability ?? 0.15;
  if (!(p > 0 && p < 1)) throw new Error(`mlm probability must be in (0, 1) (got ${p})`);
  const pool = o.randomIds ?? ordinaryIds(o.vocabSize, o.specialIds);
  if (pool.length === 0) throw new Error("maskTokens: the vocabulary has no ordinary tokens to draw random replacements from");
  const inputIds = Int32Array.from(ids);
  const labels = new Int32Array(ids.length).fill(IGNORE_INDEX);
  const g = o.generator;
  let selected = 0;
  const select = (i: number) => {
    labels[i] = ids[i] as number;
    selected++;
    const r = g.random();
    if (r < 0.8) inputIds[i] = o.maskId;
    else if (r < 0.9) inputIds[i] = pool[g.randint(pool.length)] as number;
  };
  for (let i = 0; i < ids.length; i++) {
    if (o.specialIds.has(ids[i] as number)) continue;
    if (g.random() < p) select(i);
  }
  if (selected === 0) {
    // A short batch can come out with nothing selected; the loss needs at least one target.
    const candidates = [...ids.keys()].filter((i) => !o.specialIds.has(ids[i] as number));
    if (candidates.length) select(candidates[g.randint(candidates.length)] as number);
  }
  return { inputIds, labels, selected };
}

/** The token stream of a text cut into [CLS] + (maxLen - 2) tokens + [SEP] sequences (the remainder
 *  is dropped, as Hugging Face's group_texts does, unless it is all there is). */
export function mlmSequences(tokenizer: WordPieceTokenizer, text: string, maxLen: number): Int32Array[] {
  if (!Number.isInteger(maxLen) || maxLen < 3) throw new Error(`the sequence length must be an integer >= 3 (got ${maxLen})`);
  const ids = tokenizer.encode(text, { disallowedSpecial: [] });
  const cls = tokenizer.tokenToId(tokenizer.clsToken) as number;
  const sep = tokenizer.tokenToId(tokenizer.sepToken) as number;
  const n = maxLen - 2;
  const out: Int32Array[] = [];
  for (let i = 0; i + n <= ids.length || (i === 0 && ids.length > 0); i += n) {
    const chunk = ids.slice(i, i + n);
    out.push(Int32Array.from([cls, ...chunk, sep]));
  }
  return out;
}

export interface MlmBatch {
  inputIds: Tensor;
  attentionMask: Tensor;
  /** Flat positions (b * T + t) of the selected tokens, and their original ids. */
  positions: Tensor;
  targets: Tensor;
  tokens: number;
}

/** Pad `rows` to the longest, mask them, and keep only the selected positions' targets. */
export function mlmBatch(rows: readonly Int32Array[], padId: number, masking: MaskingOptions): MlmBatch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const flat = new Int32Array(B * T).fill(padId);
  const mask = new Int32Array(B * T);
  rows.forEach((r, b) => {
    flat.set(r, b * T);
    mask.fill(1, b * T, b * T + r.length);
  });
  const { inputIds, labels } = maskTokens(flat, masking);
  const positions: number[] = [];
  const targets: number[] = [];
  labels.forEach((l, i) => {
    if (l !== IGNORE_INDEX) {
      positions.push(i);
      targets.push(l);
    }
  });
  return {
    inputIds: new Tensor(inputIds, [B, T]),
    attentionMask: new Tensor(mask, [B, T]),
    positions: new Tensor(Int32Array.from(positions), [positions.length]),
    targets: new Tensor(Int32Array.from(targets), [targets.length]),
    tokens: B * T,
  };
}

/** Loss and accuracy of the masked-token predictions of one batch (logits only at the selected positions). */
export function mlmLoss(model: Bert, batch: MlmBatch): { loss: Tensor; correct: number; count: number } {
  const out = model.forward(
    { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
    { positions: batch.positions, labels: batch.targets },
  );
  const pred = out.logits.argmax(-1).contiguousData();
  const tgt = batch.targets.contiguousData();
  let correct = 0;
  for (let i = 0; i < tgt.length; i++) if (pred[i] === tgt[i]) correct++;
  return { loss: out.loss as Tensor, correct, count: tgt.length };
}

// ---- pretraining ----------------------------------------------------------------------------------

export interface MlmArgs {
  data: string | null;
  vocabSize: number;
  preset: BertPreset;
  /** Overrides of the preset's sizes (undefined: the preset's). */
  numLayers?: number;
  hiddenSize?: number;
  numHeads?: number;
  intermediateSize?: number;
  maxLen: number;
  batchSize: number;
  maxSteps: number;
  learningRate: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  dropout: number;
  mlmProbability: number;
  evalInterval: number;
  evalBatches: number;
  checkpointInterval: number;
  seed: number;
}

export const MLM_DEFAULTS = {
  vocabSize: 8000,
  preset: "tiny",
  maxLen: 64,
  batchSize: 16,
  maxSteps: 1000,
  learningRate: 5e-4,
  weightDecay: 0.01,
  gradClip: 1,
  dropout: 0.1,
  mlmProbability: 0.15,
  evalInterval: 100,
  evalBatches: 8,
  seed: 1337,
} as const;

export interface MlmOptions extends Partial<MlmArgs> {
  out: string;
  /** The text itself instead of reading `data`. */
  text?: string;
  resume?: boolean;
  overwrite?: boolean;
}

export interface MlmResult {
  status: "completed" | "interrupted";
  step: number;
  trainLoss: number | null;
  eval: Metrics | null;
  model: Bert;
  tokenizer: WordPieceTokenizer;
  out: string;
}

const STATE_FORMAT = "moxing-bert-mlm-state";

/** trainer_state.json of a masked-LM run (the loop adds its counters). */
interface MlmState {
  format: typeof STATE_FORMAT;
  step: number;
  args: MlmArgs;
  data: { sha256: string; sequences: number; train: number; val: number };
  rng: { model: GenState; data: GenState };
}

function resolveArgs(o: MlmOptions): MlmArgs {
  const maxSteps = o.maxSteps ?? MLM_DEFAULTS.maxSteps;
  const lr = o.learningRate ?? MLM_DEFAULTS.learningRate;
  const evalInterval = o.evalInterval ?? Math.min(MLM_DEFAULTS.evalInterval, Math.max(1, maxSteps));
  return {
    data: o.data ?? null,
    vocabSize: o.vocabSize ?? MLM_DEFAULTS.vocabSize,
    preset: o.preset ?? MLM_DEFAULTS.preset,
    numLayers: o.numLayers,
    hiddenSize: o.hiddenSize,
    numHeads: o.numHeads,
    intermediateSize: o.intermediateSize,
    maxLen: o.maxLen ?? MLM_DEFAULTS.maxLen,
    batchSize: o.batchSize ?? MLM_DEFAULTS.batchSize,
    maxSteps,
    learningRate: lr,
    minLr: o.minLr ?? lr / 10,
    warmupSteps: o.warmupSteps ?? Math.min(100, Math.floor(maxSteps / 10)),
    weightDecay: o.weightDecay ?? MLM_DEFAULTS.weightDecay,
    gradClip: o.gradClip ?? MLM_DEFAULTS.gradClip,
    dropout: o.dropout ?? MLM_DEFAULTS.dropout,
    mlmProbability: o.mlmProbability ?? MLM_DEFAULTS.mlmProbability,
    evalInterval,
    evalBatches: o.evalBatches ?? MLM_DEFAULTS.evalBatches,
    checkpointInterval: o.checkpointInterval ?? evalInterval,
    seed: o.seed ?? MLM_DEFAULTS.seed,
  };
}

/** The model config of a run: the preset, its overrides, the tokenizer's vocabulary. */
export function mlmModelConfig(a: MlmArgs, vocabSize: number): BertConfig {
  const hidden = a.hiddenSize;
  return bertConfig(a.preset, {
    vocab_size: vocabSize,
    max_position_embeddings: Math.max(512, a.maxLen),
    hidden_dropout_prob: a.dropout,
    attention_probs_dropout_prob: a.dropout,
    ...(a.numLayers !== undefined ? { num_hidden_layers: a.numLayers } : {}),
    ...(hidden !== undefined ? { hidden_size: hidden, intermediate_size: a.intermediateSize ?? 4 * hidden } : {}),
    ...(a.intermediateSize !== undefined ? { intermediate_size: a.intermediateSize } : {}),
    ...(a.numHeads !== undefined ? { num_attention_heads: a.numHeads } : {}),
  });
}

/** Pretrain a BERT with masked language modelling on a text; see the file comment. */
export async function pretrainMlm(opts: MlmOptions, hooks: LoopHooks = {}): Promise<MlmResult> {
  const out = opts.out;
  const emit = hooks.onLog ?? (() => {});
  const run = RunDirectory.open({ out, resume: opts.resume, overwrite: opts.overwrite, format: STATE_FORMAT, kind: "training run" });
  const saved = run.saved as MlmState | null;
  const args: MlmArgs = saved
    ? { ...saved.args, maxSteps: opts.maxSteps ?? saved.args.maxSteps, data: opts.data ?? saved.args.data }
    : resolveArgs(opts);
  for (const [k, min] of [
    ["maxLen", 3],
    ["batchSize", 1],
    ["maxSteps", 0],
    ["evalInterval", 1],
    ["evalBatches", 1],
    ["checkpointInterval", 1],
    ["vocabSize", 6],
  ] as const) {
    if (!Number.isInteger(args[k]) || args[k] < min) throw new Error(`${k} must be an integer >= ${min} (got ${args[k]})`);
  }
  const text = opts.text ?? (args.data ? readTextFile(args.data) : null);
  if (text === null) throw new Error("no training data: pass --data FILE");
  const digest = textDigest(text);
  run.checkData(digest);

  // ---- tokenizer, sequences, model
  let model: Bert;
  let tokenizer: WordPieceTokenizer;
  const modelRng = new Generator(args.seed);
  const dataRng = new Generator(args.seed + 1);
  if (saved) {
    const loaded = loadBert(out, { task: "fill-mask", generator: modelRng });
    model = loaded.model;
    tokenizer = loaded.tokenizer;
  } else {
    const t0 = performance.now();
    tokenizer = WordPieceTokenizer.train(text, { vocabSize: args.vocabSize });
    emit({
      type: "info",
      message: `trained a WordPiece tokenizer: ${tokenizer.vocabSize} tokens in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
    });
    model = new Bert(mlmModelConfig(args, tokenizer.vocabSize), { task: "fill-mask", generator: modelRng });
  }
  checkBertTrainingMemory(model.config, { batch_size: args.batchSize, seq_len: args.maxLen }, (f) =>
    f === "batch_size" ? "--batch-size" : f === "seq_len" ? "--max-len" : f,
  );
  const sequences = mlmSequences(tokenizer, text, args.maxLen);
  if (sequences.length < 2) {
    throw new Error(
      `the text is too short: it makes ${sequences.length} sequence of ${args.maxLen} tokens; masked-LM training needs at least 2 (one to validate)`,
    );
  }
  const nVal = Math.max(1, Math.floor(sequences.length / 10));
  const train = sequences.slice(0, sequences.length - nVal);
  const val = sequences.slice(sequences.length - nVal);
  const specialIds = new Set(tokenizer.specialTokens.values());
  const maskId = tokenizer.tokenToId(tokenizer.maskToken);
  const padId = tokenizer.tokenToId(tokenizer.padToken);
  if (maskId === undefined || padId === undefined) throw new Error("the tokenizer has no [MASK] or [PAD] token");
  const randomIds = ordinaryIds(tokenizer.vocabSize, specialIds);
  const masking = (generator: Generator): MaskingOptions => ({
    maskId,
    specialIds,
    randomIds,
    vocabSize: tokenizer.vocabSize,
    probability: args.mlmProbability,
    generator,
  });

  const optimizer = new AdamW(model.optimGroups(args.weightDecay), { lr: args.learningRate, betas: [0.9, 0.999], eps: 1e-6 });
  if (saved) {
    modelRng.setState(saved.rng.model);
    dataRng.setState(saved.rng.data);
  }
  const notes = { data: { source: args.data, kind: "unlabeled text", sha256: digest }, objective: "masked-lm" };
  const c = model.config;
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: { lr: args.learningRate, minLr: args.minLr, warmupSteps: args.warmupSteps, decaySteps: args.maxSteps },
      maxSteps: args.maxSteps,
      gradClip: args.gradClip,
      evalInterval: args.evalInterval,
      checkpointInterval: args.checkpointInterval,
      title:
        `BERT (${args.preset}: ${c.num_hidden_layers} layers, ${c.hidden_size} hidden, ` +
        `${c.num_attention_heads} heads, vocab ${c.vocab_size}) ${(model.paramCount().total / 1e6).toFixed(2)}M parameters; ` +
        `${train.length} train / ${val.length} val sequences of ${args.maxLen} tokens; masked-LM on ${args.data ?? "(text in memory)"}`,
      trainStep: () => {
        const rows = Array.from({ length: args.batchSize }, () => train[dataRng.randint(train.length)] as Int32Array);
        const batch = mlmBatch(rows, padId, masking(dataRng));
        return { loss: mlmLoss(model, batch).loss, tokens: batch.tokens };
      },
      evaluate: () => {
        const g = new Generator(args.seed + 2); // the same masks at every evaluation
        let loss = 0;
        let correct = 0;
        let count = 0;
        for (let b = 0; b < args.evalBatches; b++) {
          const rows = Array.from({ length: args.batchSize }, (_, i) => val[(b * args.batchSize + i) % val.length] as Int32Array);
          const r = scoped(() => {
            const { loss, ...counts } = mlmLoss(model, mlmBatch(rows, padId, masking(g)));
            return { loss: loss.item(), ...counts };
          });
          loss += r.loss * r.count;
          correct += r.correct;
          count += r.count;
        }
        return { mlm_loss: loss / count, mlm_accuracy: correct / count, masked_tokens: count };
      },
      modelFiles: () => bertModelFiles(model, tokenizer, { notes }),
      state: () => ({
        format: STATE_FORMAT,
        args,
        data: { sha256: digest, sequences: sequences.length, train: train.length, val: val.length },
        rng: { model: modelRng.getState(), data: dataRng.getState() },
      }),
    },
    hooks,
  );
  return { status: result.status, step: result.step, trainLoss: result.lastLoss, eval: result.lastEval, model, tokenizer, out };
}
