// Safetensors, Hugging Face's file format for tensors: read and write.
//
//   [8 bytes: N, a little-endian u64] [N bytes: JSON header, padded with spaces] [data bytes]
//
// The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] }, offsets being
// byte positions in the data section (after the header); an optional "__metadata__" entry maps
// strings to strings. Tensors are written sorted by name, back to back, with the header padded so
// the data starts 8-byte aligned.
//
// Reading validates the whole header (length, UTF-8, JSON, dtypes, shapes, offsets in range, the
// tensors tiling the data section exactly with no overlap or gap, byte sizes matching the shapes)
// before it allocates a single tensor, so a corrupt or hostile file costs nothing and says what is
// wrong. The checks follow the reference implementation (huggingface/safetensors).
//
// Every dtype of the format is known by its byte width (DTYPE_BYTES), so any valid file's header
// validates. Tensor data is decoded for the dtypes in DTYPES: F32 and I32 as they are, F16 and BF16
// widened to F32 (read only; moxing writes F32). A tensor of another dtype (F64, I64, ...) is refused
// when its data is asked for, naming the tensor; reading can skip tensors (`only`) that are not
// needed, such as the attention-mask buffers of old GPT-2 checkpoints.
//
// Files are read tensor by tensor (header first, then each tensor's bytes from its offset), so a
// file larger than one Node buffer can be read and nothing is allocated before the header checks out.

import { closeSync, fstatSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { halfToFloatTable } from "../quant/ggml.js";
import { writeFileAtomic } from "./atomic.js";
import { duplicateKey, escapeForDisplay, jsonSyntaxError, openRegularFile } from "./files.js";

/** The tensor data a caller gets back, and gives to the writer. */
export type TensorData = Float32Array | Int32Array;

export interface SafeTensor {
  /** Safetensors dtype name: "F32" or "I32" (see DTYPES). */
  dtype: string;
  shape: number[];
  /** Row-major values; length = product of shape. */
  data: TensorData;
}

/** One tensor's header entry, validated. */
export interface HeaderEntry {
  dtype: string;
  shape: number[];
  /** [begin, end) byte offsets in the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
  /** Size of the data section in bytes. */
  dataLength: number;
}

interface DTypeSpec {
  /** Bytes per element in the file. */
  bytes: number;
  /** Decode `n` little-endian elements. `bytes` is a fresh copy owned by the caller, byteOffset 0. */
  decode(bytes: Uint8Array, n: number): TensorData;
  /** Whether `data` can be written as this dtype (absent: read only). */
  accepts?(data: TensorData): boolean;
  /** Little-endian bytes of `data` (absent: read only). */
  encode?(data: TensorData): Uint8Array;
}

const LITTLE_ENDIAN_HOST = endianness() === "LE";

/** A 4-byte dtype stored as-is on little-endian hosts (every platform Node runs on in practice). */
function fourByte(ctor: Float32ArrayConstructor | Int32ArrayConstructor, getter: "getFloat32" | "getInt32"): DTypeSpec {
  return {
    bytes: 4,
    decode(bytes, n) {
      if (LITTLE_ENDIAN_HOST) return new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
      const out = new ctor(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) out[i] = dv[getter](4 * i, true);
      return out;
    },
    accepts: (data) => data instanceof ctor,
    encode(data) {
      const bytes = new Uint8Array(data.length * 4);
      if (LITTLE_ENDIAN_HOST) {
        bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        return bytes;
      }
      const dv = new DataView(bytes.buffer);
      const set = getter === "getFloat32" ? "setFloat32" : "setInt32";
      for (let i = 0; i < data.length; i++) dv[set](4 * i, data[i] as number, true);
      return bytes;
    },
  };
}

/** The little-endian u16 values of `bytes` (2n bytes, byteOffset 0). */
function u16s(bytes: Uint8Array, n: number): Uint16Array {
  if (LITTLE_ENDIAN_HOST) return new Uint16Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  const out = new Uint16Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

/** Convert IEEE half-precision floats (F16) to float32. */
export function f16ToF32(halves: Uint16Array): Float32Array {
  const table = halfToFloatTable();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i] as number] as number;
  return out;
}

