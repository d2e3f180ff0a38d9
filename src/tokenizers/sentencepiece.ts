// SentencePiece unigram models (Kudo 2018), read from the `.spm` / `.model` file SentencePiece writes
// (a protobuf ModelProto) and run as SentencePiece 0.1.97 runs them, so the pieces and ids are the
// ones the model was trained with (test/tokenizers/sentencepiece.test.ts checks them against
// Debian's python3-sentencepiece, fixture written by tools/marian_spm.py):
//
//   text -> normalise -> Viterbi over the pieces -> pieces / ids        ids -> pieces -> text
//
// Normalising (normalizer.cc): the precompiled character map (a Darts double-array trie over UTF-8
// bytes, e.g. nmt_nfkc's NFKC plus control-character rules) replaces the longest matching prefix at
// each position, user-defined symbols pass through whole; runs of white space collapse and the ends
// are trimmed (remove_extra_whitespaces); "▁" is prepended (add_dummy_prefix) and spaces become "▁"
// (escape_whitespaces). Segmenting (unigram_model.cc, EncodeOptimized): the best path maximises the
// sum of piece scores in float32, ties kept by the earlier start; a character no piece covers is
// <unk> with score min_score - 10, and consecutive unknown characters become one <unk>; user-defined
// pieces score length·max_score - 0.1 so they always win. Decoding drops control pieces, shows <unk>
// as unk_surface (" ⁇ "), turns "▁" back into spaces and drops the leading one.
//
// A model file is untrusted input: the reader checks every length and offset, and refuses what it
// does not run (BPE, WORD or CHAR models, byte fallback, a denormaliser) with the reason.

import { readFileSync, statSync } from "node:fs";

const FLT_MIN = 1.1754943508222875e-38;
const UNK_PENALTY = 10;
const SPACE = "\u2581"; // ▁
const MAX_FILE_BYTES = 256 * 1024 * 1024;

export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface SentencePieceModelProto {
  pieces: { piece: string; score: number; type: PieceType }[];
  trainer: { modelType: number; byteFallback: boolean; treatWhitespaceAsSuffix: boolean; unkSurface: string };
  normalizer: {
    name: string;
    charsmap: Uint8Array | null;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
  /** A denormaliser with rules (SentencePiece applies it after decoding); moxing refuses those. */
  hasDenormalizer: boolean;
}

export class SentencePieceError extends Error {}

// ---- protobuf -----------------------------------------------------------------------------------------

/** The fields of one protobuf message: field number -> values (varints as numbers, length-delimited
 *  as byte ranges, fixed32 as the raw 4 bytes' float). Every length is checked against the buffer. */
function readMessage(buf: Uint8Array, start: number, end: number, where: string): Map<number, (number | Uint8Array)[]> {
  const fields = new Map<number, (number | Uint8Array)[]>();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = start;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= end) throw new SentencePieceError(`${where}: the protobuf data ends inside a number`);
      const b = buf[p++] as number;
      if (shift < 53) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 70) throw new SentencePieceError(`${where}: a protobuf number is longer than 10 bytes`);
    }
  };
  while (p < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let value: number | Uint8Array;
    if (wire === 0) value = varint();
    else if (wire === 1) {
      if (p + 8 > end) throw new SentencePieceError(`${where}: the protobuf data ends inside a 64-bit field`);
      value = view.getFloat64(p, true);
      p += 8;
    } else if (wire === 2) {
      const n = varint();
      if (n > end - p) throw new SentencePieceError(`${where}: field ${field} claims ${n} bytes but ${end - p} remain`);
      value = buf.subarray(p, p + n);
      p += n;
    } else if (wire === 5) {
      if (p + 4 > end) throw new SentencePieceError(`${where}: the protobuf data ends inside a 32-bit field`);
      value = view.getFloat32(p, true);
      p += 4;
    } else
      throw new SentencePieceError(`${where}: unsupported protobuf wire type ${wire} (field ${field}); is this a SentencePiece model?`);
    const list = fields.get(field);
    if (list) list.push(value);
    else fields.set(field, [value]);
  }
  return fields;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function text(v: number | Uint8Array | undefined, where: string): string {
  if (v === undefined) return "";
  if (!(v instanceof Uint8Array)) throw new SentencePieceError(`${where}: expected a string`);
  try {
    return utf8.decode(v);
  } catch {
    throw new SentencePieceError(`${where}: a string is not valid UTF-8`);
  }
}

