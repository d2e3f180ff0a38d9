// The one named-weight loader: moves weights between a Module and the tensors of a file (a
// safetensors state dict, a GGUF file) for every model, as torch's load_state_dict does, with the
// differences between a file's layout and the model's written down once per model as a WeightNames
// map (each model file ends with its own: gpt2WeightNames in models/gpt.ts, bertWeightNames in
// models/bert.ts):
//   names        the file's name for each parameter, and tensors of the file that are not weights
//                (buffers, tied copies, heads the model does not have)
//   transposes   parameters the file stores (in, out) where the model has (out, in) (GPT-2's Conv1D)
//   tied weights a tied parameter is registered once (Module.namedParameters), so the file's copy
//                of it (lm_head.weight, the BERT decoder) is named "not a weight" by the map
// Every parameter must be in the file with its shape, and every weight of the file must be one of
// the model's, unless the caller allows it (a new head on a pretrained encoder); errors name the
// tensor as the file names it and say what was expected.

import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import type { Module } from "./module.js";

/** A tensor's values and shape as a file holds them (F16/BF16 already widened to F32). */
export interface WeightTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** How a model's parameters are named and laid out in files of one format. */
export interface WeightNames {
  /** The model's name for a tensor of the file, or null when the tensor is not a weight to load. */
  fromFile(fileName: string): string | null;
  /** The file's name for a model parameter (default: the same name). */
  toFile?(name: string): string;
  /** Whether the file stores this parameter transposed: (in, out) for the model's (out, in). */
  transposed?(name: string): boolean;
  /** Why a transposed tensor's shape is what it is, for errors (e.g. "Hugging Face's Conv1D layout"). */
  transposeNote?: string;
  /** What the model is, for errors: "a GPT-2 model with this config (n_layer 2)". */
  describe: string;
}

export interface LoadWeightsOptions {
  /** Parameters the file may lack (a new head); they keep their values and are listed in the report. */
  mayBeMissing?(name: string): boolean;
  /** Weights of the file the model may have no use for (another task's head); listed as ignored. */
  mayBeUnused?(name: string): boolean;
  /** More to say after "missing tensor ..." (default: "; do config.json and the weights belong to the same model?"). */
  missingHint?(missing: readonly string[]): string;
  /** More to say after a shape mismatch. */
  shapeHint?(name: string, fileShape: readonly number[], modelShape: readonly number[]): string;
}

export interface LoadWeightsReport {
  /** Parameters the file lacked (allowed by mayBeMissing), by the model's names. */
  missing: string[];
  /** Tensors of the file that were not loaded, by the file's names. */
  ignored: string[];
}

/** Row-major (rows, cols) -> (cols, rows), into a new array. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c] as number;
  }
  return out;
}

/** Up to three names, quoted, and how many more. */
function listNames(names: readonly string[]): string {
  return `'${names.slice(0, 3).join("', '")}'${names.length > 3 ? ` (+${names.length - 3} more)` : ""}`;
}

/**
 * Copy the weights of a file into `model`. Throws an Error naming the first problem (the caller
 * adds the file's path): two file tensors for one weight, a tensor that is not the model's, a
 * missing parameter, a shape mismatch, integer data.
 */
export function loadNamedWeights(
  model: Module,
  tensors: ReadonlyMap<string, WeightTensor>,
  names: WeightNames,
  opts: LoadWeightsOptions = {},
): LoadWeightsReport {
  const own = model.stateDict();
  const toFile = (n: string) => names.toFile?.(n) ?? n;
  const found = new Map<string, { file: string; t: WeightTensor }>();
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const [fileName, t] of tensors) {
    const name = names.fromFile(fileName);
    if (name === null) {
      ignored.push(fileName);
      continue;
    }
    if (!own.has(name)) {
      (opts.mayBeUnused?.(name) ? ignored : unexpected).push(fileName);
      continue;
    }
    const prev = found.get(name);
    if (prev) throw new Error(`tensors '${prev.file}' and '${fileName}' are the same weight (${name}); keep one`);
    found.set(name, { file: fileName, t });
  }
  if (unexpected.length) throw new Error(`unexpected tensor ${listNames(unexpected)}: not a weight of ${names.describe}`);
  const absent = [...own.keys()].filter((k) => !found.has(k));
  const fatal = absent.filter((k) => !opts.mayBeMissing?.(k));
  if (fatal.length) {
    const hint = opts.missingHint?.(fatal) ?? "; do config.json and the weights belong to the same model?";
    throw new Error(`missing tensor ${listNames(fatal.map(toFile))}${hint}`);
  }
  const sd = new Map<string, Tensor>();
  for (const [name, { file, t }] of found) {
    const want = (own.get(name) as Tensor).shape;
    const transposed = want.length === 2 && names.transposed?.(name) === true;
    const fileShape = transposed ? [want[1] as number, want[0] as number] : want;
    if (t.shape.length !== fileShape.length || t.shape.some((d, i) => d !== fileShape[i])) {
      const note = transposed && names.transposeNote ? ` (${names.transposeNote})` : "";
      throw new Error(
        `tensor '${file}' has shape ${fmtShape(t.shape)} but this model needs ${fmtShape(fileShape)}${note}${opts.shapeHint?.(name, t.shape, fileShape) ?? ""}`,
      );
    }
    if (!(t.data instanceof Float32Array)) throw new Error(`tensor '${file}' holds integers; weights must be floating point`);
    const data = transposed ? transpose2d(t.data, fileShape[0] as number, fileShape[1] as number) : t.data;
    sd.set(name, new Tensor(data, [...want]));
  }
  model.loadStateDict(sd, false);
  return { missing: absent, ignored };
}

/** The model's weights as a file of this format holds them: the file's names, transposed where it
 *  stores them so, as F32 copies. Tied parameters appear once (under their first name). */
export function exportNamedWeights(model: Module, names: Pick<WeightNames, "toFile" | "transposed">): Map<string, WeightTensor> {
  const out = new Map<string, WeightTensor>();
  for (const [name, t] of model.stateDict()) {
    const data = Float32Array.from(t.contiguousData() as Float32Array);
    const fileName = names.toFile?.(name) ?? name;
    if (t.ndim === 2 && names.transposed?.(name)) {
      const [rows, cols] = t.shape as [number, number];
      out.set(fileName, { shape: [cols, rows], data: transpose2d(data, rows, cols) });
    } else {
      out.set(fileName, { shape: [...t.shape], data });
    }
  }
  return out;
}
