// Labelled texts for text classification: reading them from the usual files, and splitting them.
//
//   TSV    text<TAB>label per line; a header line naming the columns is recognised (SST-2's
//          "sentence<TAB>label", whose 0/1 labels become NEGATIVE/POSITIVE as in the models trained
//          on it), and so is label<TAB>text when the header says so
//   JSONL  one {"text": ..., "label": ...} per line ("sentence" is accepted for "text")
//   CSV    a header with text and label columns, RFC 4180 quoting
//   text   one text per line, with the labels in a separate file, one per line (`labels`)
//
// Every error names the file and the line.

import { DataError, readTextFile } from "./text.js";

export interface LabeledText {
  text: string;
  label: string;
}

/** Where a dataset came from and how much to trust its labels; written into metrics and model configs. */
export interface DataProvenance {
  name: string;
  /** "gold": labelled by people; "silver": labelled by a program (lexicon, gazetteer); "synthetic": generated text. */
  kind: "gold" | "silver" | "synthetic" | "unknown";
  note?: string;
}

const SST2_LABELS: Record<string, string> = { "0": "NEGATIVE", "1": "POSITIVE" };

function lines(text: string): string[] {
  const ls = text.split(/\r?\n/);
  if (ls.length && ls[ls.length - 1] === "") ls.pop();
  return ls;
}

/** Split one CSV line into fields (quotes may hold commas and doubled quotes; not newlines). */
export function parseCsvLine(line: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new DataError(`${where}: a quoted field is not closed`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      if (i < line.length && line[i] !== ",") throw new DataError(`${where}: text after a closing quote`);
    } else {
      const end = line.indexOf(",", i);
      field = end < 0 ? line.slice(i) : line.slice(i, end);
      i = end < 0 ? line.length : end;
    }
    out.push(field);
    if (i >= line.length) return out;
    i++; // the comma
  }
}

/** Parse labelled texts from the contents of a file; `source` names it in errors, and its extension picks the format. */
export function parseLabeled(content: string, source: string, opts: { labels?: string; labelsSource?: string } = {}): LabeledText[] {
  const ls = lines(content);
  if (opts.labels !== undefined) {
    const labels = lines(opts.labels);
    const texts = ls;
    const ls2 = opts.labelsSource ?? "the labels file";
    if (labels.length !== texts.length) {
      throw new DataError(`${ls2} has ${labels.length} labels but ${source} has ${texts.length} texts; they must match line for line`);
    }
    return texts.map((text, i) => {
      const label = (labels[i] as string).trim();
      if (!label) throw new DataError(`${ls2}:${i + 1}: empty label`);
      if (!text.trim()) throw new DataError(`${source}:${i + 1}: empty text`);
      return { text, label };
    });
  }
  const lower = source.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) {
    return ls.flatMap((line, i) => {
      if (!line.trim()) return [];
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new DataError(`${source}:${i + 1}: not valid JSON`);
      }
      const r = o as Record<string, unknown>;
      const text = r?.text ?? r?.sentence;
      const label = r?.label;
      if (typeof text !== "string") throw new DataError(`${source}:${i + 1}: expected {"text": "...", "label": ...}`);
      if (typeof label !== "string" && typeof label !== "number") throw new DataError(`${source}:${i + 1}: the line has no "label"`);
      return [{ text, label: String(label) }];
    });
  }
  const csv = lower.endsWith(".csv");
  const split = (line: string, i: number) => (csv ? parseCsvLine(line, `${source}:${i + 1}`) : line.split("\t"));
  if (ls.length === 0) throw new DataError(`${source}: the file has no lines`);
  const head = split(ls[0] as string, 0).map((h) => h.trim().toLowerCase());
  let textCol = 0;
  let labelCol = 1;
  let start = 0;
  let sst2 = false;
  const ti = head.findIndex((h) => h === "text" || h === "sentence");
  const li = head.indexOf("label");
  if (ti >= 0 || li >= 0) {
    if (ti < 0 || li < 0) {
      throw new DataError(`${source}:1: the header needs a text (or sentence) column and a label column (got ${head.join(", ")})`);
    }
    [textCol, labelCol, start] = [ti, li, 1];
    sst2 = head[ti] === "sentence" && !csv;
  } else if (csv) {
    throw new DataError(`${source}:1: a CSV file needs a header line with text and label columns`);
  }
  const out: LabeledText[] = [];
  for (let i = start; i < ls.length; i++) {
    const line = ls[i] as string;
    if (!line.trim()) continue;
    const f = split(line, i);
    const need = Math.max(textCol, labelCol) + 1;
    if (f.length < need) {
      throw new DataError(
        `${source}:${i + 1}: expected ${need} ${csv ? "comma" : "tab"}-separated columns (text and label), got ${f.length}; ` +
          "for a file of texts alone, give the labels with --labels FILE",
      );
    }
    const text = f[textCol] as string;
    let label = (f[labelCol] as string).trim();
    if (!label) throw new DataError(`${source}:${i + 1}: empty label`);
    if (sst2) label = SST2_LABELS[label] ?? label;
    out.push({ text, label });
  }
  if (out.length === 0) throw new DataError(`${source}: no labelled texts in the file`);
  return out;
}

