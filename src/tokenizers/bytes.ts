// Byte-level helpers shared by the BPE tokenizer and its trainer: GPT-2's pre-tokenisation regex, its
// reversible byte <-> character table, and UTF-8 conversion.
//
// Byte-level BPE works on UTF-8 bytes, but its vocabulary and merge files (GPT-2's encoder.json and
// vocab.bpe, Hugging Face's tokenizer.json) are text. GPT-2 solved this by giving each of the 256 bytes
// a printable Unicode character: the 188 bytes that are already printable and not whitespace keep
// their own code point, and the other 68 (control bytes, space, 0x7F-0xA0, 0xAD) are moved to
// U+0100 and up. That is why a leading space shows up as "Ġ" (U+0120) in GPT-2's vocabulary. We
// reproduce the table exactly, so vocab strings read from those files mean the same bytes here.

/**
 * GPT-2's pre-tokenisation pattern (also tiktoken's r50k_base / p50k_base and Hugging Face's ByteLevel
 * pre-tokenizer). Text is cut into contractions, letter runs, digit runs, punctuation runs and
 * whitespace, each optionally led by one space, and BPE never merges across these pieces.
 * `\s+(?!\S)` leaves the last space of a run to start the next word, so " the" stays one token.
 * JavaScript's `\s` is not Unicode's White_Space: it includes U+FEFF and excludes U+0085, so text with
 * those characters can split differently than in Python/Rust tiktoken or Hugging Face. We match
 * js-tiktoken, which runs this same pattern in JavaScript.
 */
export const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-2's `bytes_to_unicode()`: BYTE_TO_CHAR[b] is the one-character string that stands for byte b. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The inverse of BYTE_TO_CHAR: character code -> byte, or -1 for characters outside the table. */
const CHAR_TO_BYTE: Int16Array = buildCharToByte(BYTE_TO_CHAR);

function buildByteToChar(): string[] {
  const printable: number[] = [];
  const add = (from: number, to: number): void => {
    for (let b = from; b <= to; b++) printable.push(b);
  };
  add(0x21, 0x7e); // '!' .. '~'
  add(0xa1, 0xac); // '¡' .. '¬'
  add(0xae, 0xff); // '®' .. 'ÿ'
  const isPrintable = new Set(printable);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  // The remaining bytes get U+0100, U+0101, ... in increasing byte order, as in GPT-2's encoder.py.
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (!isPrintable.has(b)) table[b] = String.fromCharCode(256 + next++);
  }
  return table;
}

function buildCharToByte(byteToChar: readonly string[]): Int16Array {
  // Every character in the table is below U+0144, so a small dense array beats a Map.
  const inverse = new Int16Array(0x200).fill(-1);
  byteToChar.forEach((ch, b) => {
    inverse[ch.charCodeAt(0)] = b;
  });
  return inverse;
}

/** Spells bytes in GPT-2's byte alphabet, e.g. UTF-8 " the" -> "Ġthe". */
export function bytesToByteLevel(bytes: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i] as number];
  return s;
}

/** The bytes a byte-level string stands for, or null when it holds a character outside the alphabet
 *  (e.g. a special token such as "<|私|>" stored verbatim). */
export function byteLevelToBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    const b = code < CHAR_TO_BYTE.length ? (CHAR_TO_BYTE[code] as number) : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

const encoder = new TextEncoder();
// Not fatal: decoding arbitrary token ids (for example a model's sampled output) can cut a multi-byte
// character in half, and U+FFFD in the text is more useful there than an exception.
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/** UTF-8 bytes of a string. Lone surrogates (not representable in UTF-8) become U+FFFD (EF BF BD). */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Text from UTF-8 bytes; invalid or truncated sequences become U+FFFD. A leading BOM is kept. */
export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

// With the `u` flag a surrogate class matches only unpaired halves: a well-formed pair is one code point.
const LONE_SURROGATE = /[\uD800-\uDFFF]/gu;
// String.prototype.isWellFormed (Node 20+) is much faster than a regex scan; lib ES2022 lacks its type.
const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

/** Replaces unpaired UTF-16 surrogates with U+FFFD, which is what UTF-8 encoding would do anyway. */
export function toWellFormed(text: string): string {
  if (nativeIsWellFormed !== undefined) {
    if (nativeIsWellFormed.call(text)) return text;
  } else {
    LONE_SURROGATE.lastIndex = 0;
    if (!LONE_SURROGATE.test(text)) return text;
  }
  return text.replace(LONE_SURROGATE, "\uFFFD");
}

/**
 * Writes the UTF-8 encoding of `text` (which must be well-formed) into `buf` and returns the byte count,
 * or -1 if `buf` is too small. Hand-written because TextEncoder.encodeInto has a fixed per-call cost
 * that dominates for the short pre-tokens BPE sees.
 */
export function utf8EncodeInto(text: string, buf: Uint8Array): number {
  let n = 0;
  const cap = buf.length;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      if (n >= cap) return -1;
      buf[n++] = c;
    } else if (c < 0x800) {
      if (n + 2 > cap) return -1;
      buf[n++] = 0xc0 | (c >> 6);
      buf[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
      i++;
      if (n + 4 > cap) return -1;
      buf[n++] = 0xf0 | (c >> 18);
      buf[n++] = 0x80 | ((c >> 12) & 0x3f);
      buf[n++] = 0x80 | ((c >> 6) & 0x3f);
      buf[n++] = 0x80 | (c & 0x3f);
    } else {
      if (n + 3 > cap) return -1;
      buf[n++] = 0xe0 | (c >> 12);
      buf[n++] = 0x80 | ((c >> 6) & 0x3f);
      buf[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}
