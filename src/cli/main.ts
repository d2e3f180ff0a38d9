#!/usr/bin/env node
// The `moxing` command line: `moxing <command> [flags]`. Each command lives in its own file and
// registers in COMMANDS; this file only dispatches and turns user mistakes into one-line errors.

import "../index.js"; // registers the backends
import { describeSystemError, escapeForDisplay } from "../io/files.js";
import { interpolateCommand, trainAutoencoderCommand } from "./autoencoder.js";
import { chatCommand } from "./chat.js";
import { convertCommand } from "./convert.js";
import { demoCommand } from "./demo.js";
import { evalCommand } from "./eval.js";
import { exportCommand } from "./export.js";
import { feedbackCommand } from "./feedback.js";
import { finetuneCommand } from "./finetune.js";
import { generateCommand } from "./generate.js";
import { hanAttentionCommand, trainHANCommand } from "./han.js";
import { infoCommand } from "./info.js";
import { trainListOpsCommand } from "./listops.js";
import { mergeCommand } from "./merge.js";
import { pipelineCommand } from "./pipeline.js";
import { grpoCommand, ppoCommand } from "./ppo.js";
import { pretrainMlmCommand } from "./pretrain-mlm.js";
import { quantizeCommand } from "./quantize.js";
import { dpoCommand, rewardCommand, sftCommand } from "./rlhf.js";
import { serveCommand } from "./serve.js";
import { similarCommand } from "./similar.js";
import { startCommand, trainCommand } from "./train.js";
import { trainSeq2SeqCommand } from "./train-seq2seq.js";
import { translateCommand } from "./translate.js";
import { type Command, packageJson, UsageError } from "./util.js";

const COMMANDS = new Map<string, Command>([
  ["demo", demoCommand],
  ["start", startCommand],
  ["train", trainCommand],
  ["generate", generateCommand],
  ["eval", evalCommand],
  ["info", infoCommand],
  ["convert", convertCommand],
  ["export", exportCommand],
  ["quantize", quantizeCommand],
  ["pretrain-mlm", pretrainMlmCommand],
  ["finetune", finetuneCommand],
  ["similar", similarCommand],
  ["pipeline", pipelineCommand],
  ["chat", chatCommand],
  ["feedback", feedbackCommand],
  ["merge", mergeCommand],
  ["sft", sftCommand],
  ["reward", rewardCommand],
  ["dpo", dpoCommand],
  ["ppo", ppoCommand],
  ["grpo", grpoCommand],
  ["train-seq2seq", trainSeq2SeqCommand],
  ["translate", translateCommand],
  ["train-autoencoder", trainAutoencoderCommand],
  ["interpolate", interpolateCommand],
  ["train-listops", trainListOpsCommand],
  ["train-han", trainHANCommand],
  ["han-attention", hanAttentionCommand],
  ["serve", serveCommand],
]);

function help(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((k) => k.length));
  const lines = [...COMMANDS.entries()].map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "moxing: large language models in TypeScript",
    "",
    "Usage: moxing <command> [flags]",
    "",
    "Commands:",
    ...lines,
    "",
    "Flags:",
    "  --help, -h     show help (also `moxing <command> --help`)",
    "  --version, -v  print the version",
    "",
    "Environment: MOXING_BACKEND=reference|native, MOXING_THREADS=N, MOXING_DEBUG=1 (stack traces), MOXING_QUIET=1 (no fallback notice), MOXING_MAX_MEMORY=8G (the memory a model may need; default: all of it)",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    console.log(help());
    return 0;
  }
  if (first === "--version" || first === "-v") {
    console.log(packageJson().version);
    return 0;
  }
  const cmd = COMMANDS.get(first);
  if (!cmd) throw new UsageError(`unknown command '${first}'; run 'moxing --help' to see the commands`);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(cmd.help);
    return 0;
  }
  return (await cmd.run(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    if (process.env.MOXING_DEBUG) console.error(e.stack);
    // A raw system error (ENOSPC, EROFS, ENOTDIR ... from a write) says what happened and what to do.
    // Messages may quote what a file says: no raw control or bidi characters reach the terminal.
    console.error(`moxing: ${escapeForDisplay(describeSystemError(e) ?? e.message)}`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
