// The common tokenizer contract, the special-token handling every tokenizer shares, and the registry
// that turns saved JSON back into a tokenizer.
//
// A tokenizer is saved next to a model as `tokenizer.json`. Each tokenizer class registers itself under
// the `type` its JSON carries, so `loadTokenizer` needs no list of classes (and no if-chain): adding a
// tokenizer means one `registerTokenizer` call in its own module.

/** Which special-token strings `encode` may turn into their single id. Mirrors tiktoken's arguments. */
export interface EncodeOptions {
  /** Special tokens recognised in the text and encoded as one id each. Default: none. */
  readonly allowedSpecial?: "all" | Iterable<string>;
  /**
   * Special tokens whose appearance in the text is an error. Default "all", meaning every special token
   * not in `allowedSpecial`: text from users then cannot smuggle in control tokens such as
   * `<|endoftext|>`. Pass `[]` to encode special-token strings as ordinary text instead.
   */
  readonly disallowedSpecial?: "all" | Iterable<string>;
}

/** Text <-> token ids. */
export interface Tokenizer {
  /** The key this tokenizer's JSON is registered under (see `registerTokenizer`). */
  readonly type: string;
  /** Number of ids, special tokens included: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** Special-token string -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  encode(text: string, options?: EncodeOptions): number[];
  /** The ids of a prompt to generate from: `encode` plus what the model expects around it (Llama's
   *  BOS, from its tokenizer.json post-processor). Absent: the prompt is just `encode(text)`. */
  encodePrompt?(text: string): number[];
  /** Ids -> text. Accepts typed arrays, so a model's Int32Array output can be decoded directly. */
  decode(ids: ArrayLike<number>): string;
  /** Registers special tokens (new ones get the next free ids) and returns their ids, in order. */
  addSpecialTokens(tokens: readonly string[]): number[];
  /** A JSON-ready object that `loadTokenizer` turns back into an equal tokenizer. */
  toJSON(): object;
  /** tokenizer_config.json's settings beyond the vocabulary: the chat template and which special
   *  tokens are BOS, EOS and padding (see config.ts). Saved beside tokenizer.json, not in it. */
  config?: TokenizerConfig;
}

/** What tokenizer_config.json adds to a tokenizer, in Hugging Face's key names. */
export interface TokenizerConfig {
  /** A Jinja chat template (see src/chat/template.ts); absent: the tokenizer has none. */
  chat_template?: string;
  bos_token?: string;
  /** The end-of-sequence token; for a chat model, the end of a turn ("<|im_end|>" in ChatML). */
  eos_token?: string;
  pad_token?: string;
  unk_token?: string;
}

/** What the registry needs from a tokenizer class. */
export interface TokenizerClass {
  /** The JSON `type` this class reads (see `jsonTypeOf`). */
  readonly type: string;
  fromJSON(json: unknown): Tokenizer;
}

const registry = new Map<string, TokenizerClass>();

/** Makes `loadTokenizer` hand JSON whose type is `cls.type` to `cls.fromJSON`. */
export function registerTokenizer(cls: TokenizerClass): void {
  const existing = registry.get(cls.type);
  if (existing !== undefined && existing !== cls) {
    throw new Error(`registerTokenizer: type "${cls.type}" is already registered to another class; pick a different type.`);
  }
  registry.set(cls.type, cls);
}

/**
 * The registry key of saved tokenizer JSON: its top-level `type` (moxing's own layouts, e.g. "char"), or
 * else `model.type`, which is where Hugging Face's tokenizer.json names its algorithm (e.g. "BPE").
 */
export function jsonTypeOf(json: unknown): string | undefined {
  if (!isRecord(json)) return undefined;
  if (typeof json.type === "string") return json.type;
  const model = json.model;
  if (isRecord(model) && typeof model.type === "string") return model.type;
  return undefined;
}

