// BERT's "basic tokenizer": the text clean-up, lower-casing, accent stripping and splitting on white
// space, punctuation and CJK characters that runs before WordPiece.
//
// The rules are those of Hugging Face transformers' Python BertTokenizer (BasicTokenizer), which are
// Google's original BERT rules:
//   1. clean text: drop U+0000, U+FFFD and every character of Unicode category C* (control, format,
//      unassigned, private use, surrogate) except \t \n \r; white space (\t \n \r and category Zs)
//      becomes a plain space;
//   2. put spaces around each CJK ideograph (the code point ranges of `_is_chinese_char`);
//   3. Unicode NFC (recent transformers versions apply it; it only matters when accents are kept);
//   4. split on white space (Python's str.split(): white space also includes U+2028, U+2029, U+001C-F);
//   5. per word: lower-case (Python's str.lower(), so a word-final capital sigma becomes "ς"), then,
//      when stripping accents, NFD and drop category Mn (non-spacing marks);
//   6. split off every punctuation character as a word of its own: ASCII 33-47, 58-64, 91-96, 123-126
//      and Unicode category P*.
// Character classes come from Node's Unicode data (newer than Python 3.11's Unicode 14.0), so characters
// assigned since are kept here where that Python drops them as category Cn. Two corners of step 3 are
// not reproduced, both only when accents are kept: NFC runs on each word after lower-casing, where
// Python runs it on the whole text before (they differ when lower-casing yields unnormalised text, as
// "İ" followed by a combining mark of lower class does), and a punctuation mark that NFC would join
// with a following mark ("=" + U+0338 -> "≠") is split off first.
//
// Hugging Face's Rust `tokenizers` library (BertNormalizer + BertPreTokenizer: what tokenizer.json and
// the "fast" BertTokenizer run) gives the same words for ordinary text, but differs in a few corners;
// this module follows the Python rules above in each:
//   - it does not drop unassigned code points (category Cn), e.g. U+0378 or U+D7FF;
//   - its CJK range starts at U+2B920 instead of U+2B820, so U+2B820-U+2B91F are not split off;
//   - it lower-cases one character at a time, so a final "Σ" becomes "σ", not "ς";
//   - it does no NFC (so, with accents kept, "e" + U+0301 is not composed to "é");
//   - its Unicode tables are older: e.g. U+1DFA (Mn since Unicode 14) is not stripped
//     and U+0890 (Cf since Unicode 14) is not dropped.
//
// Besides the words, the tokenizer reports where each came from in the original text (UTF-16 offsets),
// with the alignment rules of `tokenizers`: a character that normalises to several (a Hangul syllable
// to its jamo, "İ" to "i" + U+0307) maps each of them to the whole original character, and a dropped
// character (a control character, a stripped accent) belongs to no word.

/** How the text is normalised, with Hugging Face's BertNormalizer option names in camelCase. */
export interface BertNormalizerOptions {
  /** Drop control characters and turn every kind of white space into a space. Default true. */
  readonly cleanText?: boolean;
  /** Split each CJK ideograph off as a word of its own. Default true. */
  readonly handleChineseChars?: boolean;
  /** Remove accents (NFD, then drop category Mn). Default null: the same as `lowercase`. */
  readonly stripAccents?: boolean | null;
  /** Lower-case the text. Default true (uncased models such as bert-base-uncased). */
  readonly lowercase?: boolean;
}

/** BertNormalizerOptions with every default filled in (stripAccents stays null when unset). */
export interface ResolvedBertNormalizerOptions {
  readonly cleanText: boolean;
  readonly handleChineseChars: boolean;
  readonly stripAccents: boolean | null;
  readonly lowercase: boolean;
}

/**
 * Where the UTF-16 units of a normalised word came from: unit i of the word was produced by the
 * original text's [starts[i], ends[i]). Null when the word is aligned one to one with the original
 * text (unit i came from [wordStart + i, wordStart + i + 1)).
 */