/** Read labelled texts from a file (see the file comment); `labelsPath` gives labels for a text-per-line file. */
export function readLabeledFile(path: string, opts: { labelsPath?: string } = {}): LabeledText[] {
  const content = readTextFile(path);
  const labels = opts.labelsPath !== undefined ? readTextFile(opts.labelsPath) : undefined;
  return parseLabeled(content, path, { labels, labelsSource: opts.labelsPath });
}

/** The distinct labels, sorted, so label ids do not depend on the order of the file. */
export function labelSet(data: readonly { label: string }[]): string[] {
  return [...new Set(data.map((d) => d.label))].sort();
}

/** Check that every label of `data` is one of `labels` (e.g. eval labels seen in training). */
export function checkLabels(data: readonly { label: string }[], labels: readonly string[], source: string): void {
  const known = new Set(labels);
  const bad = data.findIndex((d) => !known.has(d.label));
  if (bad >= 0) {
    throw new DataError(
      `${source}: example ${bad + 1} has label '${data[bad]?.label}', which is not among the model's labels (${labels.join(", ")})`,
    );
  }
}

/** A seeded shuffle (Fisher-Yates with a xorshift stream), so splits are reproducible. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const a = [...items];
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** Train / eval split of a shuffled copy: the last `evalFraction` evaluates. */
export function splitTrainEval<T>(items: readonly T[], evalFraction: number, seed: number): { train: T[]; eval: T[] } {
  const s = shuffled(items, seed);
  const n = Math.max(1, Math.round(s.length * evalFraction));
  return { train: s.slice(0, s.length - n), eval: s.slice(s.length - n) };
}

/**
 * Train / eval split that keeps each class's share in both parts (like scikit-learn's stratified
 * train_test_split): every class gives round-down of its share of the eval size, and the remaining
 * eval places go to the classes with the largest remainders. A class with one example stays in train.
 */
export function stratifiedSplit<T>(
  items: readonly T[],
  evalFraction: number,
  seed: number,
  classOf: (item: T) => string,
): { train: T[]; eval: T[] } {
  const s = shuffled(items, seed);
  const total = Math.max(1, Math.round(s.length * evalFraction));
  const counts = new Map<string, number>();
  for (const x of s) counts.set(classOf(x), (counts.get(classOf(x)) ?? 0) + 1);
  const classes = [...counts.keys()].sort();
  const quota = new Map(classes.map((c) => [c, Math.floor(((counts.get(c) as number) * total) / s.length)]));
  let left = total - [...quota.values()].reduce((a, b) => a + b, 0);
  const byRemainder = [...classes].sort((a, b) => {
    const r = (c: string) => ((counts.get(c) as number) * total) / s.length - (quota.get(c) as number);
    return r(b) - r(a);
  });
  for (const c of byRemainder) {
    if (left === 0) break;
    if ((quota.get(c) as number) + 1 < (counts.get(c) as number)) {
      quota.set(c, (quota.get(c) as number) + 1);
      left--;
    }
  }
  const train: T[] = [];
  const evalPart: T[] = [];
  for (let i = s.length - 1; i >= 0; i--) {
    const x = s[i] as T;
    const c = classOf(x);
    if ((quota.get(c) as number) > 0) {
      quota.set(c, (quota.get(c) as number) - 1);
      evalPart.push(x);
    } else train.push(x);
  }
  return { train: train.reverse(), eval: evalPart.reverse() };
}