/** Rebuilds a tokenizer from `toJSON()` output, given as an object or as JSON text. */
export function loadTokenizer(json: unknown): Tokenizer {
  const parsed: unknown = typeof json === "string" ? JSON.parse(json) : json;
  const type = jsonTypeOf(parsed);
  if (type === undefined) {
    throw new Error(
      'loadTokenizer: the JSON has no "type" (nor a Hugging Face "model.type"), so it is not saved tokenizer JSON. ' +
        "Pass the object produced by tokenizer.toJSON() (or the text of tokenizer.json).",
    );
  }
  const cls = registry.get(type);
  if (cls === undefined) {
    const known = [...registry.keys()].map((k) => `"${k}"`).join(", ") || "none";
    throw new Error(
      `loadTokenizer: no tokenizer is registered for type "${type}" (registered: ${known}). ` +
        'Import the tokenizers from "src/tokenizers/index.js" so that all built-in types are registered, ' +
        "or call registerTokenizer() for a custom one.",
    );
  }
  return cls.fromJSON(parsed);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** tokenizer.json's added_tokens as [content, id] pairs; moxing supports special added tokens only.
 *  `where` names the reader in errors. */
export function specialAddedTokens(json: Record<string, unknown>, where: string): [string, number][] {
  const out: [string, number][] = [];
  for (const entry of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    if (!isRecord(entry) || typeof entry.content !== "string" || typeof entry.id !== "number") {
      throw new Error(`${where}: bad added_tokens entry ${JSON.stringify(entry)}; expected { id, content, special }.`);
    }
    if (entry.special !== true) {
      throw new Error(
        `${where}: added token ${JSON.stringify(entry.content)} (id ${entry.id}) is not special; moxing supports only special added tokens.`,
      );
    }
    out.push([entry.content, entry.id]);
  }
  return out;
}

/** Throws the standard error for an id outside the vocabulary. */
export function badIdError(id: unknown, vocabSize: number, what: string): Error {
  return new Error(
    `${what}.decode: token id ${String(id)} is not valid: ids must be integers in [0, ${vocabSize - 1}] ` +
      `(the vocabulary has ${vocabSize} ids). Check that the ids come from a model using this tokenizer.`,
  );
}

/** Escapes a literal string for use inside a RegExp. */
export function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/**
 * Special tokens and the splitting of text around them; concrete tokenizers supply the vocabulary
 * (`vocabSize`, `encodeOrdinary`, `decode`) and how a new special token is stored.
 */
export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly type: string;
  abstract get vocabSize(): number;
  abstract decode(ids: ArrayLike<number>): string;
  abstract toJSON(): object;

  /** Encodes text that contains no special tokens (or in which they are to be read as plain text). */
  protected abstract encodeOrdinary(text: string, out: number[]): void;

  /** Stores a new special token under `id` (which is always the current vocabSize). */
  protected abstract storeSpecialToken(content: string, id: number): void;

  /** Name used in error messages. */
  protected abstract readonly displayName: string;

  config: TokenizerConfig = {};

  private readonly special = new Map<string, number>();
  // The splitter for allowedSpecial "all", rebuilt lazily after addSpecialTokens.
  private allSpecialPattern: RegExp | null = null;

  get specialTokens(): ReadonlyMap<string, number> {
    return this.special;
  }

  addSpecialTokens(tokens: readonly string[]): number[] {
    return tokens.map((content) => {
      if (typeof content !== "string" || content.length === 0) {
        throw new Error(`${this.displayName}.addSpecialTokens: special tokens must be non-empty strings, got ${JSON.stringify(content)}.`);
      }
      const existing = this.special.get(content);
      if (existing !== undefined) return existing;
      const id = this.vocabSize;
      this.storeSpecialToken(content, id);
      this.registerSpecial(content, id);
      return id;
    });
  }

  /** Records a special token that the subclass already holds at `id` (used when loading). */
  protected registerSpecial(content: string, id: number): void {
    if (typeof content !== "string" || content.length === 0) {
      throw new Error(`${this.displayName}: special tokens must be non-empty strings, got ${JSON.stringify(content)}.`);
    }
    this.special.set(content, id);
    this.allSpecialPattern = null;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new TypeError(`${this.displayName}.encode: expected a string, got ${text === null ? "null" : typeof text}.`);
    }
    const out: number[] = [];
    if (this.special.size === 0 && options.allowedSpecial === undefined && options.disallowedSpecial === undefined) {
      this.encodeOrdinary(text, out);
      return out;
    }
    const allowed = this.resolveSpecialSet(options.allowedSpecial ?? [], "allowedSpecial");
    const disallowed =
      options.disallowedSpecial === undefined || options.disallowedSpecial === "all"
        ? [...this.special.keys()].filter((t) => !allowed.has(t))
        : this.resolveSpecialSet(options.disallowedSpecial, "disallowedSpecial");
    for (const token of disallowed) {
      if (!allowed.has(token) && text.includes(token)) {
        throw new Error(
          `${this.displayName}.encode: the text contains the special token ${JSON.stringify(token)} (id ${this.special.get(token)}), ` +
            "which encode() refuses unless it is allowed, so that ordinary text cannot inject control tokens. " +
            `Pass { allowedSpecial: [${JSON.stringify(token)}] } (or "all") to encode it as its special id, ` +
            "or { disallowedSpecial: [] } to encode it as ordinary text.",
        );
      }
    }
    if (allowed.size === 0) {
      this.encodeOrdinary(text, out);
      return out;
    }
    const pattern = allowed.size === this.special.size ? this.allPattern() : buildSpecialPattern(allowed);
    pattern.lastIndex = 0;
    let start = 0;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      if (m.index > start) this.encodeOrdinary(text.slice(start, m.index), out);
      out.push(this.special.get(m[0]) as number);
      start = m.index + m[0].length;
    }
    if (start < text.length) this.encodeOrdinary(text.slice(start), out);
    return out;
  }

  private allPattern(): RegExp {
    this.allSpecialPattern ??= buildSpecialPattern(this.special.keys());
    return this.allSpecialPattern;
  }

  private resolveSpecialSet(spec: "all" | Iterable<string>, option: string): Set<string> {
    if (spec === "all") return new Set(this.special.keys());
    const set = new Set<string>();
    for (const token of spec) {
      if (!this.special.has(token)) {
        const known = [...this.special.keys()].map((t) => JSON.stringify(t)).join(", ") || "none";
        throw new Error(
          `${this.displayName}.encode: ${option} names ${JSON.stringify(token)}, which is not a special token of this tokenizer ` +
            `(its special tokens: ${known}). Register it first with addSpecialTokens([${JSON.stringify(token)}]).`,
        );
      }
      set.add(token);
    }
    return set;
  }
}

// Longest tokens first, so that of two special tokens where one is a prefix of the other
// ("<|im|>" and "<|im|>x") the longer one wins, whatever order they were added in.
function buildSpecialPattern(tokens: Iterable<string>): RegExp {
  const sorted = [...tokens].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
  return new RegExp(sorted.map(escapeRegExp).join("|"), "g");
}
