// BLEU (Papineni et al. 2002) exactly as sacreBLEU 2.x computes it (Post 2018, "A Call for
// Clarity in Reporting BLEU Scores"), so that a score here is a score there: the same tokenisers
// (13a, the mteval-v13a.pl tokenisation WMT uses, by default; intl; char; none), the same
// smoothing methods and defaults (exp; floor 0.1; add-k 1; none; Chen and Cherry 2014), the same
// closest-reference length and the same corpus-level aggregation of n-gram statistics.
//
//   corpusBleu(["The dog bit the man."], [["The dog bit the man."]]).score   // 100
//
// References come as sacreBLEU takes them: a list of reference *streams*, each as long as the
// hypotheses (refs[k][i] is the k-th reference of sentence i; null or a missing entry when a
// sentence has fewer references). Checked against sacreBLEU's own test cases
// (test/metrics/fixtures/sacrebleu.json, written by tools/sacrebleu_fixtures.py).

import { codePoints, counter, pyRstrip, pySplit, sumStats } from "./text.js";

export type BleuTokenizer = "13a" | "intl" | "char" | "none";
export type SmoothMethod = "exp" | "floor" | "add-k" | "none";

/** sacreBLEU's defaults for the smoothing methods that take a value (Chen and Cherry 2014). */
export const SMOOTH_DEFAULTS: Record<SmoothMethod, number | null> = { none: null, floor: 0.1, "add-k": 1, exp: null };

// ---- tokenisers ---------------------------------------------------------------------------------

