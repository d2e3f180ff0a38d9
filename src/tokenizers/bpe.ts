// ByteLevelBPE: GPT-2-style byte-level byte-pair encoding.
//
// Text is cut into pre-tokens with GPT-2's regex, each pre-token is turned into UTF-8 bytes (one token
// per byte to start with), and then learned merges are applied, lowest rank (= learned earliest) first,
// until none applies. Because the 256 single bytes are all in the vocabulary, any text can be encoded
// and decode(encode(s)) === s for every well-formed string.
//
// Strings with unpaired UTF-16 surrogates cannot be written as UTF-8. encode() replaces each one with
// U+FFFD (as TextEncoder and tiktoken do) instead of throwing, so such a string comes back with U+FFFD
// in those places. CharTokenizer, which works on code points rather than bytes, keeps them as they are.
//
// Saved JSON follows Hugging Face tokenizers' tokenizer.json layout (model.type "BPE", a ByteLevel
// pre-tokenizer and decoder, added_tokens for the special tokens), so the file can be read by
// `tokenizers`/`transformers`, and GPT-2-style tokenizer.json files from there can be read here.

import { FILE_LIMITS, parseJSON, readTextFileChecked } from "../io/files.js";
import { isRecord } from "../util/json.js";
import { type BPETrainOptions, trainMerges } from "./bpe-train.js";
import {
  BYTE_TO_CHAR,
  byteLevelToBytes,
  bytesToByteLevel,
  GPT2_SPLIT_PATTERN,
  toWellFormed,
  utf8Decode,
  utf8Encode,
  utf8EncodeInto,
} from "./bytes.js";
import { MergeTable } from "./merges.js";
import { PAIR_BASE } from "./pair-stats.js";
import { BaseTokenizer, badIdError, registerTokenizer, specialAddedTokens, type Tokenizer } from "./tokenizer.js";

export type { BPETrainOptions } from "./bpe-train.js";

/** A merge as two vocabulary strings, or in vocab.bpe / legacy tokenizer.json form "left right". */
export type MergeSpec = readonly [string, string] | string;

/** Hugging Face tokenizer.json layout, as far as byte-level BPE uses it. */
export interface HFByteLevelBPEJSON {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: HFAddedToken[];
  normalizer: null;
  pre_tokenizer: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  post_processor: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  decoder: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: string;
    end_of_word_suffix: string;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: string[];
  };
}

export interface HFAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

// The per-word cache holds the ids of recently seen pre-tokens. It is cleared when full, which keeps
// memory bounded when encoding a large corpus; common words are back in it almost at once.
const CACHE_LIMIT = 100_000;
const CACHE_MAX_WORD = 64;

export class ByteLevelBPE extends BaseTokenizer {
  /** Registry key: Hugging Face's `model.type`. */
  static readonly type = "BPE";
  readonly type = ByteLevelBPE.type;
  protected readonly displayName = "ByteLevelBPE";

  /** id -> vocabulary string: byte-level spelling for regular tokens, the text itself for special ones. */
  private readonly vocab: string[] = [];
  /** Byte-level spelling -> id, for regular tokens. */
  private readonly regularIds = new Map<string, number>();
  /** id -> the bytes decode() emits. */
  private readonly idBytes: Uint8Array[] = [];
  /** byte -> id of the single-byte token. */
  private readonly byteIds = new Int32Array(256);
  /** Merges in rank order, as [left, right] vocabulary strings (for toJSON). */
  private readonly mergeList: [string, string][] = [];
  private readonly merges = new MergeTable();

  private readonly pattern = new RegExp(GPT2_SPLIT_PATTERN, "gu");
  private readonly cache = new Map<string, number[]>();
  // Scratch buffers reused across words.
  private bytesBuf = new Uint8Array(256);
  private symBuf = new Int32Array(256);

