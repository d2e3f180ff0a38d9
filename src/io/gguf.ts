// GGUF, the file format of GGML and llama.cpp: read and write (ggml's docs/gguf.md, version 3).
//
//   "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count x (string key, u32 value type, value)
//   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
//   zero padding to `general.alignment` (default 32)
//   tensor data: each tensor at its offset (relative to here, a multiple of the alignment)
// Strings are a u64 byte length and UTF-8 bytes; arrays a u32 item type, a u64 count and the items.
// Everything is little-endian.
//
// Dimensions are GGML's: ne[0] is the innermost (contiguous) one, so a row-major array of shape
// [rows, cols] has ne = [cols, rows]. GGUFTensorInfo carries both: `dims` as in the file and `shape`
// in row-major (PyTorch) order; tensors are written from and read into row-major shapes.
//
// Reading validates before it allocates: every count, string length and array length is checked
// against the bytes the file actually has, tensor extents must lie in the data section and not
// overlap, and sizes follow each GGML type's block size, so a damaged or hostile file is rejected
// with a one-line error and never causes a large allocation. The header is read in growing pieces,
// so a multi-gigabyte file costs only its header until a tensor is asked for. Tensor data decodes
// from F32, F16 and BF16 (to float32); quantized types are recognised (for `moxing info`) but not
// decoded.

import { closeSync, readSync } from "node:fs";
import { writeFileAtomicChunks } from "./atomic.js";
import { openRegularFile } from "./files.js";
import { bf16ToF32, f16ToF32, quoteName } from "./safetensors.js";

export class GGUFError extends Error {}

/** GGML tensor types: name, elements per block, bytes per block (ggml.h's ggml_type and ggml.c's type traits). */
export const GGML_TYPES: Readonly<Record<number, { name: string; blockSize: number; typeSize: number }>> = {
  0: { name: "F32", blockSize: 1, typeSize: 4 },
  1: { name: "F16", blockSize: 1, typeSize: 2 },
  2: { name: "Q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "Q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "Q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "Q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "Q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "Q8_1", blockSize: 32, typeSize: 36 },
  10: { name: "Q2_K", blockSize: 256, typeSize: 84 },
  11: { name: "Q3_K", blockSize: 256, typeSize: 110 },
  12: { name: "Q4_K", blockSize: 256, typeSize: 144 },
  13: { name: "Q5_K", blockSize: 256, typeSize: 176 },
  14: { name: "Q6_K", blockSize: 256, typeSize: 210 },
  15: { name: "Q8_K", blockSize: 256, typeSize: 292 },
  16: { name: "IQ2_XXS", blockSize: 256, typeSize: 66 },
  17: { name: "IQ2_XS", blockSize: 256, typeSize: 74 },
  18: { name: "IQ3_XXS", blockSize: 256, typeSize: 98 },
  19: { name: "IQ1_S", blockSize: 256, typeSize: 50 },
  20: { name: "IQ4_NL", blockSize: 32, typeSize: 18 },
  21: { name: "IQ3_S", blockSize: 256, typeSize: 110 },
  22: { name: "IQ2_S", blockSize: 256, typeSize: 82 },
  23: { name: "IQ4_XS", blockSize: 256, typeSize: 136 },
  24: { name: "I8", blockSize: 1, typeSize: 1 },
  25: { name: "I16", blockSize: 1, typeSize: 2 },
  26: { name: "I32", blockSize: 1, typeSize: 4 },
  27: { name: "I64", blockSize: 1, typeSize: 8 },
  28: { name: "F64", blockSize: 1, typeSize: 8 },
  29: { name: "IQ1_M", blockSize: 256, typeSize: 56 },
  30: { name: "BF16", blockSize: 1, typeSize: 2 },
  34: { name: "TQ1_0", blockSize: 256, typeSize: 54 },
  35: { name: "TQ2_0", blockSize: 256, typeSize: 66 },
  39: { name: "MXFP4", blockSize: 32, typeSize: 17 },
};
export const GGML_TYPE_F32 = 0;

/** Metadata value types, indexed by their id in the file. */
const VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"] as const;
export type GGUFValueType = (typeof VALUE_TYPES)[number];
/** Smallest encoding of one value of each type, for bounding counts by the bytes left. */
const MIN_BYTES: Record<GGUFValueType, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  string: 8,
  array: 12,
  u64: 8,
  i64: 8,
  f64: 8,
};

