// Small text helpers the metrics share, written to match Python's str methods exactly: sacreBLEU's
// numbers depend on how Python splits on whitespace and how it indexes strings (by code point).

/** The characters Python's str.split() (no argument) and str.strip() treat as whitespace. */
const PY_WHITESPACE =
  "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
const PY_SPACE_RUN = new RegExp(`[${PY_WHITESPACE}]+`, "u");
const PY_TRAILING = new RegExp(`[${PY_WHITESPACE}]+$`, "u");

/** Python's `s.split()`: runs of whitespace separate words; no empty words. */
export function pySplit(s: string): string[] {
  return s.split(PY_SPACE_RUN).filter((w) => w.length > 0);
}

/** Python's `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(PY_TRAILING, "");
}

/** The code points of s (Python indexes strings by code point, JavaScript by UTF-16 unit). */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

/** Counts of each key, as Python's collections.Counter. */
export function counter(keys: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

/** Column sums of per-sentence statistics (sacreBLEU's sum_of_lists). */
export function sumStats(stats: readonly (readonly number[])[], width: number): number[] {
  const sum = new Array<number>(width).fill(0);
  for (const s of stats) {
    for (let j = 0; j < width; j++) sum[j] = (sum[j] as number) + ((s[j] as number | undefined) ?? 0);
  }
  return sum;
}
