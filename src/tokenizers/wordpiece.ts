// WordPieceTokenizer: BERT's tokenizer.
//
// Text goes through BERT's basic tokenizer (basic.ts: clean-up, lower-casing, accent stripping, words
// split at white space, punctuation and CJK ideographs), then each word is cut into vocabulary pieces
// greedily, longest match first: the longest prefix of the word that is in the vocabulary, then the
// longest continuation ("##" + text) of the rest, and so on. A word with a part that matches nothing,
// or longer than `maxInputCharsPerWord` code points, becomes the single unknown token "[UNK]".
//
// Vocabularies load from BERT's vocab.txt (one token per line, id = line number) or from Hugging
// Face's tokenizer.json (model.type "WordPiece"), and save as tokenizer.json that `tokenizers` and
// `transformers` read. `encodePair` builds model inputs the way Hugging Face's BertTokenizer does:
// [CLS] A [SEP] B [SEP], token type ids, attention mask, character offsets into the original texts,
// truncation strategies, and overflowing windows with a stride (SQuAD's "doc stride").
//
// Differences from Hugging Face are listed in basic.ts (all in rare Unicode corners).

import { FILE_LIMITS, readTextFileChecked } from "../io/files.js";
import { BertBasicTokenizer, type BertNormalizerOptions, type ResolvedBertNormalizerOptions, type WordAlignment } from "./basic.js";
import {
  BaseTokenizer,
  badIdError,
  type EncodeOptions,
  escapeRegExp,
  isRecord,
  registerTokenizer,
  specialAddedTokens,
} from "./tokenizer.js";

export type { BertNormalizerOptions, ResolvedBertNormalizerOptions, WordAlignment, WordCallback } from "./basic.js";
export { BertBasicTokenizer, isBertControl, isBertPunctuation, isChineseChar } from "./basic.js";

/** The tokens BERT gives special roles, by their usual names. */
export const BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] as const;

export interface WordPieceOptions extends BertNormalizerOptions {
  /** Replaces words that cannot be split into vocabulary pieces. Must be in the vocabulary. Default "[UNK]". */
  readonly unkToken?: string;
  /** Starts every encodePair sequence. Default "[CLS]". */
  readonly clsToken?: string;
  /** Ends each text in encodePair. Default "[SEP]". */
  readonly sepToken?: string;
  /** Fills encodePair output up to maxLength when padding. Default "[PAD]". */
  readonly padToken?: string;
  /** BERT's masked-language-model token. Default "[MASK]". */
  readonly maskToken?: string;
  /** Marks a piece that continues a word. Default "##". */
  readonly continuingSubwordPrefix?: string;
  /** Longer words (in code points) become the unknown token. Default 100. */
  readonly maxInputCharsPerWord?: number;
  /**
   * Vocabulary tokens that are special: recognised in text only when `allowedSpecial` allows it, never
   * split, and skipped by decode(). Default: whichever of unk/cls/sep/pad/mask tokens the vocabulary has.
   */
  readonly specialTokens?: readonly string[];
}

export interface WordPieceTrainOptions extends WordPieceOptions {
  /** Final vocabulary size, special tokens included. */
  readonly vocabSize: number;
  /** Given the first ids, in order. Default ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]. */
  readonly specialTokens?: readonly string[];
  /**
   * A pair of pieces seen fewer times than this in the corpus is never merged; training stops early
   * (with a smaller vocabulary) when no pair reaches it. Default 2.
   */
  readonly minFrequency?: number;
  /** Keep only this many distinct characters (the most frequent); words lose the others. Default: all. */
  readonly limitAlphabet?: number;
}

export type TruncationStrategy = "longest_first" | "only_first" | "only_second" | "do_not_truncate";
const TRUNCATION_STRATEGIES: readonly TruncationStrategy[] = ["longest_first", "only_first", "only_second", "do_not_truncate"];

export interface EncodePairOptions extends EncodeOptions {
  /** Length limit of each output sequence, special tokens included. Default: no limit. */
  readonly maxLength?: number;
  /**
   * How to cut texts down to maxLength (as in Hugging Face): "longest_first" (default) takes tokens off
   * the longer text, "only_first" / "only_second" off that text alone, "do_not_truncate" never cuts.
   */
  readonly truncation?: TruncationStrategy;
  /** "max_length": fill every output up to maxLength with the pad token. Default: no padding. */
  readonly padding?: "max_length" | "do_not_pad";
  /** Add [CLS] / [SEP]. Default true. */
  readonly addSpecialTokens?: boolean;
  /** Tokens that consecutive overflowing windows share. Default 0. */
  readonly stride?: number;
  /** Also return the truncated-off tokens as further windows (`overflowing`). Default false. */
  readonly returnOverflowing?: boolean;
}

/** Model inputs for one sequence (or pair), as Hugging Face's BertTokenizer returns them. */
export interface BertEncoding {
  inputIds: number[];
  /** 0 for [CLS], text A and its [SEP]; 1 for text B and its [SEP]; 0 for padding. */
  tokenTypeIds: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
  /**
   * [start, end) UTF-16 offsets of each token in its own text (A or B, before any normalisation), so
   * `text.slice(start, end)` is the original spelling. [0, 0] for [CLS], [SEP] and [PAD].
   */
  offsets: [number, number][];
  /** Which text each token came from: 0 (A), 1 (B), or null for special and padding tokens. */
  sequenceIds: (0 | 1 | null)[];
  /** With returnOverflowing: the further windows over the truncated tokens (in Hugging Face's order). */
  overflowing?: BertEncoding[];
}

export interface DecodeOptions {
  /** Leave out special tokens ([CLS], [SEP], [PAD], [MASK], [UNK], ...). Default true. */
  readonly skipSpecialTokens?: boolean;
  /** Hugging Face's WordPiece decoder clean-up: no space before . , ! ?, "do n't" -> "don't", etc. Default true. */
  readonly cleanup?: boolean;
}

