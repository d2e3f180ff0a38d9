// Text classification: class probabilities of texts, and the metrics of predicted labels.

import type { Bert } from "../models/bert.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { collate, textFeature } from "./features.js";

/** Class probabilities (N, labels) of texts, in batches, without gradients. */
export function classifyTexts(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  texts: readonly string[],
  o: { maxLength?: number; batchSize?: number } = {},
): Float32Array[] {
  const maxLength = o.maxLength ?? Math.min(512, model.config.max_position_embeddings);
  const bs = o.batchSize ?? 32;
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const out: Float32Array[] = [];
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < texts.length; i += bs) {
      scoped(() => {
        const rows = texts.slice(i, i + bs).map((t) => textFeature(tokenizer, t, maxLength));
        // (B, labels) probabilities
        const p = model
          .forward(collate(rows, padId, maxLength).inputs)
          .logits.softmax(-1)
          .contiguousData() as Float32Array;
        rows.forEach((_, r) => {
          out.push(p.slice(r * model.numLabels, (r + 1) * model.numLabels));
        });
      });
    }
  });
  return out;
}

/** Accuracy and macro-averaged F1 over the labels (with each label's precision, recall, F1 and support). */
export function classificationMetrics(
  gold: readonly string[],
  pred: readonly string[],
  labels: readonly string[],
): { accuracy: number; macro_f1: number; perClass: Record<string, { precision: number; recall: number; f1: number; support: number }> } {
  let correct = 0;
  gold.forEach((g, i) => {
    if (g === pred[i]) correct++;
  });
  const perClass: Record<string, { precision: number; recall: number; f1: number; support: number }> = {};
  let sumF1 = 0;
  for (const l of labels) {
    let tp = 0;
    let np = 0;
    let nt = 0;
    gold.forEach((g, i) => {
      if (pred[i] === l) np++;
      if (g === l) nt++;
      if (g === l && pred[i] === l) tp++;
    });
    const precision = np ? tp / np : 0;
    const recall = nt ? tp / nt : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[l] = { precision, recall, f1, support: nt };
    sumF1 += f1;
  }
  return { accuracy: gold.length ? correct / gold.length : 0, macro_f1: labels.length ? sumF1 / labels.length : 0, perClass };
}
