// Safetensors: round trips, the on-disk layout, and rejection of malformed files with clear errors.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  writeSafetensors,
} from "../../src/io/safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "moxing-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A file built by hand from a header object and data bytes, as the spec lays it out. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function f32bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function rejects(buf: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeSafetensors(buf, "bad.safetensors"),
    (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"), "one-line message");
      return true;
    },
  );
}

describe("safetensors round trip", () => {
  test("F32 and I32 tensors, metadata, empty and scalar shapes", () => {
    const tensors = {
      "b.weight": { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2.5, 3e-8, Number.NaN, Infinity, -0]) },
      "a.ids": { dtype: "I32", shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
      empty: { dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
      scalar: { dtype: "F32", shape: [], data: new Float32Array([7]) },
    };
    const buf = encodeSafetensors(tensors, { format: "pt", note: "héllo" });
    const { tensors: back, metadata } = decodeSafetensors(buf);
    assert.deepEqual(metadata, { format: "pt", note: "héllo" });
    assert.deepEqual([...back.keys()].sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const got = back.get(name);
      assert.ok(got);
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength), new Uint8Array(t.data.buffer));
    }
  });

  test("layout: u64 length, space-padded header aligned to 8, tensors sorted by name back to back", () => {
    const buf = encodeSafetensors({
      z: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
      a: { dtype: "F32", shape: [2], data: new Float32Array([2, 3]) },
    });
    const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const text = new TextDecoder().decode(buf.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    const header = JSON.parse(text);
    assert.deepEqual(header.a, { dtype: "F32", shape: [2], data_offsets: [0, 8] });
    assert.deepEqual(header.z, { dtype: "F32", shape: [1], data_offsets: [8, 12] });
    assert.deepEqual([...new Float32Array(buf.slice(8 + n).buffer)], [2, 3, 1]);
    assert.equal(buf.length, 8 + n + 12);
  });

  test("reads a file written by another writer (hand-built to the spec, unpadded, any entry order)", () => {
    const data = new Uint8Array([...f32bytes([5, 6]), ...new Uint8Array(new Int32Array([9]).buffer)]);
    const buf = build(
      {
        w: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        __metadata__: { k: "v" },
        i: { dtype: "I32", shape: [1, 1], data_offsets: [8, 12] },
      },
      data,
    );
    const { tensors, metadata } = decodeSafetensors(buf);
    assert.deepEqual(metadata, { k: "v" });
    assert.deepEqual([...(tensors.get("w")?.data ?? [])], [5, 6]);
    assert.deepEqual([...(tensors.get("i")?.data ?? [])], [9]);
    assert.ok(tensors.get("i")?.data instanceof Int32Array);
  });

  test("files: atomic write, read, header-only read", () => {
    const p = join(dir, "t.safetensors");
    writeSafetensors(p, { x: { dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) } }, { step: "4" });
    assert.deepEqual([...(readSafetensors(p).tensors.get("x")?.data ?? [])], [1, 2, 3]);
    const h = readSafetensorsHeader(p);
    assert.deepEqual(h.tensors.get("x"), { dtype: "F32", shape: [3], dataOffsets: [0, 12] });
    assert.equal(h.metadata.step, "4");
    assert.throws(() => readSafetensors(join(dir, "missing.safetensors")), /missing\.safetensors: file not found/);
  });

  test("the writer refuses bad input", () => {
    assert.throws(() => encodeSafetensors({ x: { dtype: "F32", shape: [2], data: new Float32Array(3) } }), /shape \[2\] but 3 values/);
    assert.throws(() => encodeSafetensors({ x: { dtype: "F16", shape: [1], data: new Float32Array(1) } }), /dtype F16/);
    assert.throws(() => encodeSafetensors({ x: { dtype: "I32", shape: [1], data: new Float32Array(1) } }), /cannot be written as I32/);
    assert.throws(
      () => encodeSafetensors({ __metadata__: { dtype: "F32", shape: [1], data: new Float32Array(1) } }),
      /cannot be a tensor name/,
    );
  });
});

