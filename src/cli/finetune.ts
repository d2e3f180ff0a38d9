// `moxing finetune`: fine-tune a pretrained BERT for text classification, token classification
// (NER) or extractive question answering, and evaluate it (a thin shell over src/train/finetune.ts).

import { writeFileSync } from "node:fs";
import { formatConll, readConllFile, type TaggedSentence } from "../data/conll.js";
import { type DataProvenance, type LabeledText, readLabeledFile, shuffled, splitTrainEval, stratifiedSplit } from "../data/labeled.js";
import { SILVER_NER, SILVER_SENTIMENT, SYNTHETIC_QA, sentencesOf, silverNer, silverSentiment, syntheticQa } from "../data/silver.js";
import { sotuCorpus } from "../data/sotu.js";
import { SPAM_ASSASSIN_PACKAGE, spamAssassin } from "../data/spam.js";
import { type QaExample, readSquadFile } from "../data/squad.js";
import {
  FINETUNE_DEFAULTS,
  type FinetuneTask,
  finetune,
  readFinetuneCheckpoint,
  resolveTask,
  TASK_ALIASES,
  type TaskData,
} from "../train/finetune.js";
import type { Command } from "./util.js";
import { num, parseFlags, runWithProgress, UsageError } from "./util.js";

/** Built-in datasets: which task, where the labels come from, and how to make them. */
const DATASETS: Record<string, { task: FinetuneTask; provenance: DataProvenance; load(limit?: number): TaskData["examples"] }> = {
  "spam-assassin": {
    task: "text-classification",
    provenance: { name: "spam-assassin", kind: "gold", note: `SpamAssassin public corpus (${SPAM_ASSASSIN_PACKAGE}), labelled by people` },
    load: (limit) => {
      const all = spamAssassin({ maxChars: 1500 }).map(({ text, label }) => ({ text, label }));
      return limit !== undefined ? shuffled(all, 7).slice(0, limit) : all; // a random sample of both classes
    },
  },
  "silver-sentiment": {
    task: "text-classification",
    provenance: SILVER_SENTIMENT,
    load: (limit) => silverSentiment(sentencesOf(sotuCorpus(1900)), { limit }),
  },
  "silver-ner": {
    task: "token-classification",
    provenance: SILVER_NER,
    load: (limit) => silverNer(sentencesOf(sotuCorpus(1900)), { limit }),
  },
  "synthetic-qa": { task: "question-answering", provenance: SYNTHETIC_QA, load: (limit) => syntheticQa(undefined, { limit }) },
};

const HELP = `moxing finetune: fine-tune a pretrained BERT for a task and evaluate it

Usage: moxing finetune --task TASK --model DIR --out DIR (--train FILE [--eval FILE] | --dataset NAME) [flags]
       moxing finetune --out DIR --resume (--train FILE [--eval FILE] | --dataset NAME)

  --task TASK           ${Object.keys(TASK_ALIASES).join(" | ")}
  --model DIR           a BERT model directory (moxing pretrain-mlm, or a Hugging Face BERT with
                        model.safetensors); its encoder is kept and the task's head starts fresh
  --out DIR             the fine-tuned model directory, metrics.jsonl and eval_results.json
Data (files):
  --train FILE          text-classification: .tsv (text<TAB>label; SST-2's sentence<TAB>label header
                        reads as NEGATIVE/POSITIVE), .jsonl ({"text", "label"}), .csv (text,label header),
                        or one text per line with --labels FILE; token-classification: CoNLL (token ...
                        tag per line, blank line between sentences); question-answering: SQuAD v1.1 JSON
  --labels FILE         labels, one per line, for a --train file of one text per line
  --eval FILE           evaluation data in the same format (--eval-labels FILE likewise); without it,
                        --eval-fraction of the training data (default 0.1) is held out (for
                        classification, stratified: each label keeps its share)
  --predictions FILE    write the evaluation predictions: CoNLL (token gold predicted) for NER, SQuAD-style
                        {id: answer} JSON for QA, one label per line for classification
Data (built in; --limit N caps the examples):
  --dataset spam-assassin     real spam/ham mail (gold), needs ${SPAM_ASSASSIN_PACKAGE}
  --dataset silver-sentiment  State of the Union sentences labelled by a word lexicon (SILVER)
  --dataset silver-ner        State of the Union sentences tagged by gazetteers: PER, LOC, ORG (SILVER)
  --dataset synthetic-qa      template paragraphs and questions over State of the Union facts (SYNTHETIC)
Training (AdamW; 10% linear warmup then cosine decay; grad clip 1.0; evaluation after each epoch):
  --epochs ${FINETUNE_DEFAULTS.epochs}  --max-steps N (overrides epochs)  --batch-size ${FINETUNE_DEFAULTS.batchSize}  --learning-rate ${FINETUNE_DEFAULTS.learningRate}
  --weight-decay ${FINETUNE_DEFAULTS.weightDecay}  --max-length ${FINETUNE_DEFAULTS.maxLength}  --seed ${FINETUNE_DEFAULTS.seed}
  --doc-stride ${FINETUNE_DEFAULTS.docStride}  --max-answer-length ${FINETUNE_DEFAULTS.maxAnswerLength}   (question answering)
Checkpoints (model, optimizer and trainer state in --out; Ctrl-C saves one and stops):
  --checkpoint-interval N   save every N steps (default: after every evaluation)
  --resume                  continue the run in --out exactly where it stopped, with the same data
                            (--task and --model come from the checkpoint; --max-steps/--epochs may grow)
  --overwrite               start over in an --out that holds a fine-tuning run

Metrics: accuracy and macro F1 (classification); entity-level precision/recall/F1 as seqeval computes
them (NER); exact match and F1 as the SQuAD v1.1 script computes them (QA). Silver and synthetic data
are marked as such in metrics.jsonl, eval_results.json and the model's config.json.`;

