// LoRA adapters on disk, in PEFT's layout, so PEFT loads moxing's adapters and moxing loads PEFT's:
//   adapter_config.json        LoraConfig: peft_type "LORA", r, lora_alpha, lora_dropout, target_modules,
//                              fan_in_fan_out, bias "none", task_type "CAUSAL_LM", use_rslora, ...
//   adapter_model.safetensors  base_model.model.<layer>.lora_A.weight (r, in_features) and
//                              .lora_B.weight (out_features, r), F32, metadata format "pt"
//
// GPT-2's projections are Conv1D modules in transformers, whose weight is (in, out). PEFT adapts them
// with fan_in_fan_out true: lora_A and lora_B keep the shapes above (PEFT reads in/out features off the
// Conv1D weight), and only merging transposes the update (B·A)ᵀ into the (in, out) weight. moxing keeps
// every projection as (out, in), so its merge adds B·A and the Conv1D transpose happens when the merged
// model is saved; adapter_config.json says fan_in_fan_out true for GPT-2 so PEFT merges the same way.
//
// Settings PEFT has and moxing does not implement (DoRA, trained biases, modules_to_save, per-layer
// rank or alpha patterns, layer selection) are refused by name when reading, never ignored.

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { isConv1DWeight } from "../models/gpt.js";
import { type LoraConfig, LoraModel, PEFT_PREFIX } from "../nn/lora.js";
import type { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import type { Generator } from "../tensor/random.js";
import { CheckpointError, commitFiles, readJSONFile } from "./checkpoint.js";
import { checkFiniteWeights } from "./finite.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_MODEL_FILE = "adapter_model.safetensors";

/** adapter_config.json as PEFT writes it for a LoRA adapter. */
export function adapterConfigJSON(lora: LoraModel, opts: { baseModel?: string } = {}): Record<string, unknown> {
  const c = lora.config;
  // GPT-2's projections are Conv1D on disk (see the top of this file).
  const fanInFanOut = [...lora.adapters.keys()].some((path) => isConv1DWeight(`${path}.weight`));
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModel ?? null,
    bias: "none",
    fan_in_fan_out: fanInFanOut,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...c.targetModules],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: c.useRslora,
  };
}

/** The adapters' tensors under PEFT's names (copies). */
export function adapterTensors(lora: LoraModel): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, p] of lora.namedParameters()) {
    out.set(name, { dtype: "F32", shape: [...p.shape], data: Float32Array.from(p.contiguousData() as Float32Array) });
  }
  return out;
}

/**
 * Write `lora`'s adapters to `dir` in PEFT's layout, both files as one atomic set. `extra` files (a
 * tokenizer, training state) join the same set.
 */
export function saveAdapter(
  dir: string,
  lora: LoraModel,
  opts: { baseModel?: string; extra?: ReadonlyMap<string, string | Uint8Array> } = {},
): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new CheckpointError(`'${dir}' is a file; an adapter is saved as a directory`);
  commitFiles(dir, adapterFiles(lora, opts), []);
}

/** The files of an adapter directory (adapter_config.json, adapter_model.safetensors, and `extra`). */
export function adapterFiles(
  lora: LoraModel,
  opts: { baseModel?: string; extra?: ReadonlyMap<string, string | Uint8Array> } = {},
): Map<string, string | Uint8Array> {
  const files = new Map<string, string | Uint8Array>(opts.extra ?? []);
  files.set(ADAPTER_CONFIG_FILE, `${JSON.stringify(adapterConfigJSON(lora, opts), null, 2)}\n`);
  files.set(ADAPTER_MODEL_FILE, encodeSafetensors(adapterTensors(lora), { format: "pt" }));
  return files;
}

