// Training the hierarchical attention network (src/models/han.ts, Yang et al. 2016) for document
// classification on the shared loop, and its model directory.
//
// A document becomes sentences (split after . ! ? and cut into pieces of at most maxWords words) of
// lowercased words (the first maxSentences sentences are kept); the vocabulary is the most frequent
// words of the training documents (the rest read as <unk>). Each step is a batch of a seeded shuffled
// epoch; the loss is the cross-entropy over the labels; evaluation reports held-out accuracy and macro
// F1 (as `moxing finetune` does). The model directory is config.json (model_type "han", the labels),
// model.safetensors and vocab.json; checkpoints resume exactly. `hanAttention` gives a document's
// predicted label and both levels' attention weights, for printing (moxing han-attention).

import { join } from "node:path";
import type { LabeledText } from "../data/labeled.js";
import { labelSet } from "../data/labeled.js";
import { DataError, textDigest } from "../data/text.js";
import { writeFileAtomic } from "../io/atomic.js";
import { moduleDirFiles, readModuleDir } from "../io/module-dir.js";
import { type Document, type HANConfig, HierarchicalAttentionNetwork } from "../models/han.js";
import { tokenizeWords, UNK, WordVocab } from "../models/sentence-vae.js";
import { AdamW } from "../optim/adamw.js";
import { classificationMetrics } from "../tasks/classify.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import { argmax, softmax } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { EpochBatches } from "./batches.js";
import { type LoopHooks, type Metrics, runLoop } from "./loop.js";
import { RunDirectory, type SavedState } from "./run.js";

export interface HANTrainOptions {
  out: string;
  train: LabeledText[];
  eval?: LabeledText[];
  /** Where the data came from (config.json and eval_results.json say it). */
  notes?: Record<string, unknown>;
  vocabSize?: number;
  embedDim?: number;
  /** GRU size per direction (the paper: 50). */
  hiddenSize?: number;
  maxSentences?: number;
  maxWords?: number;
  batchSize?: number;
  maxSteps?: number;
  learningRate?: number;
  weightDecay?: number;
  seed?: number;
  evalInterval?: number;
  resume?: boolean;
  overwrite?: boolean;
}

export const HAN_TRAIN_DEFAULTS = {
  vocabSize: 10000,
  embedDim: 100,
  hiddenSize: 50,
  maxSentences: 150,
  maxWords: 40,
  batchSize: 8,
  maxSteps: 500,
  learningRate: 2e-3,
  weightDecay: 0,
  seed: 42,
};

const STATE_FORMAT = "moxing-han-state";

/** A text's sentences as lists of lowercased words: split after . ! ?, long ones cut into pieces of
 *  maxWords words, at most maxSentences of them (the first). */
export function documentSentences(text: string, maxSentences: number, maxWords: number): string[][] {
  const out: string[][] = [];
  for (const s of text.replace(/\s+/g, " ").split(/(?<=[.!?])\s+/)) {
    const words = tokenizeWords(s);
    for (let i = 0; i < words.length && out.length < maxSentences; i += maxWords) out.push(words.slice(i, i + maxWords));
    if (out.length >= maxSentences) break;
  }
  return out;
}

export interface HANModelFiles {
  model: HierarchicalAttentionNetwork;
  vocab: WordVocab;
  labels: string[];
  maxSentences: number;
  maxWords: number;
}

function encodeDocument(m: Pick<HANModelFiles, "vocab" | "maxSentences" | "maxWords">, text: string): Document {
  return documentSentences(text, m.maxSentences, m.maxWords).map((s) => s.map((w) => m.vocab.id(w)));
}