const FLAGS = {
  task: { type: "string" },
  model: { type: "string" },
  out: { type: "string" },
  train: { type: "string" },
  labels: { type: "string" },
  eval: { type: "string" },
  "eval-labels": { type: "string" },
  "eval-fraction": { type: "string" },
  dataset: { type: "string" },
  limit: { type: "string" },
  predictions: { type: "string" },
  epochs: { type: "string" },
  "max-steps": { type: "string" },
  "batch-size": { type: "string" },
  "learning-rate": { type: "string" },
  "weight-decay": { type: "string" },
  "max-length": { type: "string" },
  "doc-stride": { type: "string" },
  "max-answer-length": { type: "string" },
  seed: { type: "string" },
  "checkpoint-interval": { type: "string" },
  resume: { type: "boolean" },
  overwrite: { type: "boolean" },
} as const;

function readData(task: FinetuneTask, path: string, labelsPath?: string): TaskData["examples"] {
  if (task === "text-classification") return readLabeledFile(path, { labelsPath }) as LabeledText[];
  if (labelsPath) throw new UsageError(`finetune: --labels applies to text-classification files of one text per line`);
  if (task === "token-classification") return readConllFile(path) as TaggedSentence[];
  return readSquadFile(path) as QaExample[];
}

/** Hold out a fraction of the training data: stratified by label for classification (each label
 *  keeps its share on both sides); QA questions on one context stay on one side, so held-out
 *  contexts are unseen in training. */
function holdOut(task: FinetuneTask, data: TaskData["examples"], fraction: number): [TaskData["examples"], TaskData["examples"]] {
  if (task === "text-classification") {
    const s = stratifiedSplit(data as LabeledText[], fraction, 11, (e) => e.label);
    return [s.train, s.eval];
  }
  if (task !== "question-answering") {
    const s = splitTrainEval(data as unknown[], fraction, 11);
    return [s.train, s.eval] as [TaskData["examples"], TaskData["examples"]];
  }
  const qa = data as QaExample[];
  const contexts = splitTrainEval([...new Set(qa.map((e) => e.context))], fraction, 11);
  const held = new Set(contexts.eval);
  return [qa.filter((e) => !held.has(e.context)), qa.filter((e) => held.has(e.context))];
}

