// The pair-statistics engine of merge-based tokenizer training, shared by byte-level BPE
// (bpe-train.ts) and WordPiece (wordpiece.ts) - as Hugging Face's WordPiece trainer wraps its BPE
// trainer. Words are arrays of symbol ids with a count each; the engine keeps the corpus-wide count
// of every adjacent pair up to date incrementally: a merge only touches the words that contain its
// pair (found through a pair -> words index), and only the pairs next to each merged occurrence
// change. The most frequent pair comes from a max-heap whose stale entries are skipped lazily when
// popped. A naive trainer recounts all pairs of the corpus for every merge, which is hopeless beyond
// a few hundred kilobytes.

// Pair (a, b) is keyed as a * PAIR_BASE + b: one number, so Maps hash it cheaply, and comparing keys
// compares (a, b) lexicographically, which is the tie-break between equally frequent pairs.
export const PAIR_BASE = 2 ** 21;

/**
 * The distinct words as symbol arrays, the corpus-wide count of each adjacent pair, which words hold
 * each pair, and a heap ordering pairs by (count desc, pair asc).
 */
export class PairStats {
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

  /** `words`: each distinct word as symbol ids (taken over and rewritten by merges); `freqs`: its count. */
  constructor(words: Int32Array[], freqs: readonly number[]) {
    for (const [w, syms] of words.entries()) {
      const freq = freqs[w] as number;
      this.symbols.push(syms);
      this.lengths.push(syms.length);
      this.freqs.push(freq);
      for (let i = 0; i + 1 < syms.length; i++) this.add((syms[i] as number) * PAIR_BASE + (syms[i + 1] as number), freq, w);
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