function sub(v: number | Uint8Array | undefined, where: string): Map<number, (number | Uint8Array)[]> {
  if (v === undefined) return new Map();
  if (!(v instanceof Uint8Array)) throw new SentencePieceError(`${where}: expected a message`);
  return readMessage(v, 0, v.length, where);
}

const last = (m: Map<number, (number | Uint8Array)[]>, f: number) => {
  const l = m.get(f);
  return l ? l[l.length - 1] : undefined;
};
const num = (v: number | Uint8Array | undefined, fallback: number, where: string): number => {
  if (v === undefined) return fallback;
  if (typeof v !== "number") throw new SentencePieceError(`${where}: expected a number`);
  return v;
};

/** Parse a SentencePiece ModelProto (the bytes of a .spm / .model file). */
export function parseSentencePieceModel(bytes: Uint8Array, where = "SentencePiece model"): SentencePieceModelProto {
  const top = readMessage(bytes, 0, bytes.length, where);
  const pieces = (top.get(1) ?? []).map((v, i) => {
    const m = sub(v, `${where}: piece ${i}`);
    const piece = text(last(m, 1), `${where}: piece ${i}`);
    const type = num(last(m, 3), PieceType.NORMAL, `${where}: piece ${i} type`);
    if (!Number.isInteger(type) || type < 1 || type > 6) throw new SentencePieceError(`${where}: piece ${i} has unknown type ${type}`);
    return { piece, score: num(last(m, 2), 0, `${where}: piece ${i} score`), type: type as PieceType };
  });
  const t = sub(last(top, 2), `${where}: trainer_spec`);
  const n = sub(last(top, 3), `${where}: normalizer_spec`);
  const d = sub(last(top, 5), `${where}: denormalizer_spec`);
  const charsmap = last(n, 2);
  const denormMap = last(d, 2);
  return {
    pieces,
    trainer: {
      modelType: num(last(t, 3), 1, `${where}: model_type`),
      byteFallback: num(last(t, 35), 0, `${where}: byte_fallback`) !== 0,
      treatWhitespaceAsSuffix: num(last(t, 24), 0, `${where}: treat_whitespace_as_suffix`) !== 0,
      unkSurface: t.has(44) ? text(last(t, 44), `${where}: unk_surface`) : " \u2047 ",
    },
    normalizer: {
      name: text(last(n, 1), `${where}: normalizer name`),
      charsmap: charsmap instanceof Uint8Array && charsmap.length ? charsmap : null,
      addDummyPrefix: num(last(n, 3), 1, `${where}: add_dummy_prefix`) !== 0,
      removeExtraWhitespaces: num(last(n, 4), 1, `${where}: remove_extra_whitespaces`) !== 0,
      escapeWhitespaces: num(last(n, 5), 1, `${where}: escape_whitespaces`) !== 0,
    },
    hasDenormalizer:
      (denormMap instanceof Uint8Array && denormMap.length > 0) || text(last(d, 6), `${where}: denormalizer rules`).length > 0,
  };
}

// ---- the precompiled character map ---------------------------------------------------------------------

/** SentencePiece's precompiled normalisation rules: a Darts-clone double array over UTF-8 bytes whose
 *  leaves point into a blob of NUL-terminated replacement strings. */
