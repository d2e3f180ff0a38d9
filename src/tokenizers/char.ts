// CharTokenizer: one token per Unicode character (code point) seen in a training text.
//
// The smallest useful tokenizer, for toy models trained on a single text (e.g. Shakespeare): the
// vocabulary is the sorted set of distinct code points in the corpus, so an emoji or a CJK character
// is one token, never two UTF-16 halves. It cannot encode characters it never saw; it says so.
//
// JSON layout (moxing-specific): { type: "char", version: 1, chars: [...], specialTokens: [{ id, content }] }
// where chars[i] is the character with id i and special tokens follow the characters.

import { isRecord } from "../util/json.js";
import { BaseTokenizer, badIdError, registerTokenizer } from "./tokenizer.js";

export interface CharTokenizerJSON {
  type: "char";
  version: 1;
  chars: string[];
  specialTokens: { id: number; content: string }[];
}

export interface CharTokenizerOptions {
  /** Special tokens (e.g. "<|endoftext|>"), given ids after all characters. */
  readonly specialTokens?: readonly string[];
}

export class CharTokenizer extends BaseTokenizer {
  static readonly type = "char";
  readonly type = CharTokenizer.type;
  protected readonly displayName = "CharTokenizer";

  /** id -> token text: characters first, then special tokens. */
  private readonly tokens: string[];
  private readonly charToId = new Map<string, number>();
  private readonly charCount: number;

  /** `chars` are the vocabulary in id order; each must be exactly one code point, without repeats. */
  constructor(chars: readonly string[], options: CharTokenizerOptions = {}) {
    super();
    chars.forEach((ch, id) => {
      if (typeof ch !== "string" || ch.length === 0 || [...ch].length !== 1) {
        throw new Error(`CharTokenizer: vocabulary entry ${id} is ${JSON.stringify(ch)}; every entry must be exactly one character.`);
      }
      if (this.charToId.has(ch)) {
        throw new Error(
          `CharTokenizer: the character ${describeChar(ch)} appears twice in the vocabulary (ids ${this.charToId.get(ch)} and ${id}).`,
        );
      }
      this.charToId.set(ch, id);
    });
    this.tokens = [...chars];
    this.charCount = chars.length;
    this.addSpecialTokens(options.specialTokens ?? []);
  }

  /** Builds the vocabulary from every distinct character in `corpus` (a text, or several). */
  static fromText(corpus: string | Iterable<string>, options: CharTokenizerOptions = {}): CharTokenizer {
    const codePoints = new Set<number>();
    for (const text of typeof corpus === "string" ? [corpus] : corpus) {
      // for..of walks code points, so a surrogate pair (emoji, rare CJK) is one character.
      for (const ch of text) codePoints.add(ch.codePointAt(0) as number);
    }
    // Sort by code point, not by JS string order (which compares UTF-16 units and would put
    // U+1F600 before U+FF01).
    const chars = [...codePoints].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp));
    return new CharTokenizer(chars, options);
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** The characters of the vocabulary, in id order (special tokens excluded). */
  get chars(): readonly string[] {
    return this.tokens.slice(0, this.charCount);
  }

  protected encodeOrdinary(text: string, out: number[]): void {
    let position = 0;
    for (const ch of text) {
      const id = this.charToId.get(ch);
      if (id === undefined) {
        throw new Error(
          `CharTokenizer.encode: the character ${describeChar(ch)} at character position ${position} is not in the vocabulary. ` +
            `This tokenizer was built from its training text and knows only the ${this.charCount} characters that occur there. ` +
            "Rebuild it from a corpus that contains this character, or remove or replace the character before encoding.",
        );
      }
      out.push(id);
      position++;
    }
  }

  decode(ids: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const token = Number.isInteger(id) ? this.tokens[id] : undefined;
      if (token === undefined) throw badIdError(id, this.vocabSize, this.displayName);
      s += token;
    }
    return s;
  }

  protected storeSpecialToken(content: string, id: number): void {
    this.tokens[id] = content;
  }

  toJSON(): CharTokenizerJSON {
    return {
      type: "char",
      version: 1,
      chars: this.tokens.slice(0, this.charCount),
      specialTokens: [...this.specialTokens].map(([content, id]) => ({ id, content })),
    };
  }

  static fromJSON(json: unknown): CharTokenizer {
    if (!isRecord(json) || json.type !== "char" || !Array.isArray(json.chars)) {
      throw new Error('CharTokenizer.fromJSON: expected { type: "char", chars: string[], specialTokens: [...] } as written by toJSON().');
    }
    if (json.version !== undefined && json.version !== 1) {
      throw new Error(`CharTokenizer.fromJSON: unsupported version ${String(json.version)}; this build of moxing reads version 1.`);
    }
    const specials = Array.isArray(json.specialTokens) ? json.specialTokens : [];
    const tokenizer = new CharTokenizer(json.chars as string[]);
    const ordered = [...specials].sort((a, b) => (isRecord(a) && isRecord(b) ? Number(a.id) - Number(b.id) : 0));
    for (const entry of ordered) {
      if (!isRecord(entry) || typeof entry.content !== "string" || typeof entry.id !== "number") {
        throw new Error(
          `CharTokenizer.fromJSON: bad special-token entry ${JSON.stringify(entry)}; expected { id: number, content: string }.`,
        );
      }
      const [id] = tokenizer.addSpecialTokens([entry.content]);
      if (id !== entry.id) {
        throw new Error(
          `CharTokenizer.fromJSON: special token ${JSON.stringify(entry.content)} is saved with id ${entry.id} but would get id ${id}; ` +
            "special-token ids must follow the characters without gaps.",
        );
      }
    }
    return tokenizer;
  }
}

/** A character as it should appear in an error message: quoted, escaped, with its code point. */
export function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) as number;
  return `${JSON.stringify(ch)} (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
}

registerTokenizer(CharTokenizer);
