// `moxing sft`, `moxing reward` and `moxing dpo`: thin shells over the trainers of src/rlhf/, with the flags they share.

import { defaultLoraTargetsFor, parseTargets, RLHF_DEFAULTS, type RlhfArgs } from "../rlhf/common.js";
import { dpo } from "../rlhf/dpo.js";
import { trainRewardModel } from "../rlhf/reward.js";
import { sft } from "../rlhf/sft.js";
import type { Command } from "./util.js";
import { type FlagValues, interruptExitStatus, num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

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
  --model PATH           the starting model: a GPT directory (\`moxing train\`, Hugging Face GPT-2), or a
                         Llama-family one (\`moxing train --arch llama\`, Hugging Face Llama/Mistral/Qwen2/Qwen3
                         directory, or a GGUF file: quantised ones train only with --lora-r, QLoRA-style)
  --data FILE.jsonl      the training data in TRL's format (see below)
  --eval FILE.jsonl      held-out data; without it --eval-fraction (default ${RLHF_DEFAULTS.evalFraction}) of --data is held out
  --max-length N         longest sequence in tokens (default: the model's block_size)
  --out DIR              where the model (or adapter), metrics.jsonl and the checkpoint go
LoRA (instead of training every weight; the base model stays untouched):
  --lora-r 8 --lora-alpha 16 --lora-dropout 0.05 --lora-targets c_attn,c_proj (GPT) or
  q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (Llama; PEFT's names)
Training (AdamW; linear warmup then cosine decay; grad clip ${RLHF_DEFAULTS.gradClip}):
  --max-steps ${RLHF_DEFAULTS.maxSteps}  --batch-size ${RLHF_DEFAULTS.batchSize}  --learning-rate ${RLHF_DEFAULTS.learningRate}  --min-lr ${RLHF_DEFAULTS.minLr}  --warmup-steps ${RLHF_DEFAULTS.warmupSteps}
  --weight-decay ${RLHF_DEFAULTS.weightDecay}  --grad-clip ${RLHF_DEFAULTS.gradClip}  --seed ${RLHF_DEFAULTS.seed}  --eval-interval ${RLHF_DEFAULTS.evalInterval}  --checkpoint-interval ${RLHF_DEFAULTS.checkpointInterval}
Checkpoints (Ctrl-C saves one and stops):
  --resume      continue the run in --out exactly where it stopped (same data; --max-steps may grow)
  --overwrite   start over in an --out that holds a run`;

/**
 * What a training run held, printed after it: the parameters trained (of all), and the memory: the
 * process's peak resident size, the largest training step's tensors (the loop's arena), and the
 * training state (weights, gradients, AdamW's two moments) beside what full fine-tuning would hold.
 */
export function trainingReport(r: { trainable: number; total: number; arenaBytes: number }, lora: boolean): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const pct = ((100 * r.trainable) / r.total).toFixed(2);
  const state = (trainable: number) => 4 * r.total + 12 * trainable; // fp32 weights + a gradient and 2 moments per trained one
  const full = lora ? ` (full fine-tuning: ${mb(state(r.total))})` : "";
  return (
    `trained ${r.trainable.toLocaleString("en-US")} of ${r.total.toLocaleString("en-US")} parameters (${pct}%)${lora ? " with LoRA" : ""}; ` +
    `memory: peak ${mb(process.resourceUsage().maxRSS * 1024)} resident, ${mb(r.arenaBytes)} of step tensors, ` +
    `${mb(state(r.trainable))} of weights, gradients and AdamW moments${full}`
  );
}

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
    const targets = v["lora-targets"] !== undefined ? parseTargets(v["lora-targets"]) : v.model ? defaultLoraTargetsFor(v.model) : [];
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
      return interruptExitStatus();
    }
    const evalPart = r.lastEval ? `, eval loss ${r.lastEval.loss?.toFixed(4)}` : "";
    console.log(`${where} saved in ${args.out} after ${r.step} steps (train loss ${r.lastLoss?.toFixed(4)}${evalPart})`);
    console.log(trainingReport(r, r.args.lora !== null));
    return 0;
  },
};