  /**
   * @param vocab vocabulary string -> id. Regular tokens are spelled in GPT-2's byte alphabet (see
   *   bytes.ts) and must include all 256 single bytes. May also list the special tokens (as GPT-2's
   *   encoder.json does), with the same ids as in `specialTokens`.
   * @param merges in priority order; each merge's result (left + right) must be in the vocabulary.
   * @param specialTokens special-token text -> id.
   * Ids of regular and special tokens together must be exactly 0..n-1.
   */
  constructor(
    vocab: Iterable<readonly [string, number]> | Readonly<Record<string, number>>,
    merges: Iterable<MergeSpec>,
    specialTokens: Iterable<readonly [string, number]> = [],
  ) {
    super();
    const specials = new Map<string, number>();
    for (const [content, id] of specialTokens) specials.set(content, id);
    const specialIds = new Set(specials.values());
    const entries: Iterable<readonly [string, number]> =
      Symbol.iterator in vocab ? (vocab as Iterable<readonly [string, number]>) : Object.entries(vocab);

    const idOwner: (string | undefined)[] = [];
    const claim = (token: string, id: number): void => {
      // Ids index arrays and must fit the pair keys (left * PAIR_BASE + right) of the merge table.
      if (!Number.isInteger(id) || id < 0 || id >= PAIR_BASE) {
        throw new Error(`ByteLevelBPE: token ${JSON.stringify(token)} has id ${id}; ids must be integers from 0 to ${PAIR_BASE - 1}.`);
      }
      const other = idOwner[id];
      if (other !== undefined && other !== token) {
        throw new Error(`ByteLevelBPE: id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}.`);
      }
      idOwner[id] = token;
    };
    for (const [token, id] of entries) {
      const specialId = specials.get(token);
      if (specialId !== undefined && specialId === id) continue; // listed again below
      if (specialIds.has(id)) {
        throw new Error(`ByteLevelBPE: id ${id} belongs to a special token but the vocabulary gives it to ${JSON.stringify(token)}.`);
      }
      const bytes = byteLevelToBytes(token);
      if (bytes === null || bytes.length === 0) {
        throw new Error(
          `ByteLevelBPE: vocabulary entry ${JSON.stringify(token)} (id ${id}) is not spelled in GPT-2's byte alphabet, so it is not ` +
            "a byte-level BPE token. If it is a special token, pass it in specialTokens.",
        );
      }
      if (this.regularIds.has(token)) {
        throw new Error(
          `ByteLevelBPE: vocabulary entry ${JSON.stringify(token)} appears twice (ids ${this.regularIds.get(token)} and ${id}).`,
        );
      }
      claim(token, id);
      this.regularIds.set(token, id);
      this.vocab[id] = token;
      this.idBytes[id] = bytes;
    }
    for (const [content, id] of specials) {
      claim(content, id);
      this.vocab[id] = content;
      this.idBytes[id] = utf8Encode(content);
    }
    for (let id = 0; id < idOwner.length; id++) {
      if (idOwner[id] === undefined) {
        throw new Error(`ByteLevelBPE: no token has id ${id}; ids must run from 0 to ${idOwner.length - 1} without gaps.`);
      }
    }
    for (let b = 0; b < 256; b++) {
      const id = this.regularIds.get(BYTE_TO_CHAR[b] as string);
      if (id === undefined) {
        throw new Error(
          `ByteLevelBPE: the vocabulary lacks the single-byte token ${JSON.stringify(BYTE_TO_CHAR[b])} (byte 0x${b.toString(16).padStart(2, "0")}); ` +
            "a byte-level vocabulary needs all 256 so that every text can be encoded.",
        );
      }
      this.byteIds[b] = id;
    }

    let rank = 0;
    for (const spec of merges) {
      const [left, right] = parseMerge(spec, rank);
      const leftId = this.regularIds.get(left);
      const rightId = this.regularIds.get(right);
      const resultId = this.regularIds.get(left + right);
      if (leftId === undefined || rightId === undefined || resultId === undefined) {
        const missing = leftId === undefined ? left : rightId === undefined ? right : left + right;
        throw new Error(
          `ByteLevelBPE: merge ${rank} (${JSON.stringify(left)} + ${JSON.stringify(right)}) uses ${JSON.stringify(missing)}, which is not in the ` +
            "vocabulary. The merges and the vocabulary must come from the same tokenizer.",
        );
      }
      if (this.merges.add(leftId, rightId, resultId)) this.mergeList.push([left, right]);
      rank++;
    }
    for (const [content, id] of specials) this.registerSpecial(content, id);
  }

  /**
   * Learns a vocabulary from `corpus` (one text or several): 256 byte tokens (id = byte value), then
   * merged tokens in the order learned, then `specialTokens`. At each step the most frequent adjacent
   * pair is merged; ties go to the pair with the smaller (left id, right id), so training is deterministic.
   */
  static train(corpus: string | Iterable<string>, options: BPETrainOptions): ByteLevelBPE {
    const specialTokens = [...new Set(options.specialTokens ?? [])];
    const { tokens, merges } = trainMerges(corpus, { ...options, specialTokens });
    const spellings = tokens.map((bytes) => bytesToByteLevel(bytes));
    return new ByteLevelBPE(
      spellings.map((s, id): [string, number] => [s, id]),
      merges.map(([a, b]): [string, string] => [spellings[a] as string, spellings[b] as string]),
      specialTokens.map((content, i): [string, number] => [content, tokens.length + i]),
    );
  }

