// `moxing info`: what a model directory holds - config, parameter count, tokenizer, training state.

import { join } from "node:path";
import { CheckpointError, checkpointFile, MODEL_FILE, readRawConfig, readTokenizer, readTrainerState } from "../io/checkpoint.js";
import { readSafetensorsHeader, SafetensorsError } from "../io/safetensors.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing info: describe a model directory

Usage: moxing info --model DIR

Prints JSON: the config (config.json), the parameter count (total, and without the position
embedding table as nanoGPT counts), the tokenizer, and the training state when DIR is a checkpoint.
Reads only the header of model.safetensors, so it is instant even for large models.`;

export const infoCommand: Command = {
  summary: "show a model directory's config and parameter count",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("info", argv, { model: { type: "string" } });
    if (positionals.length) throw new UsageError(`info: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("info: --model DIR is required");
    const dir = v.model;
    const config = readRawConfig(dir);
    const weights = checkpointFile(dir, MODEL_FILE);
    if (!weights) throw new CheckpointError(`${join(dir, MODEL_FILE)}: file not found`);
    let header: ReturnType<typeof readSafetensorsHeader>;
    try {
      header = readSafetensorsHeader(weights);
    } catch (e) {
      throw e instanceof SafetensorsError ? new CheckpointError(e.message) : e;
    }
    let total = 0;
    let positions = 0;
    for (const [name, t] of header.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      total += n;
      if (name === "transformer.wpe.weight") positions = n;
    }
    const tokenizer = readTokenizer(dir);
    const state = readTrainerState(dir) as Record<string, unknown> | null;
    const training = state
      ? {
          step: state.step,
          max_steps: (state.args as Record<string, unknown> | undefined)?.maxSteps,
          tokens_seen: state.tokens_seen,
          best_val_loss: state.best_val_loss,
          last_val_loss: state.last_val_loss,
          last_train_loss: state.last_train_loss,
          data: (state.data as Record<string, unknown> | undefined)?.source,
        }
      : null;
    const info = {
      model: dir,
      config,
      parameters: { total, non_embedding: total - positions, tensors: header.tensors.size },
      tokenizer: { type: tokenizer.type, vocab_size: tokenizer.vocabSize },
      training,
    };
    console.log(JSON.stringify(info, null, 2));
    return 0;
  },
};