/** Hugging Face tokenizer.json layout for a BERT WordPiece tokenizer. */
export interface HFWordPieceJSON {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: {
    id: number;
    content: string;
    single_word: boolean;
    lstrip: boolean;
    rstrip: boolean;
    normalized: boolean;
    special: boolean;
  }[];
  normalizer: {
    type: "BertNormalizer";
    clean_text: boolean;
    handle_chinese_chars: boolean;
    strip_accents: boolean | null;
    lowercase: boolean;
  };
  pre_tokenizer: { type: "BertPreTokenizer" };
  /** Null when the vocabulary lacks the [CLS] or [SEP] token. */
  post_processor: {
    type: "TemplateProcessing";
    single: TemplatePiece[];
    pair: TemplatePiece[];
    special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }>;
  } | null;
  decoder: { type: "WordPiece"; prefix: string; cleanup: boolean };
  model: {
    type: "WordPiece";
    unk_token: string;
    continuing_subword_prefix: string;
    max_input_chars_per_word: number;
    vocab: Record<string, number>;
  };
}

type TemplatePiece = { SpecialToken: { id: string; type_id: number } } | { Sequence: { id: "A" | "B"; type_id: number } };

/** Token ids of a text with their offsets. */
interface Pieces {
  ids: number[];
  offsets: [number, number][];
}

/** How one word splits: piece ids, and the end (UTF-16 unit in the word) of each piece. */
interface WordSplit {
  readonly ids: readonly number[];
  readonly ends: readonly number[];
}

const CACHE_LIMIT = 100_000;
const CACHE_MAX_WORD = 48;

export class WordPieceTokenizer extends BaseTokenizer {
  /** Registry key: Hugging Face's `model.type`. */
  static readonly type = "WordPiece";
  readonly type = WordPieceTokenizer.type;
  protected readonly displayName = "WordPieceTokenizer";

  /** The basic tokenizer (normalisation and word splitting) in front of WordPiece. */
  readonly basic: BertBasicTokenizer;
  readonly unkToken: string;
  readonly clsToken: string;
  readonly sepToken: string;
  readonly padToken: string;
  readonly maskToken: string;
  readonly continuingSubwordPrefix: string;
  readonly maxInputCharsPerWord: number;

  /** id -> token. Ids below modelSize are the WordPiece vocabulary; later ones are added special tokens. */
  private readonly tokens: string[];
  /** Number of WordPiece vocabulary entries (the vocab.txt lines). */
  private readonly modelSize: number;
  /** WordPiece vocabulary: token -> id (a token listed twice keeps its last id, as in Hugging Face). */
  private readonly vocab = new Map<string, number>();
  /** Continuation pieces without their prefix -> id. */
  private readonly continuations = new Map<string, number>();
  private readonly maxTokenUnits: number;
  private readonly maxContinuationUnits: number;
  private readonly unkId: number;
  private readonly cache = new Map<string, WordSplit>();