/** A HAN model directory (eval mode). */
export function loadHAN(dir: string): HANModelFiles {
  const d = readModuleDir(dir, ["han"], "make one with moxing train-han");
  const c = d.config;
  const words = d.side("vocab.json");
  if (!Array.isArray(words) || !words.every((w) => typeof w === "string"))
    throw new DataError(`${dir}/vocab.json: expected a list of words`);
  const labels = c.labels;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string"))
    throw new DataError(`${dir}/config.json: expected "labels", a list of names`);
  const vocab = new WordVocab(words as string[]);
  const config = { vocab_size: c.vocab_size, embed_dim: c.embed_dim, hidden_size: c.hidden_size, num_labels: c.num_labels } as HANConfig;
  if (config.vocab_size !== vocab.size)
    throw new DataError(`${dir}: vocab.json has ${vocab.size} words but config.json's vocab_size is ${config.vocab_size}`);
  if (config.num_labels !== labels.length)
    throw new DataError(`${dir}: config.json has ${labels.length} labels but num_labels ${config.num_labels}`);
  const model = new HierarchicalAttentionNetwork(config, { seed: 0 });
  d.load(model);
  return { model, vocab, labels: labels as string[], maxSentences: Number(c.max_sentences), maxWords: Number(c.max_words) };
}

/** Held-out accuracy and macro F1 of a HAN on labelled documents. */
export function evaluateHAN(m: HANModelFiles, data: readonly LabeledText[], batchSize = 8): Metrics {
  const pred: string[] = [];
  for (let i = 0; i < data.length; i += batchSize) {
    const rows = data.slice(i, i + batchSize);
    const ids = scoped(() => Array.from(argmax(m.model.forward(rows.map((r) => encodeDocument(m, r.text))).logits, -1).contiguousData()));
    for (const id of ids) pred.push(m.labels[id] as string);
  }
  const r = classificationMetrics(
    data.map((d) => d.label),
    pred,
    m.labels,
  );
  return { accuracy: r.accuracy, macro_f1: r.macro_f1 };
}

export interface HANAttention {
  label: string;
  probabilities: Record<string, number>;
  /** Each kept sentence: its attention weight and its words with theirs (words outside the
   *  vocabulary are shown as they were written, read by the model as <unk>). */
  sentences: { weight: number; words: { word: string; weight: number; known: boolean }[] }[];
}

/** A document's predicted label and its word- and sentence-level attention (Yang et al.'s figure 5). */
export function hanAttention(m: HANModelFiles, text: string): HANAttention {
  const sents = documentSentences(text, m.maxSentences, m.maxWords);
  if (sents.length === 0) throw new DataError("han-attention: the text has no words");
  const doc = sents.map((s) => s.map((w) => m.vocab.id(w)));
  const att = m.model.attention(doc);
  const probs = noGrad(() => {
    m.model.eval();
    return softmax(m.model.forward([doc]).logits, -1).toArray();
  });
  const best = probs.indexOf(Math.max(...probs));
  const unk = m.vocab.id(UNK);
  return {
    label: m.labels[best] as string,
    probabilities: Object.fromEntries(m.labels.map((l, i) => [l, probs[i] as number])),
    sentences: sents.map((s, i) => ({
      weight: (att[i] as { sentence: number }).sentence,
      words: s.map((w, t) => ({ word: w, weight: (att[i] as { words: number[] }).words[t] as number, known: doc[i]?.[t] !== unk })),
    })),
  };
}

interface State extends SavedState {
  order: number[];
  cursor: number;
}

