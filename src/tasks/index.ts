// Task inference, shared by fine-tuning (src/train/finetune.ts) and the pipelines (src/pipelines/):
// model inputs, text classification, token classification, question answering, fill-mask,
// embeddings, and each task's evaluation.
export { type AnswerSpan, answerQuestions } from "./answer.js";
export { classificationMetrics, classifyTexts } from "./classify.js";
export { cosineSimilarity, embedTexts, type Neighbour, type Pooling, sentenceEmbeddings, WordVectors } from "./embeddings.js";
export { type EvalResult, evaluateTask, type FinetuneTask, resolveTask, TASK_ALIASES, type TaskData } from "./evaluate.js";
export { collate, type Feature, IGNORE_INDEX, qaFeature, textFeature, tokenFeature, wordPieces } from "./features.js";
export { type FillMaskOutput, fillMask } from "./fill-mask.js";
export { type EntityGroup, groupEntities, splitWords, type TaggedWords, type TokenOutput, tagText, tagWords } from "./tag.js";
