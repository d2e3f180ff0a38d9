// English-Spanish verse pairs from two public-domain Bibles that share the KJV versification: the
// King James Version (SWORD module engKJV2006eb, Debian's sword-text-kjv) and the Reina-Valera 1909
// (spaRV1909eb, Debian's sword-text-sparv), about 31,000 real sentence pairs for translation.
//
// The texts come from Debian's `diatheke` (`diatheke -b engKJV2006eb -k Gen-Rev`), one verse per
// line as "Book C:V: text" with OSIS markup; scripts/bible-pairs.mjs runs it and writes the pairs as
// parallel text files, split by whole books so no held-out verse has a neighbour in training. Verses
// the two translations number differently (e.g. Job 38:39-41, which the Reina-Valera puts in 39)
// come out empty on one side and are dropped.

import { DataError } from "./text.js";

export interface VersePair {
  book: string;
  chapter: number;
  verse: number;
  en: string;
  es: string;
}

/** The 66 books in canonical order, as diatheke names them. */
export const BIBLE_BOOKS = [
  "Genesis",
  "Exodus",
  "Leviticus",
  "Numbers",
  "Deuteronomy",
  "Joshua",
  "Judges",
  "Ruth",
  "I Samuel",
  "II Samuel",
  "I Kings",
  "II Kings",
  "I Chronicles",
  "II Chronicles",
  "Ezra",
  "Nehemiah",
  "Esther",
  "Job",
  "Psalms",
  "Proverbs",
  "Ecclesiastes",
  "Song of Solomon",
  "Isaiah",
  "Jeremiah",
  "Lamentations",
  "Ezekiel",
  "Daniel",
  "Hosea",
  "Joel",
  "Amos",
  "Obadiah",
  "Jonah",
  "Micah",
  "Nahum",
  "Habakkuk",
  "Zephaniah",
  "Haggai",
  "Zechariah",
  "Malachi",
  "Matthew",
  "Mark",
  "Luke",
  "John",
  "Acts",
  "Romans",
  "I Corinthians",
  "II Corinthians",
  "Galatians",
  "Ephesians",
  "Philippians",
  "Colossians",
  "I Thessalonians",
  "II Thessalonians",
  "I Timothy",
  "II Timothy",
  "Titus",
  "Philemon",
  "Hebrews",
  "James",
  "I Peter",
  "II Peter",
  "I John",
  "II John",
  "III John",
  "Jude",
  "Revelation of John",
] as const;

/** The books held out by default: for evaluation (test) and for choosing checkpoints (valid). */
export const HELD_OUT_BOOKS = { test: ["Ruth", "Ecclesiastes", "Mark"], valid: ["Colossians", "Jude"] } as const;

// "Book C:V: " where the book is one of diatheke's names ("I Samuel", "Revelation of John"), at the
// line start or after a tag: the KJV's psalm titles (superscriptions) come before the reference.
const REFERENCE = /(?:^|> )((?:I{1,3} )?[A-Z][A-Za-z ]*?) (\d+):(\d+): ?(.*)$/;

/** Plain text of an OSIS verse: titles (headings, psalm superscriptions) dropped, tags removed. */
export function osisToText(s: string): string {
  return s
    .replace(/<title\b[^>]*>[\s\S]*?<\/title>/g, " ")
    .replace(/<note\b[^>]*>[\s\S]*?<\/note>/g, " ")
    .replace(/<[^>]*>/g, " ") // words can be adjacent elements with no space between them
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/¶/g, " ")
    .replace(/\s+([,.;:!?)])/g, "$1")
    .replace(/([¡¿(])\s+/g, "$1")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * Verses of diatheke's output, keyed "Book C:V" (in order). Lines without a reference are skipped.
 * Text before the reference is a psalm's title, which the Reina-Valera counts as part of verse 1: it
 * is kept when new. diatheke repeats the last title before every later line (same text, same OSIS
 * sID), so a prefix equal to the previous line's is dropped.
 */
export function parseDiatheke(text: string): Map<string, { book: string; chapter: number; verse: number; text: string }> {
  const out = new Map<string, { book: string; chapter: number; verse: number; text: string }>();
  let lastPrefix = "";
  for (const line of text.split("\n")) {
    const m = REFERENCE.exec(line);
    if (!m) continue;
    const [, book, c, v, body] = m as unknown as [string, string, string, string, string];
    const prefix = line.slice(0, m.index + (line[m.index] === ">" ? 1 : 0)).trim();
    const title = prefix && prefix !== lastPrefix && book === "Psalms" ? osisToText(prefix.replace(/<\/?title\b[^>]*>/g, " ")) : "";
    lastPrefix = prefix;
    const verse = osisToText(body);
    out.set(`${book} ${c}:${v}`, { book, chapter: Number(c), verse: Number(v), text: title && verse ? `${title} ${verse}` : verse });
  }
  return out;
}

/** English-Spanish pairs of the verses both texts have (non-empty on both sides), in KJV order. */
export function versePairs(kjv: string, rv1909: string): VersePair[] {
  const en = parseDiatheke(kjv);
  const es = parseDiatheke(rv1909);
  if (en.size === 0 || es.size === 0) throw new DataError("versePairs: no verses found; expected diatheke's 'Book C:V: text' lines");
  const pairs: VersePair[] = [];
  for (const [ref, e] of en) {
    const s = es.get(ref);
    if (!s || !e.text || !s.text) continue;
    pairs.push({ book: e.book, chapter: e.chapter, verse: e.verse, en: e.text, es: s.text });
  }
  return pairs;
}

/** Pairs split by whole books: test and valid books out, the rest train. Unknown book names are errors. */
export function splitByBooks(
  pairs: readonly VersePair[],
  held: { test: readonly string[]; valid: readonly string[] } = HELD_OUT_BOOKS,
): { train: VersePair[]; valid: VersePair[]; test: VersePair[] } {
  for (const b of [...held.test, ...held.valid]) {
    if (!(BIBLE_BOOKS as readonly string[]).includes(b))
      throw new DataError(`splitByBooks: unknown book '${b}'; use diatheke's names, e.g. ${BIBLE_BOOKS.slice(0, 3).join(", ")}`);
  }
  const test = new Set(held.test);
  const valid = new Set(held.valid);
  return {
    train: pairs.filter((p) => !test.has(p.book) && !valid.has(p.book)),
    valid: pairs.filter((p) => valid.has(p.book)),
    test: pairs.filter((p) => test.has(p.book)),
  };
}
