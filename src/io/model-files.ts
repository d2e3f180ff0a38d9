// Model files in any of the formats moxing reads, behind one interface: a model directory (moxing's
// or Hugging Face's GPT-2 layout), a bare .safetensors file (weights; config and tokenizer from the
// files beside it), or a .gguf file (llama.cpp's gpt2 architecture). Used by `moxing convert`,
// `export` and `info`.

import { closeSync, existsSync, readSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { canonicalWeightName, GPT, type GPTConfig, hfStateDict, loadHFStateDict, type WeightTensor } from "../models/gpt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { CheckpointError, CONFIG_FILE, loadModel, readConfig, readTokenizer, saveModel } from "./checkpoint.js";
import { openRegularFile } from "./files.js";
import { checkFiniteWeights } from "./finite.js";
import { GGUFError } from "./gguf.js";
import { exportGGUF, loadGGUFModel } from "./gguf-gpt2.js";
import { readSafetensors, SafetensorsError, writeSafetensors } from "./safetensors.js";

export type ModelFormat = "dir" | "safetensors" | "gguf";
export const MODEL_FORMATS: readonly ModelFormat[] = ["dir", "safetensors", "gguf"];

/** The format of an existing path: a directory, or a file recognised by its first bytes. */
export function detectFormat(path: string): ModelFormat {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    throw new CheckpointError(`'${path}' does not exist`);
  }
  if (st.isDirectory()) return "dir";
  const head = new Uint8Array(4);
  const { fd } = openRegularFile(path, { Err: CheckpointError, expected: "a model directory or file" });
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return "gguf";
  const ext = extname(path).toLowerCase();
  if (ext === ".safetensors") return "safetensors";
  if (ext === ".gguf") return "gguf"; // a damaged one: the reader will say what is wrong
  throw new CheckpointError(`'${path}' is neither a model directory, a .safetensors file nor a GGUF file`);
}

/** The format to write for an output path: --format if given, else by extension (none: a directory). */
export function outputFormat(path: string, format?: string): ModelFormat {
  if (format !== undefined) {
    if (!(MODEL_FORMATS as readonly string[]).includes(format)) {
      throw new CheckpointError(`unknown format '${format}'; use ${MODEL_FORMATS.join(", ")}`);
    }
    return format as ModelFormat;
  }
  const ext = extname(path).toLowerCase();
  return ext === ".gguf" ? "gguf" : ext === ".safetensors" ? "safetensors" : "dir";
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SafetensorsError || e instanceof GGUFError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** Load a model from a directory, a .safetensors file (with config.json and tokenizer beside it) or a .gguf file. */
export function loadModelFrom(path: string): { model: GPT; tokenizer: Tokenizer; config: GPTConfig; format: ModelFormat } {
  const format = detectFormat(path);
  return wrap(() => {
    if (format === "dir") return { ...loadModel(path), format };
    if (format === "gguf") return { ...loadGGUFModel(path), format };
    const dir = dirname(path);
    if (!existsSync(join(dir, CONFIG_FILE))) {
      throw new CheckpointError(
        `${path}: a .safetensors file holds only weights; put config.json and tokenizer.json beside it, or give the model directory`,
      );
    }
    const config = readConfig(dir);
    const tokenizer = readTokenizer(dir);
    const file = readSafetensors(path, { only: (name) => canonicalWeightName(name) !== null });
    const model = new GPT(config, { seed: 0 });
    try {
      loadHFStateDict(model, file.tensors as Map<string, WeightTensor>, {
        layout: file.metadata.format === "moxing" ? "linear" : "conv1d",
      });
    } catch (e) {
      throw new CheckpointError(`${path}: ${(e as Error).message}`);
    }
    checkFiniteWeights(model.namedParameters(), path, CheckpointError);
    model.eval();
    return { model, tokenizer, config, format };
  });
}

/** Write a model in `format`: a model directory, a weights-only .safetensors (Hugging Face layout), or GGUF. */
export function saveModelAs(path: string, format: ModelFormat, model: GPT, tokenizer: Tokenizer): void {
  wrap(() => {
    if (format === "dir") {
      if (existsSync(path) && !statSync(path).isDirectory())
        throw new CheckpointError(`'${path}' is a file; a model directory was asked for`);
      saveModel(path, model, tokenizer);
    } else if (format === "gguf") {
      exportGGUF(path, model, tokenizer, { name: basename(path).replace(/\.gguf$/i, "") });
    } else {
      const tensors = new Map([...hfStateDict(model)].map(([name, t]) => [name, { dtype: "F32", ...t }]));
      writeSafetensors(path, tensors, { format: "pt" });
    }
  });
}