  /**
   * GPT-2's tokenizer from its two files: encoder.json (token -> id) and vocab.bpe (merges).
   * Entries of encoder.json that no merge produces and that are not single bytes (GPT-2 has one,
   * "<|endoftext|>" = 50256) become special tokens.
   */
  static fromGPT2Files(encoderJsonPath: string, vocabBpePath: string): ByteLevelBPE {
    const limit = { maxBytes: FILE_LIMITS.tokenizer };
    const encoder = parseJSON(readTextFileChecked(encoderJsonPath, limit), encoderJsonPath);
    return ByteLevelBPE.fromGPT2(encoder as Record<string, number>, readTextFileChecked(vocabBpePath, limit));
  }

  /** As fromGPT2Files, from the parsed encoder.json and the text (or lines, or pairs) of vocab.bpe. */
  static fromGPT2(encoder: Readonly<Record<string, number>>, bpeMerges: string | readonly MergeSpec[]): ByteLevelBPE {
    if (!isRecord(encoder)) throw new Error("ByteLevelBPE.fromGPT2: encoder must be the object parsed from encoder.json (token -> id).");
    const merges = typeof bpeMerges === "string" ? parseVocabBpe(bpeMerges) : bpeMerges;
    const produced = new Set<string>(BYTE_TO_CHAR);
    for (let i = 0; i < merges.length; i++) {
      const [left, right] = parseMerge(merges[i] as MergeSpec, i);
      produced.add(left + right);
    }
    const specials: [string, number][] = [];
    for (const [token, id] of Object.entries(encoder)) {
      if (!produced.has(token)) specials.push([token, id]);
    }
    return new ByteLevelBPE(encoder, merges, specials);
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** Number of merges (GPT-2: 50000). */
  get mergeCount(): number {
    return this.mergeList.length;
  }

  /** The vocabulary string of an id (byte-level spelling, e.g. "Ġthe"; special tokens as written). */
  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  /** The id of a vocabulary string (byte-level spelling or special-token text). */
  tokenToId(token: string): number | undefined {
    return this.specialTokens.get(token) ?? this.regularIds.get(token);
  }

  protected encodeOrdinary(text: string, out: number[]): void {
    const safe = toWellFormed(text);
    const pattern = this.pattern;
    const cache = this.cache;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(safe); m !== null; m = pattern.exec(safe)) {
      const word = m[0];
      const cached = cache.get(word);
      if (cached !== undefined) {
        for (let i = 0; i < cached.length; i++) out.push(cached[i] as number);
        continue;
      }
      const ids = this.encodeWord(word);
      for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
      if (word.length <= CACHE_MAX_WORD) {
        if (cache.size >= CACHE_LIMIT) cache.clear();
        cache.set(word, ids);
      }
    }
  }

  /** BPE of one pre-token. */
  private encodeWord(word: string): number[] {
    let n = utf8EncodeInto(word, this.bytesBuf);
    if (n < 0) {
      this.bytesBuf = new Uint8Array(word.length * 3 + 16); // UTF-8 needs at most 3 bytes per UTF-16 unit
      n = utf8EncodeInto(word, this.bytesBuf);
    }
    if (n === 1) return [this.byteIds[this.bytesBuf[0] as number] as number];
    if (this.symBuf.length < n) this.symBuf = new Int32Array(this.bytesBuf.length);
    const sym = this.symBuf;
    for (let i = 0; i < n; i++) sym[i] = this.byteIds[this.bytesBuf[i] as number] as number;
    return this.merges.apply(sym, n);
  }

  /** The UTF-8 bytes of the ids, for streaming output where a character may span two tokens. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const bytes = Number.isInteger(id) ? this.idBytes[id] : undefined;
      if (bytes === undefined) throw badIdError(id, this.vocabSize, this.displayName);
      total += bytes.length;
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.idBytes[ids[i] as number] as Uint8Array;
      out.set(bytes, offset);
      offset += bytes.length;
    }
    return out;
  }

  /** Ids -> text. Byte sequences that are not valid UTF-8 (a character cut between tokens) give U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return utf8Decode(this.decodeBytes(ids));
  }

  protected storeSpecialToken(content: string, id: number): void {
    this.vocab[id] = content;
    this.idBytes[id] = utf8Encode(content);
  }

  /** Hugging Face tokenizer.json layout (see HFByteLevelBPEJSON). */
  toJSON(): HFByteLevelBPEJSON {
    const byteLevel = { type: "ByteLevel" as const, use_regex: true };
    const vocabEntries: [string, number][] = [...this.regularIds];
    // Hugging Face keeps special tokens in model.vocab as well (GPT-2's has "<|endoftext|>": 50256), unless
    // the text collides with a regular token's spelling, in which case added_tokens alone carries it.
    for (const [content, id] of this.specialTokens) {
      if (!this.regularIds.has(content)) vocabEntries.push([content, id]);
    }
    vocabEntries.sort((x, y) => x[1] - y[1]);
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [...this.specialTokens].map(([content, id]) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { ...byteLevel, add_prefix_space: false, trim_offsets: true },
      post_processor: { ...byteLevel, add_prefix_space: true, trim_offsets: false },
      decoder: { ...byteLevel, add_prefix_space: true, trim_offsets: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        // Object.fromEntries defines own properties, so a token spelled "__proto__" is stored safely.
        vocab: Object.fromEntries(vocabEntries),
        // "left right" strings: the form every version of tokenizers reads. Byte-level spellings never
        // contain a space (the space byte is spelled "Ġ"), so the split is unambiguous.
        merges: this.mergeList.map(([left, right]) => `${left} ${right}`),
      },
    };
  }

