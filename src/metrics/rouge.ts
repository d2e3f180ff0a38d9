// ROUGE-L (Lin 2004): how much of a reference summary a generated one covers in order, through
// their longest common subsequence (LCS) of words. Precision = LCS / generated length, recall =
// LCS / reference length, F = their harmonic mean (beta 1). Tokenised as Google's rouge-score
// package does by default: lowercase, every run of characters other than a-z and 0-9 becomes a
// space (so accented letters are dropped, as there), no stemming. rougeLsum is the summary-level
// variant over newline-separated sentences: each reference sentence counts the union of its LCS
// hits with every generated sentence. Corpus figures are the mean of the per-example scores.

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge-score's default tokenizer: lowercase, non-alphanumerics to spaces, split. */
export function rougeTokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(" ")
    .filter((t) => t.length > 0);
}

/** The LCS length table (m+1) x (n+1) of two token lists, flattened. */
function lcsTable(a: readonly string[], b: readonly string[]): Int32Array {
  const n = b.length;
  const t = new Int32Array((a.length + 1) * (n + 1));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= n; j++) {
      t[i * (n + 1) + j] =
        a[i - 1] === b[j - 1]
          ? (t[(i - 1) * (n + 1) + j - 1] as number) + 1
          : Math.max(t[(i - 1) * (n + 1) + j] as number, t[i * (n + 1) + j - 1] as number);
    }
  }
  return t;
}

function score(hits: number, predLen: number, refLen: number): RougeScore {
  const precision = predLen ? hits / predLen : 0;
  const recall = refLen ? hits / refLen : 0;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/** ROUGE-L of one prediction against one reference (rouge-score's "rougeL"). */
export function rougeL(prediction: string, reference: string): RougeScore {
  const p = rougeTokenize(prediction);
  const r = rougeTokenize(reference);
  if (p.length === 0 || r.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const t = lcsTable(r, p);
  return score(t[t.length - 1] as number, p.length, r.length);
}

/** Indices into `a` of one longest common subsequence with b (rouge-score's backtracking order). */
function lcsIndices(a: readonly string[], b: readonly string[]): number[] {
  const t = lcsTable(a, b);
  const n = b.length;
  const out: number[] = [];
  let i = a.length;
  let j = n;
  while (i > 0 && j > 0) {
    if (a[i - 1] === b[j - 1]) {
      out.push(i - 1);
      i--;
      j--;
    } else if ((t[i * (n + 1) + j - 1] as number) > (t[(i - 1) * (n + 1) + j] as number)) j--;
    else i--;
  }
  return out.reverse();
}

/** Summary-level ROUGE-L (rouge-score's "rougeLsum"): sentences are the text's lines. */
export function rougeLsum(prediction: string, reference: string): RougeScore {
  const sents = (s: string) =>
    s
      .split("\n")
      .map(rougeTokenize)
      .filter((x) => x.length > 0);
  const ps = sents(prediction);
  const rs = sents(reference);
  const m = rs.reduce((a, s) => a + s.length, 0);
  const n = ps.reduce((a, s) => a + s.length, 0);
  if (m === 0 || n === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  // Each token's count in both texts caps how often it may be a hit.
  const count = (xs: string[][]) => {
    const c = new Map<string, number>();
    for (const s of xs) for (const w of s) c.set(w, (c.get(w) ?? 0) + 1);
    return c;
  };
  const pc = count(ps);
  const rc = count(rs);
  let hits = 0;
  for (const r of rs) {
    const union = new Set<number>();
    for (const p of ps) for (const i of lcsIndices(r, p)) union.add(i);
    for (const i of [...union].sort((a, b) => a - b)) {
      const w = r[i] as string;
      if ((pc.get(w) ?? 0) > 0 && (rc.get(w) ?? 0) > 0) {
        hits++;
        pc.set(w, (pc.get(w) as number) - 1);
        rc.set(w, (rc.get(w) as number) - 1);
      }
    }
  }
  return score(hits, n, m);
}

/** Mean ROUGE-L (or rougeLsum) over pairs of predictions and references. */
export function corpusRougeL(
  predictions: readonly string[],
  references: readonly string[],
  opts: { summaryLevel?: boolean } = {},
): RougeScore {
  if (predictions.length !== references.length)
    throw new Error(`ROUGE-L: ${predictions.length} predictions but ${references.length} references; give one reference per prediction`);
  const f = opts.summaryLevel ? rougeLsum : rougeL;
  const sum = { precision: 0, recall: 0, fmeasure: 0 };
  predictions.forEach((p, i) => {
    const s = f(p, references[i] as string);
    sum.precision += s.precision;
    sum.recall += s.recall;
    sum.fmeasure += s.fmeasure;
  });
  const n = Math.max(1, predictions.length);
  return { precision: sum.precision / n, recall: sum.recall / n, fmeasure: sum.fmeasure / n };
}
