// io/checkpoint.js used to hold GPT's model directory and the parts every model directory shares;
// they are now model-dir.ts (any model's directory: file names, errors, reading, recovery) and
// gpt.ts (GPT's files). This module re-exports both so imports written before the split still work;
// new code imports model-dir.js or gpt.js.

export * from "./gpt.js";
export * from "./model-dir.js";