/** Convert bfloat16 values (the top 16 bits of a float32) to float32. */
export function bf16ToF32(halves: Uint16Array): Float32Array {
  const bits = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) bits[i] = (halves[i] as number) << 16;
  return new Float32Array(bits.buffer);
}

/** The dtypes whose data this module decodes (F16 and BF16 to Float32Array) and, where it can, writes. */
export const DTYPES: Record<string, DTypeSpec> = {
  F32: fourByte(Float32Array, "getFloat32"),
  I32: fourByte(Int32Array, "getInt32"),
  F16: { bytes: 2, decode: (bytes, n) => f16ToF32(u16s(bytes, n)) },
  BF16: { bytes: 2, decode: (bytes, n) => bf16ToF32(u16s(bytes, n)) },
};

/** Byte width of every dtype of the safetensors format (huggingface/safetensors' Dtype enum). */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Headers larger than this are refused (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

export class SafetensorsError extends Error {}

/** A name from a file, quoted for a one-line message: control characters escaped, long names cut. */
export function quoteName(name: string): string {
  const cut = name.length > 120 ? `${name.slice(0, 117)}...` : name;
  return `'${escapeForDisplay(cut).replace(/[\t\n]/g, (c) => (c === "\t" ? "\\u0009" : "\\u000a"))}'`;
}

/** A JSON value from a file, shown briefly (deeply nested or huge values cannot blow up a message). */
export function preview(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    return "a deeply nested value";
  }
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function fail(source: string, msg: string): never {
  throw new SafetensorsError(`${source}: ${msg}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The product of a shape, refusing sizes that cannot be addressed exactly. */
function numelOf(shape: readonly number[], source: string, name: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) fail(source, `tensor ${quoteName(name)} has shape ${preview(shape)}, too many elements`);
  }
  return n;
}

/** The header length stored in the first 8 bytes, checked against the file's size. */
function headerLength(prefix: Uint8Array, totalLength: number, source: string): number {
  if (totalLength < 8) fail(source, `file is ${totalLength} bytes, too short for safetensors (it starts with an 8-byte header length)`);
  if (prefix.length < 8) fail(source, "internal error: the first 8 bytes were not read");
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    fail(source, `header length ${n} is larger than the ${MAX_HEADER_BYTES}-byte limit; not a safetensors file?`);
  const len = Number(n);
  if (len === 0) fail(source, "header length is 0; a safetensors header is a JSON object");
  if (8 + len > totalLength)
    fail(source, `header length ${len} runs past the end of the file (${totalLength} bytes); the file is truncated or not safetensors`);
  return len;
}

/**
 * Parse and validate a safetensors header. `prefix` holds at least the first 8 + N bytes of the
 * file (it may hold all of it); `totalLength` is the file's full size. Throws SafetensorsError with
 * a message starting with `source` on any problem.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, totalLength = prefix.length, source = "safetensors"): SafetensorsHeader {
  const len = headerLength(prefix, totalLength, source);
  if (prefix.length < 8 + len) fail(source, "internal error: the header was not read completely");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(prefix.subarray(8, 8 + len));
  } catch {
    fail(source, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail(source, "header does not start with '{'; not a safetensors file?");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const { offset, problem } = jsonSyntaxError(text);
    fail(source, `header is not valid JSON: ${problem} at byte ${8 + offset}`);
  }
  if (!isPlainObject(json)) fail(source, "header is not a JSON object");
  // JSON.parse keeps the last of two equal keys; two entries for one tensor name (or two dtypes
  // for one tensor) would silently pick one of two different sets of weights.
  const dup = duplicateKey(text);
  if (dup) {
    const where = dup.path.length ? ` in the entry of ${quoteName(dup.path[0] as string)}` : "";
    fail(
      source,
      `header names ${dup.path.length ? "key" : "tensor"} ${quoteName(dup.key)} twice${where}; a file must name each tensor once`,
    );
  }

  const dataStart = 8 + len;
  const dataLength = totalLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, HeaderEntry>();
  for (const [name, raw] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(raw)) fail(source, `"${METADATA_KEY}" must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string")
          fail(source, `"${METADATA_KEY}" value for ${quoteName(k)} is ${preview(v)}; metadata values must be strings`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.set(name, parseEntry(name, raw, dataLength, source));
  }

  // The tensors must tile the data section: sorted by offset, each starting where the last ended.
  const byOffset = [...tensors.entries()].sort(
    (a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1],
  );
  let end = 0;
  let prev = "";
  for (const [name, e] of byOffset) {
    const [b, en] = e.dataOffsets;
    if (b < end) fail(source, `tensors ${quoteName(prev)} and ${quoteName(name)} overlap (bytes ${b}..${end} are claimed by both)`);
    if (b > end) fail(source, `bytes ${end}..${b} of the data section belong to no tensor (before ${quoteName(name)})`);
    end = en;
    prev = name;
  }
  if (end !== dataLength)
    fail(source, `the data section is ${dataLength} bytes but the tensors cover ${end}; the file is truncated or has trailing bytes`);
  return { tensors, metadata, dataStart, dataLength };
}

function parseEntry(name: string, raw: unknown, dataLength: number, source: string): HeaderEntry {
  if (name === "") fail(source, "a tensor has an empty name");
  if (!isPlainObject(raw)) fail(source, `tensor ${quoteName(name)}: entry must be an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string") fail(source, `tensor ${quoteName(name)}: dtype must be a string (got ${preview(dtype)})`);
  const width = DTYPE_BYTES[dtype];
  if (width === undefined || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    fail(
      source,
      `tensor ${quoteName(name)} has dtype ${quoteName(dtype)}, which is not a safetensors dtype (known: ${Object.keys(DTYPE_BYTES).join(", ")})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(source, `tensor ${quoteName(name)}: shape must be an array of non-negative integers (got ${preview(shape)})`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(source, `tensor ${quoteName(name)}: data_offsets must be [begin, end] non-negative integers (got ${preview(offsets)})`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(source, `tensor ${quoteName(name)}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength)
    fail(
      source,
      `tensor ${quoteName(name)}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes); the file is truncated or damaged`,
    );
  const want = numelOf(shape as number[], source, name) * width;
  if (end - begin !== want) {
    fail(source, `tensor ${quoteName(name)}: shape ${preview(shape)} of ${dtype} needs ${want} bytes but data_offsets span ${end - begin}`);
  }
  return { dtype, shape: [...(shape as number[])], dataOffsets: [begin, end] };
}

/** Options for reading: which tensors to decode (default all; the header is always validated whole). */
export interface ReadOptions {
  only?: (name: string, entry: HeaderEntry) => boolean;
}

const WRITABLE = Object.keys(DTYPES).filter((d) => DTYPES[d]?.encode);

/** Decode one tensor's bytes (a fresh buffer at byteOffset 0, owned by the result). */
function decodeEntry(name: string, e: HeaderEntry, bytes: Uint8Array, source: string): SafeTensor {
  const spec = Object.hasOwn(DTYPES, e.dtype) ? DTYPES[e.dtype] : undefined;
  if (!spec) {
    fail(
      source,
      `tensor ${quoteName(name)} has dtype ${e.dtype}, which moxing does not convert (it reads ${Object.keys(DTYPES).join(", ")})`,
    );
  }
  return { dtype: e.dtype, shape: e.shape, data: spec.decode(bytes, bytes.length / spec.bytes) };
}

/** Decode a whole safetensors buffer into tensors (copies; the result does not alias `buf`). */
export function decodeSafetensors(
  buf: Uint8Array,
  source = "safetensors",
  opts: ReadOptions = {},
): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(buf, buf.length, source);
  const tensors = new Map<string, SafeTensor>();
  for (const [name, e] of header.tensors) {
    if (opts.only && !opts.only(name, e)) continue;
    const [b, en] = e.dataOffsets;
    // A copy at byteOffset 0, so aligned for any typed array (Buffer.slice would alias buf).
    const bytes = new Uint8Array(en - b);
    bytes.set(buf.subarray(header.dataStart + b, header.dataStart + en));
    tensors.set(name, decodeEntry(name, e, bytes, source));
  }
  return { tensors, metadata: header.metadata };
}

/** Encode tensors (sorted by name) and string metadata as a safetensors buffer. */
export function encodeSafetensors(
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(`safetensors: metadata value for '${k}' must be a string`);
    }
    header[METADATA_KEY] = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "" || name === METADATA_KEY) throw new SafetensorsError(`safetensors: '${name}' cannot be a tensor name`);
    const spec = Object.hasOwn(DTYPES, t.dtype) ? DTYPES[t.dtype] : undefined;
    if (!spec?.encode || !spec.accepts) {
      throw new SafetensorsError(`safetensors: tensor '${name}' has dtype ${t.dtype}; moxing writes ${WRITABLE.join(" and ")}`);
    }
    if (!spec.accepts(t.data)) throw new SafetensorsError(`safetensors: tensor '${name}': its data array cannot be written as ${t.dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`safetensors: tensor '${name}' has an invalid shape [${t.shape.join(", ")}]`);
    }
    const n = numelOf(t.shape, "safetensors", name);
    if (n !== t.data.length)
      throw new SafetensorsError(`safetensors: tensor '${name}' has shape [${t.shape.join(", ")}] but ${t.data.length} values`);
    const bytes = spec.encode(t.data);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  if (headerBytes.length % 8 !== 0) {
    json += " ".repeat(8 - (headerBytes.length % 8));
    headerBytes = encoder.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Fill `buf` from `fd` at file position `pos`; false if the file ends first. */
function readFully(fd: number, buf: Uint8Array, pos: number): boolean {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, pos + got);
    if (n === 0) return false;
    got += n;
  }
  return true;
}

function openForReading(path: string): number {
  return openRegularFile(path, { Err: SafetensorsError, expected: "a safetensors file" }).fd;
}

function headerOf(fd: number, path: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  const first = new Uint8Array(Math.min(8, size));
  if (!readFully(fd, first, 0)) fail(path, "file ended while reading the header length");
  const len = headerLength(first, size, path);
  const prefix = new Uint8Array(8 + len);
  prefix.set(first);
  if (!readFully(fd, prefix.subarray(8), 8)) fail(path, "file ended while reading the header");
  return parseSafetensorsHeader(prefix, size, path);
}

/**
 * Read and validate a safetensors file. The header is checked completely before any tensor is read;
 * then each tensor (each one `opts.only` accepts) is read from its offset into its own buffer.
 */
export function readSafetensors(
  path: string,
  opts: ReadOptions = {},
): { tensors: Map<string, SafeTensor>; metadata: Record<string, string>; header: SafetensorsHeader } {
  const fd = openForReading(path);
  try {
    const header = headerOf(fd, path);
    const tensors = new Map<string, SafeTensor>();
    for (const [name, e] of header.tensors) {
      if (opts.only && !opts.only(name, e)) continue;
      const [b, en] = e.dataOffsets;
      const bytes = new Uint8Array(en - b);
      if (!readFully(fd, bytes, header.dataStart + b))
        fail(path, `file ended while reading tensor ${quoteName(name)}; it was truncated while being read`);
      tensors.set(name, decodeEntry(name, e, bytes, path));
    }
    return { tensors, metadata: header.metadata, header };
  } finally {
    closeSync(fd);
  }
}

/** Read only the header of a safetensors file (names, dtypes, shapes, metadata), validated. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openForReading(path);
  try {
    return headerOf(fd, path);
  } finally {
    closeSync(fd);
  }
}

/** Write tensors to `path` atomically (a temporary file in the same directory, then rename). */
export function writeSafetensors(
  path: string,
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