  /**
   * @param vocab the WordPiece vocabulary, id -> token (the lines of vocab.txt), or token -> id with ids
   *   0..n-1 (tokenizer.json's model.vocab).
   */
  constructor(vocab: readonly string[] | Readonly<Record<string, number>>, options: WordPieceOptions = {}) {
    super();
    const where = "WordPieceTokenizer";
    this.tokens = Array.isArray(vocab) ? [...(vocab as readonly string[])] : vocabRecordToList(vocab as Record<string, number>, where);
    if (this.tokens.length === 0) {
      throw new Error(
        `${where}: the vocabulary is empty. Give the lines of a vocab.txt (one token per line), or train one with WordPieceTokenizer.train().`,
      );
    }
    this.modelSize = this.tokens.length;
    this.unkToken = stringOption(options.unkToken, "[UNK]", "unkToken");
    this.clsToken = stringOption(options.clsToken, "[CLS]", "clsToken");
    this.sepToken = stringOption(options.sepToken, "[SEP]", "sepToken");
    this.padToken = stringOption(options.padToken, "[PAD]", "padToken");
    this.maskToken = stringOption(options.maskToken, "[MASK]", "maskToken");
    this.continuingSubwordPrefix = options.continuingSubwordPrefix ?? "##";
    if (typeof this.continuingSubwordPrefix !== "string") {
      throw new Error(
        `${where}: continuingSubwordPrefix must be a string (BERT uses "##"), got ${JSON.stringify(options.continuingSubwordPrefix)}.`,
      );
    }
    const maxChars = options.maxInputCharsPerWord ?? 100;
    if (!Number.isInteger(maxChars) || maxChars < 1) {
      throw new Error(`${where}: maxInputCharsPerWord must be a positive integer (BERT uses 100), got ${maxChars}.`);
    }
    this.maxInputCharsPerWord = maxChars;
    this.basic = new BertBasicTokenizer(options);

    const prefix = this.continuingSubwordPrefix;
    let maxUnits = 0;
    let maxCont = 0;
    for (let id = 0; id < this.tokens.length; id++) {
      const token = this.tokens[id];
      if (typeof token !== "string") throw new Error(`${where}: vocabulary entry ${id} is ${JSON.stringify(token)}, not a string.`);
      this.vocab.set(token, id);
      maxUnits = Math.max(maxUnits, token.length);
      if (prefix !== "" && token.startsWith(prefix)) {
        this.continuations.set(token.slice(prefix.length), id);
        maxCont = Math.max(maxCont, token.length - prefix.length);
      }
    }
    if (prefix === "") {
      for (const [token, id] of this.vocab) this.continuations.set(token, id);
      maxCont = maxUnits;
    }
    this.maxTokenUnits = maxUnits;
    this.maxContinuationUnits = maxCont;

    const unkId = this.vocab.get(this.unkToken);
    if (unkId === undefined) {
      throw new Error(
        `${where}: the vocabulary has no unknown token ${JSON.stringify(this.unkToken)}, which words that cannot be split into ` +
          `pieces become. Add it to the vocabulary (BERT's vocab.txt has "[UNK]" on line 101), or name the vocabulary's own ` +
          "unknown token with the unkToken option.",
      );
    }
    this.unkId = unkId;

    const specials =
      options.specialTokens ??
      [this.padToken, this.unkToken, this.clsToken, this.sepToken, this.maskToken].filter((t) => this.vocab.has(t));
    for (const content of specials) {
      const id = this.vocab.get(content);
      if (id === undefined) {
        throw new Error(
          `${where}: special token ${JSON.stringify(content)} is not in the vocabulary. List only vocabulary tokens in specialTokens, ` +
            "or add new ones afterwards with addSpecialTokens().",
        );
      }
      this.registerSpecial(content, id);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Loading and saving

  /** From the text of a vocab.txt: one token per line, id = line number (0-based). */
  static fromVocabTxt(text: string, options: WordPieceOptions = {}): WordPieceTokenizer {
    if (typeof text !== "string") {
      throw new Error(
        "WordPieceTokenizer.fromVocabTxt: expected the text of vocab.txt (a string); to read a file use fromVocabFile(path).",
      );
    }
    return new WordPieceTokenizer(parseVocabTxt(text), options);
  }

  /** From a vocab.txt file. */
  static fromVocabFile(path: string, options: WordPieceOptions = {}): WordPieceTokenizer {
    return WordPieceTokenizer.fromVocabTxt(readTextFileChecked(path, { maxBytes: FILE_LIMITS.tokenizer }), options);
  }

  /** The vocabulary as vocab.txt text (one token per line, in id order; added special tokens excluded). */
  toVocabTxt(): string {
    return `${this.tokens.slice(0, this.modelSize).join("\n")}\n`;
  }

  /** Hugging Face tokenizer.json layout (see HFWordPieceJSON). */
  toJSON(): HFWordPieceJSON {
    const n = this.options;
    const addedIds = [...this.specialTokens.values()].sort((a, b) => a - b);
    const template = (cls: string, sep: string): { single: TemplatePiece[]; pair: TemplatePiece[] } => ({
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
    });
    const specialEntry = (token: string): { id: string; ids: number[]; tokens: string[] } => ({
      id: token,
      ids: [this.specialId(token, "toJSON")],
      tokens: [token],
    });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedIds.map((id) => ({
        id,
        content: this.tokens[id] as string,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: {
        type: "BertNormalizer",
        clean_text: n.cleanText,
        handle_chinese_chars: n.handleChineseChars,
        strip_accents: n.stripAccents,
        lowercase: n.lowercase,
      },
      pre_tokenizer: { type: "BertPreTokenizer" },
      post_processor:
        this.tokenToId(this.clsToken) === undefined || this.tokenToId(this.sepToken) === undefined
          ? null
          : {
              type: "TemplateProcessing",
              ...template(this.clsToken, this.sepToken),
              special_tokens: Object.fromEntries([this.clsToken, this.sepToken].map((t) => [t, specialEntry(t)])),
            },
      decoder: { type: "WordPiece", prefix: this.continuingSubwordPrefix, cleanup: true },
      model: {
        type: "WordPiece",
        unk_token: this.unkToken,
        continuing_subword_prefix: this.continuingSubwordPrefix,
        max_input_chars_per_word: this.maxInputCharsPerWord,
        // Object.fromEntries defines own properties, so a token spelled "__proto__" is stored safely.
        vocab: Object.fromEntries(this.vocabEntries()),
      },
    };
  }

  /**
   * Reads toJSON() output, or a Hugging Face tokenizer.json of a BERT-style WordPiece tokenizer. The
   * file's own "truncation" and "padding" settings are ignored: pass them to encodePair instead.
   */
  static fromJSON(json: unknown): WordPieceTokenizer {
    const where = "WordPieceTokenizer.fromJSON";
    if (!isRecord(json) || !isRecord(json.model) || json.model.type !== "WordPiece") {
      throw new Error(`${where}: expected a Hugging Face tokenizer.json with model.type "WordPiece".`);
    }
    const model = json.model;
    if (!isRecord(model.vocab)) throw new Error(`${where}: model.vocab must be an object (token -> id).`);
    const unsupported = (what: string, value: unknown): Error =>
      new Error(
        `${where}: ${what} is ${JSON.stringify(value)}; moxing reads BERT-style WordPiece tokenizers only (a BertNormalizer or none, ` +
          "the BertPreTokenizer, a [CLS] $A [SEP] $B [SEP] TemplateProcessing or BertProcessing post-processor, a WordPiece decoder).",
      );

    let normalizer: BertNormalizerOptions;
    const norm = json.normalizer;
    if (norm == null) {
      normalizer = { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false };
    } else if (isRecord(norm) && norm.type === "BertNormalizer") {
      normalizer = {
        cleanText: (norm.clean_text ?? true) as boolean,
        handleChineseChars: (norm.handle_chinese_chars ?? true) as boolean,
        stripAccents: (norm.strip_accents ?? null) as boolean | null,
        lowercase: (norm.lowercase ?? true) as boolean,
      };
    } else {
      throw unsupported("normalizer", norm);
    }
    if (!isRecord(json.pre_tokenizer) || json.pre_tokenizer.type !== "BertPreTokenizer")
      throw unsupported("pre_tokenizer", json.pre_tokenizer);
    if (json.decoder != null && (!isRecord(json.decoder) || json.decoder.type !== "WordPiece")) throw unsupported("decoder", json.decoder);

    let clsToken = "[CLS]";
    let sepToken = "[SEP]";
    const post = json.post_processor;
    if (isRecord(post) && post.type === "TemplateProcessing") {
      const single = Array.isArray(post.single) ? post.single : [];
      const first = single[0];
      const last = single[single.length - 1];
      const tokenOf = (piece: unknown): string | undefined =>
        isRecord(piece) && isRecord(piece.SpecialToken) && typeof piece.SpecialToken.id === "string" ? piece.SpecialToken.id : undefined;
      const cls = tokenOf(first);
      const sep = tokenOf(last);
      if (single.length !== 3 || cls === undefined || sep === undefined) throw unsupported("post_processor", post);
      clsToken = cls;
      sepToken = sep;
    } else if (isRecord(post) && post.type === "BertProcessing") {
      if (!Array.isArray(post.cls) || !Array.isArray(post.sep)) throw unsupported("post_processor", post);
      clsToken = String(post.cls[0]);
      sepToken = String(post.sep[0]);
    } else if (post != null) {
      throw unsupported("post_processor", post);
    }

    const added = specialAddedTokens(json, where);
    // Added tokens either repeat a vocabulary entry (BERT's [CLS] etc.) or extend the vocabulary.
    const vocab = model.vocab as Record<string, number>;
    const vocabSize = Object.keys(vocab).length;
    const inVocab = added.filter(([, id]) => id < vocabSize);
    const extra = added.filter(([, id]) => id >= vocabSize).sort((a, b) => a[1] - b[1]);
    const tok = new WordPieceTokenizer(vocab, {
      ...normalizer,
      unkToken: typeof model.unk_token === "string" ? model.unk_token : "[UNK]",
      continuingSubwordPrefix: typeof model.continuing_subword_prefix === "string" ? model.continuing_subword_prefix : "##",
      maxInputCharsPerWord: typeof model.max_input_chars_per_word === "number" ? model.max_input_chars_per_word : 100,
      clsToken,
      sepToken,
      // No added_tokens at all: the usual BERT special tokens, as for a vocab.txt.
      specialTokens: added.length > 0 ? inVocab.map(([content]) => content) : undefined,
    });
    for (const [content, id] of inVocab) {
      if (tok.vocab.get(content) !== id) {
        throw new Error(
          `${where}: added token ${JSON.stringify(content)} has id ${id}, but model.vocab gives it ${tok.vocab.get(content)}.`,
        );
      }
    }
    extra.forEach(([content, id], i) => {
      if (id !== vocabSize + i) {
        throw new Error(
          `${where}: added token ${JSON.stringify(content)} has id ${id}; ids after the vocabulary must run from ${vocabSize} without gaps.`,
        );
      }
      tok.addSpecialTokens([content]);
    });
    return tok;
  }

  // ---------------------------------------------------------------------------------------------
  // Vocabulary

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** The normaliser settings (with defaults filled in). */
  get options(): ResolvedBertNormalizerOptions {
    return this.basic.options;
  }

  /** The token of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) ? this.tokens[id] : undefined;
  }

  /** The id of a vocabulary token or special token, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.specialTokens.get(token) ?? this.vocab.get(token);
  }

  /** Ids -> tokens ("##"-prefixed pieces as they are). Throws on an id outside the vocabulary. */
  convertIdsToTokens(ids: ArrayLike<number>): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const token = this.idToToken(ids[i] as number);
      if (token === undefined) throw badIdError(ids[i], this.vocabSize, this.displayName);
      out.push(token);
    }
    return out;
  }

  /** Tokens -> ids; a token not in the vocabulary gives the unknown token's id (as Hugging Face does). */
  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((t) => this.tokenToId(t) ?? this.unkId);
  }

  /** The WordPiece vocabulary and added special tokens as [token, id], in id order. */
  vocabEntries(): [string, number][] {
    const entries: [string, number][] = [];
    for (let id = 0; id < this.modelSize; id++) {
      const token = this.tokens[id] as string;
      // With a token listed twice, Hugging Face maps it to its last id; the earlier id keeps no entry.
      if (this.vocab.get(token) === id) entries.push([token, id]);
    }
    return entries;
  }

  protected storeSpecialToken(content: string, id: number): void {
    this.tokens[id] = content;
  }

  private specialId(token: string, what: string): number {
    const id = this.tokenToId(token);
    if (id === undefined) {
      throw new Error(
        `WordPieceTokenizer.${what}: the vocabulary has no ${JSON.stringify(token)} token, which BERT inputs need. ` +
          "Add it to the vocabulary or name the vocabulary's own token with the clsToken / sepToken / padToken options.",
      );
    }
    return id;
  }

  // ---------------------------------------------------------------------------------------------
  // Encoding

  /** The basic tokenizer's words followed by WordPiece: the pieces of `text` as strings. */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.convertIdsToTokens(this.encode(text, options));
  }

