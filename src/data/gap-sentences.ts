// PEGASUS's gap sentences (Zhang et al. 2020), the self-supervised task nearest to writing a
// summary: from a document the "principal" sentence, the one with the highest ROUGE-L F against the
// rest of the document (their Ind-Orig choice), is cut out and replaced by MASK; a model learns to
// write it back. Pretraining the subject-line model on it (scripts/gap-sentences.mjs makes the pairs
// from the training mails and the State of the Union) uses far more text than the labelled mails.

import { rougeL } from "../metrics/rouge.js";

export const MASK = "<mask>";

/**
 * {source, target} for a document given as sentences, or null when no sentence fits: the target
 * has minWords-maxWords words (a subject line's length, not a paragraph's); the source is the
 * document with MASK in its place, at most sourceWords words around the gap so that a truncated
 * source still holds it.
 */
export function gapSentence(
  sentences: readonly string[],
  opts: { minWords?: number; maxWords?: number; sourceWords?: number } = {},
): { source: string; target: string } | null {
  const { minWords = 3, maxWords = 25, sourceWords = 90 } = opts;
  const words = (s: string) => s.split(/\s+/).filter(Boolean);
  let best = -1;
  let bestScore = 0;
  sentences.forEach((s, i) => {
    const n = words(s).length;
    if (n < minWords || n > maxWords) return;
    const f = rougeL(s, sentences.filter((_, j) => j !== i).join(" ")).fmeasure;
    if (f > bestScore) {
      bestScore = f;
      best = i;
    }
  });
  if (best < 0) return null;
  const source = words(sentences.map((s, i) => (i === best ? MASK : s)).join(" "));
  const at = source.indexOf(MASK);
  const from = Math.max(0, Math.min(at - Math.floor(sourceWords / 2), source.length - sourceWords));
  return { source: source.slice(from, from + sourceWords).join(" "), target: (sentences[best] as string).replace(/\s+/g, " ").trim() };
}
