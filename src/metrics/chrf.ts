// chrF (Popović 2015) and chrF++ (Popović 2017) exactly as sacreBLEU 2.x computes them: the
// F-beta score of character n-grams (orders 1..6, whitespace removed) and, for chrF++, of word
// unigrams and bigrams (wordOrder 2), with precision and recall averaged over the orders that
// occur (sacreBLEU's default) or with chrF++.py's epsilon smoothing (epsSmoothing). The corpus
// score sums the statistics of all sentences first; with several references each sentence takes
// the reference with its best F score. beta 2 weighs recall twice as much as precision.
//
//   corpusChrf(hyps, [refs]).score                 // chrF2
//   corpusChrf(hyps, [refs], { wordOrder: 2 })     // chrF2++

import { referencesPerSentence } from "./bleu.js";
import { codePoints, counter, pySplit, sumStats } from "./text.js";

export interface ChrfOptions {
  /** Character n-gram orders 1..charOrder (default 6). */
  charOrder?: number;
  /** Word n-gram orders 1..wordOrder (default 0; 2 is chrF++). */
  wordOrder?: number;
  /** Recall counts beta times as much as precision (default 2). */
  beta?: number;
  lowercase?: boolean;
  /** Keep whitespace inside character n-grams (default false: removed). */
  whitespace?: boolean;
  /** chrF++.py / NLTK / Moses epsilon smoothing instead of sacreBLEU's effective order (default false). */
  epsSmoothing?: boolean;
}

export interface ChrfScore {
  /** 0..100 */
  score: number;
  /** "chrF2" or "chrF2++" (with the word order when not 2: "chrF2+3"...). */
  name: string;
  signature: string;
  toString(): string;
}

const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** Words with one punctuation mark split off the end (or else the start), as chrF++.py does. */
function wordsOf(sent: string): string[] {
  const out: string[] = [];
  for (const w of pySplit(sent)) {
    const cps = codePoints(w);
    if (cps.length === 1) out.push(w);
    else if (PUNCTUATION.has(cps[cps.length - 1] as string)) out.push(cps.slice(0, -1).join(""), cps[cps.length - 1] as string);
    else if (PUNCTUATION.has(cps[0] as string)) out.push(cps[0] as string, cps.slice(1).join(""));
    else out.push(w);
  }
  return out;
}

function ngramCounters(sent: string, o: Required<ChrfOptions>): Map<string, number>[] {
  const line = codePoints(o.whitespace ? sent : pySplit(sent).join(""));
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= o.charOrder; n++) {
    const keys: string[] = [];
    for (let i = 0; i + n <= line.length; i++) keys.push(line.slice(i, i + n).join(""));
    out.push(counter(keys));
  }
  if (o.wordOrder > 0) {
    const words = wordsOf(sent);
    for (let n = 1; n <= o.wordOrder; n++) {
      const keys: string[] = [];
      for (let i = 0; i + n <= words.length; i++) keys.push(words.slice(i, i + n).join(" "));
      out.push(counter(keys));
    }
  }
  return out;
}

/** The F score of flattened [hyp, ref, match] counts per order. */
function fScore(stats: readonly number[], o: Required<ChrfOptions>): number {
  const eps = 1e-16;
  const factor = o.beta ** 2;
  const order = o.charOrder + o.wordOrder;
  let score = 0;
  let effective = 0;
  let avgPrec = 0;
  let avgRec = 0;
  for (let i = 0; i < order; i++) {
    const nHyp = stats[3 * i] as number;
    const nRef = stats[3 * i + 1] as number;
    const nMatch = stats[3 * i + 2] as number;
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effective++;
    }
  }
  if (o.epsSmoothing) return (100 * score) / order;
  if (effective === 0) return 0;
  avgPrec /= effective;
  avgRec /= effective;
  if (avgPrec + avgRec === 0) return 0;
  return (100 * (1 + factor) * avgPrec * avgRec) / (factor * avgPrec + avgRec);
}

