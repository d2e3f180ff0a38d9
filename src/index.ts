// moxing: the package entry. Importing it registers the backends (the native one when its addon
// loads, else the reference one) and exposes the library, layer by layer.

import "./backends/reference/index.js";
import "./backends/native/index.js";

// Chat: conversations, chat templates, replies, the feedback store and its export.
export * from "./chat/index.js";
// BERT: the model, its directories, pretraining, fine-tuning, data formats and pipelines.
export { getEntities, parseConll, readConllFile, type SeqevalReport, seqevalScores, type TaggedSentence } from "./data/conll.js";
export { type DataProvenance, type LabeledText, parseLabeled, readLabeledFile } from "./data/labeled.js";
export { gazetteerTags, lexiconScore, sentencesOf, silverNer, silverSentiment, syntheticQa } from "./data/silver.js";
export { hasSpamAssassin, spamAssassin } from "./data/spam.js";
export { answerF1, exactMatch, normalizeAnswer, parseSquad, type QaExample, readSquadFile, squadEvaluate } from "./data/squad.js";
export { type CausalLM, type GenerateOptions, generate, generateIds, type SamplingOptions, sampleNext } from "./generate/index.js";
export { BertFileError, bertModelFiles, loadBert, readBertConfig, saveBert } from "./io/bert.js";
export * from "./io/index.js";
export * from "./metrics/index.js";
export {
  BERT_DEFAULTS,
  BERT_PRESETS,
  Bert,
  type BertConfig,
  BertModel,
  type BertOutput,
  type BertPreset,
  type BertTask,
  bertConfig,
  bertWeightNames,
  idsTensor,
  loadBertWeights,
} from "./models/bert.js";
export type { LanguageModel } from "./models/causal.js";
export {
  GPT,
  GPT_DEFAULTS,
  type GPTConfig,
  type GPTOutput,
  gpt2WeightNames,
  hfStateDict,
  loadGPTWeights,
  type PositionalEncoding,
} from "./models/gpt.js";
// Llama-family models (Llama 2/3, Mistral, Qwen2, Qwen3, SmolLM2) and GGML's quantised types.
export {
  LLAMA_DEFAULTS,
  LLAMA_MODEL_TYPES,
  Llama,
  type LlamaConfig,
  LlamaDecoderLayer,
  LlamaModel,
  type LlamaModelType,
  type LlamaOutput,
} from "./models/llama.js";
export * from "./nn/index.js";
export { AdamW, type AdamWOptions, type ParamGroup } from "./optim/adamw.js";
export {
  cosineSimilarity,
  embedTexts,
  PipelineError,
  pipeline,
  registerPipeline,
  SUPPORTED_TASKS,
  sentenceEmbeddings,
  WordVectors,
} from "./pipelines/index.js";
export {
  dequantizeRow,
  GGML_TYPE_INFO,
  type GGMLTypeName,
  QUANTIZE_TYPES,
  QuantizedTensor,
  quantizeRow,
  roundActivations,
} from "./quant/ggml.js";
export * from "./rlhf/index.js";
export * from "./tasks/index.js";
export * from "./tensor/index.js";
export * from "./tokenizers/index.js";
export { type FinetuneOptions, finetune } from "./train/finetune.js";
export { allFinite, clipGradNorm, forwardBackward, gradNorm } from "./train/grad.js";
export {
  type CheckpointReason,
  DivergenceError,
  formatMetrics,
  type LoopEvent,
  type LoopHooks,
  type LoopResult,
  type LoopSpec,
  type Metrics,
  optimizerStep,
  runLoop,
  type TaskState,
} from "./train/loop.js";
export { type MlmOptions, maskTokens, pretrainMlm } from "./train/mlm.js";
export { formatCount, formatDuration, progressReporter } from "./train/progress.js";
export { METRICS_FILE, RunDirectory, type RunOptions, type SavedState, truncateMetrics } from "./train/run.js";
export { getLr, type LrSchedule } from "./train/schedule.js";
export { estimateLoss, TRAIN_DEFAULTS, type TrainArgs, type TrainOptions, train } from "./train/trainer.js";
