// Issue 11, hostile files: only regular files are read (a FIFO model file used to hang `generate`
// in open(), /dev/zero as config.json aborted with bad_alloc, `--data /dev/zero` crashed), formats
// with a size limit are refused above it before reading, and a file that is not JSON is reported
// by line and column without echoing its bytes (a symlinked tokenizer.json could print a private
// file's first characters).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { readSquadFile } from "../../src/data/squad.js";
import { DataError, readTextFile } from "../../src/data/text.js";
import { loadModel, readConfig, readTokenizer, saveModel } from "../../src/io/checkpoint.js";
import { FILE_LIMITS, FileError, jsonSyntaxError, parseJSON, readJSONFile, readRegularFile } from "../../src/io/files.js";
import { readGGUFHeader } from "../../src/io/gguf.js";
import { recoverCheckpoint } from "../../src/io/model-dir.js";
import { detectFormat } from "../../src/io/model-files.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { GPT } from "../../src/models/gpt.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { truncateMetrics } from "../../src/train/run.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const root = mkdtempSync(join(tmpdir(), "moxing-files-"));
after(() => rmSync(root, { recursive: true, force: true }));
const posix = process.platform !== "win32";
const SECRET = "hunter2-private-token";

const tokenizer = CharTokenizer.fromText("hello world");
const modelDir = join(root, "model");
saveModel(modelDir, new GPT({ n_layer: 1, n_head: 1, n_embd: 8, block_size: 8, vocab_size: tokenizer.vocabSize }, { seed: 1 }), tokenizer);

/** A copy of the tiny model directory with `name` replaced by what make() puts there. */
function dirWith(tag: string, name: string, make: (path: string) => void): string {
  const dir = join(root, tag);
  mkdirSync(dir);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    if (f !== name) symlinkSync(join(modelDir, f), join(dir, f));
  }
  make(join(dir, name));
  return dir;
}

function mkfifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

describe("only regular files are read", { skip: !posix && "needs POSIX FIFOs and /dev/zero" }, () => {
  test("a FIFO as model.safetensors is refused at once, not waited on in open()", () => {
    const dir = dirWith("fifo-weights", "model.safetensors", mkfifo);
    assert.throws(() => loadModel(dir), /model\.safetensors: is a named pipe \(FIFO\), not a safetensors file/);
  });

  test("a FIFO given as the model path is refused by format detection", () => {
    const p = join(root, "pipe.gguf");
    mkfifo(p);
    assert.throws(() => detectFormat(p), /pipe\.gguf: is a named pipe \(FIFO\)/);
    assert.throws(() => readGGUFHeader(p), /is a named pipe \(FIFO\), not a GGUF file/);
  });

  test("a FIFO as tokenizer.json, config.json or --data is refused", () => {
    const tok = dirWith("fifo-tok", "tokenizer.json", mkfifo);
    assert.throws(() => readTokenizer(tok), /tokenizer\.json: is a named pipe/);
    const cfg = dirWith("fifo-cfg", "config.json", mkfifo);
    assert.throws(() => readConfig(cfg), /config\.json: is a named pipe/);
    const data = join(root, "data.fifo");
    mkfifo(data);
    assert.throws(
      () => readTextFile(data),
      (e: Error) => e instanceof DataError && /data file '.*data\.fifo' is a named pipe/.test(e.message),
    );
  });

  test("a FIFO as a run's metrics.jsonl or as a commit's manifest is refused, not waited on", () => {
    const metrics = join(root, "metrics.jsonl");
    mkfifo(metrics);
    assert.throws(() => truncateMetrics(metrics, 3), /the metrics log '.*metrics\.jsonl' is a named pipe/);
    const dir = join(root, "fifo-manifest");
    mkdirSync(join(dir, ".checkpoint-commit"), { recursive: true });
    mkfifo(join(dir, ".checkpoint-commit", "MANIFEST.json"));
    // lstat sees the FIFO is no regular file: the manifest is ignored (nothing deleted), never opened.
    assert.doesNotThrow(() => recoverCheckpoint(dir));
  });

  test("/dev/zero linked as config.json is refused instead of read until memory runs out", () => {
    const dir = dirWith("zero-cfg", "config.json", (p) => symlinkSync("/dev/zero", p));
    assert.throws(() => loadModel(dir), /config\.json: is a character device, not a regular file/);
  });

  test("--data /dev/zero is refused (it used to crash the process)", () => {
    assert.throws(() => readTextFile("/dev/zero"), /data file '\/dev\/zero' is a character device, not a regular file/);
  });

  test("a directory where a file should be says so", () => {
    assert.throws(() => readTextFile(root), /data file '.*' is a directory, not a regular file; pass a file/);
    assert.throws(() => readSafetensors(root), /is a directory, not a safetensors file/);
  });

  test("moxing generate with a FIFO model file exits at once with one line", async () => {
    const dir = dirWith("fifo-cli", "model.safetensors", mkfifo);
    const r = await moxing(["generate", "--model", dir, "--prompt", "he", "--max-new-tokens", "2"]);
    assertOneLineError(r, /model\.safetensors: is a named pipe \(FIFO\)/, 1);
  });

  test("moxing train --data /dev/zero exits with one line", async () => {
    const r = await moxing(["train", "--data", "/dev/zero", "--out", join(root, "zero-run")]);
    assertOneLineError(r, /data file '\/dev\/zero' is a character device/, 1);
  });
});