export interface WordAlignment {
  readonly starts: readonly number[];
  readonly ends: readonly number[];
}

/**
 * Receives the words in order: the normalised text, the [start, end) of the original text it came
 * from, and the per-unit alignment when it is not one to one.
 */
export type WordCallback = (word: string, start: number, end: number, alignment: WordAlignment | null) => void;

// Character classes (of the original character unless noted), cached per code point.
const KNOWN = 1;
/** Removed by clean_text: U+0000, U+FFFD, category C* except \t \n \r. */
const CONTROL = 2;
/** Splits words (Python's str.isspace()). */
const SPACE = 4;
/** Split off as a word of its own (after normalisation). */
const PUNCT = 8;
/** A CJK ideograph as defined by BERT's _is_chinese_char. */
const CJK = 16;
/** Lower-casing, accent stripping and NFC all leave it unchanged (so do the options that skip them). */
const STABLE = 32;

const bmpClasses = new Uint8Array(0x10000);
const astralClasses = new Map<number, number>();

const CONTROL_RE = /^\p{C}$/u;
const ZS_RE = /^\p{Zs}$/u;
const WHITE_SPACE_RE = /^\p{White_Space}$/u;
const PUNCT_RE = /^\p{P}$/u;
const MN_RE = /\p{Mn}/gu;
const MN_TEST_RE = /^\p{Mn}$/u;

/** BERT's `_is_chinese_char`: the CJK Unified Ideographs blocks and their compatibility blocks. */
export function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** BERT's `_is_punctuation`: all non-alphanumeric printable ASCII, and Unicode category P*. */
export function isBertPunctuation(cp: number): boolean {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return cp >= 128 && PUNCT_RE.test(String.fromCodePoint(cp));
}

/** BERT's `_is_control` (plus U+0000 and U+FFFD, which clean_text also drops). */
export function isBertControl(cp: number): boolean {
  if (cp === 9 || cp === 10 || cp === 13) return false;
  if (cp === 0 || cp === 0xfffd) return true;
  return CONTROL_RE.test(String.fromCodePoint(cp));
}

/** What Python's str.isspace() accepts: Unicode White_Space plus U+001C-U+001F. */
function isPythonSpace(cp: number): boolean {
  return (cp >= 0x1c && cp <= 0x1f) || WHITE_SPACE_RE.test(String.fromCodePoint(cp));
}

function computeClasses(cp: number): number {
  const ch = String.fromCodePoint(cp);
  let c = KNOWN;
  if (isBertControl(cp)) c |= CONTROL;
  // clean_text turns \t \n \r and Zs into spaces; str.split() then also splits on the rest of isspace().
  if (cp === 9 || cp === 10 || cp === 13 || ZS_RE.test(ch) || isPythonSpace(cp)) c |= SPACE;
  if (isBertPunctuation(cp)) c |= PUNCT;
  if (isChineseChar(cp)) c |= CJK;
  // (A non-spacing mark is not: accent stripping removes it.)
  if (ch.toLowerCase() === ch && ch.normalize("NFD") === ch && ch.normalize("NFC") === ch && cp !== 0x3a3 && !MN_TEST_RE.test(ch))
    c |= STABLE;
  return c;
}

function classesOf(cp: number): number {
  if (cp < 0x10000) {
    let c = bmpClasses[cp] as number;
    if (c === 0) {
      c = computeClasses(cp);
      bmpClasses[cp] = c;
    }
    return c;
  }
  let c = astralClasses.get(cp);
  if (c === undefined) {
    c = computeClasses(cp);
    astralClasses.set(cp, c);
  }
  return c;
}

const CAPITAL_SIGMA = 0x3a3;

