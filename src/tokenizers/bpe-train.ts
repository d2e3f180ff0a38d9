// Training of byte-level BPE merges (GPT-2 style) from a text corpus.
//
// The corpus is pre-tokenised once with GPT-2's regex and reduced to distinct words with counts, so the
// work depends on the vocabulary of the text, not its length. Pair counts are then kept up to date
// incrementally: a merge only touches the words that contain its pair (found through a pair -> words
// index), and only the pairs next to each merged occurrence change. The most frequent pair comes from
// a max-heap whose stale entries are skipped lazily when popped. A naive trainer recounts all pairs of
// the corpus for every merge, which is hopeless beyond a few hundred kilobytes.

import { GPT2_SPLIT_PATTERN, toWellFormed, utf8Encode } from "./bytes.js";
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

// Pair (a, b) is keyed as a * PAIR_BASE + b: one number, so Maps hash it cheaply, and comparing keys
// compares (a, b) lexicographically, which is the tie-break between equally frequent pairs.
const PAIR_BASE = 2 ** 21;
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

  const words = countWords(corpus, specials);
  const stats = new PairStats(words);

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

/**
 * The distinct words as symbol arrays, the corpus-wide count of each adjacent pair, which words hold
 * each pair, and a heap ordering pairs by (count desc, pair asc).
 */
class PairStats {
  private readonly symbols: Int32Array[] = [];
  private readonly lengths: number[] = [];
  private readonly freqs: number[] = [];
  private readonly counts = new Map<number, number>();
  // pair -> indices of words that contained it when it was formed. Entries go stale as merges change
  // words; merge() re-checks each word, which is cheaper than keeping the lists exact.
  private readonly where = new Map<number, number[]>();
  private readonly visited: Int32Array;
  private mergeCount = 0;
  private readonly heap = new PairHeap();
  // Keys whose count grew during the current merge; pushed to the heap once the merge is done.
  private readonly grown = new Set<number>();

  constructor(words: Map<string, number>) {
    for (const [word, freq] of words) {
      const bytes = utf8Encode(word);
      if (bytes.length < 2) continue; // a single byte has no pair and never changes
      const w = this.symbols.length;
      this.symbols.push(Int32Array.from(bytes));
      this.lengths.push(bytes.length);
      this.freqs.push(freq);
      for (let i = 0; i + 1 < bytes.length; i++) this.add((bytes[i] as number) * PAIR_BASE + (bytes[i + 1] as number), freq, w);
    }
    this.visited = new Int32Array(this.symbols.length).fill(-1);
    for (const [key, count] of this.counts) this.heap.push(count, key);
  }

  /** The most frequent pair with count >= minFrequency (ties: smallest ids), or null. */
  popBest(minFrequency: number): number | null {
    while (this.heap.size > 0) {
      const count = this.heap.topCount();
      const key = this.heap.pop();
      const current = this.counts.get(key) ?? 0;
      if (current !== count) {
        // Stale: the count dropped since this entry was pushed. Re-queue it at its true count.
        if (current > 0) this.heap.push(current, key);
        continue;
      }
      return count >= minFrequency ? key : null;
    }
    return null;
  }

  /** Replaces every occurrence of (a, b) by `c`, left to right, updating counts around each one. */
  merge(a: number, b: number, c: number): void {
    const pairKey = a * PAIR_BASE + b;
    const stamp = this.mergeCount++;
    for (const w of this.where.get(pairKey) ?? []) {
      if (this.visited[w] === stamp) continue;
      this.visited[w] = stamp;
      const s = this.symbols[w] as Int32Array;
      const len = this.lengths[w] as number;
      const f = this.freqs[w] as number;
      let j = 0;
      let i = 0;
      while (i < len) {
        if (i + 1 < len && s[i] === a && s[i + 1] === b) {
          // Left neighbour: the symbol already written, which may be a `c` made a moment ago
          // ("a b a b" -> "c c"); using it keeps the counts exact for such runs.
          if (j > 0) {
            const left = s[j - 1] as number;
            this.add(left * PAIR_BASE + a, -f, w);
            this.add(left * PAIR_BASE + c, f, w);
          }
          if (i + 2 < len) {
            const right = s[i + 2] as number;
            this.add(b * PAIR_BASE + right, -f, w);
            this.add(c * PAIR_BASE + right, f, w);
          }
          s[j++] = c;
          i += 2;
        } else {
          s[j++] = s[i++] as number;
        }
      }
      this.lengths[w] = j;
    }
    // Every occurrence of (a, b) is now merged or was consumed by an overlapping one ("a a a").
    this.counts.delete(pairKey);
    this.where.delete(pairKey);
    for (const key of this.grown) {
      const count = this.counts.get(key);
      if (count !== undefined && count > 0) this.heap.push(count, key);
    }
    this.grown.clear();
  }

  private add(key: number, delta: number, w: number): void {
    const count = (this.counts.get(key) ?? 0) + delta;
    if (count === 0) this.counts.delete(key);
    else this.counts.set(key, count);
    if (delta > 0) {
      this.grown.add(key);
      const list = this.where.get(key);
      if (list === undefined) this.where.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
}

/** Max-heap of (count, pair key); equal counts pop the smaller key first, which makes training deterministic. */
class PairHeap {
  private readonly countsArr: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  topCount(): number {
    return this.countsArr[0] as number;
  }

  push(count: number, key: number): void {
    const c = this.countsArr;
    const k = this.keys;
    let i = k.length;
    c.push(count);
    k.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(count, key, c[parent] as number, k[parent] as number)) break;
      c[i] = c[parent] as number;
      k[i] = k[parent] as number;
      i = parent;
    }
    c[i] = count;
    k[i] = key;
  }

  /** Removes the top entry and returns its key. */
  pop(): number {
    const c = this.countsArr;
    const k = this.keys;
    const top = k[0] as number;
    const lastCount = c.pop() as number;
    const lastKey = k.pop() as number;
    const n = k.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.before(c[r] as number, k[r] as number, c[l] as number, k[l] as number) ? r : l;
      if (!this.before(c[child] as number, k[child] as number, lastCount, lastKey)) break;
      c[i] = c[child] as number;
      k[i] = k[child] as number;
      i = child;
    }
    c[i] = lastCount;
    k[i] = lastKey;
    return top;
  }

  private before(countA: number, keyA: number, countB: number, keyB: number): boolean {
    return countA > countB || (countA === countB && keyA < keyB);
  }
}