  protected encodeOrdinary(text: string, out: number[]): void {
    this.basic.forEachWord(text, (word) => {
      const split = this.splitWord(word);
      for (let k = 0; k < split.ids.length; k++) out.push(split.ids[k] as number);
    });
  }

  /** Token ids of `text` (no [CLS]/[SEP]) with the [start, end) offsets of each in `text`. */
  encodeWithOffsets(text: string, options: EncodeOptions = {}): { ids: number[]; offsets: [number, number][] } {
    const out: Pieces = { ids: [], offsets: [] };
    for (const segment of this.splitOnSpecial(text, options, "encodeWithOffsets")) {
      if (segment.special !== undefined) {
        out.ids.push(segment.special);
        out.offsets.push([segment.start, segment.end]);
      } else {
        this.encodeSegment(text, segment.start, segment.end, out);
      }
    }
    return out;
  }

  private encodeSegment(text: string, from: number, to: number, out: Pieces): void {
    this.basic.forEachWord(
      text,
      (word, start, _end, alignment) => {
        const split = this.splitWord(word);
        let a = 0;
        for (let k = 0; k < split.ids.length; k++) {
          const b = split.ends[k] as number;
          out.ids.push(split.ids[k] as number);
          out.offsets.push(spanOf(start, alignment, a, b));
          a = b;
        }
      },
      from,
      to,
    );
  }