const REWARD_HELP = `moxing reward: train a reward model on preference pairs (TRL's RewardTrainer)

Usage: moxing reward --model DIR --data FILE.jsonl --out DIR [flags]
       moxing reward --out DIR --resume

The model's transformer gets a scalar head (score) read at each sequence's last token, trained with
the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected). Held-out pairwise accuracy and margin are
reported (eval_accuracy, eval_margin in metrics.jsonl). --out is a Hugging Face
GPT2ForSequenceClassification directory (num_labels 1). With --lora-r the trunk gets adapters and the
score head trains whole; --out then also holds the adapters (PEFT layout), and its model.safetensors has
them merged in.

Data: TRL's preference JSONL, one pair per line:
  {"prompt": [...messages], "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}
  {"chosen": [...messages], "rejected": [...messages]}   (the shared leading messages are the prompt)
  {"prompt": "text", "chosen": "text", "rejected": "text"}
\`moxing feedback export --format preference\` writes this format from chat feedback.

${RLHF_FLAGS_HELP}`;

export const rewardCommand: Command = {
  summary: "train a reward model (Bradley-Terry) on preference pairs",
  help: REWARD_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("reward", argv, RLHF_FLAGS);
    if (positionals.length) throw new UsageError(`reward: unexpected argument '${positionals[0]}'`);
    const args = rlhfArgsFromFlags("reward", v);
    const r = await runWithProgress((hooks) => trainRewardModel(args, hooks));
    if (r.status === "interrupted") {
      console.log(`stopped at step ${r.step}; checkpoint saved in ${args.out}. Resume with: moxing reward --out ${args.out} --resume`);
      return interruptExitStatus();
    }
    const e = r.lastEval;
    const evalPart = e ? `, held-out accuracy ${e.accuracy?.toFixed(3)}, margin ${e.margin?.toFixed(3)}` : "";
    console.log(`reward model saved in ${args.out} after ${r.step} steps (train loss ${r.lastLoss?.toFixed(4)}${evalPart})`);
    console.log(trainingReport(r, r.args.lora !== null));
    return 0;
  },
};

const DPO_FLAGS = { ...RLHF_FLAGS, beta: { type: "string" }, "label-smoothing": { type: "string" }, ref: { type: "string" } } as const;

const DPO_HELP = `moxing dpo: direct preference optimisation (TRL's DPOTrainer)

Usage: moxing dpo --model DIR --data FILE.jsonl --out DIR [--beta 0.1] [flags]
       moxing dpo --out DIR --resume

The policy starts as --model and learns to prefer the chosen answers over the rejected ones relative to
a frozen reference: --ref DIR (default: --model itself), or, with --lora-r, the model with its adapters
disabled (no second copy of the weights). The loss is -log sigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r)))
on summed completion log-probs. metrics.jsonl carries TRL's eval_rewards/chosen, eval_rewards/rejected,
eval_rewards/accuracies, eval_rewards/margins, eval_logps/chosen, eval_logps/rejected.

  --beta 0.1               strength of the pull towards the reference (smaller: further from it)
  --label-smoothing 0      cDPO: the share of pairs assumed mislabelled (0 to 0.5)
  --ref DIR                the reference model (full fine-tuning only)

Data: TRL's preference JSONL (see \`moxing reward --help\`).

${RLHF_FLAGS_HELP}`;

export const dpoCommand: Command = {
  summary: "direct preference optimisation of a chat model, optionally with LoRA",
  help: DPO_HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("dpo", argv, DPO_FLAGS);
    if (positionals.length) throw new UsageError(`dpo: unexpected argument '${positionals[0]}'`);
    const args = rlhfArgsFromFlags("dpo", v);
    const beta = v.beta === undefined ? undefined : num("dpo", "beta", v.beta, 0.1, { min: 0 });
    if (beta === 0) throw new UsageError("dpo: --beta must be above 0");
    const labelSmoothing =
      v["label-smoothing"] === undefined ? undefined : num("dpo", "label-smoothing", v["label-smoothing"], 0, { min: 0 });
    if (labelSmoothing !== undefined && labelSmoothing >= 0.5) throw new UsageError("dpo: --label-smoothing must be below 0.5");
    const r = await runWithProgress((hooks) => dpo({ ...args, beta, labelSmoothing, ref: v.ref }, hooks));
    if (r.status === "interrupted") {
      console.log(`stopped at step ${r.step}; checkpoint saved in ${args.out}. Resume with: moxing dpo --out ${args.out} --resume`);
      return interruptExitStatus();
    }
    const e = r.lastEval;
    const evalPart = e
      ? `, held-out rewards/accuracies ${e["rewards/accuracies"]?.toFixed(3)}, rewards/margins ${e["rewards/margins"]?.toFixed(4)}`
      : "";
    console.log(
      `${r.args.lora ? "adapter" : "model"} saved in ${args.out} after ${r.step} steps (train loss ${r.lastLoss?.toFixed(4)}${evalPart})`,
    );
    console.log(trainingReport(r, r.args.lora !== null));
    return 0;
  },
};
