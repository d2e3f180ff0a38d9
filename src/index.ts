// moxing: the package entry. Importing it registers the backends (the native one when its addon
// loads, else the reference one) and exposes the library, layer by layer.

import "./backends/reference/index.js";
import "./backends/native/index.js";

export { type GenerateOptions, generate, generateIds, type SamplingOptions, sampleNext } from "./generate/index.js";
export { GPT, GPT_DEFAULTS, type GPTConfig, type GPTOutput, type PositionalEncoding } from "./models/gpt.js";
export * from "./nn/index.js";
export { AdamW, type AdamWOptions, type ParamGroup } from "./optim/adamw.js";
export * from "./tensor/index.js";
export * from "./tokenizers/index.js";
