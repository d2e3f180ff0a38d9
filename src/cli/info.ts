// `moxing info`: what a model holds - a model directory (config, parameter count, tokenizer,
// training state), a .safetensors file (tensors, dtypes, metadata) or a GGUF file (metadata,
// tensors, tokenizer). Reads headers only, so it is instant even for large models; a damaged file
// is a one-line error.

import { CheckpointError, readRawConfig, readTokenizer, readTrainerState, weightFiles } from "../io/checkpoint.js";
import { escapeForDisplay } from "../io/files.js";
import { GGUFError, type GGUFFile, plainValue, readGGUFHeader } from "../io/gguf.js";
import { ggufConfig, ggufTokenizer } from "../io/gguf-gpt2.js";
import { detectFormat } from "../io/model-files.js";
import { readSafetensorsHeader, SafetensorsError, type SafetensorsHeader } from "../io/safetensors.js";
import { canonicalWeightName } from "../models/gpt.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing info: describe a model directory, a .safetensors file or a GGUF file

Usage: moxing info --model PATH

PATH is a model directory (moxing's, or a Hugging Face GPT-2 checkpoint), a .safetensors file or a
.gguf file. Prints JSON:
  directory    the config (config.json), the parameter count (total, and without the position
               embedding table as nanoGPT counts), the weights' files and dtypes, the tokenizer, and
               the training state when the directory is a checkpoint
  .safetensors the tensors' count, dtypes and parameter count, the metadata, and for GPT-2 weights
               the dimensions they imply
  .gguf        the GGUF version, the metadata (long arrays summarised), tensor types and parameter
               count, and for the gpt2 architecture the config and tokenizer moxing reads from it
Only headers are read. A damaged or unsupported file is reported in one line (exit status 1).`;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function count<T>(xs: Iterable<T>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[String(x)] = (out[String(x)] ?? 0) + 1;
  return out;
}

function header(path: string): SafetensorsHeader {
  try {
    return readSafetensorsHeader(path);
  } catch (e) {
    throw e instanceof SafetensorsError ? new CheckpointError(e.message) : e;
  }
}

/** Weight tensors (mask buffers excluded) of safetensors headers: count, dtypes, parameters. */
function weightSummary(headers: SafetensorsHeader[]) {
  let total = 0;
  let positions = 0;
  let tensors = 0;
  const dtypes: string[] = [];
  for (const h of headers) {
    for (const [name, t] of h.tensors) {
      const canon = canonicalWeightName(name);
      if (canon === null) continue;
      tensors++;
      total += numel(t.shape);
      dtypes.push(t.dtype);
      if (canon === "transformer.wpe.weight") positions = numel(t.shape);
    }
  }
  return { total, positions, tensors, dtypes: count(dtypes) };
}

function dirInfo(dir: string): object {
  const config = readRawConfig(dir);
  const files = weightFiles(dir);
  const headers = files.map(header);
  const w = weightSummary(headers);
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
  return {
    model: dir,
    format: "dir",
    config,
    parameters: { total: w.total, non_embedding: w.total - w.positions, tensors: w.tensors },
    weights: {
      files,
      dtypes: w.dtypes,
      layout: headers.some((h) => h.metadata.format === "moxing")
        ? "moxing 0.1 (Linear (out, in))"
        : "Hugging Face GPT-2 (Conv1D (in, out))",
    },
    tokenizer: { type: tokenizer.type, vocab_size: tokenizer.vocabSize },
    training,
  };
}

function safetensorsInfo(path: string): object {
  const h = header(path);
  const w = weightSummary([h]);
  const shape = (name: string) => {
    for (const [n, t] of h.tensors) if (canonicalWeightName(n) === name) return t.shape;
    return undefined;
  };
  const wte = shape("transformer.wte.weight");
  let gpt2: object | null = null;
  if (wte?.length === 2) {
    const layers = new Set<number>();
    for (const n of h.tensors.keys()) {
      const m = /^(?:transformer\.)?h\.(\d+)\./.exec(n);
      if (m) layers.add(Number(m[1]));
    }
    gpt2 = {
      n_layer: layers.size,
      n_embd: wte[1],
      vocab_size: wte[0],
      n_positions: shape("transformer.wpe.weight")?.[0] ?? null,
      tied_head: !h.tensors.has("lm_head.weight"),
    };
  }
  return {
    model: path,
    format: "safetensors",
    metadata: h.metadata,
    tensors: h.tensors.size,
    dtypes: count([...h.tensors.values()].map((t) => t.dtype)),
    parameters: { total: w.total, non_embedding: w.total - w.positions },
    data_bytes: h.dataLength,
    gpt2,
  };
}

function ggufInfo(path: string): object {
  let file: GGUFFile;
  try {
    file = readGGUFHeader(path);
  } catch (e) {
    throw e instanceof GGUFError ? new CheckpointError(e.message) : e;
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of file.metadata) {
    metadata[k] = v.type === "array" && v.value.length > 16 ? `[${v.value.length} ${v.itemType} values]` : plainValue(v);
  }
  const total = file.tensors.reduce((n, t) => n + numel(t.shape), 0);
  const positions = file.tensors.find((t) => t.name === "position_embd.weight");
  let config: object | null = null;
  let tokenizer: object | null = null;
  if (file.metadata.get("general.architecture")?.value === "gpt2") {
    try {
      config = ggufConfig(file, path);
      const tok = ggufTokenizer(file, path);
      tokenizer = {
        type: tok.type,
        vocab_size: tok.vocabSize,
        merges: tok.mergeCount,
        special_tokens: Object.fromEntries(tok.specialTokens),
      };
    } catch (e) {
      throw e instanceof GGUFError ? new CheckpointError(e.message) : e;
    }
  }
  return {
    model: path,
    format: "gguf",
    version: file.version,
    architecture: plainValue(file.metadata.get("general.architecture") ?? { type: "string", value: "" }) || null,
    config,
    parameters: { total, non_embedding: total - (positions ? numel(positions.shape) : 0), tensors: file.tensors.length },
    tensor_types: count(file.tensors.map((t) => t.typeName)),
    tokenizer,
    metadata,
  };
}

export const infoCommand: Command = {
  summary: "describe a model directory, .safetensors or .gguf file",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("info", argv, { model: { type: "string" } });
    if (positionals.length) throw new UsageError(`info: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("info: --model PATH is required");
    const path = v.model;
    let format: ReturnType<typeof detectFormat>;
    try {
      format = detectFormat(path);
    } catch (e) {
      // Keep the message that names what a model directory needs.
      if ((e as Error).message.endsWith("does not exist")) throw new CheckpointError(`model directory '${path}' does not exist`);
      throw e;
    }
    const info = format === "dir" ? dirInfo(path) : format === "gguf" ? ggufInfo(path) : safetensorsInfo(path);
    // Metadata is the file's text: control and bidi characters are printed escaped, not raw.
    console.log(escapeForDisplay(JSON.stringify(info, null, 2)));
    return 0;
  },
};
