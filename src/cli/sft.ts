// `moxing sft`, `moxing reward` and `moxing dpo`: the trainers of src/rlhf/, with the flags they share.

import { parseTargets, RLHF_DEFAULTS, type RlhfArgs } from "../rlhf/common.js";
import { sft } from "../rlhf/sft.js";
import type { Command } from "./util.js";
import { type FlagValues, num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

/** Flags of every trainer here: the training-run flags, the starting model, held-out data, LoRA. */
export const RLHF_FLAGS = {
  ...TRAINING_RUN_FLAGS,
  model: { type: "string" },
  eval: { type: "string" },
  "eval-fraction": { type: "string" },
  "max-length": { type: "string" },
  "lora-r": { type: "string" },
  "lora-alpha": { type: "string" },
  "lora-dropout": { type: "string" },
  "lora-targets": { type: "string" },
} as const;

export const RLHF_FLAGS_HELP = `Model and data:
  --model DIR            the starting model directory (\`moxing train\`, or a Hugging Face GPT-2 directory)
  --data FILE.jsonl      the training data in TRL's format (see below)
  --eval FILE.jsonl      held-out data; without it --eval-fraction (default ${RLHF_DEFAULTS.evalFraction}) of --data is held out
  --max-length N         longest sequence in tokens (default: the model's block_size)
  --out DIR              where the model (or adapter), metrics.jsonl and the checkpoint go
LoRA (instead of training every weight; the base model stays untouched):
  --lora-r 8 --lora-alpha 16 --lora-dropout 0.05 --lora-targets c_attn,c_proj
Training (AdamW; linear warmup then cosine decay; grad clip ${RLHF_DEFAULTS.gradClip}):
  --max-steps ${RLHF_DEFAULTS.maxSteps}  --batch-size ${RLHF_DEFAULTS.batchSize}  --learning-rate ${RLHF_DEFAULTS.learningRate}  --min-lr ${RLHF_DEFAULTS.minLr}  --warmup-steps ${RLHF_DEFAULTS.warmupSteps}
  --weight-decay ${RLHF_DEFAULTS.weightDecay}  --grad-clip ${RLHF_DEFAULTS.gradClip}  --seed ${RLHF_DEFAULTS.seed}  --eval-interval ${RLHF_DEFAULTS.evalInterval}  --checkpoint-interval ${RLHF_DEFAULTS.checkpointInterval}
Checkpoints (Ctrl-C saves one and stops):
  --resume      continue the run in --out exactly where it stopped (same data; --max-steps may grow)
  --overwrite   start over in an --out that holds a run`;

/** The trainer arguments given on the command line (undefined where a flag is absent). */
export function rlhfArgsFromFlags(
  cmd: string,
  v: FlagValues<typeof RLHF_FLAGS>,
): Partial<RlhfArgs> & { out: string; resume: boolean; overwrite: boolean } {
  if (!v.out) throw new UsageError(`${cmd}: --out DIR is required`);
  if (!v.resume && !v.model) throw new UsageError(`${cmd}: --model DIR is required (the model to start from)`);
  if (!v.resume && !v.data) throw new UsageError(`${cmd}: --data FILE.jsonl is required`);
  const opt = (flag: keyof typeof v, o: { int?: boolean; min?: number } = {}) => {
    const value = v[flag];
    return typeof value === "string" ? num(cmd, flag, value, 0, o) : undefined;
  };
  const r = opt("lora-r", { int: true, min: 1 });
  const loraFlags = ["lora-alpha", "lora-dropout", "lora-targets"] as const;
  if (r === undefined && loraFlags.some((f) => v[f] !== undefined))
    throw new UsageError(`${cmd}: --lora-alpha/--lora-dropout/--lora-targets need --lora-r`);
  const dropout = opt("lora-dropout", { min: 0 });
  if (dropout !== undefined && dropout >= 1) throw new UsageError(`${cmd}: --lora-dropout must be below 1 (got '${v["lora-dropout"]}')`);
  const args: Partial<RlhfArgs> & { out: string; resume: boolean; overwrite: boolean } = {
    out: v.out,
    resume: v.resume ?? false,
    overwrite: v.overwrite ?? false,
    model: v.model,
    data: v.data,
    eval: v.eval,
    evalFraction: opt("eval-fraction", { min: 0 }),
    batchSize: opt("batch-size", { int: true, min: 1 }),
    maxSteps: opt("max-steps", { int: true, min: 0 }),
    learningRate: opt("learning-rate", { min: 0 }),
    minLr: opt("min-lr", { min: 0 }),
    warmupSteps: opt("warmup-steps", { int: true, min: 0 }),
    weightDecay: opt("weight-decay", { min: 0 }),
    gradClip: opt("grad-clip", { min: 0 }),
    evalInterval: opt("eval-interval", { int: true, min: 1 }),
    checkpointInterval: opt("checkpoint-interval", { int: true, min: 1 }),
    seed: opt("seed", { int: true, min: 0 }),
    maxLength: opt("max-length", { int: true, min: 2 }),
  };
  if (r !== undefined) {
    const targets = parseTargets(v["lora-targets"] ?? "c_attn,c_proj");
    if (targets.length === 0) throw new UsageError(`${cmd}: --lora-targets names no module`);
    args.lora = { r, alpha: opt("lora-alpha", { min: 0 }) ?? 2 * r, dropout: dropout ?? 0.05, targetModules: targets };
  }
  return args;
}

const SFT_HELP = `moxing sft: supervised fine-tuning of a chat model (TRL's SFTTrainer)

Usage: moxing sft --model DIR --data FILE.jsonl --out DIR [flags]
       moxing sft --out DIR --resume

The model learns to answer: the loss covers only the assistant's tokens (each turn's content and its
end-of-turn token), never the prompt. A base model without chat tokens gets ChatML's <|im_start|> and
<|im_end|> and a chat template (its embedding grows by two rows); with LoRA the base must have them.

Data: TRL's JSONL formats, one example per line:
  {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
  {"prompt": [...messages], "completion": [{"role": "assistant", "content": "..."}]}
  {"prompt": "text", "completion": "text"}            (plain text; the completion ends with EOS)
  {"text": "..."}                                     (language modelling on the whole text)

${RLHF_FLAGS_HELP}

--out gets a model directory (full fine-tuning) or an adapter directory in PEFT's layout (LoRA; merge it
with \`moxing merge\`), metrics.jsonl (train_loss, eval_loss, ...) and the checkpoint.`;

export const sftCommand: Command = {
  summary: "supervised fine-tuning on chat data (TRL formats), optionally with LoRA",
  help: SFT_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("sft", argv, RLHF_FLAGS);
    if (positionals.length) throw new UsageError(`sft: unexpected argument '${positionals[0]}'`);
    const args = rlhfArgsFromFlags("sft", v);
    const r = await runWithProgress((hooks) => sft(args, hooks));
    const where = r.args.lora ? "adapter" : "model";
    if (r.status === "interrupted") {
      console.log(`stopped at step ${r.step}; checkpoint saved in ${args.out}. Resume with: moxing sft --out ${args.out} --resume`);
      return 130;
    }
    const evalPart = r.lastEval ? `, eval loss ${r.lastEval.loss?.toFixed(4)}` : "";
    console.log(`${where} saved in ${args.out} after ${r.step} steps (train loss ${r.lastLoss?.toFixed(4)}${evalPart})`);
    return 0;
  },
};
