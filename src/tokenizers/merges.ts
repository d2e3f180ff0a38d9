// The BPE merge loop, shared by GPT-2's byte-level tokenizer (bpe.ts) and tokenizer.json's other
// pipelines (hf-tokenizer.ts: Llama 3, Qwen, SentencePiece-style BPE): a word's symbols are merged
// lowest rank first, the leftmost occurrence first on ties, until no adjacent pair has a merge.
// It is the hot path of encoding, so it works on typed arrays and reuses its buffers.

import { PAIR_BASE } from "./pair-stats.js";

const NO_MERGE = 0x7fffffff;
// Words up to this many symbols are merged with a simple scan for the best pair (quadratic, but tiny
// constants); longer ones (long digit or letter runs, base64 blobs, SentencePiece paragraphs) use a
// heap, so that a hostile megabyte-long "word" costs O(n log n) instead of O(n^2).
const SCAN_LIMIT = 128;

export class MergeTable {
  /** left * PAIR_BASE + right -> rank. */
  private readonly ranks = new Map<number, number>();
  /** rank -> id of the merged token. */
  private readonly results: number[] = [];
  // The scan's pair ranks, reused across words.
  private readonly rankBuf = new Int32Array(SCAN_LIMIT);

  /** Add the merge left + right -> result as the next rank. A pair that has a rank already is
   *  skipped (its first copy merges every occurrence, so a repeat could never apply): returns false. */
  add(left: number, right: number, result: number): boolean {
    const key = left * PAIR_BASE + right;
    if (this.ranks.has(key)) return false;
    this.ranks.set(key, this.results.length);
    this.results.push(result);
    return true;
  }

  /** The rank of merging the pair, NO_MERGE where there is none. Negative ids (symbols outside the
   *  vocabulary) never merge. */
  private rank(left: number, right: number): number {
    return left < 0 || right < 0 ? NO_MERGE : (this.ranks.get(left * PAIR_BASE + right) ?? NO_MERGE);
  }

  /** The ids after every merge of the n symbols in sym (sym is overwritten). */
  apply(sym: Int32Array, n: number): number[] {
    return n <= SCAN_LIMIT ? this.byScan(sym, n) : this.byHeap(sym, n);
  }

  // Keeps the rank of every adjacent pair in an array, so a merge recomputes only its two neighbours.
  private byScan(sym: Int32Array, n: number): number[] {
    const rank = this.rankBuf;
    for (let i = 0; i + 1 < n; i++) rank[i] = this.rank(sym[i] as number, sym[i + 1] as number);
    let len = n;
    while (len > 1) {
      let best = NO_MERGE;
      let at = -1;
      for (let i = 0; i + 1 < len; i++) {
        if ((rank[i] as number) < best) {
          best = rank[i] as number;
          at = i;
        }
      }
      if (at < 0) break;
      sym[at] = this.results[best] as number;
      for (let i = at + 1; i + 1 < len; i++) {
        sym[i] = sym[i + 1] as number;
        rank[i] = rank[i + 1] as number;
      }
      len--;
      if (at > 0) rank[at - 1] = this.rank(sym[at - 1] as number, sym[at] as number);
      if (at + 1 < len) rank[at] = this.rank(sym[at] as number, sym[at + 1] as number);
    }
    const out = new Array<number>(len);
    for (let i = 0; i < len; i++) out[i] = sym[i] as number;
    return out;
  }

  // For long words (SentencePiece-style text has no pre-tokenizer, so a paragraph is one word):
  // symbols in a linked list, candidate pairs in a min-heap keyed by (rank, position). Entries made
  // stale by a neighbouring merge are skipped when popped.
  private byHeap(sym: Int32Array, n: number): number[] {
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const alive = new Uint8Array(n).fill(1);
    // n - 1 pairs at first, then at most two per merge and at most n - 1 merges.
    const heap = new MinHeap(3 * n);
    for (let i = 0; i + 1 < n; i++) {
      const r = this.rank(sym[i] as number, sym[i + 1] as number);
      if (r !== NO_MERGE) heap.push(r * n + i); // one number: by rank, then leftmost first
    }
    while (heap.size > 0) {
      const entry = heap.pop();
      const r = Math.floor(entry / n);
      const i = entry - r * n;
      const j = next[i] as number;
      if (!alive[i] || j < 0 || this.rank(sym[i] as number, sym[j] as number) !== r) continue;
      sym[i] = this.results[r] as number;
      alive[j] = 0;
      const k = next[j] as number;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      const p = prev[i] as number;
      if (p >= 0) {
        const rp = this.rank(sym[p] as number, sym[i] as number);
        if (rp !== NO_MERGE) heap.push(rp * n + p);
      }
      if (k >= 0) {
        const rk = this.rank(sym[i] as number, sym[k] as number);
        if (rk !== NO_MERGE) heap.push(rk * n + i);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i] as number) out.push(sym[i] as number);
    return out;
  }
}

/** Binary min-heap of numbers with a fixed capacity. */
class MinHeap {
  private readonly items: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.items = new Float64Array(Math.max(capacity, 1));
  }

  push(value: number): void {
    const a = this.items;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as number) <= value) break;
      a[i] = a[parent] as number;
      i = parent;
    }
    a[i] = value;
  }

  pop(): number {
    const a = this.items;
    const top = a[0] as number;
    const last = a[--this.size] as number;
    const n = this.size;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && (a[r] as number) < (a[l] as number) ? r : l;
      if ((a[child] as number) >= last) break;
      a[i] = a[child] as number;
      i = child;
    }
    a[i] = last;
    return top;
  }
}
