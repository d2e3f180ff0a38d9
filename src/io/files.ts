// Reading files a user hands us (model directories, tokenizers, configs, data), which are untrusted:
// only regular files are read (a FIFO would block open() forever, /dev/zero would never end), each
// format's size limit is checked before a byte is read, and a JSON file that does not parse is
// reported by line and column, never by quoting its bytes (the file may be a symlink to something
// private). Every reader of user files goes through here.

import { accessSync, closeSync, constants, fstatSync, mkdirSync, openSync, readSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fmtBytes } from "../tensor/memory.js";

export { fmtBytes };

/** A user file that cannot be read as asked; the message names the file and what to do. */
export class FileError extends Error {}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Size limits by kind of file. JSON configs are a few KB; tokenizer files a few MB (Llama 3's
 *  tokenizer.json is 9 MB); a text file becomes one JS string, whose length V8 caps at 2^29 - 24
 *  UTF-16 units, and a UTF-8 file never decodes to more units than it has bytes. */
export const FILE_LIMITS = {
  config: 16 * MiB,
  tokenizer: 128 * MiB,
  text: 0x1fffffe8,
} as const;

export interface ReadFileOptions {
  /** Refuse a file larger than this many bytes. */
  maxBytes?: number;
  /** What the file is, for messages: "data file 'x' does not exist"; without it "x: file not found". */
  what?: string;
  /** What was expected instead of a directory or device, for messages (default "a regular file"). */
  expected?: string;
  /** The error class to throw (default FileError); the message is the same. */
  Err?: new (
    message: string,
  ) => Error;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a named pipe (FIFO)";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** "what 'path' problem" when the caller names the kind of file, else "path: problem". */
function say(path: string, what: string | undefined, problem: string): string {
  return what ? `${what} '${path}' ${problem}` : `${path}: ${problem}`;
}

/**
 * Open `path` for reading and return its descriptor and size, refusing anything but a regular file
 * (symlinks are followed: Hugging Face's cache links snapshots to blobs). The open is non-blocking,
 * so a FIFO is refused instead of waiting forever for a writer; the type is checked on the open
 * descriptor, so the file cannot be swapped between the check and the read.
 */
export function openRegularFile(path: string, opts: ReadFileOptions = {}): { fd: number; size: number } {
  const Err = opts.Err ?? FileError;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new Err(describeReadError(path, e, opts.what, opts.expected));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const fix = st.isDirectory() ? "pass a file" : "pass a regular file (copy the contents into one)";
      throw new Err(say(path, opts.what, `is ${kindOf(st)}, not ${opts.expected ?? "a regular file"}; ${fix}`));
    }
    if (opts.maxBytes !== undefined && st.size > opts.maxBytes) {
      const size = `${st.size} bytes${st.size >= KiB ? ` (${fmtBytes(st.size)})` : ""}`;
      throw new Err(say(path, opts.what, `is ${size}, over the limit of ${fmtBytes(opts.maxBytes)} for such a file`));
    }
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The message for a failed open or read: what happened in words, with the code. */
export function describeReadError(path: string, e: unknown, what?: string, expected = "a regular file"): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return say(path, what, what ? "does not exist" : "file not found");
    case "EACCES":
    case "EPERM":
      return say(path, what, "cannot be read: permission denied");
    case "ELOOP":
      return say(path, what, "cannot be read: too many levels of symbolic links");
    case "ENOTDIR":
      return say(path, what, "does not exist (a part of its path is a file, not a directory)");
    case "EISDIR":
      return say(path, what, `is a directory, not ${expected}; pass a file`);
    default:
      return say(path, what, `cannot be read (${code ?? (e as Error).message})`);
  }
}

/** The bytes of a regular file (see openRegularFile), at most opts.maxBytes of them. */
export function readRegularFile(path: string, opts: ReadFileOptions = {}): Buffer {
  const { fd, size } = openRegularFile(path, opts);
  try {
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    // The size is the one fstat gave: a file that grows meanwhile is read as it was, one that
    // shrinks is read as far as it goes.
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return got === size ? buf : buf.subarray(0, got);
  } catch (e) {
    if (e instanceof Error && !(e as NodeJS.ErrnoException).code) throw e;
    throw new (opts.Err ?? FileError)(describeReadError(path, e, opts.what, opts.expected));
  } finally {
    closeSync(fd);
  }
}