export const finetuneCommand: Command = {
  summary: "fine-tune a BERT for text classification, NER or question answering, with evaluation",
  help: HELP,
  async run(argv) {
    const c = "finetune";
    const { values: v, positionals } = parseFlags(c, argv, FLAGS);
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'`);
    const out = v.out;
    if (!out) throw new UsageError(`${c}: --out DIR is required`);
    if (v.resume && v.overwrite) throw new UsageError(`${c}: --resume continues the run in --out and --overwrite starts over; give one`);
    const checkpoint = v.resume ? readFinetuneCheckpoint(v.out) : null;
    if (v.resume && !checkpoint) {
      throw new UsageError(`${c}: nothing to resume in '${v.out}' (no fine-tuning checkpoint); run without --resume to start`);
    }
    const taskName = v.task ?? checkpoint?.task;
    if (!taskName) throw new UsageError(`${c}: --task is required (${Object.keys(TASK_ALIASES).join(", ")})`);
    let task: FinetuneTask;
    try {
      task = resolveTask(taskName);
    } catch (e) {
      throw new UsageError(`${c}: ${(e as Error).message}`);
    }
    if (checkpoint && task !== checkpoint.task) {
      throw new UsageError(`${c}: the run in '${v.out}' fine-tunes for ${checkpoint.task}, not ${task}; drop --task to resume it`);
    }
    const model = v.model ?? checkpoint?.model;
    if (!model) throw new UsageError(`${c}: --model DIR is required (a pretrained BERT, e.g. from moxing pretrain-mlm)`);
    if (!v.train === !v.dataset) throw new UsageError(`${c}: give the training data with --train FILE or --dataset NAME (one of them)`);
    const limit = v.limit === undefined ? undefined : num(c, "limit", v.limit, 0, { int: true, min: 2 });
    const evalFraction = num(c, "eval-fraction", v["eval-fraction"], 0.1, { min: 0 });
    if (!(evalFraction > 0 && evalFraction < 1))
      throw new UsageError(`${c}: --eval-fraction must be between 0 and 1 (got '${v["eval-fraction"]}')`);

    let train: TaskData["examples"];
    let evalData: TaskData["examples"] | undefined;
    let provenance: DataProvenance;
    if (v.dataset) {
      const ds = Object.hasOwn(DATASETS, v.dataset) ? DATASETS[v.dataset] : undefined;
      if (!ds) throw new UsageError(`${c}: unknown dataset '${v.dataset}'; built in: ${Object.keys(DATASETS).join(", ")}`);
      if (ds.task !== task) throw new UsageError(`${c}: the dataset ${v.dataset} is for ${ds.task}, not ${task}`);
      provenance = ds.provenance;
      train = ds.load(limit);
    } else {
      provenance = { name: v.train as string, kind: "unknown" };
      train = readData(task, v.train as string, v.labels);
      if (limit !== undefined) train = train.slice(0, limit);
    }
    if (v.eval) {
      evalData = readData(task, v.eval, v["eval-labels"]);
    } else {
      const all = train.length;
      [train, evalData] = holdOut(task, train, evalFraction);
      if (train.length === 0) {
        throw new UsageError(
          `${c}: holding out --eval-fraction ${evalFraction} of ${all} example${all === 1 ? "" : "s"} for evaluation leaves none to train on; ` +
            "give more examples, or evaluation data with --eval FILE",
        );
      }
      if (evalData.length === 0) {
        process.stderr.write(`${c}: ${all} examples are too few to hold any out for evaluation; training without evaluation\n`);
        evalData = undefined;
      }
    }
    const data = (examples: TaskData["examples"]) => ({ task, examples }) as TaskData;
    const opt = (flag: keyof typeof FLAGS, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag] as string | undefined;
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    const r = await runWithProgress((hooks) =>
      finetune(
        {
          task,
          model,
          out,
          resume: v.resume,
          overwrite: v.overwrite,
          checkpointInterval: opt("checkpoint-interval", { int: true, min: 1 }),
          train: data(train),
          eval: evalData ? data(evalData) : undefined,
          provenance: { train: provenance, eval: v.eval ? { name: v.eval, kind: "unknown" } : provenance },
          epochs: opt("epochs", { int: true, min: 1 }),
          maxSteps: opt("max-steps", { int: true, min: 0 }),
          batchSize: opt("batch-size", { int: true, min: 1 }),
          learningRate: opt("learning-rate", { min: 0 }),
          weightDecay: opt("weight-decay", { min: 0 }),
          maxLength: opt("max-length", { int: true, min: 8 }),
          docStride: opt("doc-stride", { int: true, min: 0 }),
          maxAnswerLength: opt("max-answer-length", { int: true, min: 1 }),
          seed: opt("seed", { int: true, min: 0 }),
        },
        hooks,
      ),
    );
    if (r.status === "interrupted") {
      const data = (["dataset", "limit", "train", "labels", "eval", "eval-labels", "eval-fraction"] as const)
        .filter((f) => v[f] !== undefined)
        .map((f) => `--${f} ${v[f]}`)
        .join(" ");
      console.log(`stopped at step ${r.step}; checkpoint saved in ${r.out}. Resume with: moxing finetune --out ${r.out} --resume ${data}`);
      return 130;
    }
    if (v.predictions && r.eval) {
      const p = r.eval.predictions;
      if (task === "token-classification") writeFileSync(v.predictions, formatConll(evalData as TaggedSentence[], p as string[][]));
      else if (task === "question-answering") writeFileSync(v.predictions, `${JSON.stringify(p, null, 2)}\n`);
      else writeFileSync(v.predictions, `${(p as string[]).join("\n")}\n`);
    }
    const kind =
      provenance.kind === "silver" || provenance.kind === "synthetic" ? ` (${provenance.kind.toUpperCase()} data: ${provenance.note})` : "";
    const metrics = r.eval
      ? Object.entries(r.eval.metrics)
          .map(([k, x]) => `${k} ${Number.isInteger(x) ? x : x.toFixed(4)}`)
          .join(", ")
      : "no evaluation";
    console.log(`done: ${r.step} steps, train loss ${r.trainLoss?.toFixed(4) ?? "-"}; eval ${metrics}${kind}; model saved in ${r.out}`);
    return 0;
  },
};
