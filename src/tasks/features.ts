// Model inputs for BERT's tasks, shared by fine-tuning (the training batches) and inference (the
// pipelines, evaluation): the features of a text, of a sentence of words (each word labelled on its
// first WordPiece, the others -100, as Hugging Face's run_ner does), and of a question with a context
// window; and collate, which pads a batch of them.

import type { QaFeature } from "../data/squad.js";
import { Tensor } from "../tensor/tensor.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";

/** The label of positions the loss ignores (PyTorch's cross_entropy ignore_index). */
export const IGNORE_INDEX = -100;

/** One model input row with its targets. */
export interface Feature {
  inputIds: number[];
  tokenTypeIds: number[];
  /** text: the class id; tokens: a label per position (-100 ignored); QA: [start, end]. */
  target: number | number[];
}

/** Round a length up to a multiple of 8: batches then come in few shapes, which the memory arena reuses. */
const bucket = (n: number, max: number) => Math.min(max, Math.ceil(n / 8) * 8);

/** Pad rows to one length (a multiple of 8, at most maxLength unless a row is longer) as (B, T)
 *  tensors: ids, segment ids, the attention mask, and per-token labels for token classification. */
export function collate(rows: readonly Feature[], padId: number, maxLength: number) {
  const B = rows.length;
  const T = bucket(Math.max(...rows.map((r) => r.inputIds.length)), Math.max(maxLength, ...rows.map((r) => r.inputIds.length)));
  const ids = new Int32Array(B * T).fill(padId);
  const types = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  const tokenLabels = new Int32Array(B * T).fill(IGNORE_INDEX);
  rows.forEach((r, b) => {
    ids.set(r.inputIds, b * T);
    types.set(r.tokenTypeIds, b * T);
    mask.fill(1, b * T, b * T + r.inputIds.length);
    if (Array.isArray(r.target) && r.target.length === r.inputIds.length) tokenLabels.set(r.target, b * T);
  });
  return {
    inputs: { inputIds: new Tensor(ids, [B, T]), tokenTypeIds: new Tensor(types, [B, T]), attentionMask: new Tensor(mask, [B, T]) },
    tokenLabels: new Tensor(tokenLabels, [B, T]),
    T,
    tokens: B * T,
  };
}

/** The WordPiece ids of each word (a word with no pieces, e.g. a control character, becomes [UNK]). */
export function wordPieces(tokenizer: WordPieceTokenizer, words: readonly string[]): number[][] {
  const unk = tokenizer.tokenToId(tokenizer.unkToken) as number;
  return words.map((w) => {
    const ids = tokenizer.encode(w, { disallowedSpecial: [] });
    return ids.length ? ids : [unk];
  });
}

/** [CLS] pieces [SEP] cut to maxLength, with each word's first-piece position (-1 for words cut off). */
export function tokenFeature(
  tokenizer: WordPieceTokenizer,
  words: readonly string[],
  maxLength: number,
  wordLabels?: readonly number[],
): { feature: Feature; firstPiece: number[] } {
  const cls = tokenizer.tokenToId(tokenizer.clsToken) as number;
  const sep = tokenizer.tokenToId(tokenizer.sepToken) as number;
  const ids = [cls];
  const labels = [IGNORE_INDEX];
  const firstPiece: number[] = [];
  wordPieces(tokenizer, words).forEach((pieces, w) => {
    if (ids.length + pieces.length > maxLength - 1) {
      firstPiece.push(-1);
      return;
    }
    firstPiece.push(ids.length);
    pieces.forEach((id, k) => {
      ids.push(id);
      labels.push(k === 0 && wordLabels ? (wordLabels[w] as number) : IGNORE_INDEX);
    });
  });
  ids.push(sep);
  labels.push(IGNORE_INDEX);
  return { feature: { inputIds: ids, tokenTypeIds: ids.map(() => 0), target: labels }, firstPiece };
}

/** [CLS] text [SEP], cut to maxLength, with its class id (-1: none). */
export function textFeature(tokenizer: WordPieceTokenizer, text: string, maxLength: number, label = -1): Feature {
  const e = tokenizer.encodePair(text, null, { maxLength, disallowedSpecial: [] });
  return { inputIds: e.inputIds, tokenTypeIds: e.tokenTypeIds, target: label };
}

/** A QA window (data/squad.ts's qaFeatures) as a feature: its real tokens and [start, end] answer positions. */
export function qaFeature(f: QaFeature): Feature {
  // Padding is redone per batch: keep the real tokens only.
  const n = f.attentionMask.reduce((a, b) => a + b, 0);
  return { inputIds: f.inputIds.slice(0, n), tokenTypeIds: f.tokenTypeIds.slice(0, n), target: [f.startPosition, f.endPosition] };
}
