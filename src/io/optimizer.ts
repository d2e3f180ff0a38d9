// AdamW's state on disk, for any model: optimizer.safetensors holds each parameter's moments as
// `<name>.exp_avg` / `<name>.exp_avg_sq` (PyTorch's names) and the step count in the metadata.

import type { Module } from "../nn/module.js";
import type { AdamW } from "../optim/adamw.js";
import { encodeSafetensors, readSafetensors, type SafeTensor, SafetensorsError } from "./safetensors.js";

export function optimizerToSafetensors(model: Module, optimizer: AdamW): Uint8Array {
  const names = new Map(model.namedParameters().map(([n, t]) => [t, n]));
  const sd = optimizer.stateDict();
  const tensors = new Map<string, SafeTensor>();
  optimizer.groups
    .flatMap((g) => g.params)
    .forEach((p, i) => {
      const name = names.get(p);
      if (!name) throw new Error("optimizerToSafetensors: the optimizer holds a tensor that is not a parameter of the model");
      tensors.set(`${name}.exp_avg`, { dtype: "F32", shape: [...p.shape], data: sd.m[i] as Float32Array });
      tensors.set(`${name}.exp_avg_sq`, { dtype: "F32", shape: [...p.shape], data: sd.v[i] as Float32Array });
    });
  return encodeSafetensors(tensors, { format: "moxing-adamw", step: String(sd.step) });
}

/** Restore AdamW's moments from `path`, matched to parameters by name; `fail` makes the error
 *  type the caller reports (each checkpoint kind has its own). */
export function loadOptimizerFile(path: string, model: Module, optimizer: AdamW, fail: (message: string) => Error): void {
  let file: ReturnType<typeof readSafetensors>;
  try {
    file = readSafetensors(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw fail(e.message);
    throw e;
  }
  const step = Number(file.metadata.step);
  if (!Number.isInteger(step) || step < 0) throw fail(`${path}: metadata 'step' is missing or invalid`);
  const names = new Map(model.namedParameters().map(([n, t]) => [t, n]));
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (const param of optimizer.groups.flatMap((g) => g.params)) {
    const name = names.get(param) ?? "?";
    for (const [suffix, out] of [
      ["exp_avg", m],
      ["exp_avg_sq", v],
    ] as const) {
      const t = file.tensors.get(`${name}.${suffix}`);
      if (!t) throw fail(`${path}: no '${name}.${suffix}' (the optimizer state does not match the model)`);
      if (t.dtype !== "F32" || t.data.length !== param.size) {
        throw fail(`${path}: '${name}.${suffix}' has ${t.data.length} ${t.dtype} values; the parameter has ${param.size}`);
      }
      out.push(t.data as Float32Array);
    }
  }
  optimizer.loadStateDict({ step, m, v });
}
