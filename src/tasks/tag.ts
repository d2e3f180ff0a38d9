// Token classification (NER): a label and a probability for each word, as the model was trained
// (each word predicted on its first WordPiece).

import type { Bert } from "../models/bert.js";
import { noGrad } from "../tensor/autograd.js";
import { scoped } from "../tensor/memory.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { collate, tokenFeature } from "./features.js";

/** What the model says about each word of a sentence. */
export interface TaggedWords {
  /** Label id per word; -1 for words cut off by maxLength. */
  labels: number[];
  /** The label's probability per word (0 for words cut off). */
  scores: number[];
  /** Position of each word's first piece in the model input ([CLS] is 0; -1 for words cut off). */
  index: number[];
}

/** Per-word label ids and probabilities of sentences given as words (each word predicted on its first piece). */
export function tagWords(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  sentences: readonly (readonly string[])[],
  o: { maxLength?: number; batchSize?: number } = {},
): TaggedWords[] {
  const maxLength = o.maxLength ?? Math.min(512, model.config.max_position_embeddings);
  const bs = o.batchSize ?? 32;
  const padId = tokenizer.tokenToId(tokenizer.padToken) as number;
  const L = model.numLabels;
  const out: TaggedWords[] = [];
  noGrad(() => {
    // Each batch's tensors go back to the arena (when evaluating in one) before the next.
    for (let i = 0; i < sentences.length; i += bs) {
      scoped(() => {
        const enc = sentences.slice(i, i + bs).map((words) => tokenFeature(tokenizer, words, maxLength));
        const b = collate(
          enc.map((e) => e.feature),
          padId,
          maxLength,
        );
        const p = model.forward(b.inputs).logits.softmax(-1).contiguousData() as Float32Array; // (B, T, labels)
        enc.forEach((e, r) => {
          const labels: number[] = [];
          const scores: number[] = [];
          for (const pos of e.firstPiece) {
            if (pos < 0) {
              labels.push(-1);
              scores.push(0);
              continue;
            }
            const base = (r * b.T + pos) * L;
            let best = 0;
            for (let c = 1; c < L; c++) if ((p[base + c] as number) > (p[base + best] as number)) best = c;
            labels.push(best);
            scores.push(p[base + best] as number);
          }
          out.push({ labels, scores, index: e.firstPiece });
        });
      });
    }
  });
  return out;
}

/** The words of a text as BERT's pre-tokenizer splits it (whitespace and punctuation), with their
 *  character offsets: runs of WordPiece pieces, a new word at every piece that does not continue one. */
export function splitWords(tokenizer: WordPieceTokenizer, text: string): { start: number; end: number }[] {
  const { ids, offsets } = tokenizer.encodeWithOffsets(text, { disallowedSpecial: [] });
  const prefix = tokenizer.continuingSubwordPrefix;
  const words: { start: number; end: number }[] = [];
  ids.forEach((id, i) => {
    const tok = tokenizer.idToToken(id) ?? "";
    const [s, e] = offsets[i] as [number, number];
    const last = words[words.length - 1];
    if (last && prefix && tok.startsWith(prefix) && i > 0) last.end = e;
    else words.push({ start: s, end: e });
  });
  return words;
}

export interface TokenOutput {
  entity: string;
  score: number;
  /** Position of the word's first piece in the model input ([CLS] is 0). */
  index: number;
  word: string;
  start: number;
  end: number;
}

export interface EntityGroup {
  entity_group: string;
  score: number;
  word: string;
  start: number;
  end: number;
}

/** The labelled words of a text, as transformers.js's token-classification pipeline gives them. */
export function tagText(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  text: string,
  labels: readonly string[],
  o: { maxLength?: number } = {},
): TokenOutput[] {
  const spans = splitWords(tokenizer, text);
  const words = spans.map((w) => text.slice(w.start, w.end));
  const [tagged] = tagWords(model, tokenizer, [words], { maxLength: o.maxLength, batchSize: 1 });
  const out: TokenOutput[] = [];
  spans.forEach((w, i) => {
    const label = tagged?.labels[i] ?? -1;
    if (label < 0) return;
    out.push({
      entity: labels[label] ?? `LABEL_${label}`,
      score: tagged?.scores[i] ?? 0,
      index: tagged?.index[i] ?? -1,
      word: words[i] as string,
      start: w.start,
      end: w.end,
    });
  });
  return out;
}

/** Hugging Face's "simple" aggregation: consecutive B-X I-X ... words become one X entity (mean score). */
export function groupEntities(tokens: readonly TokenOutput[], text: string): EntityGroup[] {
  const groups: (EntityGroup & { n: number })[] = [];
  for (const t of tokens) {
    const [bio, type] = t.entity === "O" ? ["O", ""] : [t.entity.slice(0, 1), t.entity.slice(2)];
    if (bio === "O") continue;
    const last = groups[groups.length - 1];
    if (last && bio === "I" && last.entity_group === type && last.end <= t.start) {
      last.end = t.end;
      last.score += t.score;
      last.n++;
      last.word = text.slice(last.start, last.end);
    } else {
      groups.push({ entity_group: type, score: t.score, word: t.word, start: t.start, end: t.end, n: 1 });
    }
  }
  return groups.map(({ n, ...g }) => ({ ...g, score: g.score / n }));
}
