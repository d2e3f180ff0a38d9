// Metrics for generated text: BLEU and chrF as sacreBLEU computes them, and ROUGE-L.
export * from "./bleu.js";
export * from "./chrf.js";
export * from "./rouge.js";
export { pySplit } from "./text.js";