  /** Reads toJSON() output, or a Hugging Face tokenizer.json for a GPT-2-style byte-level BPE. */
  static fromJSON(json: unknown): ByteLevelBPE {
    const where = "ByteLevelBPE.fromJSON";
    if (!isRecord(json) || !isRecord(json.model) || json.model.type !== "BPE") {
      throw new Error(`${where}: expected a Hugging Face tokenizer.json with model.type "BPE".`);
    }
    const model = json.model;
    const unsupported = (what: string, value: unknown): Error =>
      new Error(
        `${where}: ${what} is ${JSON.stringify(value)}; moxing reads only GPT-2-style byte-level BPE ` +
          "(ByteLevel pre-tokenizer with its regex and no prefix space, no normalizer, no dropout, no subword prefix/suffix).",
      );
    if (json.normalizer != null) throw unsupported("normalizer", json.normalizer);
    const pre = json.pre_tokenizer;
    if (!isRecord(pre) || pre.type !== "ByteLevel" || pre.add_prefix_space === true || pre.use_regex === false) {
      throw unsupported("pre_tokenizer", pre);
    }
    if (json.decoder != null && (!isRecord(json.decoder) || json.decoder.type !== "ByteLevel")) throw unsupported("decoder", json.decoder);
    // The ByteLevel post-processor only adjusts offsets; others (e.g. TemplateProcessing) would add
    // tokens such as BOS around the text, which encode() does not do.
    if (json.post_processor != null && (!isRecord(json.post_processor) || json.post_processor.type !== "ByteLevel")) {
      throw unsupported("post_processor", json.post_processor);
    }
    if (model.dropout != null) throw unsupported("model.dropout", model.dropout);
    if (model.continuing_subword_prefix) throw unsupported("model.continuing_subword_prefix", model.continuing_subword_prefix);
    if (model.end_of_word_suffix) throw unsupported("model.end_of_word_suffix", model.end_of_word_suffix);
    if (!isRecord(model.vocab) || !Array.isArray(model.merges)) {
      throw new Error(`${where}: model.vocab must be an object (token -> id) and model.merges an array.`);
    }
    const specials = specialAddedTokens(json, where);
    return new ByteLevelBPE(model.vocab as Record<string, number>, model.merges as MergeSpec[], specials);
  }
}

/** The merges listed in a vocab.bpe file (a "#version" line, then one "left right" per line). */
export function parseVocabBpe(text: string): string[] {
  return text.split(/\r?\n/).filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith("#version")));
}

function parseMerge(spec: MergeSpec, rank: number): readonly [string, string] {
  if (typeof spec !== "string") {
    if (Array.isArray(spec) && spec.length === 2 && typeof spec[0] === "string" && typeof spec[1] === "string") return spec;
  } else {
    const parts = spec.split(" ");
    if (parts.length === 2 && parts[0] !== "" && parts[1] !== "") return [parts[0] as string, parts[1] as string];
  }
  throw new Error(`ByteLevelBPE: merge ${rank} is ${JSON.stringify(spec)}; expected "left right" or ["left", "right"].`);
}

/** A reader for tokenizer.json pipelines other than GPT-2's (Llama 3, Qwen, SentencePiece-style BPE);
 *  hf-tokenizer.ts registers HFTokenizer here, so loadTokenizer reads every BPE tokenizer.json. */
let otherBPEPipelines: { handles(json: unknown): boolean; fromJSON(json: unknown): Tokenizer } | null = null;
export function registerBPEPipelines(reader: { handles(json: unknown): boolean; fromJSON(json: unknown): Tokenizer }): void {
  otherBPEPipelines = reader;
}

registerTokenizer({
  type: ByteLevelBPE.type,
  fromJSON: (json: unknown): Tokenizer =>
    otherBPEPipelines?.handles(json) ? otherBPEPipelines.fromJSON(json) : ByteLevelBPE.fromJSON(json),
});