/** Resolves defaults and checks the option types. */
export function resolveBertNormalizerOptions(
  options: BertNormalizerOptions = {},
  where = "BertBasicTokenizer",
): ResolvedBertNormalizerOptions {
  const bool = (name: keyof BertNormalizerOptions, value: unknown, fallback: boolean): boolean => {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") throw new Error(`${where}: option ${name} must be true or false, got ${JSON.stringify(value)}.`);
    return value;
  };
  const stripAccents = options.stripAccents;
  if (stripAccents !== undefined && stripAccents !== null && typeof stripAccents !== "boolean") {
    throw new Error(
      `${where}: option stripAccents must be true, false or null (= same as lowercase), got ${JSON.stringify(stripAccents)}.`,
    );
  }
  return {
    cleanText: bool("cleanText", options.cleanText, true),
    handleChineseChars: bool("handleChineseChars", options.handleChineseChars, true),
    stripAccents: stripAccents ?? null,
    lowercase: bool("lowercase", options.lowercase, true),
  };
}

/**
 * BERT's basic tokenizer. `tokenize(text)` gives the words that WordPiece then splits into pieces;
 * `forEachWord` also gives where each word came from in the original text.
 */
export class BertBasicTokenizer {
  readonly options: ResolvedBertNormalizerOptions;
  private readonly lower: boolean;
  private readonly strip: boolean;
  private readonly clean: boolean;
  private readonly cjk: boolean;
  /** Code point -> its normalised text, for characters that are not STABLE (the sigma excepted). */
  private readonly charCache = new Map<number, string>();

  constructor(options: BertNormalizerOptions = {}) {
    this.options = resolveBertNormalizerOptions(options);
    this.lower = this.options.lowercase;
    this.strip = this.options.stripAccents ?? this.options.lowercase;
    this.clean = this.options.cleanText;
    this.cjk = this.options.handleChineseChars;
  }

  /** The words of `text`, normalised. */
  tokenize(text: string): string[] {
    const words: string[] = [];
    this.forEachWord(text, (word) => {
      words.push(word);
    });
    return words;
  }

  /** The normalised text of one character outside any context (lower-case, then strip accents). */
  private normalizeChar(cp: number): string {
    let out = this.charCache.get(cp);
    if (out === undefined) {
      out = String.fromCodePoint(cp);
      if (this.lower) out = out.toLowerCase();
      if (this.strip) out = out.normalize("NFD").replace(MN_RE, "");
      else out = out.normalize("NFC");
      this.charCache.set(cp, out);
    }
    return out;
  }