class CharsMap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;
  constructor(blob: Uint8Array, where: string) {
    if (blob.length <= 4) throw new SentencePieceError(`${where}: the precompiled character map is broken (too short)`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length - 4 + 1 || trieSize % 4 !== 0)
      throw new SentencePieceError(`${where}: the precompiled character map's trie (${trieSize} bytes) does not fit the blob`);
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.normalized = blob.subarray(4 + trieSize);
  }

  /** The longest rule matching a prefix of bytes[at..end): [its replacement's bytes, bytes consumed], or null. */
  longest(bytes: Uint8Array, at: number, end: number): [Uint8Array, number] | null {
    const u = this.units;
    if (u.length === 0) return null;
    let node = offset(u[0] as number);
    let best = -1;
    let bestLen = 0;
    for (let i = at; i < end; i++) {
      const c = bytes[i] as number;
      node ^= c;
      if (node >= u.length) break;
      const unit = u[node] as number;
      if ((unit & 0x800000ff) >>> 0 !== c) break; // label: a leaf's has the top bit set, so never matches
      node ^= offset(unit);
      if ((unit >>> 8) & 1) {
        if (node >= u.length) break;
        best = (u[node] as number) & 0x7fffffff;
        bestLen = i - at + 1;
      }
    }
    if (best < 0) return null;
    if (best >= this.normalized.length) throw new SentencePieceError("SentencePiece: a normalisation rule points outside its strings");
    let stop = best;
    while (stop < this.normalized.length && this.normalized[stop] !== 0) stop++;
    return [this.normalized.subarray(best, stop), bestLen];
  }
}

function offset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

/** The length of the UTF-8 character at bytes[at] (1 for a malformed one, as SentencePiece reads it). */
function charLen(bytes: Uint8Array, at: number, end: number): [number, boolean] {
  const b = bytes[at] as number;
  const need = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (need === 0 || at + need > end) return [1, need === 1];
  for (let k = 1; k < need; k++) if (((bytes[at + k] as number) & 0xc0) !== 0x80) return [1, false];
  // Overlong and surrogate forms are malformed too.
  const b1 = bytes[at + 1] as number;
  if ((b === 0xe0 && b1 < 0xa0) || (b === 0xed && b1 >= 0xa0) || (b === 0xf0 && b1 < 0x90) || (b === 0xf4 && b1 >= 0x90)) return [1, false];
  return [need, true];
}

// ---- the model -------------------------------------------------------------------------------------------

interface TrieNode {
  next: Map<string, TrieNode>;
  id: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A SentencePiece unigram model: normalise, segment, decode. */
export class SentencePieceUnigram {
  readonly pieces: readonly string[];
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  private readonly index = new Map<string, number>();
  private readonly root: TrieNode = { next: new Map(), id: -1 };
  private readonly userDefined: string[] = [];
  private readonly charsmap: CharsMap | null;
  readonly unkId: number;
  private readonly minScore: number;
  private readonly maxScore: number;

  constructor(
    readonly proto: SentencePieceModelProto,
    where = "SentencePiece model",
  ) {
    const { trainer } = proto;
    const modelNames: Record<number, string> = { 1: "unigram", 2: "BPE", 3: "word", 4: "char" };
    if (trainer.modelType !== 1)
      throw new SentencePieceError(
        `${where}: a ${modelNames[trainer.modelType] ?? `type ${trainer.modelType}`} model; moxing reads SentencePiece unigram models (Marian's)`,
      );
    if (trainer.byteFallback)
      throw new SentencePieceError(`${where}: byte_fallback is on; moxing's SentencePiece reader does not support byte fallback`);
    if (proto.hasDenormalizer) throw new SentencePieceError(`${where}: the model has denormalisation rules, which moxing does not apply`);
    if (proto.pieces.length === 0) throw new SentencePieceError(`${where}: the model has no pieces`);
    this.pieces = proto.pieces.map((p) => p.piece);
    this.scores = Float32Array.from(proto.pieces, (p) => p.score);
    this.types = Uint8Array.from(proto.pieces, (p) => p.type);
    let unk = -1;
    let min = Number.MAX_VALUE;
    let max = FLT_MIN;
    proto.pieces.forEach((p, id) => {
      if (p.piece.length === 0) throw new SentencePieceError(`${where}: piece ${id} is empty`);
      if (this.index.has(p.piece)) throw new SentencePieceError(`${where}: piece ${JSON.stringify(p.piece)} is defined twice`);
      this.index.set(p.piece, id);
      if (p.type === PieceType.UNKNOWN) {
        if (unk >= 0) throw new SentencePieceError(`${where}: more than one <unk> piece`);
        unk = id;
      }
      if (p.type === PieceType.NORMAL) {
        min = Math.min(min, this.scores[id] as number);
        max = Math.max(max, this.scores[id] as number);
      }
      if (p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED) {
        let node = this.root;
        for (const ch of p.piece) {
          let n = node.next.get(ch);
          if (!n) {
            n = { next: new Map(), id: -1 };
            node.next.set(ch, n);
          }
          node = n;
        }
        node.id = id;
      }
      if (p.type === PieceType.USER_DEFINED) this.userDefined.push(p.piece);
    });
    if (unk < 0) throw new SentencePieceError(`${where}: the model has no <unk> piece`);
    this.unkId = unk;
    this.minScore = Math.fround(min);
    this.maxScore = Math.fround(max);
    this.userDefined.sort((a, b) => b.length - a.length);
    this.charsmap = proto.normalizer.charsmap ? new CharsMap(proto.normalizer.charsmap, where) : null;
  }

