// Training of byte-level BPE merges (GPT-2 style) from a text corpus.
//
// The corpus is pre-tokenised once with GPT-2's regex and reduced to distinct words with counts, so the
// work depends on the vocabulary of the text, not its length; the merges come from the pair-statistics
// engine (pair-stats.ts) that WordPiece training shares.

import { GPT2_SPLIT_PATTERN, toWellFormed, utf8Encode } from "./bytes.js";
import { PAIR_BASE, PairStats } from "./pair-stats.js";
import { escapeRegExp } from "./tokenizer.js";

export interface BPETrainOptions {
  /** Final vocabulary size, counting the 256 byte tokens and the special tokens. */
  readonly vocabSize: number;
  /** Special tokens, given the last ids. Their text in the corpus is cut out before counting. */
  readonly specialTokens?: readonly string[];
  /**
   * A pair seen fewer times than this (summed over the corpus) is never merged. When no pair reaches it,
   * training stops early and the vocabulary is smaller than `vocabSize`. Default 2: a merge that
   * occurs once only memorises the training text.
   */
  readonly minFrequency?: number;
}

export interface TrainedMerges {
  /** id -> bytes of the token. Ids 0..255 are the single bytes (id = byte value). */
  readonly tokens: Uint8Array[];
  /** The merges in the order learned (= priority when encoding), as pairs of token ids. */
  readonly merges: [number, number][];
}

/** The largest vocabulary the trainer supports (ids must fit the pair key). */
export const MAX_TRAIN_VOCAB = PAIR_BASE;

/** Learns merges from `corpus` (one text, or several whose boundaries no token crosses). */
export function trainMerges(corpus: string | Iterable<string>, options: BPETrainOptions): TrainedMerges {
  const specials = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specials.length || vocabSize > MAX_TRAIN_VOCAB) {
    throw new Error(
      `ByteLevelBPE.train: vocabSize must be an integer from ${256 + specials.length} (256 byte tokens + ` +
        `${specials.length} special tokens) to ${MAX_TRAIN_VOCAB}, got ${vocabSize}.`,
    );
  }
  if (!Number.isFinite(minFrequency) || minFrequency < 1) {
    throw new Error(`ByteLevelBPE.train: minFrequency must be a number >= 1, got ${minFrequency}.`);
  }
  const mergeBudget = vocabSize - 256 - specials.length;

  // Words as byte sequences (a single byte has no pair and never changes).
  const symbols: Int32Array[] = [];
  const freqs: number[] = [];
  for (const [word, freq] of countWords(corpus, specials)) {
    const bytes = utf8Encode(word);
    if (bytes.length < 2) continue;
    symbols.push(Int32Array.from(bytes));
    freqs.push(freq);
  }
  const stats = new PairStats(symbols, freqs);

  const tokens: Uint8Array[] = [];
  const tokenIndex = new Map<string, number>(); // token bytes (as a latin1 string) -> id
  for (let b = 0; b < 256; b++) {
    tokens.push(Uint8Array.of(b));
    tokenIndex.set(String.fromCharCode(b), b);
  }
  const merges: [number, number][] = [];

  while (tokens.length < 256 + mergeBudget) {
    const best = stats.popBest(minFrequency);
    if (best === null) break;
    const a = Math.floor(best / PAIR_BASE);
    const b = best - a * PAIR_BASE;
    const bytes = new Uint8Array(tokens[a]!.length + tokens[b]!.length);
    bytes.set(tokens[a]!, 0);
    bytes.set(tokens[b]!, tokens[a]!.length);
    const key = latin1(bytes);
    // Two different splits can produce the same bytes (e.g. "ab"+"c" and "a"+"bc"); the second merge
    // then reuses the existing token, as Hugging Face's trainer does, rather than duplicate it.
    let id = tokenIndex.get(key);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(bytes);
      tokenIndex.set(key, id);
    }
    merges.push([a, b]);
    stats.merge(a, b, id);
  }
  return { tokens, merges };
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

/** Distinct pre-tokenised words of the corpus with their counts. */
function countWords(corpus: string | Iterable<string>, specials: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const pattern = new RegExp(GPT2_SPLIT_PATTERN, "gu");
  // Special tokens are cut out of the text so that, say, "<|endoftext|>" between documents does not
  // teach merges for "<|", "endoftext" and "|>".
  const escaped = [...specials].sort((x, y) => y.length - x.length).map(escapeRegExp);
  const specialPattern = escaped.length > 0 ? new RegExp(escaped.join("|"), "g") : null;
  for (const doc of typeof corpus === "string" ? [corpus] : corpus) {
    const text = toWellFormed(doc);
    for (const piece of specialPattern === null ? [text] : text.split(specialPattern)) {
      pattern.lastIndex = 0;
      for (let m = pattern.exec(piece); m !== null; m = pattern.exec(piece)) {
        const w = m[0];
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
  }
  return counts;
}