  /** Greedy longest-match-first WordPiece of one word (already normalised), with the cache. */
  private splitWord(word: string): WordSplit {
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const split = this.splitWordUncached(word);
    if (word.length <= CACHE_MAX_WORD) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, split);
    }
    return split;
  }

  private splitWordUncached(word: string): WordSplit {
    const n = word.length;
    const unk: WordSplit = { ids: [this.unkId], ends: [n] };
    // The limit counts code points, as Python's len() and Rust's chars() do.
    if (n > this.maxInputCharsPerWord && codePointCount(word, this.maxInputCharsPerWord + 1) > this.maxInputCharsPerWord) return unk;
    const ids: number[] = [];
    const ends: number[] = [];
    let start = 0;
    while (start < n) {
      const table = start === 0 ? this.vocab : this.continuations;
      let end = Math.min(n, start + (start === 0 ? this.maxTokenUnits : this.maxContinuationUnits));
      if (end < n && isLowSurrogate(word.charCodeAt(end))) end--;
      let id: number | undefined;
      while (end > start) {
        id = table.get(word.slice(start, end));
        if (id !== undefined) break;
        end--;
        if (end > start && isLowSurrogate(word.charCodeAt(end))) end--;
      }
      if (id === undefined) return unk;
      ids.push(id);
      ends.push(end);
      start = end;
    }
    return { ids, ends };
  }

  /**
   * Cuts `text` around the special tokens that `options` allows (each becomes its id), after checking
   * that it holds no disallowed ones: the same rules and errors as encode().
   */
  private splitOnSpecial(text: string, options: EncodeOptions, what: string): { start: number; end: number; special?: number }[] {
    if (typeof text !== "string") {
      throw new TypeError(`${this.displayName}.${what}: expected a string, got ${text === null ? "null" : typeof text}.`);
    }
    const specials = this.specialTokens;
    const resolve = (spec: "all" | Iterable<string>, option: string): Set<string> => {
      if (spec === "all") return new Set(specials.keys());
      const set = new Set<string>();
      for (const token of spec) {
        if (!specials.has(token)) {
          const known = [...specials.keys()].map((t) => JSON.stringify(t)).join(", ") || "none";
          throw new Error(
            `${this.displayName}.${what}: ${option} names ${JSON.stringify(token)}, which is not a special token of this tokenizer ` +
              `(its special tokens: ${known}). Register it first with addSpecialTokens([${JSON.stringify(token)}]).`,
          );
        }
        set.add(token);
      }
      return set;
    };
    const allowed = resolve(options.allowedSpecial ?? [], "allowedSpecial");
    const disallowed =
      options.disallowedSpecial === undefined || options.disallowedSpecial === "all"
        ? [...specials.keys()].filter((t) => !allowed.has(t))
        : resolve(options.disallowedSpecial, "disallowedSpecial");
    for (const token of disallowed) {
      if (!allowed.has(token) && text.includes(token)) {
        throw new Error(
          `${this.displayName}.${what}: the text contains the special token ${JSON.stringify(token)} (id ${specials.get(token)}), ` +
            "which is refused unless it is allowed, so that ordinary text cannot inject control tokens. " +
            `Pass { allowedSpecial: [${JSON.stringify(token)}] } (or "all") to encode it as its special id, as Hugging Face does, ` +
            "or { disallowedSpecial: [] } to encode it as ordinary text.",
        );
      }
    }
    if (allowed.size === 0) return [{ start: 0, end: text.length }];
    const sorted = [...allowed].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
    const pattern = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
    const segments: { start: number; end: number; special?: number }[] = [];
    let start = 0;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      if (m.index > start) segments.push({ start, end: m.index });
      segments.push({ start: m.index, end: m.index + m[0].length, special: specials.get(m[0]) as number });
      start = m.index + m[0].length;
    }
    if (start < text.length) segments.push({ start, end: text.length });
    return segments;
  }

  /**
   * BERT model inputs for one text or a pair: [CLS] A [SEP] (B [SEP]), with token type ids, attention
   * mask and offsets, truncated and padded like Hugging Face's BertTokenizer(textA, textB, ...).
   *
   * With `returnOverflowing`, the tokens that truncation cut off come back as further windows in
   * `overflowing`, each `stride` tokens overlapping the one before: e.g. SQuAD's
   * encodePair(question, context, { maxLength: 384, truncation: "only_second", stride: 128,
   * returnOverflowing: true, padding: "max_length" }) gives one window per 384-token view of the context.
   */
  encodePair(textA: string, textB?: string | null, options: EncodePairOptions = {}): BertEncoding {
    const what = "encodePair";
    const addSpecial = options.addSpecialTokens ?? true;
    const hasB = textB !== undefined && textB !== null;
    const nAdded = addSpecial ? (hasB ? 3 : 2) : 0;
    const { maxLength, stride = 0 } = options;
    const truncation = options.truncation ?? "longest_first";
    if (!TRUNCATION_STRATEGIES.includes(truncation)) {
      throw new Error(
        `${this.displayName}.${what}: truncation ${JSON.stringify(truncation)} is not a truncation strategy; use one of ` +
          `${TRUNCATION_STRATEGIES.map((s) => JSON.stringify(s)).join(", ")}.`,
      );
    }
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < nAdded)) {
      throw new Error(
        `${this.displayName}.${what}: maxLength must be an integer of at least ${nAdded}, the number of special tokens ` +
          `${hasB ? "a pair" : "one text"} needs (${addSpecial ? (hasB ? "[CLS] A [SEP] B [SEP]" : "[CLS] A [SEP]") : "none"}), got ${maxLength}.`,
      );
    }
    if (!Number.isInteger(stride) || stride < 0) {
      throw new Error(`${this.displayName}.${what}: stride must be a non-negative integer, got ${stride}.`);
    }
    const padding = options.padding ?? "do_not_pad";
    if (padding !== "max_length" && padding !== "do_not_pad") {
      throw new Error(`${this.displayName}.${what}: padding must be "max_length" or "do_not_pad", got ${JSON.stringify(padding)}.`);
    }
    if (padding === "max_length" && maxLength === undefined) {
      throw new Error(`${this.displayName}.${what}: padding "max_length" needs maxLength (the length to pad to).`);
    }
    if (hasB && typeof textB !== "string") {
      throw new TypeError(`${this.displayName}.${what}: textB must be a string, null or undefined, got ${typeof textB}.`);
    }

    const a = this.encodeWithOffsets(textA, options);
    const b = hasB ? this.encodeWithOffsets(textB, options) : null;

    let aParts: Pieces[] = [a];
    let bParts: Pieces[] = b === null ? [] : [b];
    if (maxLength !== undefined && truncation !== "do_not_truncate") {
      const budget = maxLength - nAdded;
      const total = a.ids.length + (b?.ids.length ?? 0);
      if (total > budget) {
        const toRemove = total - budget;
        const cut = (seq: Pieces, keep: number, name: string): Pieces[] =>
          this.truncateSequence(seq, keep, stride, name, maxLength, nAdded);
        if (truncation === "longest_first") {
          if (b === null) {
            aParts = cut(a, budget, "text A");
          } else {
            // Hugging Face's rule: the shorter text keeps what it can up to half the budget.
            let n1 = a.ids.length;
            let n2 = b.ids.length;
            const swap = n1 > n2;
            if (swap) [n1, n2] = [n2, n1];
            n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
            if (n1 + n2 > budget) {
              n1 = Math.floor(budget / 2);
              n2 = n1 + (budget % 2);
            }
            if (swap) [n1, n2] = [n2, n1];
            aParts = cut(a, n1, "text A");
            bParts = cut(b, n2, "text B");
          }
        } else {
          const second = truncation === "only_second";
          if (second && b === null) {
            throw new Error(
              `${this.displayName}.${what}: truncation "only_second" cuts text B, but only one text was given. ` +
                'Pass the second text, or use "longest_first" or "only_first".',
            );
          }
          const target = second ? (b as Pieces) : a;
          if (target.ids.length <= toRemove) {
            throw new Error(
              `${this.displayName}.${what}: truncation ${JSON.stringify(truncation)} must remove ${toRemove} tokens to fit maxLength ` +
                `${maxLength}, but text ${second ? "B" : "A"} has only ${target.ids.length} (and must keep at least one). ` +
                'Use "longest_first", the other only_* strategy, or a larger maxLength.',
            );
          }
          const parts = cut(target, target.ids.length - toRemove, second ? "text B" : "text A");
          if (second) bParts = parts;
          else aParts = parts;
        }
      }
    }

    // The main window, then Hugging Face's order of overflowing ones: each later A window with the
    // first B window and then with each later B window, then the first A window with each later B window.
    const combos: [Pieces, Pieces | null][] = [];
    const firstB = bParts[0] ?? null;
    combos.push([aParts[0] as Pieces, firstB]);
    for (const ai of aParts.slice(1)) {
      combos.push([ai, firstB]);
      for (const bj of bParts.slice(1)) combos.push([ai, bj]);
    }
    for (const bj of bParts.slice(1)) combos.push([aParts[0] as Pieces, bj]);

    const padTo = padding === "max_length" ? (maxLength as number) : 0;
    const encodings = combos.map(([x, y]) => this.assemble(x, y, addSpecial, padTo));
    const main = encodings[0] as BertEncoding;
    if (options.returnOverflowing) main.overflowing = encodings.slice(1);
    return main;
  }

  /** The windows of one sequence cut to `keep` tokens: the kept one first, then the overflowing ones. */
  private truncateSequence(seq: Pieces, keep: number, stride: number, name: string, maxLength: number, nAdded: number): Pieces[] {
    const n = seq.ids.length;
    if (keep >= n) return [seq];
    if (keep === 0) return [{ ids: [], offsets: [] }, seq];
    if (stride >= keep) {
      throw new Error(
        `${this.displayName}.encodePair: stride ${stride} must be smaller than the ${keep} tokens of ${name} that fit in maxLength ` +
          `${maxLength} (after ${nAdded} special tokens${name === "text B" ? " and text A" : ""}); lower the stride or raise maxLength.`,
      );
    }
    const parts: Pieces[] = [];
    const step = keep - stride;
    for (let start = 0; ; start += step) {
      const stop = Math.min(start + keep, n);
      parts.push({ ids: seq.ids.slice(start, stop), offsets: seq.offsets.slice(start, stop) });
      if (stop === n) break;
    }
    return parts;
  }

  private assemble(a: Pieces, b: Pieces | null, addSpecial: boolean, padTo: number): BertEncoding {
    const enc: BertEncoding = { inputIds: [], tokenTypeIds: [], attentionMask: [], offsets: [], sequenceIds: [] };
    const special = (id: number, type: number): void => {
      enc.inputIds.push(id);
      enc.tokenTypeIds.push(type);
      enc.attentionMask.push(1);
      enc.offsets.push([0, 0]);
      enc.sequenceIds.push(null);
    };
    const sequence = (seq: Pieces, type: 0 | 1): void => {
      for (let i = 0; i < seq.ids.length; i++) {
        enc.inputIds.push(seq.ids[i] as number);
        enc.tokenTypeIds.push(type);
        enc.attentionMask.push(1);
        const [s, e] = seq.offsets[i] as [number, number];
        enc.offsets.push([s, e]);
        enc.sequenceIds.push(type);
      }
    };
    const cls = addSpecial ? this.specialId(this.clsToken, "encodePair") : -1;
    const sep = addSpecial ? this.specialId(this.sepToken, "encodePair") : -1;
    if (addSpecial) special(cls, 0);
    sequence(a, 0);
    if (addSpecial) special(sep, 0);
    if (b !== null) {
      sequence(b, 1);
      if (addSpecial) special(sep, 1);
    }
    if (enc.inputIds.length < padTo) {
      const pad = this.specialId(this.padToken, "encodePair");
      while (enc.inputIds.length < padTo) {
        enc.inputIds.push(pad);
        enc.tokenTypeIds.push(0);
        enc.attentionMask.push(0);
        enc.offsets.push([0, 0]);
        enc.sequenceIds.push(null);
      }
    }
    return enc;
  }

  // ---------------------------------------------------------------------------------------------
  // Decoding

  /**
   * Ids -> text as Hugging Face's WordPiece decoder gives it: tokens joined by spaces, except that a
   * "##" piece joins the token before it; special tokens left out unless `skipSpecialTokens` is false.
   * Lower-casing and accent stripping are not undone.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const cleanup = options.cleanup ?? true;
    const prefix = this.continuingSubwordPrefix;
    const specialIds = skip ? new Set(this.specialTokens.values()) : null;
    let out = "";
    let first = true;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const token = this.idToToken(id);
      if (token === undefined) throw badIdError(id, this.vocabSize, this.displayName);
      if (specialIds?.has(id)) continue;
      let piece: string;
      if (first) piece = token;
      else if (prefix !== "" && token.startsWith(prefix)) piece = token.slice(prefix.length);
      else piece = ` ${token}`;
      first = false;
      out += cleanup ? cleanupPiece(piece) : piece;
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Training

  /**
   * Learns a WordPiece vocabulary from `corpus` (one text or several) the way Hugging Face's
   * WordPieceTrainer does: the corpus goes through the basic tokenizer; every word starts as its
   * characters, the first as itself and the rest as continuations ("##c"); then the most frequent
   * adjacent pair of pieces is merged into a new token, again and again, until the vocabulary has
   * `vocabSize` tokens. Ids: the special tokens, then the characters (by code point), then the
   * continuation characters (by code point), then the merged tokens in the order learned. Ties between
   * equally frequent pairs go to the pair of smaller ids, so training is deterministic.
   */
  static train(corpus: string | Iterable<string>, options: WordPieceTrainOptions): WordPieceTokenizer {
    const where = "WordPieceTokenizer.train";
    if (!isRecord(options)) throw new Error(`${where}: options with at least vocabSize are required.`);
    const specialTokens = [...new Set(options.specialTokens ?? BERT_SPECIAL_TOKENS)];
    for (const t of specialTokens) {
      if (typeof t !== "string" || t.length === 0)
        throw new Error(`${where}: special tokens must be non-empty strings, got ${JSON.stringify(t)}.`);
    }
    const unkToken = options.unkToken ?? "[UNK]";
    if (!specialTokens.includes(unkToken)) {
      throw new Error(
        `${where}: the unknown token ${JSON.stringify(unkToken)} is not among specialTokens (${JSON.stringify(specialTokens)}); ` +
          "every WordPiece vocabulary needs it. Add it to specialTokens or name another with unkToken.",
      );
    }
    const { vocabSize } = options;
    if (!Number.isInteger(vocabSize) || vocabSize < specialTokens.length + 1 || vocabSize > PAIR_BASE) {
      throw new Error(
        `${where}: vocabSize must be an integer from ${specialTokens.length + 1} (the ${specialTokens.length} special tokens and at ` +
          `least one character) to ${PAIR_BASE}, got ${vocabSize}.`,
      );
    }
    const minFrequency = options.minFrequency ?? 2;
    if (!Number.isFinite(minFrequency) || minFrequency < 1)
      throw new Error(`${where}: minFrequency must be a number >= 1, got ${minFrequency}.`);
    const limitAlphabet = options.limitAlphabet ?? Number.POSITIVE_INFINITY;
    if (!(limitAlphabet >= 1)) throw new Error(`${where}: limitAlphabet must be a positive integer, got ${limitAlphabet}.`);
    const prefix = options.continuingSubwordPrefix ?? "##";

    // 1. Words and their counts; special tokens are cut out of the text first.
    const basic = new BertBasicTokenizer(options);
    const counts = new Map<string, number>();
    const escaped = [...specialTokens].sort((x, y) => y.length - x.length).map(escapeRegExp);
    const specialPattern = new RegExp(escaped.join("|"), "g");
    const countWord = (word: string): void => {
      counts.set(word, (counts.get(word) ?? 0) + 1);
    };
    for (const doc of typeof corpus === "string" ? [corpus] : corpus) {
      if (typeof doc !== "string") throw new Error(`${where}: the corpus must be a string or an iterable of strings, got a ${typeof doc}.`);
      for (const piece of doc.split(specialPattern)) basic.forEachWord(piece, countWord);
    }

    // 2. The alphabet: every character, or the limitAlphabet most frequent ones.
    const charCounts = new Map<number, number>();
    for (const [word, count] of counts) {
      for (const ch of word) {
        const cp = ch.codePointAt(0) as number;
        charCounts.set(cp, (charCounts.get(cp) ?? 0) + count);
      }
    }
    let alphabet = [...charCounts.keys()];
    if (alphabet.length > limitAlphabet) {
      alphabet = alphabet
        .sort((x, y) => (charCounts.get(y) as number) - (charCounts.get(x) as number) || x - y)
        .slice(0, Math.floor(limitAlphabet));
    }
    alphabet.sort((x, y) => x - y);
    const tokens: string[] = [...specialTokens];
    const ids = new Map<string, number>();
    const idOf = (token: string): number => {
      let id = ids.get(token);
      if (id === undefined) {
        id = tokens.length;
        tokens.push(token);
        ids.set(token, id);
      }
      return id;
    };
    for (let i = 0; i < tokens.length; i++) ids.set(tokens[i] as string, i);
    const inAlphabet = new Set(alphabet);
    for (const cp of alphabet) idOf(String.fromCodePoint(cp));
    const continued = new Set<number>();
    for (const word of counts.keys()) {
      let first = true;
      for (const ch of word) {
        const cp = ch.codePointAt(0) as number;
        if (!inAlphabet.has(cp)) continue;
        if (!first) continued.add(cp);
        first = false;
      }
    }
    for (const cp of [...continued].sort((x, y) => x - y)) idOf(prefix + String.fromCodePoint(cp));
    if (tokens.length > vocabSize) {
      throw new Error(
        `${where}: vocabSize ${vocabSize} is too small: the special tokens and the corpus's characters (alone and as continuations) ` +
          `already take ${tokens.length} ids. Raise vocabSize, or pass limitAlphabet to keep only the most frequent characters.`,
      );
    }

    // 3. Words as piece ids; then merges.
    const words: Int32Array[] = [];
    const freqs: number[] = [];
    for (const [word, count] of counts) {
      const syms: number[] = [];
      for (const ch of word) {
        if (!inAlphabet.has(ch.codePointAt(0) as number)) continue;
        syms.push(ids.get(syms.length === 0 ? ch : prefix + ch) as number);
      }
      if (syms.length >= 2) {
        words.push(Int32Array.from(syms));
        freqs.push(count);
      }
    }
    const merger = new PairMerger(words, freqs);
    while (tokens.length < vocabSize) {
      const best = merger.popBest(minFrequency);
      if (best === null) break;
      const left = Math.floor(best / PAIR_BASE);
      const right = best - left * PAIR_BASE;
      const merged = (tokens[left] as string) + (tokens[right] as string).slice(prefix.length);
      merger.merge(left, right, idOf(merged));
    }
    return new WordPieceTokenizer(tokens, { ...options, specialTokens });
  }
}