  /**
   * Calls `onWord` for each word of text.slice(from, to), in order. Offsets are into `text`.
   * (Words never cross `from` or `to`.)
   */
  forEachWord(text: string, onWord: WordCallback, from = 0, to = text.length): void {
    const { clean, cjk, lower } = this;
    // Needs NFC after the word is built (see the module comment): only when accents are kept.
    const nfc = !this.strip;

    // The open word. mode 0: the word is exactly text.slice(wStart, wEnd) (buf unused); mode 1: buf,
    // aligned one to one with text.slice(wStart, wEnd); mode 2: buf with the starts/ends arrays.
    let wStart = -1;
    let wEnd = 0;
    let mode = 0;
    let buf = "";
    let starts: number[] = [];
    let ends: number[] = [];
    let ascii = true;

    const flush = (): void => {
      if (wStart < 0) return;
      let word = mode === 0 ? text.slice(wStart, wEnd) : buf;
      let alignment: WordAlignment | null = mode === 2 ? { starts, ends } : null;
      if (nfc && !ascii) {
        const composed = word.normalize("NFC");
        if (composed !== word) {
          alignment = composeAlignment(word, composed, wStart, alignment);
          word = composed;
        }
      }
      onWord(word, wStart, wEnd, alignment);
      if (mode === 2) {
        starts = [];
        ends = [];
      }
      wStart = -1;
      mode = 0;
      buf = "";
      ascii = true;
    };

    // Switches the open word to mode 2 (explicit alignment).
    const toExplicit = (): void => {
      if (mode === 0) buf = text.slice(wStart, wEnd);
      for (let k = 0; k < buf.length; k++) {
        starts.push(wStart + k);
        ends.push(wStart + k + 1);
      }
      mode = 2;
    };

    // Appends the original character text[s, e) unchanged.
    const appendSame = (s: number, e: number): void => {
      if (wStart < 0) {
        wStart = s;
        wEnd = e;
        return;
      }
      if (wEnd !== s && mode !== 2) toExplicit(); // characters were dropped in between
      if (mode === 0) {
        wEnd = e;
        return;
      }
      const piece = text.slice(s, e);
      buf += piece;
      if (mode === 2) {
        for (let k = s; k < e; k++) {
          starts.push(k);
          ends.push(k + 1);
        }
      }
      wEnd = e;
    };

    // Appends `piece`, the normalisation of the original character text[s, e).
    const appendChanged = (piece: string, s: number, e: number): void => {
      const oneToOne = piece.length === 1 && e - s === 1;
      if (wStart < 0) {
        wStart = s;
        mode = oneToOne ? 1 : 2;
        buf = "";
      } else if (mode !== 2 && (wEnd !== s || !oneToOne)) {
        toExplicit();
      } else if (mode === 0) {
        buf = text.slice(wStart, wEnd);
        mode = 1;
      }
      buf += piece;
      if (mode === 2) {
        for (let k = 0; k < piece.length; k++) {
          starts.push(s);
          ends.push(e);
        }
      }
      wEnd = e;
    };

    // A word of its own (punctuation, a CJK ideograph): `piece` from text[s, e).
    const single = (piece: string, s: number, e: number): void => {
      flush();
      if (piece.length === e - s && (piece.length === 1 || piece === text.slice(s, e))) {
        onWord(piece, s, e, null);
      } else {
        onWord(piece, s, e, { starts: Array.from({ length: piece.length }, () => s), ends: Array.from({ length: piece.length }, () => e) });
      }
    };

    for (let i = from; i < to; ) {
      let cp = text.charCodeAt(i);
      let len = 1;
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < to) {
        const lo = text.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
          len = 2;
        }
      }
      // ASCII fast path: digits, lower-case letters and (when not lower-casing) upper-case letters.
      if ((cp >= 97 && cp <= 122) || (cp >= 48 && cp <= 57)) {
        appendSame(i, i + 1);
        i++;
        continue;
      }
      if (cp >= 65 && cp <= 90) {
        if (lower) appendChanged(String.fromCharCode(cp + 32), i, i + 1);
        else appendSame(i, i + 1);
        i++;
        continue;
      }
      const classes = classesOf(cp);
      const s = i;
      const e = i + len;
      i = e;
      if (classes & CONTROL && clean) continue;
      if (classes & SPACE) {
        flush();
        continue;
      }
      if (classes & CJK && cjk) {
        single(classes & STABLE ? text.slice(s, e) : this.normalizeChar(cp), s, e);
        continue;
      }
      if (classes & STABLE) {
        if (classes & PUNCT) single(text.slice(s, e), s, e);
        else {
          if (cp >= 128) ascii = false;
          appendSame(s, e);
        }
        continue;
      }
      ascii = false;
      const normalized = cp === CAPITAL_SIGMA && lower ? this.lowerSigma(text, s, from, to) : this.normalizeChar(cp);
      if (normalized.length === 0) continue; // e.g. a lone accent
      // The normalised text is split again (it may hold punctuation: U+037E becomes ";").
      let run = "";
      for (const ch of normalized) {
        const c2 = ch.codePointAt(0) as number;
        const cls2 = classesOf(c2);
        if (cls2 & (PUNCT | SPACE)) {
          if (run) appendChanged(run, s, e);
          run = "";
          if (cls2 & PUNCT) single(ch, s, e);
          else flush();
        } else {
          run += ch;
        }
      }
      if (run) {
        if (run === text.slice(s, e)) appendSame(s, e);
        else appendChanged(run, s, e);
      }
    }
    flush();
  }

  /**
   * The lower case of the capital sigma at text[at], which Python's str.lower() makes final ("ς")
   * or not ("σ") from the letters around it in its white-space-separated token (after clean-up).
   * The result is then accent-stripped like any other character (sigma has no accent).
   */
  private lowerSigma(text: string, at: number, from: number, to: number): string {
    const isBoundary = (cp: number): boolean => {
      const c = classesOf(cp);
      return (c & SPACE) !== 0 || (this.cjk && (c & CJK) !== 0);
    };
    const isDropped = (cp: number): boolean => this.clean && (classesOf(cp) & CONTROL) !== 0;
    let before = "";
    for (let k = at; k > from; ) {
      let unit = 1;
      let cp = text.charCodeAt(k - 1);
      if (cp >= 0xdc00 && cp <= 0xdfff && k - 2 >= from) {
        const hi = text.charCodeAt(k - 2);
        if (hi >= 0xd800 && hi <= 0xdbff) {
          cp = ((hi - 0xd800) << 10) + (cp - 0xdc00) + 0x10000;
          unit = 2;
        }
      }
      // Clean-up drops control characters before the text is split, so check that first.
      if (!isDropped(cp)) {
        if (isBoundary(cp)) break;
        before = String.fromCodePoint(cp) + before;
      }
      k -= unit;
    }
    let after = "";
    for (let k = at + 1; k < to; ) {
      const cp = text.codePointAt(k) as number;
      if (!isDropped(cp)) {
        if (isBoundary(cp)) break;
        after += String.fromCodePoint(cp);
      }
      k += cp > 0xffff ? 2 : 1;
    }
    const lowered = `${before}Σ${after}`.toLowerCase();
    // Lower-casing keeps lengths except for U+0130, which grows by one unit; final-sigma casing doesn't.
    const pos = before.toLowerCase().length;
    return lowered[pos] as string;
  }
}

