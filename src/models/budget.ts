// Memory estimates before building: a config from a file or a flag (n_layer 100000, vocab_size 1e12,
// --batch-size 1e9) is refused with the field to blame and the estimate, instead of running until
// the allocator or V8's heap gives up (bad_alloc, "Invalid typed array length", a minute of
// swapping). Each model family estimates its own needs next to its definition (estimateGPTMemory in
// gpt.ts, estimateBertMemory in bert.ts); this file holds what they share: the budget, the check
// and the wording.

import { fmtBytes, MAX_BUFFER_ELEMENTS } from "../tensor/memory.js";

/** What a config needs, in bytes, by part ("weights", "optimizer state", "activations", ...). */
export interface MemoryEstimate {
  parameters: number;
  parts: Record<string, number>;
  bytes: number;
  /** The largest single buffer (the packed parameters), which a typed array must be able to hold. */
  largestBuffer: number;
}

export function estimate(parameters: number, parts: Record<string, number>, largestBuffer: number): MemoryEstimate {
  return { parameters, parts, bytes: Object.values(parts).reduce((a, b) => a + b, 0), largestBuffer };
}

const UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * The memory a model may use: MOXING_MAX_MEMORY (bytes, or with a K/M/G/T suffix) if set, else the
 * machine's physical memory. Without Node (a browser) and without the variable: no limit beyond
 * what one buffer can hold.
 */
export function memoryBudget(): { bytes: number; source: string } {
  const env = globalThis.process?.env?.MOXING_MAX_MEMORY;
  if (env !== undefined && env !== "") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(env);
    if (!m) throw new Error(`MOXING_MAX_MEMORY must be a size such as 8G or 512M (got '${env}')`);
    return { bytes: Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number), source: "MOXING_MAX_MEMORY" };
  }
  // process.getBuiltinModule (Node >= 20.16) reaches os without importing it, which keeps this
  // module loadable in a browser.
  const os = (globalThis.process as { getBuiltinModule?: (id: string) => unknown } | undefined)?.getBuiltinModule?.("node:os") as
    | { totalmem(): number }
    | undefined;
  if (os) return { bytes: os.totalmem(), source: "this machine's memory" };
  return { bytes: Number.POSITIVE_INFINITY, source: "no limit" };
}

export interface FitOptions<C> {
  /** Appended to "would need about N", e.g. " to train". */
  purpose?: string;
  /** How users spell a field, e.g. n_layer -> "--n-layer" for a command line; default the field. */
  label?: (field: keyof C & string) => string;
}

/**
 * Refuse a config whose estimate does not fit the budget, or whose largest tensor does not fit one
 * buffer. `defaults` are the config's usual sizes; the field blamed is the one whose return to its
 * default would save the most memory, so `n_layer: 100000` is named, not n_embd. `what` names the
 * config ("GPT config"); `of` estimates a config (called again with one field changed).
 */
export function checkFits<C extends object>(
  what: string,
  config: C,
  defaults: Partial<C>,
  of: (c: C) => MemoryEstimate,
  opts: FitOptions<C> = {},
): void {
  const e = of(config);
  const budget = memoryBudget();
  const tooBig = e.bytes > budget.bytes;
  const tooLong = e.largestBuffer > MAX_BUFFER_ELEMENTS * 4;
  if (!tooBig && !tooLong) return;
  let blame: (keyof C & string) | null = null;
  let saved = 0;
  for (const k of Object.keys(defaults) as (keyof C & string)[]) {
    if (config[k] === defaults[k]) continue;
    const s = e.bytes - of({ ...config, [k]: defaults[k] }).bytes;
    if (s > saved) {
      saved = s;
      blame = k;
    }
  }
  const parts = Object.entries(e.parts)
    .filter(([, b]) => b > 0)
    .map(([k, b]) => `${k} ${fmtBytes(b)}`)
    .join(", ");
  const name = blame === null ? "" : (opts.label?.(blame) ?? blame);
  const field = blame === null ? "" : `${name} ${String(config[blame])}: `;
  const need = `${what}: ${field}the model would need about ${fmtBytes(e.bytes)}${opts.purpose ?? ""} (${e.parameters.toPrecision(3)} parameters; ${parts})`;
  const fix = blame === null ? "use smaller sizes" : `lower ${name}`;
  if (tooBig) throw new RangeError(`${need}, more than the ${fmtBytes(budget.bytes)} of ${budget.source}; ${fix}`);
  throw new RangeError(`${need}, and its largest tensor (${fmtBytes(e.largestBuffer)}) exceeds the 16 GiB one buffer can hold; ${fix}`);
}
