// The model directory of moxing's small models that have no Hugging Face counterpart (the Tree-LSTM
// and sequence classifiers of ListOps, the hierarchical attention network): config.json with a
// model_type and the model's config, model.safetensors with the module's parameter names, and JSON
// side files (the vocabulary, the label names). Reading checks the model_type, the JSON and, through
// loadStateDict, every tensor's name and shape.

import { join } from "node:path";
import { DataError } from "../data/text.js";
import type { Module } from "../nn/module.js";
import { tensor } from "../tensor/creation.js";
import { checkModelDir, checkpointFile, readJSONFile } from "./checkpoint.js";
import { encodeSafetensors, readSafetensors } from "./safetensors.js";

/** config.json ({ model_type, ...config, moxing: notes }), model.safetensors and the side files. */
export function moduleDirFiles(
  modelType: string,
  config: object,
  module: Module,
  side: Record<string, unknown> = {},
  notes: Record<string, unknown> = {},
): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  files.set("config.json", `${JSON.stringify({ model_type: modelType, ...config, moxing: notes }, null, 2)}\n`);
  const sd = new Map(
    [...module.stateDict()].map(([k, t]) => [
      k,
      { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) },
    ]),
  );
  files.set("model.safetensors", encodeSafetensors(sd, { format: "pt" }));
  for (const [name, value] of Object.entries(side)) files.set(name, `${JSON.stringify(value)}\n`);
  return files;
}

/** A directory written by moduleDirFiles: its config.json (model_type checked) and a reader of its
 *  side files; `load(module)` copies the weights in (names and shapes checked). */
export function readModuleDir(
  dir: string,
  modelTypes: readonly string[],
  hint: string,
): { config: Record<string, unknown>; side(name: string): unknown; load(module: Module): void } {
  checkModelDir(dir);
  const file = (name: string) => checkpointFile(dir, name) ?? join(dir, name);
  const config = readJSONFile(file("config.json")) as Record<string, unknown>;
  if (typeof config !== "object" || config === null || !modelTypes.includes(config.model_type as string)) {
    throw new DataError(
      `${file("config.json")}: model_type is ${JSON.stringify((config as Record<string, unknown> | null)?.model_type)}, not ${modelTypes.map((t) => `"${t}"`).join(" or ")}; ${hint}`,
    );
  }
  return {
    config,
    side: (name) => readJSONFile(file(name)),
    load(module) {
      const st = readSafetensors(file("model.safetensors"));
      try {
        module.loadStateDict(new Map([...st.tensors].map(([k, t]) => [k, tensor(t.data as Float32Array, { shape: t.shape })])));
      } catch (e) {
        throw new DataError(`${file("model.safetensors")}: ${(e as Error).message}`);
      }
      module.eval();
    },
  };
}
