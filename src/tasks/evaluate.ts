// BERT's tasks (text classification, token classification, question answering): their names, their
// labelled data, and their evaluation as the reference scripts compute it (accuracy and macro F1;
// seqeval's entity-level precision, recall and F1; the SQuAD v1.1 script's exact match and F1).

import { type SeqevalReport, seqevalScores, type TaggedSentence } from "../data/conll.js";
import type { LabeledText } from "../data/labeled.js";
import { type QaExample, squadEvaluate } from "../data/squad.js";
import type { Bert } from "../models/bert.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { answerQuestions } from "./answer.js";
import { classificationMetrics, classifyTexts } from "./classify.js";
import { tagWords } from "./tag.js";

export type FinetuneTask = "text-classification" | "token-classification" | "question-answering";

/** Task names the CLI and pipelines accept, and what they mean. */
export const TASK_ALIASES: Record<string, FinetuneTask> = {
  "text-classification": "text-classification",
  "sentiment-analysis": "text-classification",
  "token-classification": "token-classification",
  ner: "token-classification",
  "question-answering": "question-answering",
  qa: "question-answering",
};

export function resolveTask(name: string): FinetuneTask {
  const t = Object.hasOwn(TASK_ALIASES, name) ? TASK_ALIASES[name] : undefined;
  if (!t) throw new Error(`unknown task '${name}'; choose one of ${Object.keys(TASK_ALIASES).join(", ")}`);
  return t;
}

export type TaskData =
  | { task: "text-classification"; examples: LabeledText[] }
  | { task: "token-classification"; examples: TaggedSentence[] }
  | { task: "question-answering"; examples: QaExample[] };

export interface EvalResult {
  metrics: Record<string, number>;
  /** Per-class / per-entity-type detail. */
  detail?: unknown;
  /** NER: predicted tags per sentence; QA: answer per question id; classification: predicted labels. */
  predictions: string[][] | Record<string, string> | string[];
}

/** Evaluate a fine-tuned model on labelled data of its task. */
export function evaluateTask(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  data: TaskData,
  labels: readonly string[] | null,
  o: { maxLength?: number; docStride?: number; maxAnswerLength?: number } = {},
): EvalResult {
  if (data.task === "text-classification") {
    const ls = labels as readonly string[];
    const probs = classifyTexts(
      model,
      tokenizer,
      data.examples.map((e) => e.text),
      o,
    );
    const pred = probs.map((p) => ls[p.indexOf(Math.max(...p))] as string);
    const m = classificationMetrics(
      data.examples.map((e) => e.label),
      pred,
      ls,
    );
    return {
      metrics: { accuracy: m.accuracy, macro_f1: m.macro_f1, examples: data.examples.length },
      detail: m.perClass,
      predictions: pred,
    };
  }
  if (data.task === "token-classification") {
    const ls = labels as readonly string[];
    const tagged = tagWords(
      model,
      tokenizer,
      data.examples.map((s) => s.tokens),
      o,
    );
    const pred = tagged.map((t) => t.labels.map((l) => (l < 0 ? "O" : (ls[l] as string))));
    const r: SeqevalReport = seqevalScores(
      data.examples.map((s) => s.tags),
      pred,
    );
    return {
      metrics: { precision: r.precision, recall: r.recall, f1: r.f1, accuracy: r.accuracy, entities: r.support },
      detail: r.perType,
      predictions: pred,
    };
  }
  const answers = answerQuestions(model, tokenizer, data.examples, o);
  const byId: Record<string, string> = {};
  data.examples.forEach((e, i) => {
    byId[e.id] = answers[i]?.text ?? "";
  });
  const s = squadEvaluate(data.examples, byId);
  return { metrics: { exact_match: s.exact_match, f1: s.f1, questions: data.examples.length }, predictions: byId };
}