export type GGUFScalar = number | bigint | boolean | string;
/** A metadata value: a scalar of `type`, or (type "array") a list of items of `itemType`. */
export type GGUFValue =
  | { type: Exclude<GGUFValueType, "array">; value: GGUFScalar }
  | { type: "array"; itemType: GGUFValueType; value: GGUFItem[] };
export type GGUFItem = GGUFScalar | { itemType: GGUFValueType; value: GGUFItem[] };

export interface GGUFTensorInfo {
  name: string;
  /** GGML's ne[]: ne[0] innermost. */
  dims: number[];
  /** Row-major (PyTorch) shape: dims reversed. */
  shape: number[];
  type: number;
  typeName: string;
  /** Byte offset in the data section. */
  offset: number;
  bytes: number;
}

export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  /** File offset of the data section. */
  dataStart: number;
  size: number;
}

/** Thrown while parsing a prefix of the file that ends before the header does. */
class NeedMore {
  constructor(readonly upTo: number) {}
}

const MAX_NAME = 63; // GGML_MAX_NAME - 1
const MAX_DIMS = 4; // GGML_MAX_DIMS
const MAX_NESTING = 8;

class Cursor {
  pos = 0;
  private readonly dv: DataView;
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true });
  constructor(
    private readonly buf: Uint8Array,
    readonly size: number,
    private readonly source: string,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  fail(msg: string): never {
    throw new GGUFError(`${this.source}: ${msg}`);
  }
  get left(): number {
    return this.size - this.pos;
  }
  need(n: number, what: string): number {
    const at = this.pos;
    if (n > this.size - at) this.fail(`file ends inside ${what} (at byte ${at}); the file is truncated or not GGUF`);
    if (at + n > this.buf.length) throw new NeedMore(at + n);
    this.pos = at + n;
    return at;
  }
  u8(what: string): number {
    return this.dv.getUint8(this.need(1, what));
  }
  u32(what: string): number {
    return this.dv.getUint32(this.need(4, what), true);
  }
  /** A u64 as a number, refusing values above 2^53 (no file has such counts, sizes or dims). */
  u64(what: string): number {
    const v = this.dv.getBigUint64(this.need(8, what), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, which is impossibly large`);
    return Number(v);
  }
  string(what: string, maxLen = Number.POSITIVE_INFINITY): string {
    const len = this.u64(`the length of ${what}`);
    if (len > this.left) this.fail(`${what} claims ${len} bytes but only ${this.left} remain; the file is damaged`);
    if (len > maxLen) this.fail(`${what} is ${len} bytes long; at most ${maxLen} are allowed`);
    const at = this.need(len, what);
    try {
      return this.utf8.decode(this.buf.subarray(at, at + len));
    } catch {
      this.fail(`${what} is not valid UTF-8`);
    }
  }
  value(type: GGUFValueType, what: string, depth = 0): GGUFItem {
    switch (type) {
      case "u8":
        return this.u8(what);
      case "i8":
        return this.dv.getInt8(this.need(1, what));
      case "u16":
        return this.dv.getUint16(this.need(2, what), true);
      case "i16":
        return this.dv.getInt16(this.need(2, what), true);
      case "u32":
        return this.u32(what);
      case "i32":
        return this.dv.getInt32(this.need(4, what), true);
      case "f32":
        return this.dv.getFloat32(this.need(4, what), true);
      case "bool": {
        const b = this.u8(what);
        if (b > 1) this.fail(`${what} is a bool with byte value ${b}; only 0 and 1 are valid`);
        return b === 1;
      }
      case "string":
        return this.string(what);
      case "u64":
        return safe(this.dv.getBigUint64(this.need(8, what), true));
      case "i64":
        return safe(this.dv.getBigInt64(this.need(8, what), true));
      case "f64":
        return this.dv.getFloat64(this.need(8, what), true);
      case "array": {
        if (depth >= MAX_NESTING) this.fail(`${what} nests arrays more than ${MAX_NESTING} deep`);
        const itemType = this.valueType(`the item type of ${what}`);
        const count = this.u64(`the length of ${what}`);
        if (count * MIN_BYTES[itemType] > this.left) {
          this.fail(`${what} claims ${count} items of ${itemType} but only ${this.left} bytes remain; the file is damaged`);
        }
        const items: GGUFItem[] = [];
        for (let i = 0; i < count; i++) items.push(this.value(itemType, what, depth + 1));
        return { itemType, value: items };
      }
    }
  }
  valueType(what: string): GGUFValueType {
    const id = this.u32(what);
    const t = VALUE_TYPES[id];
    if (t === undefined) this.fail(`${what} is ${id}, which is not a GGUF value type (0..${VALUE_TYPES.length - 1})`);
    return t;
  }
}

function safe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Parse and validate a GGUF header. `buf` holds the file or a prefix of it (`size` is the whole
 * file's length); a prefix too short to hold the header makes it throw NeedMore, which
 * readGGUFHeader handles by reading more. Throws GGUFError, starting with `source`, for any problem.
 */
function parse(buf: Uint8Array, size: number, source: string): GGUFFile {
  const c = new Cursor(buf, size, source);
  if (size < 4) c.fail(`file is ${size} bytes, too short for GGUF`);
  const magic = c.need(4, "the magic number");
  if (buf[magic] !== 0x47 || buf[magic + 1] !== 0x47 || buf[magic + 2] !== 0x55 || buf[magic + 3] !== 0x46) {
    c.fail("does not start with 'GGUF'; not a GGUF file");
  }
  const version = c.u32("the version");
  if (version === 1) c.fail("is GGUF version 1, which is obsolete; re-convert it with a current llama.cpp");
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24) | (((version >>> 8) & 0xff) << 16) | (((version >>> 16) & 0xff) << 8) | (version >>> 24);
    if (swapped === 2 || swapped === 3) c.fail("is a big-endian GGUF file; moxing reads little-endian GGUF");
    c.fail(`has GGUF version ${version}; moxing reads versions 2 and 3`);
  }
  const tensorCount = c.u64("tensor_count");
  const kvCount = c.u64("metadata_kv_count");
  // Each key/value takes at least 13 bytes and each tensor info at least 24.
  if (kvCount * 13 + tensorCount * 24 > c.left) {
    c.fail(`claims ${kvCount} metadata entries and ${tensorCount} tensors, more than its ${size} bytes can hold; the file is damaged`);
  }
  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key ${i}`, 65535);
    if (metadata.has(key)) c.fail(`metadata key ${quoteName(key)} appears twice`);
    const type = c.valueType(`the type of ${quoteName(key)}`);
    const v = c.value(type, `metadata ${quoteName(key)}`);
    metadata.set(
      key,
      type === "array" ? { type, ...(v as { itemType: GGUFValueType; value: GGUFItem[] }) } : { type, value: v as GGUFScalar },
    );
  }
  let alignment = 32;
  const al = metadata.get("general.alignment");
  if (al !== undefined) {
    const a = al.value;
    if (al.type !== "u32" || typeof a !== "number" || a < 1 || a > 2 ** 30 || (a & (a - 1)) !== 0) {
      c.fail(`general.alignment must be a u32 power of two (got ${al.type} ${String(a)})`);
    }
    alignment = a as number;
  }
  const infos: GGUFTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`the name of tensor ${i}`, MAX_NAME);
    if (names.has(name)) c.fail(`tensor ${quoteName(name)} appears twice`);
    names.add(name);
    const nDims = c.u32(`the dimension count of ${quoteName(name)}`);
    if (nDims > MAX_DIMS) c.fail(`tensor ${quoteName(name)} has ${nDims} dimensions; GGML allows at most ${MAX_DIMS}`);
    const dims: number[] = [];
    let numel = 1;
    for (let d = 0; d < nDims; d++) {
      const n = c.u64(`dimension ${d} of ${quoteName(name)}`);
      dims.push(n);
      numel *= n;
      if (numel > Number.MAX_SAFE_INTEGER) c.fail(`tensor ${quoteName(name)} has dimensions [${dims.join(", ")}...], too many elements`);
    }
    const type = c.u32(`the type of ${quoteName(name)}`);
    const t = GGML_TYPES[type];
    if (!t) c.fail(`tensor ${quoteName(name)} has GGML type ${type}, which moxing does not know`);
    if ((dims[0] ?? 1) % t.blockSize !== 0) {
      c.fail(
        `tensor ${quoteName(name)} is ${t.name} (blocks of ${t.blockSize}) but its first dimension ${dims[0]} is not a multiple of that`,
      );
    }
    const offset = c.u64(`the offset of ${quoteName(name)}`);
    if (offset % alignment !== 0) c.fail(`tensor ${quoteName(name)} has offset ${offset}, not a multiple of the alignment ${alignment}`);
    const bytes = (numel / t.blockSize) * t.typeSize;
    infos.push({ name, dims, shape: [...dims].reverse(), type, typeName: t.name, offset, bytes });
  }
  const dataStart = alignUp(c.pos, alignment);
  const dataLength = size - dataStart;
  const byOffset = [...infos].sort((a, b) => a.offset - b.offset || a.bytes - b.bytes);
  let end = 0;
  let prev = "";
  for (const t of byOffset) {
    if (t.offset < end) c.fail(`tensors ${quoteName(prev)} and ${quoteName(t.name)} overlap`);
    if (t.offset + t.bytes > dataLength) {
      c.fail(
        `tensor ${quoteName(t.name)} (${t.typeName} [${t.shape.join(", ")}], ${t.bytes} bytes at offset ${t.offset}) runs past the end of the file; ` +
          "the file is truncated",
      );
    }
    end = t.offset + t.bytes;
    prev = t.name;
  }
  return { version, metadata, tensors: infos, alignment, dataStart, size };
}