export async function trainHAN(opts: HANTrainOptions, hooks: LoopHooks = {}) {
  const run = RunDirectory.open({ out: opts.out, resume: opts.resume, overwrite: opts.overwrite, format: STATE_FORMAT, kind: "HAN run" });
  const saved = run.saved as State | null;
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<HANTrainOptions>;
  const o = {
    ...HAN_TRAIN_DEFAULTS,
    ...given,
    ...(saved ? { ...(saved.args as object), maxSteps: opts.maxSteps ?? (saved.args.maxSteps as number) } : {}),
  } as typeof HAN_TRAIN_DEFAULTS & HANTrainOptions;
  for (const k of ["vocabSize", "embedDim", "hiddenSize", "maxSentences", "maxWords", "batchSize"] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`train-han: ${k} must be a positive integer (got ${o[k]})`);
  }
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < 0) throw new Error(`train-han: maxSteps must be an integer >= 0 (got ${o.maxSteps})`);
  if (opts.train.length === 0) throw new DataError("train-han: the training data is empty");
  const held = opts.eval ?? [];
  const digest = textDigest(JSON.stringify([opts.train, held]));
  run.checkData(digest, "the documents", "the same data flags");

  const labels = labelSet(opts.train);
  const unknown = held.find((d) => !labels.includes(d.label));
  if (unknown)
    throw new DataError(
      `train-han: the held-out label '${unknown.label}' never occurs in the training data (labels: ${labels.join(", ")})`,
    );
  const modelRng = new Generator(o.seed);
  let files: HANModelFiles;
  if (saved) files = loadHAN(o.out);
  else {
    const sentences = opts.train.flatMap((d) => documentSentences(d.text, o.maxSentences, o.maxWords).map((s) => s.join(" ")));
    const vocab = WordVocab.build(sentences, o.vocabSize);
    const model = new HierarchicalAttentionNetwork(
      { vocab_size: vocab.size, embed_dim: o.embedDim, hidden_size: o.hiddenSize, num_labels: labels.length },
      { generator: modelRng },
    );
    files = { model, vocab, labels, maxSentences: o.maxSentences, maxWords: o.maxWords };
  }
  const { model } = files;
  model.train();
  const docs = opts.train.map((d) => ({ doc: encodeDocument(files, d.text), label: files.labels.indexOf(d.label) }));
  const rng = new Generator(o.seed + 1);
  const batches = new EpochBatches(docs, o.batchSize, rng);
  if (saved) {
    rng.setState(saved.rng.batches as ReturnType<Generator["getState"]>);
    modelRng.setState(saved.rng.model as ReturnType<Generator["getState"]>);
    batches.restore(saved);
  }
  const evalInterval = o.evalInterval ?? Math.max(1, Math.min(100, o.maxSteps));
  const args = { ...o, train: undefined, eval: undefined, notes: undefined, out: undefined, resume: undefined, overwrite: undefined };
  const notes = { data: opts.notes ?? {}, train: opts.train.length, eval: held.length };
  const optimizer = new AdamW([{ params: model.parameters(), weightDecay: o.weightDecay }], { lr: o.learningRate });
  const params = model.numParameters();
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: {
        lr: o.learningRate,
        minLr: o.learningRate / 10,
        warmupSteps: Math.min(20, Math.floor(o.maxSteps / 10)),
        decaySteps: o.maxSteps,
      },
      maxSteps: o.maxSteps,
      gradClip: 5,
      evalInterval,
      checkpointInterval: evalInterval,
      title: `training a hierarchical attention network: ${params} parameters, ${docs.length} documents (${files.labels.join(" / ")}), ${files.vocab.size} words; ${o.maxSteps} steps of ${o.batchSize}`,
      trainStep: () => {
        const rows = batches.next();
        const labelsT = new Tensor(
          Int32Array.from(rows, (r) => r.label),
          [rows.length],
        );
        return {
          loss: model.forward(
            rows.map((r) => r.doc),
            labelsT,
          ).loss as Tensor,
          tokens: rows.reduce((n, r) => n + r.doc.flat().length, 0),
        };
      },
      evaluate: held.length ? () => evaluateHAN(files, held) : undefined,
      modelFiles: () =>
        moduleDirFiles(
          "han",
          { ...model.config, labels: files.labels, max_sentences: files.maxSentences, max_words: files.maxWords },
          model,
          { "vocab.json": files.vocab.words },
          notes,
        ),
      state: () => ({
        format: STATE_FORMAT,
        args,
        data: { sha256: digest },
        rng: { model: modelRng.getState(), batches: rng.getState() },
        ...batches.state(),
      }),
    },
    hooks,
  );
  model.eval();
  const final = result.lastEval;
  writeFileAtomic(
    join(o.out, "eval_results.json"),
    `${JSON.stringify({ step: result.step, params, ...notes, ...(final ?? {}) }, null, 2)}\n`,
  );
  return { status: result.status, step: result.step, params, eval: final, files };
}
