// `moxing pretrain-mlm`: train a WordPiece tokenizer and a BERT on any text with masked language
// modelling (a thin shell over src/train/mlm.ts).

import { BERT_PRESETS, type BertPreset } from "../models/bert.js";
import { MLM_DEFAULTS, type MlmOptions, pretrainMlm } from "../train/mlm.js";
import type { Command } from "./util.js";
import { num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

const HELP = `moxing pretrain-mlm: pretrain a BERT on a text file with masked language modelling

Usage: moxing pretrain-mlm --data FILE --out DIR [flags]

  --data FILE               UTF-8 text; a WordPiece tokenizer is trained on it, its tokens are cut
                            into [CLS] ... [SEP] sequences, the last 10% of them validate
  --out DIR                 a BERT model directory (config.json, model.safetensors, tokenizer.json,
                            vocab.txt), the checkpoint (optimizer.safetensors, trainer_state.json)
                            and metrics.jsonl
  --resume                  continue the run in DIR exactly where it stopped (--max-steps may grow)
  --overwrite               start afresh even if DIR holds a run
Tokenizer and model:
  --vocab-size ${MLM_DEFAULTS.vocabSize}         WordPiece vocabulary size (smaller if the text has fewer pieces)
  --size ${MLM_DEFAULTS.preset}               ${Object.keys(BERT_PRESETS).join(" | ")} (Google's BERT sizes)
  --layers N --hidden N --heads N --intermediate N    override the size's numbers
  --max-len ${MLM_DEFAULTS.maxLen}               tokens per sequence, [CLS] and [SEP] included
  --dropout ${MLM_DEFAULTS.dropout}
Masking: --mlm-probability ${MLM_DEFAULTS.mlmProbability} (of those: 80% [MASK], 10% random, 10% kept)
Optimisation (AdamW, betas 0.9/0.999, eps 1e-6; warmup then cosine decay to lr/10):
  --batch-size ${MLM_DEFAULTS.batchSize}  --max-steps ${MLM_DEFAULTS.maxSteps}  --learning-rate ${MLM_DEFAULTS.learningRate}  --min-lr LR/10  --warmup-steps min(100, max/10)
  --weight-decay ${MLM_DEFAULTS.weightDecay}  --grad-clip ${MLM_DEFAULTS.gradClip}  --seed ${MLM_DEFAULTS.seed}
Evaluation and checkpoints:
  --eval-interval ${MLM_DEFAULTS.evalInterval}       masked-token loss and accuracy on the validation sequences
  --eval-batches ${MLM_DEFAULTS.evalBatches}          batches per evaluation (the same masks every time)
  --checkpoint-interval N   default: the eval interval; always at the end

Progress goes to stderr, metrics (one JSON object per step) to DIR/metrics.jsonl. Ctrl-C saves a
checkpoint. Afterwards: moxing finetune --model DIR ..., moxing similar --model DIR WORD, or
pipeline('fill-mask', DIR) from the library.`;

const FLAGS = {
  ...TRAINING_RUN_FLAGS,
  "vocab-size": { type: "string" },
  size: { type: "string" },
  layers: { type: "string" },
  hidden: { type: "string" },
  heads: { type: "string" },
  intermediate: { type: "string" },
  "max-len": { type: "string" },
  dropout: { type: "string" },
  "mlm-probability": { type: "string" },
  "eval-batches": { type: "string" },
} as const;

export const pretrainMlmCommand: Command = {
  summary: "pretrain a BERT (WordPiece tokenizer + masked language model) on a text file",
  help: HELP,
  async run(argv) {
    const c = "pretrain-mlm";
    const { values: v, positionals } = parseFlags(c, argv, FLAGS);
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'; the text file goes after --data`);
    if (!v.out) throw new UsageError(`${c}: --out DIR is required`);
    if (!v.data && !v.resume) throw new UsageError(`${c}: --data FILE is required`);
    const opt = (flag: keyof typeof FLAGS, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag] as string | undefined;
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    if (v.size !== undefined && !(v.size in BERT_PRESETS)) {
      throw new UsageError(`${c}: --size must be one of ${Object.keys(BERT_PRESETS).join(", ")} (got '${v.size}')`);
    }
    const opts: MlmOptions = {
      out: v.out,
      data: v.data,
      resume: v.resume,
      overwrite: v.overwrite,
      vocabSize: opt("vocab-size", { int: true, min: 6 }),
      preset: v.size as BertPreset | undefined,
      numLayers: opt("layers", { int: true, min: 1 }),
      hiddenSize: opt("hidden", { int: true, min: 1 }),
      numHeads: opt("heads", { int: true, min: 1 }),
      intermediateSize: opt("intermediate", { int: true, min: 1 }),
      maxLen: opt("max-len", { int: true, min: 3 }),
      dropout: opt("dropout", { min: 0 }),
      mlmProbability: opt("mlm-probability", { min: 0 }),
      batchSize: opt("batch-size", { int: true, min: 1 }),
      maxSteps: opt("max-steps", { int: true, min: 0 }),
      learningRate: opt("learning-rate", { min: 0 }),
      minLr: opt("min-lr", { min: 0 }),
      warmupSteps: opt("warmup-steps", { int: true, min: 0 }),
      weightDecay: opt("weight-decay", { min: 0 }),
      gradClip: opt("grad-clip", { min: 0 }),
      seed: opt("seed", { int: true, min: 0 }),
      evalInterval: opt("eval-interval", { int: true, min: 1 }),
      evalBatches: opt("eval-batches", { int: true, min: 1 }),
      checkpointInterval: opt("checkpoint-interval", { int: true, min: 1 }),
    };
    if (opts.dropout !== undefined && opts.dropout >= 1) throw new UsageError(`${c}: --dropout must be below 1 (got '${v.dropout}')`);
    if (opts.mlmProbability !== undefined && !(opts.mlmProbability > 0 && opts.mlmProbability < 1)) {
      throw new UsageError(`${c}: --mlm-probability must be between 0 and 1 (got '${v["mlm-probability"]}')`);
    }
    const r = await runWithProgress((hooks) => pretrainMlm(opts, hooks));
    const ev = r.eval
      ? `, validation masked-token loss ${r.eval.mlm_loss?.toFixed(4)}, accuracy ${((r.eval.mlm_accuracy ?? 0) * 100).toFixed(1)}%`
      : "";
    if (r.status === "interrupted") {
      console.log(`stopped at step ${r.step}; checkpoint saved in ${r.out}. Resume with: moxing pretrain-mlm --out ${r.out} --resume`);
      return 130;
    }
    console.log(`done: ${r.step} steps, train loss ${r.trainLoss?.toFixed(4) ?? "-"}${ev}; model saved in ${r.out}`);
    return 0;
  },
};