/** Parse a whole GGUF file held in memory (validated; tensor data is not decoded). */
export function parseGGUF(buf: Uint8Array, source = "gguf"): GGUFFile {
  try {
    return parse(buf, buf.length, source);
  } catch (e) {
    if (e instanceof NeedMore) throw new GGUFError(`${source}: internal error: header parsing needed more bytes than the file`);
    throw e;
  }
}

function readAt(fd: number, buf: Uint8Array, pos: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function withFile<T>(path: string, fn: (fd: number, size: number) => T): T {
  const { fd, size } = openRegularFile(path, { Err: GGUFError, expected: "a GGUF file" });
  try {
    return fn(fd, size);
  } finally {
    closeSync(fd);
  }
}

function headerFromFd(fd: number, size: number, path: string): GGUFFile {
  let want = Math.min(size, 1 << 20);
  for (;;) {
    const buf = new Uint8Array(want);
    const got = readAt(fd, buf, 0);
    try {
      return parse(buf.subarray(0, got), size, path);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      if (got < want || want >= size) throw new GGUFError(`${path}: file ended while reading the header`);
      want = Math.min(size, Math.max(want * 2, e.upTo + (1 << 20)));
    }
  }
}

/** Read and validate the header of a GGUF file: metadata and tensor infos, no tensor data. */
export function readGGUFHeader(path: string): GGUFFile {
  return withFile(path, (fd, size) => headerFromFd(fd, size, path));
}

function decodeTensor(info: GGUFTensorInfo, bytes: Uint8Array, source: string): Float32Array {
  const n = info.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (info.typeName === "F32") {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  if (info.typeName === "F16" || info.typeName === "BF16") {
    const halves = new Uint16Array(n);
    for (let i = 0; i < n; i++) halves[i] = dv.getUint16(2 * i, true);
    return info.typeName === "F16" ? f16ToF32(halves) : bf16ToF32(halves);
  }
  throw new GGUFError(
    `${source}: tensor ${quoteName(info.name)} is ${info.typeName}; moxing reads F32, F16 and BF16 tensors (convert the model without quantization)`,
  );
}

/** Read a GGUF file: its header and the listed (default: all) tensors as float32, in row-major shape. */
export function readGGUF(
  path: string,
  opts: { only?: (info: GGUFTensorInfo) => boolean } = {},
): { file: GGUFFile; tensors: Map<string, { shape: number[]; data: Float32Array }> } {
  return withFile(path, (fd, size) => {
    const file = headerFromFd(fd, size, path);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const info of file.tensors) {
      if (opts.only && !opts.only(info)) continue;
      const bytes = new Uint8Array(info.bytes);
      if (readAt(fd, bytes, file.dataStart + info.offset) < info.bytes) {
        throw new GGUFError(`${path}: file ended while reading tensor ${quoteName(info.name)}`);
      }
      tensors.set(info.name, { shape: info.shape, data: decodeTensor(info, bytes, path) });
    }
    return { file, tensors };
  });
}

// ---- writing ----------------------------------------------------------------------------------------

/** Little-endian bytes, appended. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private readonly utf8 = new TextEncoder();
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      bigger.set(this.buf.subarray(0, this.length));
      this.buf = bigger;
      this.dv = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    const at = this.room(1);
    this.dv.setUint8(at, v);
  }
  u32(v: number): void {
    const at = this.room(4);
    this.dv.setUint32(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.room(8);
    this.dv.setBigUint64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  string(s: string): void {
    const b = this.utf8.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  value(type: GGUFValueType, v: GGUFItem, what: string): void {
    const num = (): number => {
      if (typeof v !== "number") throw new GGUFError(`GGUF writer: ${what} must be a number for type ${type}`);
      return v;
    };
    // room() may reallocate the buffer, so it runs before this.dv is read.
    const dv = (n: number): [DataView, number] => {
      const at = this.room(n);
      return [this.dv, at];
    };
    switch (type) {
      case "u8": {
        const [d, at] = dv(1);
        d.setUint8(at, num());
        break;
      }
      case "i8": {
        const [d, at] = dv(1);
        d.setInt8(at, num());
        break;
      }
      case "u16": {
        const [d, at] = dv(2);
        d.setUint16(at, num(), true);
        break;
      }
      case "i16": {
        const [d, at] = dv(2);
        d.setInt16(at, num(), true);
        break;
      }
      case "u32": {
        const [d, at] = dv(4);
        d.setUint32(at, num(), true);
        break;
      }
      case "i32": {
        const [d, at] = dv(4);
        d.setInt32(at, num(), true);
        break;
      }
      case "f32": {
        const [d, at] = dv(4);
        d.setFloat32(at, num(), true);
        break;
      }
      case "f64": {
        const [d, at] = dv(8);
        d.setFloat64(at, num(), true);
        break;
      }
      case "u64": {
        const [d, at] = dv(8);
        d.setBigUint64(at, BigInt(v as number | bigint), true);
        break;
      }
      case "i64": {
        const [d, at] = dv(8);
        d.setBigInt64(at, BigInt(v as number | bigint), true);
        break;
      }
      case "bool":
        this.u8(v === true ? 1 : 0);
        break;
      case "string":
        if (typeof v !== "string") throw new GGUFError(`GGUF writer: ${what} must be a string`);
        this.string(v);
        break;
      case "array": {
        if (typeof v !== "object" || v === null || !Array.isArray((v as { value: unknown }).value)) {
          throw new GGUFError(`GGUF writer: ${what} must be { itemType, value: [...] }`);
        }
        const arr = v as { itemType: GGUFValueType; value: GGUFItem[] };
        this.u32(VALUE_TYPES.indexOf(arr.itemType));
        this.u64(arr.value.length);
        for (const item of arr.value) this.value(arr.itemType, item, what);
        break;
      }
    }
  }
  take(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export interface GGUFTensorOut {
  name: string;
  /** Row-major (PyTorch) shape; written as GGML dims (reversed). */
  shape: number[];
  data: Float32Array;
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function f32Bytes(data: Float32Array): Uint8Array {
  if (LE) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(4 * i, data[i] as number, true);
  return out;
}

/**
 * The bytes of a GGUF v3 file, as chunks to write in order: header, metadata (in the order given),
 * tensor infos, padding, and each F32 tensor at an aligned offset. `general.alignment` is honoured
 * when the metadata sets it (as a u32), else 32.
 */
export function encodeGGUF(metadata: [string, GGUFValue][], tensors: GGUFTensorOut[]): Uint8Array[] {
  const alignEntry = metadata.find(([k]) => k === "general.alignment")?.[1];
  const alignment = alignEntry && typeof alignEntry.value === "number" ? alignEntry.value : 32;
  const w = new ByteWriter();
  w.bytes(new Uint8Array([0x47, 0x47, 0x55, 0x46]));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    w.string(key);
    w.u32(VALUE_TYPES.indexOf(v.type));
    w.value(v.type, v.type === "array" ? { itemType: v.itemType, value: v.value } : v.value, `metadata '${key}'`);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new GGUFError(`GGUF writer: tensor '${t.name}' has shape [${t.shape.join(", ")}] but ${t.data.length} values`);
    if (new TextEncoder().encode(t.name).length > MAX_NAME)
      throw new GGUFError(`GGUF writer: tensor name '${t.name}' is longer than ${MAX_NAME} bytes`);
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + 4 * n, alignment);
  }
  const head = w.take();
  const chunks: Uint8Array[] = [head, new Uint8Array(alignUp(head.length, alignment) - head.length)];
  let at = 0;
  tensors.forEach((t, i) => {
    const start = offsets[i] as number;
    if (start > at) chunks.push(new Uint8Array(start - at));
    chunks.push(f32Bytes(t.data));
    at = start + 4 * t.data.length;
  });
  if (offset > at) chunks.push(new Uint8Array(offset - at));
  return chunks;
}

