// Issue 11, clear errors where they were raw: negative numbers parse and get the flag's range error
// (`--max-steps -1` answered "argument is ambiguous"); an --out that is a file, on a read-only file
// system or on a full disk says what happened and what to do (raw ENOTDIR/EROFS/ENOSPC, or a
// misleading ENOENT, before); `info` prints GGUF metadata with C1 controls (U+009B) and bidi
// overrides (U+202E) escaped, not raw.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import "../../src/index.js";
import { withNegativeValues } from "../../src/cli/util.js";
import { saveModel } from "../../src/io/checkpoint.js";
import { describeSystemError, escapeForDisplay, FileError, makeOutputDir } from "../../src/io/files.js";
import { encodeGGUF, type GGUFValue } from "../../src/io/gguf.js";
import { gpt2GGUF } from "../../src/io/gguf-gpt2.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import { GPT } from "../../src/models/gpt.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing, type Run, repo } from "../cli-run.js";

const root = mkdtempSync(join(tmpdir(), "moxing-cli-safety-"));
after(() => rmSync(root, { recursive: true, force: true }));

const text = "to be or not to be, that is the question. ".repeat(30);
const data = join(root, "data.txt");
writeFileSync(data, text);
const chars = CharTokenizer.fromText(text);
const modelDir = join(root, "model");
saveModel(modelDir, new GPT({ vocab_size: chars.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16 }, { seed: 1 }), chars);
const tiny = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "2", "--eval-iters", "1"];