function checkOptions(opts: ChrfOptions): Required<ChrfOptions> {
  const o = {
    charOrder: opts.charOrder ?? 6,
    wordOrder: opts.wordOrder ?? 0,
    beta: opts.beta ?? 2,
    lowercase: opts.lowercase ?? false,
    whitespace: opts.whitespace ?? false,
    epsSmoothing: opts.epsSmoothing ?? false,
  };
  for (const k of ["charOrder", "wordOrder"] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`chrF: ${k} must be a non-negative integer (got ${o[k]})`);
  }
  if (o.charOrder + o.wordOrder === 0) throw new Error("chrF: charOrder + wordOrder must be at least 1");
  if (!(o.beta > 0)) throw new Error(`chrF: beta must be positive (got ${o.beta})`);
  return o;
}

/** Per-sentence statistics, [hyp, ref, match] for each order, against the best reference. */
export function chrfStatistics(
  hyps: readonly string[],
  refs: readonly (readonly (string | null | undefined)[])[],
  opts: ChrfOptions = {},
): number[][] {
  const o = checkOptions(opts);
  const prep = (s: string) => (o.lowercase ? s.toLowerCase() : s);
  const perSentence = referencesPerSentence("chrF", hyps.length, refs);
  return hyps.map((hyp, i) => {
    if (typeof hyp !== "string") throw new Error(`chrF: hypothesis ${i} is not a string`);
    const h = ngramCounters(prep(hyp), o);
    let best: number[] = [];
    let bestF = -1;
    for (const ref of perSentence[i] as string[]) {
      const r = ngramCounters(prep(ref), o);
      const stats: number[] = [];
      h.forEach((hc, k) => {
        const rc = r[k] as Map<string, number>;
        let nHyp = 0;
        let nMatch = 0;
        for (const [g, c] of hc) {
          nHyp += c;
          const rcount = rc.get(g);
          if (rcount !== undefined) nMatch += Math.min(c, rcount);
        }
        let nRef = 0;
        for (const c of rc.values()) nRef += c;
        // A hypothesis n-gram counts only where the reference has n-grams of that order.
        stats.push(rc.size > 0 ? nHyp : 0, nRef, nMatch);
      });
      const f = fScore(stats, o);
      if (f > bestF) {
        bestF = f;
        best = stats;
      }
    }
    return best;
  });
}

function makeScore(stats: readonly number[], o: Required<ChrfOptions>, nrefs: number): ChrfScore {
  const score = fScore(stats, o);
  const name = `chrF${o.beta}${"+".repeat(o.wordOrder)}`;
  const signature = `nrefs:${nrefs < 0 ? "var" : nrefs}|case:${o.lowercase ? "lc" : "mixed"}|eff:${o.epsSmoothing ? "no" : "yes"}|nc:${o.charOrder}|nw:${o.wordOrder}|space:${o.whitespace ? "yes" : "no"}`;
  return { score, name, signature, toString: () => `${name} = ${score.toFixed(2)}` };
}

/** Corpus chrF (sacreBLEU's CHRF(...).corpus_score); refs are reference streams, as for corpusBleu. */
export function corpusChrf(
  hyps: readonly string[],
  refs: readonly (readonly (string | null | undefined)[])[],
  opts: ChrfOptions = {},
): ChrfScore {
  const o = checkOptions(opts);
  const stats = chrfStatistics(hyps, refs, o);
  const sum = sumStats(stats, 3 * (o.charOrder + o.wordOrder));
  const counts = new Set(referencesPerSentence("chrF", hyps.length, refs).map((r) => r.length));
  return makeScore(sum, o, counts.size === 1 ? ([...counts][0] as number) : -1);
}

/** chrF of one sentence against its references. */
export function sentenceChrf(hyp: string, refs: readonly string[], opts: ChrfOptions = {}): ChrfScore {
  return corpusChrf(
    [hyp],
    refs.map((r) => [r]),
    opts,
  );
}