describe("size limits are checked before reading", () => {
  test("a config.json over the JSON config limit is refused by its size (sparse file: nothing is read)", () => {
    const dir = dirWith("huge-cfg", "config.json", (p) => {
      writeFileSync(p, "{}");
      truncateSync(p, FILE_LIMITS.config + 1);
    });
    assert.throws(() => readConfig(dir), /config\.json: is 16777217 bytes \(16 MiB\), over the limit of 16 MiB for such a file/);
  });

  test("a tokenizer.json over the tokenizer limit is refused", () => {
    const dir = dirWith("huge-tok", "tokenizer.json", (p) => {
      writeFileSync(p, "{}");
      truncateSync(p, FILE_LIMITS.tokenizer + 1);
    });
    assert.throws(() => readTokenizer(dir), /tokenizer\.json: is 134217729 bytes \(128 MiB\), over the limit of 128 MiB/);
  });

  test("a text file larger than a JS string can hold is refused with the reason", () => {
    const p = join(root, "huge.txt");
    writeFileSync(p, "a");
    truncateSync(p, FILE_LIMITS.text + 1);
    assert.throws(() => readTextFile(p), /data file '.*huge\.txt' is 536870889 bytes \(512 MiB\), over the limit of 512 MiB/);
    unlinkSync(p);
  });

  test("readRegularFile honours maxBytes and reads exactly the file", () => {
    const p = join(root, "small.bin");
    writeFileSync(p, Buffer.from([1, 2, 3, 4, 5]));
    assert.deepEqual([...readRegularFile(p)], [1, 2, 3, 4, 5]);
    assert.throws(
      () => readRegularFile(p, { maxBytes: 4 }),
      (e: Error) => e instanceof FileError && /is 5 bytes, over the limit of 4 bytes/.test(e.message),
    );
  });
});

describe("unparsable JSON is reported by place, never by content", () => {
  test("a tokenizer.json symlinked to a private file does not print the file", { skip: !posix && "symlinks" }, () => {
    const secret = join(root, "shadow");
    writeFileSync(secret, `root:${SECRET}:19000:0:99999:7:::\n`);
    chmodSync(secret, 0o600);
    const dir = dirWith("secret-tok", "tokenizer.json", (p) => symlinkSync(secret, p));
    assert.throws(
      () => readTokenizer(dir),
      (e: Error) => {
        assert.match(e.message, /tokenizer\.json: not valid JSON: expected a value at line 1, column 1$/);
        assert.ok(!e.message.includes("root") && !e.message.includes(SECRET), e.message);
        return true;
      },
    );
  });

  test("the CLI shows the place and not the bytes either", { skip: !posix && "symlinks" }, async () => {
    const secret = join(root, "shadow2");
    writeFileSync(secret, `{"user": ${SECRET}}`);
    const dir = dirWith("secret-cli", "tokenizer.json", (p) => symlinkSync(secret, p));
    const r = await moxing(["generate", "--model", dir, "--prompt", "he"]);
    assertOneLineError(r, /tokenizer\.json: not valid JSON: expected a value at line 1, column 10/, 1);
    assert.ok(!r.stderr.includes(SECRET), r.stderr);
  });

  const cases: [string, string, number, number, RegExp][] = [
    ["empty file", "", 1, 1, /unexpected end of file/],
    ["bare word", "secret", 1, 1, /expected a value/],
    ["unquoted value", '{"a": secret}', 1, 7, /expected a value/],
    ["trailing comma", '{\n  "a": 1,\n}', 3, 1, /expected a property name in double quotes/],
    ["double comma in an array", "[1,\n 2,, 3]", 2, 4, /expected a value/],
    ["missing colon", '{"a" 1}', 1, 6, /expected ':' after a property name/],
    ["unterminated string", '{"a": "abc', 1, 11, /unexpected end of file/],
    ["control character", '["a\u0001b"]', 1, 4, /control character inside a string/],
    ["bad escape", '["\\x41"]', 1, 3, /bad escape/],
    ["leading zero", "[01]", 1, 3, /expected ',' or '\]' in an array/],
    ["two values", '{"a": 1} {"b": 2}', 1, 10, /unexpected content after the JSON value/],
    ["truncated", '{"a": [1, 2', 1, 12, /unexpected end of file/],
    ["no digits after minus", "[-]", 1, 3, /expected a digit/],
  ];
  for (const [name, text, line, column, problem] of cases) {
    test(`${name}: line ${line}, column ${column}`, () => {
      assert.throws(() => JSON.parse(text)); // the case really is invalid
      assert.throws(
        () => parseJSON(text, "x.json"),
        (e: Error) => {
          assert.match(e.message, problem);
          assert.ok(e.message.endsWith(`at line ${line}, column ${column}`), e.message);
          assert.ok(!/secret/.test(e.message), e.message);
          return true;
        },
      );
    });
  }

  test("valid JSON of every kind passes the scanner too", () => {
    const text = '{"a": [1, -2.5e+3, 0, true, false, null, "q\\"\\u00e9"], "b": {}, "c": []}';
    assert.deepEqual(parseJSON(text, "x"), JSON.parse(text));
    assert.deepEqual(jsonSyntaxError(text), { offset: 0, problem: "not accepted by JSON.parse" });
  });

  test("readJSONFile and a SQuAD file report the place", () => {
    const p = join(root, "squad.json");
    writeFileSync(p, `{"data": [${SECRET}]}`);
    assert.throws(
      () => readJSONFile(p),
      (e: Error) => /not valid JSON: expected a value at line 1, column 11$/.test(e.message),
    );
    assert.throws(
      () => readSquadFile(p),
      (e: Error) => e instanceof DataError && !e.message.includes(SECRET) && /line 1, column 11/.test(e.message),
    );
  });
});
