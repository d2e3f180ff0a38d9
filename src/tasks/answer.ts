// Extractive question answering: the best answer span in a context, over its windows (a document
// stride apart, as Hugging Face's run_qa does).

import { bestAnswer, type QaExample, qaFeatures } from "../data/squad.js";
import type { Bert } from "../models/bert.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { collate, qaFeature } from "./features.js";

/** An answer: its text, the model's probability for the span, and its character offsets in the context. */
export interface AnswerSpan {
  text: string;
  score: number;
  start: number;
  end: number;
}

/** Answers to QA examples: the best span over each example's windows. */
export function answerQuestions(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  examples: readonly QaExample[],
  o: { maxLength?: number; docStride?: number; maxAnswerLength?: number; batchSize?: number } = {},
): AnswerSpan[] {
  const maxLength = o.maxLength ?? Math.min(384, model.config.max_position_embeddings);
  const feats = qaFeatures(tokenizer, examples, { maxLength, docStride: o.docStride ?? 128 });
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const bs = o.batchSize ?? 16;
  const windows: { offsets: ([number, number] | null)[]; start: Float32Array; end: Float32Array }[][] = examples.map(() => []);
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < feats.length; i += bs) {
      scoped(() => {
        const chunk = feats.slice(i, i + bs);
        const b = collate(chunk.map(qaFeature), padId, maxLength);
        const logits = model.forward(b.inputs).logits.contiguousData() as Float32Array; // (B, T, 2)
        chunk.forEach((f, r) => {
          const n = f.attentionMask.reduce((a, c) => a + c, 0);
          const start = new Float32Array(n);
          const end = new Float32Array(n);
          for (let t = 0; t < n; t++) {
            start[t] = logits[(r * b.T + t) * 2] as number;
            end[t] = logits[(r * b.T + t) * 2 + 1] as number;
          }
          windows[f.exampleIndex]?.push({ offsets: f.offsets.slice(0, n), start, end });
        });
      });
    }
  });
  return examples.map((ex, i) => bestAnswer(ex.context, windows[i] ?? [], { maxAnswerLength: o.maxAnswerLength }));
}
