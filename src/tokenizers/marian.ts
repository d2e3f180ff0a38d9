// MarianTokenizer: the tokenizer of Marian checkpoints on the Hub (Helsinki-NLP/opus-mt-*), as
// transformers' tokenization_marian.py (v4.31) runs it, from the files those directories ship:
//   source.spm, target.spm   SentencePiece unigram models of the two languages (sentencepiece.ts)
//   vocab.json               piece -> id of the model's (joint) vocabulary; target_vocab.json too when
//                            tokenizer_config.json says separate_vocabs
//   tokenizer_config.json    source_lang, target_lang, separate_vocabs, ...
// Source text: a leading language code (">>es<<") is kept as one token and every such code removed
// from the text, the rest is segmented by the source model, and each piece looked up in vocab.json
// (<unk> when absent). Target text (encodeTarget, for labels) uses the target model. Decoding maps
// ids back to pieces and joins them with the target model (special tokens kept as words, as
// transformers does without skip_special_tokens) and tidies the spaces as transformers'
// clean_up_tokenization does (" ," -> ","). encode() adds no </s>: the trainer and generate()
// add it, as they do for every tokenizer. test/tokenizers/sentencepiece.test.ts checks ids and text
// against transformers' MarianTokenizer on the files of tools/marian_spm.py.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isRecord } from "../util/json.js";
import { parseSentencePieceModel, SentencePieceError, SentencePieceUnigram } from "./sentencepiece.js";
import { BaseTokenizer, badIdError, type EncodeOptions, registerTokenizer } from "./tokenizer.js";

export const MARIAN_SPM_FILES = { source: "source.spm", target: "target.spm", vocab: "vocab.json", targetVocab: "target_vocab.json" };
const CONFIG_FILE = "tokenizer_config.json";
const MAX_VOCAB_BYTES = 64 * 1024 * 1024;

export interface MarianTokenizerJSON {
  type: "MarianSentencePiece";
  source_spm: string; // base64
  target_spm: string;
  vocab: Record<string, number>;
  target_vocab: Record<string, number> | null;
  source_lang: string | null;
  target_lang: string | null;
}

/** vocab.json checked: piece -> distinct non-negative integer ids. */
function checkVocab(json: unknown, where: string): Map<string, number> {
  if (!isRecord(json)) throw new SentencePieceError(`${where}: expected a JSON object of piece -> id`);
  const m = new Map<string, number>();
  const seen = new Set<number>();
  for (const [k, v] of Object.entries(json)) {
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= 2 ** 24)
      throw new SentencePieceError(`${where}: the id of ${JSON.stringify(k)} is ${JSON.stringify(v)}; ids must be integers from 0`);
    if (seen.has(v as number)) throw new SentencePieceError(`${where}: id ${v} is given to two pieces`);
    seen.add(v as number);
    m.set(k, v as number);
  }
  for (const t of ["<unk>", "</s>", "<pad>"]) if (!m.has(t)) throw new SentencePieceError(`${where}: the vocabulary has no ${t}`);
  return m;
}