/** A regular file's text, decoded as UTF-8 (refusing invalid UTF-8), byte-order mark dropped. */
export function readTextFileChecked(path: string, opts: ReadFileOptions = {}): string {
  const bytes = readRegularFile(path, opts);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new (opts.Err ?? FileError)(say(path, opts.what, "is not UTF-8 text"));
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * A JSON file's value. The file must be a regular file within maxBytes (default: the config
 * limit). A syntax error is reported as `PATH: not valid JSON: <what> at line L, column C`,
 * which names the place and never echoes the file's contents.
 */
export function readJSONFile(path: string, opts: ReadFileOptions = {}): unknown {
  const text = readTextFileChecked(path, { maxBytes: FILE_LIMITS.config, ...opts });
  return parseJSON(text, path, opts.Err);
}

/** JSON.parse whose error says where the text is wrong, not what it says. */
export function parseJSON(text: string, source: string, Err: new (message: string) => Error = FileError): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const { offset, problem } = jsonSyntaxError(text);
    const { line, column } = lineColumn(text, offset);
    throw new Err(`${source}: not valid JSON: ${problem} at line ${line}, column ${column}`);
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/**
 * Where and why `text` is not JSON (RFC 8259), found by a small recursive-descent scan. Only run
 * after JSON.parse has failed, whose own message quotes the text. The problem is described by the
 * grammar ("expected ':'"), never by the characters found.
 */
export function jsonSyntaxError(text: string): { offset: number; problem: string } {
  let i = 0;
  class Bad {
    constructor(
      readonly offset: number,
      readonly problem: string,
    ) {}
  }
  const fail = (problem: string, at = i): never => {
    throw new Bad(at, at >= text.length ? "unexpected end of file" : problem);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else return;
    }
  };
  const literal = (word: string) => {
    for (let k = 0; k < word.length; k++) if (text[i + k] !== word[k]) fail(`expected a value (${word}?)`, i + k);
    i += word.length;
  };
  const digits = () => {
    const s = i;
    while (text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
    if (i === s) fail("expected a digit");
  };
  const number = () => {
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else digits();
    if (text[i] === ".") {
      i++;
      digits();
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      digits();
    }
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 32) fail("control character inside a string (escape it)");
      if (c === 92) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape (needs 4 hex digits)");
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail("bad escape in a string");
      } else i++;
    }
  };
  const value = (depth: number): void => {
    if (depth > 10000) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a property name in double quotes");
        string();
        ws();
        if (text[i] !== ":") fail("expected ':' after a property name");
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return;
        } else fail("expected ',' or '}' in an object");
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return;
        } else fail("expected ',' or ']' in an array");
      }
    } else if (c === '"') string();
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) number();
    else if (c === "t") literal("true");
    else if (c === "f") literal("false");
    else if (c === "n") literal("null");
    else fail("expected a value");
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail("unexpected content after the JSON value");
  } catch (e) {
    if (e instanceof Bad) return { offset: e.offset, problem: e.problem };
    // Deeper nesting than the stack allows: JSON.parse failed for the same reason.
    return { offset: i, problem: "nesting too deep" };
  }
  return { offset: 0, problem: "not accepted by JSON.parse" };
}

/**
 * The first key that appears twice in one object of a valid JSON text, with the keys of the
 * objects around it (outermost first), or null. JSON.parse silently keeps the last of the two.
 */
export function duplicateKey(text: string): { key: string; path: string[] } | null {
  // One entry per open object ({ keys, key: its key in the parent }) or array (null).
  const stack: ({ keys: Set<string>; key: string } | null)[] = [];
  let expectKey = false;
  let lastKey = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          const path = stack.slice(1).map((o) => (o ? o.key : "[]"));
          return { key, path };
        }
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 123) {
      stack.push({ keys: new Set(), key: lastKey });
      expectKey = true;
    } else if (c === 91) {
      stack.push(null);
      expectKey = false;
    } else if (c === 125 || c === 93) {
      stack.pop();
      expectKey = false;
    } else if (c === 44) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return null;
}