// mteval-v13a's language-dependent rules, in order: symbols and most punctuation get spaces around
// them; period and comma are split off unless between digits; a dash after a digit is split off.
const RULES_13A: [RegExp, string][] = [
  [/([{-~[-` -&(-+:-@/])/gu, " $1 "],
  [/([^0-9])([.,])/gu, "$1 $2 "],
  [/([.,])([^0-9])/gu, " $1 $2"],
  [/([0-9])(-)/gu, "$1 $2 "],
];

/** sacreBLEU's default tokeniser: mteval-v13a.pl's normalisation and tokenisation. */
export function tokenize13a(line: string): string {
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&")) {
    s = s.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  }
  s = ` ${s} `;
  for (const [re, rep] of RULES_13A) s = s.replace(re, rep);
  return pySplit(s).join(" ");
}

// mteval-v14's international tokenisation: Unicode punctuation is split off unless it sits next
// to a digit on that side, and every Unicode symbol is split off.
const RULES_INTL: [RegExp, string][] = [
  [/(\P{N})(\p{P})/gu, "$1 $2 "],
  [/(\p{P})(\P{N})/gu, " $1 $2"],
  [/(\p{S})/gu, " $1 "],
];

export function tokenizeIntl(line: string): string {
  let s = line;
  for (const [re, rep] of RULES_INTL) s = s.replace(re, rep);
  return pySplit(s).join(" ");
}

/** Every character is a token (for languages written without spaces). */
export function tokenizeChar(line: string): string {
  return codePoints(line).join(" ");
}

export const BLEU_TOKENIZERS: Record<BleuTokenizer, (line: string) => string> = {
  "13a": tokenize13a,
  intl: tokenizeIntl,
  char: tokenizeChar,
  none: (line) => line,
};

// ---- scores -------------------------------------------------------------------------------------

export interface BleuOptions {
  lowercase?: boolean;
  /** Default "13a". */
  tokenize?: BleuTokenizer;
  /** Default "exp" (NIST's smoothing, as mteval-v13a.pl). */
  smoothMethod?: SmoothMethod;
  /** For floor and add-k; null or undefined takes SMOOTH_DEFAULTS. */
  smoothValue?: number | null;
  /** Default 4. */
  maxNgramOrder?: number;
  /** Stop at the highest n-gram order with matches (for sentence-level BLEU). Default false. */
  effectiveOrder?: boolean;
}

export interface BleuScore {
  /** 0..100 */
  score: number;
  /** Matched n-grams for n = 1..maxNgramOrder (after add-k smoothing, as sacreBLEU reports them). */
  counts: number[];
  totals: number[];
  /** 0..100 per order. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  sysLen: number;
  refLen: number;
  ratio: number;
  /** sacreBLEU's signature, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp". */
  signature: string;
  /** sacreBLEU's one-line report: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = ...)". */
  toString(): string;
}

function checkOptions(o: BleuOptions): Required<Omit<BleuOptions, "smoothValue">> & { smoothValue: number | null } {
  const r = {
    lowercase: o.lowercase ?? false,
    tokenize: o.tokenize ?? "13a",
    smoothMethod: o.smoothMethod ?? "exp",
    smoothValue: o.smoothValue ?? null,
    maxNgramOrder: o.maxNgramOrder ?? 4,
    effectiveOrder: o.effectiveOrder ?? false,
  };
  if (!Object.hasOwn(BLEU_TOKENIZERS, r.tokenize))
    throw new Error(`BLEU: unknown tokenize '${r.tokenize}'; use ${Object.keys(BLEU_TOKENIZERS).join(", ")}`);
  if (!Object.hasOwn(SMOOTH_DEFAULTS, r.smoothMethod))
    throw new Error(`BLEU: unknown smoothMethod '${r.smoothMethod}'; use ${Object.keys(SMOOTH_DEFAULTS).join(", ")}`);
  if (!Number.isInteger(r.maxNgramOrder) || r.maxNgramOrder < 1)
    throw new Error(`BLEU: maxNgramOrder must be a positive integer (got ${r.maxNgramOrder})`);
  return r;
}

/** log, floored for 0 as sacreBLEU's my_log. */
const myLog = (x: number) => (x === 0 ? -9999999999 : Math.log(x));

/**
 * BLEU from its sufficient statistics (sacreBLEU's BLEU.compute_bleu): matched and total n-gram
 * counts per order, hypothesis and reference lengths. Note sacreBLEU's default here is no smoothing.
 */
export function computeBleu(
  correct: readonly number[],
  total: readonly number[],
  sysLen: number,
  refLen: number,
  opts: { smoothMethod?: SmoothMethod; smoothValue?: number | null; effectiveOrder?: boolean; maxNgramOrder?: number } = {},
): Omit<BleuScore, "signature" | "toString"> {
  const method = opts.smoothMethod ?? "none";
  const N = opts.maxNgramOrder ?? 4;
  const value = opts.smoothValue ?? SMOOTH_DEFAULTS[method] ?? 0;
  const counts = [...correct];
  const totals = [...total];
  let bp = 1;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0;
  const precisions = new Array<number>(N).fill(0);
  const ratio = refLen ? sysLen / refLen : 0;
  // No match at any order: 0, whatever the smoothing (sacreBLEU #141).
  if (!counts.some((c) => c !== 0)) return { score: 0, counts, totals, precisions, bp, sysLen, refLen, ratio };
  let smoothMteval = 1;
  let effOrder = N;
  for (let n = 1; n <= N; n++) {
    if (method === "add-k" && n > 1) {
      counts[n - 1] = (counts[n - 1] as number) + value;
      totals[n - 1] = (totals[n - 1] as number) + value;
    }
    const c = counts[n - 1] as number;
    const t = totals[n - 1] as number;
    if (t === 0) break;
    if (opts.effectiveOrder) effOrder = n;
    if (c === 0) {
      if (method === "exp") {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * t);
      } else if (method === "floor") {
        precisions[n - 1] = (100 * value) / t;
      }
    } else {
      precisions[n - 1] = (100 * c) / t;
    }
  }
  let logSum = 0;
  for (let i = 0; i < effOrder; i++) logSum += myLog(precisions[i] as number);
  return { score: bp * Math.exp(logSum / effOrder), counts, totals, precisions, bp, sysLen, refLen, ratio };
}

/** All word n-grams of orders 1..maxOrder (keys: the words joined by one space) and the length. */
function wordNgrams(line: string, maxOrder: number): { ngrams: Map<string, number>; len: number } {
  const toks = pySplit(line);
  const keys: string[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    for (let i = 0; i + n <= toks.length; i++) keys.push(toks.slice(i, i + n).join(" "));
  }
  return { ngrams: counter(keys), len: toks.length };
}

/** Reference length closest to the hypothesis length, the shorter one on ties. */
function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const r of refLens) {
    const d = Math.abs(hypLen - r);
    if (bestDiff === -1 || d < bestDiff) {
      bestDiff = d;
      best = r;
    } else if (d === bestDiff && r < best) best = r;
  }
  return best;
}

function ngramOrder(key: string): number {
  let n = 1;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) === 32) n++;
  return n;
}

/** References transposed to one list per sentence, the missing ones (null, undefined) dropped. */
export function referencesPerSentence(name: string, nHyps: number, refs: readonly (readonly (string | null | undefined)[])[]): string[][] {
  if (!Array.isArray(refs) || refs.length === 0 || !refs.every((s) => Array.isArray(s))) {
    throw new Error(`${name}: references must be a list of reference streams (string[][]), each as long as the hypotheses`);
  }
  refs.forEach((stream, k) => {
    if (stream.length !== nHyps)
      throw new Error(`${name}: reference stream ${k} has ${stream.length} lines but there are ${nHyps} hypotheses`);
  });
  return Array.from({ length: nHyps }, (_, i) => refs.map((s) => s[i]).filter((r): r is string => typeof r === "string"));
}

function signature(nrefs: number, o: ReturnType<typeof checkOptions>): string {
  const def = SMOOTH_DEFAULTS[o.smoothMethod];
  const smooth = def === null ? o.smoothMethod : `${o.smoothMethod}[${(o.smoothValue ?? def).toFixed(2)}]`;
  return `nrefs:${nrefs < 0 ? "var" : nrefs}|case:${o.lowercase ? "lc" : "mixed"}|eff:${o.effectiveOrder ? "yes" : "no"}|tok:${o.tokenize}|smooth:${smooth}`;
}

/** Per-sentence statistics [hyp_len, ref_len, correct_1..N, total_1..N], as sacreBLEU collects them. */
export function bleuStatistics(
  hyps: readonly string[],
  refs: readonly (readonly (string | null | undefined)[])[],
  opts: BleuOptions = {},
): number[][] {
  const o = checkOptions(opts);
  const N = o.maxNgramOrder;
  const tok = BLEU_TOKENIZERS[o.tokenize];
  const prep = (s: string) => tok(pyRstrip(o.lowercase ? s.toLowerCase() : s));
  const perSentence = referencesPerSentence("BLEU", hyps.length, refs);
  return hyps.map((hyp, i) => {
    if (typeof hyp !== "string") throw new Error(`BLEU: hypothesis ${i} is not a string`);
    let refNgrams: Map<string, number> | null = null;
    const refLens: number[] = [];
    for (const ref of perSentence[i] as string[]) {
      const { ngrams, len } = wordNgrams(prep(ref), N);
      refLens.push(len);
      if (!refNgrams) refNgrams = ngrams;
      else for (const [k, c] of ngrams) refNgrams.set(k, Math.max(refNgrams.get(k) ?? 0, c));
    }
    const { ngrams, len } = wordNgrams(prep(hyp), N);
    const correct = new Array<number>(N).fill(0);
    const total = new Array<number>(N).fill(0);
    for (const [k, c] of ngrams) {
      const n = ngramOrder(k) - 1;
      total[n] = (total[n] as number) + c;
      const r = refNgrams?.get(k);
      if (r !== undefined) correct[n] = (correct[n] as number) + Math.min(c, r);
    }
    return [len, closestRefLen(len, refLens), ...correct, ...total];
  });
}

function scoreFromStats(stats: readonly number[], nrefs: number, o: ReturnType<typeof checkOptions>): BleuScore {
  const N = o.maxNgramOrder;
  const r = computeBleu(stats.slice(2, 2 + N), stats.slice(2 + N), stats[0] as number, stats[1] as number, o);
  const sig = signature(nrefs, o);
  return {
    ...r,
    signature: sig,
    toString() {
      const prec = r.precisions.map((p) => p.toFixed(1)).join("/");
      return `BLEU = ${r.score.toFixed(2)} ${prec} (BP = ${r.bp.toFixed(3)} ratio = ${r.ratio.toFixed(3)} hyp_len = ${r.sysLen} ref_len = ${r.refLen})`;
    },
  };
}

/** Corpus BLEU (sacreBLEU's BLEU(...).corpus_score): statistics summed over sentences, then scored. */
export function corpusBleu(
  hyps: readonly string[],
  refs: readonly (readonly (string | null | undefined)[])[],
  opts: BleuOptions = {},
): BleuScore {
  const o = checkOptions(opts);
  if (!Array.isArray(hyps)) throw new Error("BLEU: hypotheses must be a list of strings");
  const stats = bleuStatistics(hyps, refs, o);
  const sum = sumStats(stats, 2 + 2 * o.maxNgramOrder);
  const counts = new Set(referencesPerSentence("BLEU", hyps.length, refs).map((r) => r.length));
  return scoreFromStats(sum, counts.size === 1 ? ([...counts][0] as number) : -1, o);
}

/** Sentence BLEU (sacreBLEU's compat.sentence_bleu): effective order on by default. */
export function sentenceBleu(hyp: string, refs: readonly string[], opts: BleuOptions = {}): BleuScore {
  return corpusBleu(
    [hyp],
    refs.map((r) => [r]),
    { effectiveOrder: true, ...opts },
  );
}