function readJSON(path: string): unknown {
  const size = statSync(path).size;
  if (size > MAX_VOCAB_BYTES) throw new SentencePieceError(`${path}: ${size} bytes is too large for a vocabulary`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SentencePieceError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** transformers' clean_up_tokenization (on by default for MarianTokenizer in v4.31): no space before
 *  . ? ! , and English contractions. */
function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export class MarianTokenizer extends BaseTokenizer {
  static readonly type = "MarianSentencePiece";
  readonly type = "MarianSentencePiece";
  protected readonly displayName = "MarianTokenizer";
  readonly source: SentencePieceUnigram;
  readonly target: SentencePieceUnigram;
  private readonly encoder: Map<string, number>;
  private readonly targetEncoder: Map<string, number>;
  private readonly decoderMap: Map<number, string>;
  private size: number;

  constructor(
    private readonly sourceBytes: Uint8Array,
    private readonly targetBytes: Uint8Array,
    vocab: Map<string, number>,
    targetVocab: Map<string, number> | null = null,
    readonly langs: { source: string | null; target: string | null } = { source: null, target: null },
    where = "MarianTokenizer",
  ) {
    super();
    this.source = new SentencePieceUnigram(parseSentencePieceModel(sourceBytes, `${where}: ${MARIAN_SPM_FILES.source}`));
    this.target = new SentencePieceUnigram(parseSentencePieceModel(targetBytes, `${where}: ${MARIAN_SPM_FILES.target}`));
    this.encoder = vocab;
    this.targetEncoder = targetVocab ?? vocab;
    this.decoderMap = new Map([...this.targetEncoder].map(([k, v]) => [v, k]));
    this.size = Math.max(...vocab.values(), ...this.targetEncoder.values()) + 1;
    for (const t of ["</s>", "<unk>", "<pad>"]) this.registerSpecial(t, vocab.get(t) as number);
    this.config = { eos_token: "</s>", pad_token: "<pad>", unk_token: "<unk>" };
  }

  /** The tokenizer of a Marian directory in the Hub's layout; errors name the file. */
  static fromDir(dir: string): MarianTokenizer {
    const path = (name: string) => join(dir, name);
    const cfg = existsSync(path(CONFIG_FILE)) ? readJSON(path(CONFIG_FILE)) : {};
    const c = isRecord(cfg) ? cfg : {};
    const read = (name: string) => {
      const p = path(name);
      const size = statSync(p).size;
      if (size > 256 * 1024 * 1024) throw new SentencePieceError(`${p}: ${size} bytes is too large for a SentencePiece model`);
      return new Uint8Array(readFileSync(p));
    };
    const src = read(MARIAN_SPM_FILES.source);
    const tgt = existsSync(path(MARIAN_SPM_FILES.target)) ? read(MARIAN_SPM_FILES.target) : src;
    const vocab = checkVocab(readJSON(path(MARIAN_SPM_FILES.vocab)), path(MARIAN_SPM_FILES.vocab));
    const separate = c.separate_vocabs === true;
    const tv = separate ? checkVocab(readJSON(path(MARIAN_SPM_FILES.targetVocab)), path(MARIAN_SPM_FILES.targetVocab)) : null;
    const lang = (v: unknown) => (typeof v === "string" ? v : null);
    return new MarianTokenizer(src, tgt, vocab, tv, { source: lang(c.source_lang), target: lang(c.target_lang) }, dir);
  }

  /** Whether `dir` holds a Marian SentencePiece tokenizer (source.spm and vocab.json). */
  static inDir(dir: string): boolean {
    return existsSync(join(dir, MARIAN_SPM_FILES.source)) && existsSync(join(dir, MARIAN_SPM_FILES.vocab));
  }

  get vocabSize(): number {
    return this.size;
  }

  private lookup(pieces: string[], vocab: Map<string, number>, out: number[]): void {
    const unk = vocab.get("<unk>") as number;
    for (const p of pieces) out.push(vocab.get(p) ?? unk);
  }

  /** transformers' remove_language_code: a code at the start is kept, every code is removed. */
  private pieces(text: string, spm: SentencePieceUnigram): string[] {
    const m = /^>>.+<</.exec(text);
    const rest = text.replace(/>>.+<</g, "");
    return [...(m ? [m[0]] : []), ...spm.encodeAsPieces(rest)];
  }

  private targetMode = false;

  protected encodeOrdinary(text: string, out: number[]): void {
    if (this.targetMode) this.lookup(this.pieces(text, this.target), this.targetEncoder, out);
    else this.lookup(this.pieces(text, this.source), this.encoder, out);
  }

  /** Target-side text (labels) -> ids, with the target model (and vocabulary, when separate);
   *  special tokens in the text as encode() treats them. */
  encodeTarget(text: string, options: EncodeOptions = {}): number[] {
    this.targetMode = true;
    try {
      return this.encode(text, options);
    } finally {
      this.targetMode = false;
    }
  }

  /** Ids -> text with the target model (or the source model: `useSource`), special tokens as words. */
  decode(ids: ArrayLike<number>, opts: { useSource?: boolean } = {}): string {
    const spm = opts.useSource ? this.source : this.target;
    const decoder = opts.useSource ? new Map([...this.encoder].map(([k, v]) => [v, k])) : this.decoderMap;
    const specials = new Set(this.specialTokens.keys());
    let out = "";
    let run: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (!Number.isInteger(id) || id < 0 || id >= this.size) throw badIdError(id, this.size, "MarianTokenizer");
      const token = decoder.get(id) ?? "<unk>";
      if (specials.has(token)) {
        out += `${spm.decodePieces(run)}${token} `;
        run = [];
      } else run.push(token);
    }
    out += spm.decodePieces(run);
    return cleanUpTokenization(out.trim());
  }

  protected storeSpecialToken(content: string, id: number): void {
    this.encoder.set(content, id);
    if (this.targetEncoder !== this.encoder) this.targetEncoder.set(content, id);
    this.decoderMap.set(id, content);
    this.size = id + 1;
  }

  /** The directory files this tokenizer is (the Hub's layout). */
  files(): Map<string, Uint8Array | string> {
    const f = new Map<string, Uint8Array | string>();
    f.set(MARIAN_SPM_FILES.source, this.sourceBytes);
    f.set(MARIAN_SPM_FILES.target, this.targetBytes);
    f.set(MARIAN_SPM_FILES.vocab, JSON.stringify(Object.fromEntries(this.encoder), null, 1));
    const separate = this.targetEncoder !== this.encoder;
    if (separate) f.set(MARIAN_SPM_FILES.targetVocab, JSON.stringify(Object.fromEntries(this.targetEncoder), null, 1));
    f.set(
      CONFIG_FILE,
      `${JSON.stringify(
        {
          tokenizer_class: "MarianTokenizer",
          source_lang: this.langs.source,
          target_lang: this.langs.target,
          separate_vocabs: separate,
          eos_token: "</s>",
          unk_token: "<unk>",
          pad_token: "<pad>",
          model_max_length: 512,
        },
        null,
        2,
      )}\n`,
    );
    return f;
  }

  toJSON(): MarianTokenizerJSON {
    return {
      type: "MarianSentencePiece",
      source_spm: Buffer.from(this.sourceBytes).toString("base64"),
      target_spm: Buffer.from(this.targetBytes).toString("base64"),
      vocab: Object.fromEntries(this.encoder),
      target_vocab: this.targetEncoder === this.encoder ? null : Object.fromEntries(this.targetEncoder),
      source_lang: this.langs.source,
      target_lang: this.langs.target,
    };
  }

  static fromJSON(json: unknown): MarianTokenizer {
    if (
      !isRecord(json) ||
      json.type !== "MarianSentencePiece" ||
      typeof json.source_spm !== "string" ||
      typeof json.target_spm !== "string"
    )
      throw new SentencePieceError("MarianTokenizer.fromJSON: expected the object toJSON() returns");
    const tv = json.target_vocab === null || json.target_vocab === undefined ? null : checkVocab(json.target_vocab, "target_vocab");
    const lang = (v: unknown) => (typeof v === "string" ? v : null);
    return new MarianTokenizer(
      new Uint8Array(Buffer.from(json.source_spm, "base64")),
      new Uint8Array(Buffer.from(json.target_spm, "base64")),
      checkVocab(json.vocab, "vocab"),
      tv,
      { source: lang(json.source_lang), target: lang(json.target_lang) },
    );
  }
}

registerTokenizer(MarianTokenizer);