// ---- showing what files say ----------------------------------------------------------------------

/** Characters that must not reach a terminal raw from a file: C0 controls but tab and newline,
 *  DEL, C1 controls (U+009B is a one-byte CSI, an escape sequence's start), the bidirectional
 *  controls (U+202E reverses the text after it) and the line and paragraph separators. */
const UNSAFE_FOR_DISPLAY = /(?![\t\n])[\p{Cc}\p{Bidi_Control}\u2028\u2029]/gu;

/** `text` with every character unsafe for a terminal written as \uXXXX (JSON's escape, so a JSON
 *  text, whose strings hold no raw tab or newline, stays valid JSON with the same value). */
export function escapeForDisplay(text: string): string {
  return text.replace(UNSAFE_FOR_DISPLAY, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, "0")}`);
}

// ---- writing ------------------------------------------------------------------------------------

/** Where output goes wrong, in words, with what to do; null for errors that are not about files. */
export function describeSystemError(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof err.code !== "string") return null;
  const path = err.path ? `'${err.path}'` : "the output";
  const elsewhere = "write somewhere else (another --out)";
  switch (err.code) {
    case "ENOSPC":
      return `no space left on the device while writing ${path}; free some space or ${elsewhere}`;
    case "EDQUOT":
      return `disk quota exceeded while writing ${path}; free some space or ${elsewhere}`;
    case "EROFS":
      return `${path} is on a read-only file system; ${elsewhere}`;
    case "EACCES":
    case "EPERM":
      return `permission denied for ${path} (${err.syscall ?? "access"}); ${elsewhere}, or change the permissions`;
    case "ENOTDIR": {
      let isFile = false;
      try {
        isFile = err.path !== undefined && statSync(err.path).isFile();
      } catch {
        // a part of the path above it is the file
      }
      const what = isFile ? `${path} is a file, not a directory` : `${path}: a part of this path is a file, not a directory`;
      return `${what}; ${elsewhere} or move the file away`;
    }
    case "EISDIR":
      return `${path} is a directory where a file was expected; ${elsewhere}`;
    case "EEXIST":
      return `${path} already exists and is not a directory; ${elsewhere} or move it away`;
    case "ENAMETOOLONG":
      return `${path}: the name is too long; use a shorter path`;
    case "ELOOP":
      return `${path}: too many levels of symbolic links`;
    case "EMFILE":
    case "ENFILE":
      return "too many open files; close other programs or raise the limit (ulimit -n)";
    case "EIO":
      return `input/output error on ${path}; the disk or file system is failing`;
    default:
      return null;
  }
}

/**
 * Create directory `dir` and any missing parents, one at a time (Node's recursive mkdir loops for
 * ever on some paths, e.g. under /proc), with errors that say what is wrong: a part of the path
 * that is a file, a read-only file system, no permission, no space.
 */
export function makeOutputDir(dir: string): void {
  const missing: string[] = [];
  let p = resolve(dir);
  for (;;) {
    let st: Stats | null = null;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw new FileError(describeSystemError(e) ?? (e as Error).message);
    }
    if (st) {
      if (st.isDirectory()) break;
      const what = p === resolve(dir) ? `'${dir}'` : `'${p}' (part of '${dir}')`;
      throw new FileError(`${what} is a file, not a directory; write somewhere else (another --out) or move the file away`);
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && statSync(m).isDirectory()) continue; // made meanwhile by someone else
      if (code === "ENOENT") {
        throw new FileError(
          `cannot create '${m}': its parent cannot hold directories (a virtual file system?); write somewhere else (another --out)`,
        );
      }
      throw new FileError(describeSystemError(e) ?? (e as Error).message);
    }
  }
  // A read-only file system or a directory we may not write to is found now, not after training.
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new FileError(describeSystemError(e) ?? (e as Error).message);
  }
}