/** Read and check adapter_config.json; returns the LoRA config it describes. */
export function readAdapterConfig(dir: string): LoraConfig {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(dir)) throw new CheckpointError(`adapter directory '${dir}' does not exist`);
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found; is '${dir}' a LoRA adapter directory (PEFT layout)?`);
  const json = readJSONFile(path);
  const bad = (msg: string): never => {
    throw new CheckpointError(`${path}: ${msg}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return bad("expected a JSON object");
  const c = json as Record<string, unknown>;
  if (c.peft_type !== "LORA") bad(`peft_type is ${JSON.stringify(c.peft_type)}; moxing reads LoRA adapters ("LORA")`);
  const unsupported = (key: string, ok: (v: unknown) => boolean, what: string) => {
    if (c[key] !== undefined && !ok(c[key])) bad(`${key} is ${JSON.stringify(c[key])}; ${what}, which moxing does not implement`);
  };
  const empty = (v: unknown) => v == null || (typeof v === "object" && Object.keys(v as object).length === 0);
  unsupported("use_dora", (v) => v === false || v == null, "DoRA adapters need a magnitude vector");
  unsupported("bias", (v) => v === "none" || v == null, "the adapter trains biases");
  unsupported("modules_to_save", empty, "the adapter carries whole trained modules");
  unsupported("rank_pattern", empty, "per-layer ranks");
  unsupported("alpha_pattern", empty, "per-layer alphas");
  unsupported("layers_to_transform", (v) => v == null, "it adapts only some layers");
  const targets = c.target_modules;
  if (typeof targets === "string") bad(`target_modules is the pattern ${JSON.stringify(targets)}; moxing reads a list of module names`);
  if (!Array.isArray(targets) || targets.some((t) => typeof t !== "string")) bad("target_modules must be a list of module names");
  const config: LoraConfig = {
    r: c.r as number,
    alpha: c.lora_alpha as number,
    dropout: (c.lora_dropout ?? 0) as number,
    targetModules: targets as string[],
    useRslora: c.use_rslora === true,
  };
  if (!Number.isInteger(config.r) || config.r < 1) bad(`r must be a positive integer (got ${JSON.stringify(c.r)})`);
  if (typeof config.alpha !== "number" || !(config.alpha > 0))
    bad(`lora_alpha must be a positive number (got ${JSON.stringify(c.lora_alpha)})`);
  if (typeof config.dropout !== "number" || !(config.dropout >= 0 && config.dropout < 1))
    bad(`lora_dropout must be in [0, 1) (got ${JSON.stringify(c.lora_dropout)})`);
  return config;
}

/**
 * Load the adapter in `dir` onto `base` (adapters attached, base frozen; `generator` drives their dropout). Every tensor of the file
 * must be one of the adapters, with its shape, and every adapter must be in the file.
 */
export function loadAdapter(dir: string, base: Module, opts: { generator?: Generator } = {}): LoraModel {
  const config = readAdapterConfig(dir);
  const path = join(dir, ADAPTER_MODEL_FILE);
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found; the adapter directory has no weights`);
  let lora: LoraModel;
  try {
    lora = new LoraModel(base, config, opts);
  } catch (e) {
    throw new CheckpointError(`${join(dir, ADAPTER_CONFIG_FILE)}: ${(e as Error).message}`);
  }
  try {
    let file: ReturnType<typeof readSafetensors>;
    try {
      file = readSafetensors(path);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
      throw e;
    }
    const own = new Map(lora.namedParameters());
    // PEFT's in-memory names carry the adapter name ("lora_A.default.weight"); saved files drop it,
    // but accept both.
    const canonical = (name: string) => name.replace(/\.(lora_[AB])\.default\.weight$/, ".$1.weight");
    const seen = new Set<string>();
    noGrad(() => {
      for (const [fileName, t] of file.tensors) {
        const name = canonical(fileName);
        const p = own.get(name);
        if (!p) {
          const hint = name.startsWith(PEFT_PREFIX) ? "" : ` (PEFT's names start with "${PEFT_PREFIX}")`;
          throw new CheckpointError(`${path}: tensor '${fileName}' is not an adapter weight of this model${hint}`);
        }
        if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
          throw new CheckpointError(
            `${path}: tensor '${fileName}' has shape [${t.shape.join(", ")}] but the adapter needs [${p.shape.join(", ")}]`,
          );
        }
        if (!(t.data instanceof Float32Array))
          throw new CheckpointError(`${path}: tensor '${fileName}' holds integers; weights must be floating point`);
        p.copy_(tensor(t.data, { shape: [...p.shape] }));
        seen.add(name);
      }
    });
    const missing = [...own.keys()].filter((k) => !seen.has(k));
    if (missing.length) {
      throw new CheckpointError(
        `${path}: missing tensor '${missing[0]}'${missing.length > 1 ? ` (+${missing.length - 1} more)` : ""}; do the adapter and the base model match?`,
      );
    }
    // A NaN adapter would make every answer garbage once merged or attached, as NaN base weights would.
    checkFiniteWeights(own, path, CheckpointError);
  } catch (e) {
    lora.unload(); // leave the base as it was
    throw e;
  }
  return lora;
}