  /** Read a .spm / .model file (size-limited; errors name the file). */
  static fromFile(path: string): SentencePieceUnigram {
    let size: number;
    try {
      size = statSync(path).size;
    } catch (e) {
      throw new SentencePieceError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (size > MAX_FILE_BYTES) throw new SentencePieceError(`${path}: ${size} bytes is too large for a SentencePiece model`);
    return new SentencePieceUnigram(parseSentencePieceModel(readFileSync(path), path), path);
  }

  get size(): number {
    return this.pieces.length;
  }

  pieceToId(piece: string): number {
    return this.index.get(piece) ?? this.unkId;
  }

  isControl(id: number): boolean {
    return this.types[id] === PieceType.CONTROL;
  }

  isUnknown(id: number): boolean {
    return this.types[id] === PieceType.UNKNOWN;
  }

  /** The normalised text (normalizer.cc's Normalize). */
  normalize(input: string): string {
    const spec = this.proto.normalizer;
    const bytes = encoder.encode(input);
    const end = bytes.length;
    const out: number[] = [];
    const spaceBytes = encoder.encode(SPACE);
    const putSpace = () => {
      if (spec.escapeWhitespaces) out.push(...spaceBytes);
      else out.push(0x20);
    };
    let at = 0;
    const prefix = (): [Uint8Array, number] => {
      for (const u of this.userDefined) {
        const ub = encoder.encode(u);
        if (ub.length <= end - at && ub.every((b, k) => bytes[at + k] === b)) return [ub, ub.length];
      }
      const rule = this.charsmap?.longest(bytes, at, end);
      if (rule) return rule;
      const [n, ok] = charLen(bytes, at, end);
      return ok ? [bytes.subarray(at, at + n), n] : [Uint8Array.of(0xef, 0xbf, 0xbd), 1];
    };
    const isSpace = (s: Uint8Array) => s.length === 1 && s[0] === 0x20;
    if (spec.removeExtraWhitespaces) {
      while (at < end) {
        const [s, n] = prefix();
        if (!isSpace(s)) break;
        at += n;
      }
    }
    if (at >= end) return "";
    const suffix = this.proto.trainer.treatWhitespaceAsSuffix;
    if (!suffix && spec.addDummyPrefix) putSpace();
    let prevSpace = spec.removeExtraWhitespaces;
    while (at < end) {
      const [s, n] = prefix();
      let k = 0;
      while (prevSpace && k < s.length && s[k] === 0x20) k++;
      if (k < s.length) {
        for (let j = k; j < s.length; j++) {
          if (spec.escapeWhitespaces && s[j] === 0x20) out.push(...spaceBytes);
          else out.push(s[j] as number);
        }
        prevSpace = s[s.length - 1] === 0x20;
      }
      at += n;
      if (!spec.removeExtraWhitespaces) prevSpace = false;
    }
    if (spec.removeExtraWhitespaces) {
      const sp = spec.escapeWhitespaces ? [...spaceBytes] : [0x20];
      while (out.length >= sp.length && sp.every((b, j) => out[out.length - sp.length + j] === b)) out.length -= sp.length;
    }
    if (suffix && spec.addDummyPrefix) putSpace();
    return decoder.decode(Uint8Array.from(out));
  }

  /** The best segmentation of normalised text: [piece, id] pairs (unigram_model.cc's EncodeOptimized,
   *  then consecutive unknown pieces merged, as the processor does). */
  segment(normalized: string): [string, number][] {
    const chars = Array.from(normalized);
    const n = chars.length;
    if (n === 0) return [];
    const charBytes = chars.map((c) => {
      const cp = c.codePointAt(0) as number;
      return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    });
    const bestScore = new Float64Array(n + 1);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    for (let start = 0; start < n; start++) {
      const till = bestScore[start] as number;
      let single = false;
      let node: TrieNode | undefined = this.root;
      let bytesLen = 0;
      for (let end = start; end < n; end++) {
        const ch = chars[end] as string;
        node = node.next.get(ch);
        if (!node) break;
        bytesLen += charBytes[end] as number;
        const id = node.id;
        if (id < 0) continue;
        const type = this.types[id];
        if (type === PieceType.UNUSED) continue;
        // User-defined symbols get a bonus that always selects them (computed in double, as there).
        const cand =
          type === PieceType.USER_DEFINED ? bytesLen * this.maxScore - 0.1 + till : Math.fround((this.scores[id] as number) + till);
        const target = end + 1;
        if (bestStart[target] === -1 || cand > (bestScore[target] as number)) {
          bestScore[target] = Math.fround(cand);
          bestStart[target] = start;
          bestId[target] = id;
        }
        if (end === start) single = true;
      }
      if (!single) {
        const cand = Math.fround(unkScore + till);
        const target = start + 1;
        if (bestStart[target] === -1 || cand > (bestScore[target] as number)) {
          bestScore[target] = cand;
          bestStart[target] = start;
          bestId[target] = this.unkId;
        }
      }
    }
    const out: [string, number][] = [];
    for (let end = n; end > 0; end = bestStart[end] as number) {
      out.push([chars.slice(bestStart[end] as number, end).join(""), bestId[end] as number]);
    }
    out.reverse();
    const merged: [string, number][] = [];
    for (const p of out) {
      const prev = merged[merged.length - 1];
      if (prev && p[1] === this.unkId && prev[1] === this.unkId) prev[0] += p[0];
      else merged.push(p);
    }
    return merged;
  }

  /** Text -> pieces (as SentencePieceProcessor.encode_as_pieces). */
  encodeAsPieces(text: string): string[] {
    return this.segment(this.normalize(text)).map(([p]) => p);
  }

  /** Text -> ids (as SentencePieceProcessor.encode_as_ids). */
  encodeAsIds(text: string): number[] {
    return this.segment(this.normalize(text)).map(([, id]) => id);
  }

  /** Pieces -> text (as SentencePieceProcessor.decode_pieces): control pieces vanish, <unk> shows as
   *  unk_surface, "▁" becomes a space, and the leading one is dropped. */
  decodePieces(pieces: readonly string[]): string {
    const spec = this.proto.normalizer;
    let text = "";
    let bosWs = true;
    let bosWsSeen = false;
    for (const piece of pieces) {
      const id = this.pieceToId(piece);
      if (bosWsSeen || text.length > 0) bosWs = false;
      let surface: string;
      let consumed = false;
      if (this.isControl(id)) surface = "";
      else if (this.isUnknown(id)) surface = this.pieces[id] === piece ? this.proto.trainer.unkSurface : piece;
      else {
        let p = piece;
        if (bosWs && (spec.addDummyPrefix || spec.removeExtraWhitespaces) && p.startsWith(SPACE)) {
          p = p.slice(SPACE.length);
          consumed = !spec.removeExtraWhitespaces;
        }
        surface = p.replaceAll(SPACE, " ");
      }
      bosWsSeen = consumed;
      text += surface;
    }
    return text;
  }

  /** Ids -> text (as SentencePieceProcessor.decode_ids). */
  decodeIds(ids: ArrayLike<number>): string {
    return this.decodePieces(
      Array.from(ids, (id) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length)
          throw new SentencePieceError(`SentencePiece.decode: id ${id} is outside the model's ${this.pieces.length} pieces`);
        return this.pieces[id] as string;
      }),
    );
  }
}