describe("negative numbers parse and get the flag's range error", { concurrency: 4 }, () => {
  test("withNegativeValues joins a negative number to the string flag before it, and nothing else", () => {
    const opts = { seed: { type: "string" }, prompt: { type: "string" }, resume: { type: "boolean" } } as const;
    assert.deepEqual(withNegativeValues(["--seed", "-1"], opts), ["--seed=-1"]);
    assert.deepEqual(withNegativeValues(["--seed", "-0.5e3", "--prompt", "-.5"], opts), ["--seed=-0.5e3", "--prompt=-.5"]);
    assert.deepEqual(withNegativeValues(["--seed", "-Infinity"], opts), ["--seed=-Infinity"]);
    // Not numbers, not string flags, already joined, or after "--": left for parseArgs.
    assert.deepEqual(withNegativeValues(["--prompt", "-x"], opts), ["--prompt", "-x"]);
    assert.deepEqual(withNegativeValues(["--resume", "-1"], opts), ["--resume", "-1"]);
    assert.deepEqual(withNegativeValues(["--seed=-1", "-2"], opts), ["--seed=-1", "-2"]);
    assert.deepEqual(withNegativeValues(["--", "--seed", "-1"], opts), ["--", "--seed", "-1"]);
    assert.deepEqual(withNegativeValues(["--prompt", "-"], opts), ["--prompt", "-"]);
  });

  const cases: [string[], RegExp][] = [
    [
      ["train", "--data", data, "--out", join(root, "neg"), "--max-steps", "-1"],
      /^moxing: train: --max-steps must be an integer >= 0 \(got '-1'\)$/,
    ],
    [["train", "--data", data, "--out", join(root, "neg"), "--seed", "-1"], /^moxing: train: --seed must be an integer >= 0 \(got '-1'\)$/],
    [
      ["train", "--data", data, "--out", join(root, "neg"), "--learning-rate", "-1e-3"],
      /--learning-rate must be a number >= 0 \(got '-1e-3'\)$/,
    ],
    [
      ["generate", "--model", modelDir, "--prompt", "to", "--max-new-tokens", "-5"],
      /^moxing: generate: --max-new-tokens must be an integer >= 1 \(got '-5'\)$/,
    ],
    [
      ["generate", "--model", modelDir, "--prompt", "to", "--temperature", "-0.5"],
      /^moxing: generate: --temperature must be a number >= 0 \(got '-0\.5'\)$/,
    ],
    [
      ["generate", "--model", modelDir, "--prompt", "to", "--top-k", "-3"],
      /^moxing: generate: --top-k must be an integer >= 0 \(got '-3'\)$/,
    ],
    [["demo", "--steps", "-10"], /^moxing: demo: --steps must be an integer >= 1 \(got '-10'\)$/],
  ];
  for (const [args, message] of cases) {
    test(`moxing ${args[0]} ... ${args.slice(-2).join(" ")}`, async () => {
      const r = await moxing(args);
      assertOneLineError(r, message, 2);
      assert.doesNotMatch(r.stderr, /ambiguous/);
    });
  }

  test("generate --seed -1 is a valid seed (any integer seeds the generator)", async () => {
    const r = await moxing(["generate", "--model", modelDir, "--prompt", "to", "--max-new-tokens", "5", "--seed", "-1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal([...r.stdout.replace(/\n$/, "")].length, 7);
  });

  test("--prompt - with a standard input that never ends (/dev/zero) is refused at 16 MiB", {
    skip: !existsSync("/dev/zero") && "no /dev/zero",
  }, () => {
    const zero = openSync("/dev/zero", "r");
    try {
      const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "generate", "--model", modelDir, "--prompt", "-"], {
        cwd: repo,
        stdio: [zero, "pipe", "pipe"],
        encoding: "utf8",
        env: { ...process.env, MOXING_QUIET: "1" },
        timeout: 60_000,
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr.trim(), /^moxing: generate: the prompt on standard input is over 16 MiB; give a shorter one/);
    } finally {
      closeSync(zero);
    }
  });

  test("a text value starting with '-' says how to pass it", async () => {
    assertOneLineError(
      await moxing(["generate", "--model", modelDir, "--prompt", "-x"]),
      /^moxing: generate: the value after --prompt starts with '-'; if it is the value, write --prompt=VALUE$/,
      2,
    );
  });
});

describe("--out errors say what happened and what to do", () => {
  const file = join(root, "a-file");
  writeFileSync(file, "not a directory");

  test("train --out FILE and --out FILE/sub", async () => {
    const [a, b] = await Promise.all([
      moxing(["train", "--data", data, "--out", file, "--max-steps", "1", ...tiny]),
      moxing(["train", "--data", data, "--out", join(file, "sub"), "--max-steps", "1", ...tiny]),
    ]);
    assertOneLineError(a, /'.*a-file' is a file, not a directory; write somewhere else \(another --out\) or move the file away$/, 1);
    assertOneLineError(b, /'.*a-file' \(part of '.*a-file[/\\]sub'\) is a file, not a directory; write somewhere else/, 1);
  });

  test("convert --out FILE/sub and export into a path under a file", async () => {
    const [c, e] = await Promise.all([
      moxing(["convert", "--model", modelDir, "--out", join(file, "sub")]),
      moxing(["export", "--model", modelDir, "--format", "safetensors", "--out", join(file, "m.safetensors")]),
    ]);
    assertOneLineError(c, /'.*a-file' \(part of .*\) is a file, not a directory/, 1);
    assertOneLineError(
      e,
      /a part of this path is a file, not a directory; write somewhere else \(another --out\) or move the file away$/,
      1,
    );
  });

  test("a directory that cannot exist (under /proc) is refused at once; Node's recursive mkdir spins for ever there", {
    skip: (process.platform !== "linux" || !existsSync("/proc/self")) && "needs Linux /proc",
  }, () => {
    assert.throws(
      () => makeOutputDir("/proc/moxing-test-dir/sub"),
      (e: Error) => e instanceof FileError && /cannot create '\/proc\/moxing-test-dir': its parent cannot hold directories/.test(e.message),
    );
  });

  // A read-only or full file system needs root to mount; a preloaded module makes the writes under
  // one directory fail with the real error codes instead (see inject-fs-error.mjs).
  const inject = fileURLToPath(new URL("./inject-fs-error.mjs", import.meta.url));
  async function withFsError(code: "EROFS" | "ENOSPC", prefix: string, args: string[]): Promise<Run> {
    const saved = { ...process.env };
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import ${inject}`.trim();
    process.env.MOXING_TEST_FS_PREFIX = prefix;
    process.env.MOXING_TEST_FS_ERROR = code;
    try {
      return await moxing(args);
    } finally {
      for (const k of ["NODE_OPTIONS", "MOXING_TEST_FS_PREFIX", "MOXING_TEST_FS_ERROR"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  }

  test("read-only file system (EROFS): train refuses before training, convert and export say so", async () => {
    const ro = join(root, "read-only");
    mkdirSync(ro);
    const t = await withFsError("EROFS", ro, ["train", "--data", data, "--out", ro, "--max-steps", "1", ...tiny]);
    assertOneLineError(t, /^moxing: '.*read-only' is on a read-only file system; write somewhere else \(another --out\)$/, 1);
    assert.ok(!t.stderr.includes("step"), "refused before the first step");
    const c = await withFsError("EROFS", ro, ["convert", "--model", modelDir, "--out", join(ro, "new")]);
    assertOneLineError(c, /'.*read-only[/\\]new' is on a read-only file system; write somewhere else/, 1);
    const e = await withFsError("EROFS", ro, [
      "export",
      "--model",
      modelDir,
      "--format",
      "safetensors",
      "--out",
      join(ro, "m.safetensors"),
    ]);
    assertOneLineError(e, /is on a read-only file system; write somewhere else \(another --out\)$/, 1);
    assert.deepEqual(readdirSync(ro), []);
  });

  test("full disk (ENOSPC): export and convert say so and leave no temporary file", async () => {
    const full = join(root, "full");
    mkdirSync(full);
    const e = await withFsError("ENOSPC", full, [
      "export",
      "--model",
      modelDir,
      "--format",
      "safetensors",
      "--out",
      join(full, "m.safetensors"),
    ]);
    assertOneLineError(
      e,
      /^moxing: no space left on the device while writing the output; free some space or write somewhere else \(another --out\)$/,
      1,
    );
    const c = await withFsError("ENOSPC", full, ["convert", "--model", modelDir, "--out", join(full, "dir")]);
    assertOneLineError(c, /no space left on the device/, 1);
    assert.deepEqual(
      readdirSync(full).filter((f) => f.includes(".tmp-")),
      [],
    );
  });

  test("describeSystemError words each code, and leaves other errors alone", () => {
    const err = (code: string, syscall: string, path?: string) =>
      Object.assign(new Error(`${code}: raw, ${syscall}`), { code, syscall, ...(path ? { path } : {}) });
    assert.match(describeSystemError(err("EROFS", "mkdir", "/mnt/x")) as string, /^'\/mnt\/x' is on a read-only file system/);
    assert.match(describeSystemError(err("ENOSPC", "write")) as string, /^no space left on the device while writing the output/);
    assert.match(describeSystemError(err("ENOSPC", "write", "/d/f")) as string, /while writing '\/d\/f'/);
    assert.match(describeSystemError(err("EDQUOT", "write")) as string, /disk quota exceeded/);
    assert.match(describeSystemError(err("EACCES", "open", "/root/x")) as string, /^permission denied for '\/root\/x' \(open\)/);
    assert.match(describeSystemError(err("ENOTDIR", "scandir", file)) as string, /a-file' is a file, not a directory/);
    assert.match(describeSystemError(err("ENOTDIR", "open", join(file, "x"))) as string, /a part of this path is a file/);
    assert.equal(describeSystemError(new Error("plain")), null);
    assert.equal(describeSystemError(err("EWHATEVER", "open", "/x")), null);
  });
});

describe("info escapes control and bidi characters from the file", () => {
  // Any C0 control but tab and newline, DEL, C1, bidi controls, line separator: none may be printed raw.
  const RAW = /(?![\t\n])[\p{Cc}\p{Bidi_Control}\u2028]/u;
  const hostile = "evil\u009b31m\u202Egnp.exe\u0007\u001b[2J\u2066x\u2028y";
  test("GGUF metadata with C1 controls and bidi overrides", async () => {
    const bpe = ByteLevelBPE.train(text, { vocabSize: 270 });
    const { metadata, tensors } = gpt2GGUF(
      new GPT({ vocab_size: bpe.vocabSize, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16 }, { seed: 1 }),
      bpe,
    );
    const meta = metadata.map(([k, v]) => (k === "general.name" ? [k, { type: "string", value: hostile }] : [k, v]) as [string, GGUFValue]);
    meta.push(["general.description", { type: "string", value: `\u202E${hostile}` }]);
    const p = join(root, "hostile.gguf");
    writeFileSync(p, Buffer.concat(encodeGGUF(meta, tensors)));
    const r = await moxing(["info", "--model", p]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, RAW);
    assert.match(r.stdout, /evil\\u009b31m\\u202egnp\.exe\\u0007\\u001b\[2J\\u2066x\\u2028y/);
    const json = JSON.parse(r.stdout);
    assert.equal(json.metadata["general.name"], hostile, "the JSON still parses to the file's text");
  });

  test("safetensors metadata and a tensor name in an error message", async () => {
    const p = join(root, "hostile.safetensors");
    writeSafetensors(p, { [`w${hostile}`]: { dtype: "F32", shape: [1], data: new Float32Array([1]) } }, { note: hostile });
    const r = await moxing(["info", "--model", p]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, RAW);
    assert.equal(JSON.parse(r.stdout).metadata.note, hostile);
    const bad = await moxing(["generate", "--model", p, "--prompt", "x"]);
    assert.doesNotMatch(bad.stderr, RAW);
  });

  test("escapeForDisplay keeps JSON valid and equal", () => {
    const s = JSON.stringify({ a: hostile, b: ["\t\n", "ok"] }, null, 2);
    const e = escapeForDisplay(s);
    assert.deepEqual(JSON.parse(e), JSON.parse(s));
    assert.doesNotMatch(e, /[\u0080-\u009f\u202e]/);
    assert.equal(escapeForDisplay("plain\ttext\n"), "plain\ttext\n");
  });
});