// -----------------------------------------------------------------------------------------------
// Helpers

/** The lines of a vocab.txt as tokens (trailing white space and "\r" trimmed, as `tokenizers` does). */
export function parseVocabTxt(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.map((line) => line.trimEnd());
}

function vocabRecordToList(vocab: Record<string, number>, where: string): string[] {
  if (!isRecord(vocab)) throw new Error(`${where}: the vocabulary must be an array of tokens (id = index) or an object token -> id.`);
  const tokens: string[] = [];
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || id < 0)
      throw new Error(`${where}: token ${JSON.stringify(token)} has id ${id}; ids must be integers from 0.`);
    if (tokens[id] !== undefined)
      throw new Error(`${where}: id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(token)}.`);
    tokens[id] = token;
  }
  for (let id = 0; id < tokens.length; id++) {
    if (tokens[id] === undefined)
      throw new Error(`${where}: no token has id ${id}; ids must run from 0 to ${tokens.length - 1} without gaps.`);
  }
  return tokens;
}

function stringOption(value: unknown, fallback: string, name: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value.length === 0) {
    throw new Error(`WordPieceTokenizer: option ${name} must be a non-empty string (the token's text), got ${JSON.stringify(value)}.`);
  }
  return value;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** Code points in `s`, counting no further than `limit`. */