describe("F16 and BF16 are read as float32; other dtypes validate but are not decoded", () => {
  test("F16: normals, subnormals, zeros, infinities, NaN; BF16: the top half of a float32", () => {
    const halves = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const want = [1, -2, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, Number.NaN, 0.333251953125];
    const bf = [0x3f80, 0xc0a0, 0x7f80, 0x0001];
    const bfWant = [1, -5, Infinity, new Float32Array(new Uint32Array([0x00010000]).buffer)[0] as number];
    const data = new Uint8Array([...new Uint8Array(new Uint16Array(halves).buffer), ...new Uint8Array(new Uint16Array(bf).buffer)]);
    const buf = build(
      { h: { dtype: "F16", shape: [2, 5], data_offsets: [0, 20] }, b: { dtype: "BF16", shape: [4], data_offsets: [20, 28] } },
      data,
    );
    const { tensors } = decodeSafetensors(buf);
    const h = tensors.get("h");
    assert.equal(h?.dtype, "F16");
    assert.ok(h?.data instanceof Float32Array);
    assert.deepEqual([...(h?.data ?? [])], want);
    assert.ok(Object.is(h?.data[5], -0));
    assert.deepEqual([...(tensors.get("b")?.data ?? [])], bfWant);
  });

  test("F64, I64, U8, BOOL headers validate; their data is refused only when asked for", () => {
    const buf = build(
      { d: { dtype: "F64", shape: [1], data_offsets: [0, 8] }, w: { dtype: "F32", shape: [2], data_offsets: [8, 16] } },
      new Uint8Array([...new Uint8Array(new Float64Array([1.5]).buffer), ...f32bytes([1, 2])]),
    );
    assert.throws(
      () => decodeSafetensors(buf, "x.safetensors"),
      /x\.safetensors: tensor 'd' has dtype F64, which moxing does not convert \(it reads F32, I32, F16, BF16\)/,
    );
    const only = decodeSafetensors(buf, "x", { only: (name) => name !== "d" });
    assert.deepEqual([...only.tensors.keys()], ["w"]);
    rejects(
      build({ d: { dtype: "I64", shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /needs 24 bytes but data_offsets span 16/,
    );
    const p = join(dir, "mixed.safetensors");
    writeFileSync(p, buf);
    assert.deepEqual([...readSafetensors(p, { only: (_, e) => e.dtype === "F32" }).tensors.keys()], ["w"]);
    assert.equal(readSafetensorsHeader(p).tensors.get("d")?.dtype, "F64");
  });
});

describe("safetensors rejects malformed files before allocating", () => {
  const ok = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const data = f32bytes([1, 2]);

  test("too short, header length past the end or absurd", () => {
    rejects(new Uint8Array(5), /5 bytes, too short/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    rejects(huge, /larger than the 100000000-byte limit/);
    const past = build(ok, data);
    new DataView(past.buffer).setBigUint64(0, 1000n, true);
    rejects(past, /header length 1000 runs past the end of the file/);
    rejects(build(null, new Uint8Array(0), ""), /header length is 0/);
  });

  test("header not UTF-8, not JSON, not an object", () => {
    const bin = build(null, new Uint8Array(0), "{}");
    bin[9] = 0xff;
    rejects(bin, /not valid UTF-8/);
    rejects(build(null, data, '{"w": {"dtype": "F32",'), /not valid JSON/);
    rejects(build(null, data, "[1, 2]"), /does not start with '\{'/);
    rejects(build(null, data, '{"w": 3}'), /entry must be an object/);
  });

  test("bad dtype, shape, offsets", () => {
    rejects(
      build({ w: { dtype: "Q4", shape: [2], data_offsets: [0, 8] } }, data),
      /dtype 'Q4', which is not a safetensors dtype \(known: BOOL, U8/,
    );
    rejects(build({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, data), /shape must be an array of non-negative integers/);
    rejects(build({ w: { dtype: "F32", shape: [1.5], data_offsets: [0, 8] } }, data), /shape must be/);
    rejects(build({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, data), /data_offsets must be \[begin, end\]/);
    rejects(build({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, data), /end before they begin/);
    rejects(build({ w: { dtype: "F32", shape: [2], data_offsets: [0, 16] } }, data), /run past the data section \(8 bytes\)/);
    rejects(build({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, data), /needs 12 bytes but data_offsets span 8/);
    rejects(build({ w: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, data), /too many elements/);
  });

  test("overlaps, gaps, trailing bytes, bad metadata", () => {
    const two = f32bytes([1, 2, 3, 4]);
    rejects(
      build({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, two),
      /overlap/,
    );
    rejects(build({ a: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, two), /bytes 0\.\.8 of the data section belong to no tensor/);
    rejects(build(ok, two), /data section is 16 bytes but the tensors cover 8/);
    rejects(build({ ...ok, __metadata__: { step: 3 } }, data), /metadata values must be strings/);
    rejects(build({ ...ok, __metadata__: [] }, data), /must be an object of strings/);
  });

  test("hostile headers: deep nesting, control characters in names, huge shapes - still one short line", () => {
    const deep = `{"w":{"dtype":"F32","shape":${"[".repeat(200_000)}${"]".repeat(200_000)},"data_offsets":[0,0]}}`;
    rejects(build(null, new Uint8Array(0), deep), /shape must be an array of non-negative integers \(got a deeply nested value\)/);
    rejects(build({ "a\nb\u2028c": { dtype: "F32", shape: [1], data_offsets: [0, 8] } }, data), /tensor 'a\\u000ab\\u2028c': shape \[1\]/);
    rejects(build({ w: { dtype: "F\n32", shape: [1], data_offsets: [0, 4] } }, f32bytes([1])), /dtype 'F\\u000a32'/);
    const long = new Array(1_000_000).fill(1);
    assert.throws(
      () => decodeSafetensors(build({ w: { dtype: "F32", shape: long, data_offsets: [0, 8] } }, data), "bad.safetensors"),
      (e: Error) => e.message.length < 400 && /shape \[1,1,1,.*\.\.\. of F32 needs 4 bytes/.test(e.message),
    );
  });

  test("a damaged file on disk names the file", () => {
    const p = join(dir, "damaged.safetensors");
    writeFileSync(p, "this is not a safetensors file at all");
    assert.throws(
      () => readSafetensors(p),
      (e: Error) => e.message.startsWith(`${p}: header length`),
    );
    assert.throws(
      () => readSafetensorsHeader(p),
      (e: Error) => e.message.startsWith(`${p}: header length`),
    );
  });
});