/** Write a GGUF file atomically (temporary file in the same directory, then rename). */
export function writeGGUF(path: string, metadata: [string, GGUFValue][], tensors: GGUFTensorOut[]): void {
  writeFileAtomicChunks(path, encodeGGUF(metadata, tensors));
}

// ---- metadata helpers ---------------------------------------------------------------------------------

/** A metadata value as plain JSON-friendly data (bigints as strings), for display. */
export function plainValue(v: GGUFValue | GGUFItem): unknown {
  if (typeof v === "bigint") return v.toString();
  if (typeof v !== "object" || v === null) return v;
  if ("type" in v && v.type !== "array") return plainValue(v.value);
  return (v as { value: GGUFItem[] }).value.map(plainValue);
}

/** Typed accessors that name the key and the file in their errors. */
export function metadataReader(file: GGUFFile, source: string) {
  const m = file.metadata;
  const fail = (msg: string): never => {
    throw new GGUFError(`${source}: ${msg}`);
  };
  const get = (key: string, required: boolean): GGUFValue | undefined => {
    const v = m.get(key);
    if (v === undefined && required) fail(`metadata '${key}' is missing`);
    return v;
  };
  return {
    has: (key: string) => m.has(key),
    string(key: string, required = true): string | undefined {
      const v = get(key, required);
      if (v === undefined) return undefined;
      if (v.type !== "string") return fail(`metadata '${key}' must be a string (it is ${v.type})`);
      return v.value as string;
    },
    number(key: string, required = true): number | undefined {
      const v = get(key, required);
      if (v === undefined) return undefined;
      if (v.type === "array" || v.type === "string" || v.type === "bool" || typeof v.value !== "number") {
        return fail(`metadata '${key}' must be a number (it is ${v.type})`);
      }
      return v.value;
    },
    bool(key: string): boolean | undefined {
      const v = get(key, false);
      if (v === undefined) return undefined;
      if (v.type !== "bool") return fail(`metadata '${key}' must be a bool (it is ${v.type})`);
      return v.value as boolean;
    },
    array(key: string, itemType: GGUFValueType | GGUFValueType[], required = true): GGUFItem[] | undefined {
      const v = get(key, required);
      if (v === undefined) return undefined;
      const ok = Array.isArray(itemType) ? itemType : [itemType];
      if (v.type !== "array" || !ok.includes(v.itemType)) {
        return fail(
          `metadata '${key}' must be an array of ${ok.join(" or ")} (it is ${v.type === "array" ? `an array of ${v.itemType}` : v.type})`,
        );
      }
      return v.value;
    },
  };
}