/**
 * The alignment of `composed` = NFC(`word`), given the alignment of `word` (null: one to one from
 * `start`). Composition only joins a character with the marks (or Hangul jamo) that follow it, so
 * the word is cut before each character that starts a new cluster, each cluster is composed on its
 * own, and every unit of a composed cluster maps to the cluster's whole original span. If that does
 * not reproduce NFC (some exotic sequences), every unit maps to the whole word.
 */
function composeAlignment(word: string, composed: string, start: number, alignment: WordAlignment | null): WordAlignment {
  const unitStart = (k: number): number => (alignment === null ? start + k : (alignment.starts[k] as number));
  const unitEnd = (k: number): number => (alignment === null ? start + k + 1 : (alignment.ends[k] as number));
  const starts: number[] = [];
  const ends: number[] = [];
  let rebuilt = "";
  let k = 0;
  while (k < word.length) {
    let j = k + ((word.codePointAt(k) as number) > 0xffff ? 2 : 1);
    while (j < word.length && CLUSTER_CONTINUES.test(String.fromCodePoint(word.codePointAt(j) as number))) {
      j += (word.codePointAt(j) as number) > 0xffff ? 2 : 1;
    }
    const piece = word.slice(k, j).normalize("NFC");
    const s = unitStart(k);
    const e = unitEnd(j - 1);
    for (let u = 0; u < piece.length; u++) {
      starts.push(s);
      ends.push(e);
    }
    rebuilt += piece;
    k = j;
  }
  if (rebuilt === composed) return { starts, ends };
  const s = unitStart(0);
  const e = unitEnd(word.length - 1);
  return { starts: Array.from({ length: composed.length }, () => s), ends: Array.from({ length: composed.length }, () => e) };
}

// Characters that NFC may merge into the character before them: combining marks and the Hangul
// medial vowels and final consonants.
const CLUSTER_CONTINUES = /^[\p{M}\u1160-\u11ff\ud7b0-\ud7ff]$/u;