function codePointCount(s: string, limit: number): number {
  let count = 0;
  for (let i = 0; i < s.length && count < limit; i++) {
    if (!isLowSurrogate(s.charCodeAt(i)) || i === 0 || !isHighSurrogate(s.charCodeAt(i - 1))) count++;
  }
  return count;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** Original-text span of units [a, b) of a word that starts at `start`. */
function spanOf(start: number, alignment: WordAlignment | null, a: number, b: number): [number, number] {
  if (alignment === null) return [start + a, start + b];
  return [alignment.starts[a] as number, alignment.ends[b - 1] as number];
}

/** Hugging Face's WordPiece decoder clean-up, applied (as there) to each token with its leading space. */
function cleanupPiece(piece: string): string {
  return piece
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" do not", " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

// -----------------------------------------------------------------------------------------------
// Merge training: pair counts kept up to date incrementally (only words holding the merged pair are
// touched), the best pair from a max-heap whose stale entries are skipped when popped.

// Pair (a, b) is keyed as a * PAIR_BASE + b, so comparing keys compares (a, b) lexicographically.
const PAIR_BASE = 2 ** 21;

class PairMerger {
  private readonly counts = new Map<number, number>();
  // pair -> words that held it when it was counted (may be stale; merge() re-checks each word).
  private readonly where = new Map<number, number[]>();
  private readonly heapCounts: number[] = [];
  private readonly heapKeys: number[] = [];
  private readonly visited: Int32Array;
  private stamp = 0;

  constructor(
    private readonly words: Int32Array[],
    private readonly freqs: number[],
  ) {
    for (let w = 0; w < words.length; w++) this.addPairs(w, 1);
    this.visited = new Int32Array(words.length).fill(-1);
    for (const [key, count] of this.counts) this.push(count, key);
  }

  /** The most frequent pair with count >= minFrequency (ties: smallest ids), removed; or null. */
  popBest(minFrequency: number): number | null {
    while (this.heapKeys.length > 0) {
      const count = this.heapCounts[0] as number;
      const key = this.heapKeys[0] as number;
      this.pop();
      if (this.counts.get(key) !== count) continue; // stale
      if (count < minFrequency) return null;
      return key;
    }
    return null;
  }

  /** Replaces every (left, right) in the words by `id`. */
  merge(left: number, right: number, id: number): void {
    const key = left * PAIR_BASE + right;
    const list = this.where.get(key) ?? [];
    this.where.delete(key);
    const stamp = this.stamp++;
    const changed = new Set<number>();
    for (const w of list) {
      if (this.visited[w] === stamp) continue;
      this.visited[w] = stamp;
      const syms = this.words[w] as Int32Array;
      let found = false;
      for (let i = 0; i + 1 < syms.length; i++) {
        if (syms[i] === left && syms[i + 1] === right) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      this.addPairs(w, -1, changed);
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (syms[i] === left && syms[i + 1] === right && i + 1 < syms.length) {
          out.push(id);
          i++;
        } else {
          out.push(syms[i] as number);
        }
      }
      this.words[w] = Int32Array.from(out);
      this.addPairs(w, 1, changed);
    }
    this.counts.delete(key);
    for (const k of changed) {
      const c = this.counts.get(k);
      if (c !== undefined && c > 0) this.push(c, k);
    }
  }

  private addPairs(w: number, sign: 1 | -1, changed?: Set<number>): void {
    const syms = this.words[w] as Int32Array;
    const f = (this.freqs[w] as number) * sign;
    for (let i = 0; i + 1 < syms.length; i++) {
      const key = (syms[i] as number) * PAIR_BASE + (syms[i + 1] as number);
      const c = (this.counts.get(key) ?? 0) + f;
      if (c <= 0) this.counts.delete(key);
      else this.counts.set(key, c);
      if (sign > 0) {
        let list = this.where.get(key);
        if (list === undefined) {
          list = [];
          this.where.set(key, list);
        }
        if (list[list.length - 1] !== w) list.push(w);
      }
      changed?.add(key);
    }
  }

  // Max-heap on (count desc, key asc).
  private better(i: number, j: number): boolean {
    const ci = this.heapCounts[i] as number;
    const cj = this.heapCounts[j] as number;
    return ci > cj || (ci === cj && (this.heapKeys[i] as number) < (this.heapKeys[j] as number));
  }

  private swap(i: number, j: number): void {
    const c = this.heapCounts[i] as number;
    this.heapCounts[i] = this.heapCounts[j] as number;
    this.heapCounts[j] = c;
    const k = this.heapKeys[i] as number;
    this.heapKeys[i] = this.heapKeys[j] as number;
    this.heapKeys[j] = k;
  }

  private push(count: number, key: number): void {
    this.heapCounts.push(count);
    this.heapKeys.push(key);
    let i = this.heapKeys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.better(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private pop(): void {
    const last = this.heapKeys.length - 1;
    this.swap(0, last);
    this.heapCounts.pop();
    this.heapKeys.pop();
    const n = this.heapKeys.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.better(r, l) ? r : l;
      if (!this.better(child, i)) break;
      this.swap(i, child);
      i = child;
    }
  }
}

registerTokenizer(WordPieceTokenizer);
