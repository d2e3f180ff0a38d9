// A model directory can never reach outside itself: the checkpoint journal refuses manifest names
// that are not plain file names and commit directories that are links, never moves links into the
// directory; temporary files of killed writers are cleaned and planted links never written
// through; a run directory is locked against a second writer, with stale locks taken over.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { writeFileAtomic } from "../../src/io/atomic.js";
import { loadModel, saveModel } from "../../src/io/gpt.js";
import { commitFiles } from "../../src/io/journal.js";
import { LOCK_FILE, LockError, lockDir } from "../../src/io/lock.js";
import { CheckpointError, readTrainerState, recoverCheckpoint } from "../../src/io/model-dir.js";
import { GPT } from "../../src/models/gpt.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { train } from "../../src/train/trainer.js";

const root = mkdtempSync(join(tmpdir(), "moxing-journal-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
};
const tokenizer = CharTokenizer.fromText("hello world");
const tiny = () => new GPT({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 4, vocab_size: tokenizer.vocabSize }, { seed: 1 });

/** A directory with a model and a (hostile) interrupted commit whose manifest says `manifest`. */
function hostile(manifest: object): { dir: string; victim: string } {
  const dir = fresh();
  saveModel(dir, tiny(), tokenizer);
  const victim = join(root, `victim-${n}.txt`);
  writeFileSync(victim, "precious");
  const commit = join(dir, ".checkpoint-commit");
  mkdirSync(commit);
  writeFileSync(join(commit, "MANIFEST.json"), JSON.stringify(manifest));
  return { dir, victim };
}

describe("the journal stays inside its directory", () => {
  test("a manifest naming ../victim.txt to remove is refused and deletes nothing, on every path that recovers", async () => {
    const { dir, victim } = hostile({ files: [], remove: [`../victim-${n}.txt`] });
    assert.throws(
      () => recoverCheckpoint(dir),
      (e: Error) =>
        e instanceof CheckpointError &&
        /MANIFEST\.json: names "\.\.\/victim-\d+\.txt" to delete, which is not a file of this directory/.test(e.message),
    );
    assert.throws(() => loadModel(dir), /not a file of this directory/);
    assert.throws(() => saveModel(dir, tiny(), tokenizer), /not a file of this directory/);
    await assert.rejects(train({ out: dir, resume: true }), /not a file of this directory/);
    await assert.rejects(train({ out: dir, text: "hello world ".repeat(50), maxSteps: 1 }), /not a file of this directory/);
    for (const bad of ["/etc/passwd", "a/b", "..", ""]) {
      const h = hostile({ files: [], remove: [bad] });
      assert.throws(() => recoverCheckpoint(h.dir), /not a file of this directory/, bad);
    }
    assert.equal(readFileSync(victim, "utf8"), "precious");
  });

  test("a .checkpoint-commit that is a link to another directory is refused; that directory's files stay", () => {
    const dir = fresh();
    saveModel(dir, tiny(), tokenizer);
    const elsewhere = fresh();
    writeFileSync(join(elsewhere, "notes.txt"), "mine");
    symlinkSync(elsewhere, join(dir, ".checkpoint-commit"));
    assert.throws(
      () => recoverCheckpoint(dir),
      /\.checkpoint-commit: an interrupted checkpoint commit must be a directory, but this is a symbolic link/,
    );
    assert.deepEqual(readdirSync(elsewhere), ["notes.txt"]);
    assert.ok(!existsSync(join(dir, "notes.txt")));
  });

  test("links inside a commit are not moved in; a temp-dir link of a dead writer is removed, not its target", () => {
    const { dir } = hostile({ files: ["config.json"], remove: [] });
    const outside = join(root, "outside.txt");
    writeFileSync(outside, "outside");
    symlinkSync(outside, join(dir, ".checkpoint-commit", "tokenizer.json"));
    const target = fresh();
    writeFileSync(join(target, "keep.txt"), "keep");
    symlinkSync(target, join(dir, ".checkpoint-tmp-999999999"));
    assert.equal(recoverCheckpoint(dir), true);
    assert.ok(!lstatSync(join(dir, "tokenizer.json")).isSymbolicLink(), "the planted link did not replace tokenizer.json");
    assert.ok(!existsSync(join(dir, ".checkpoint-tmp-999999999")));
    assert.deepEqual(readdirSync(target), ["keep.txt"]);
    assert.equal(readFileSync(outside, "utf8"), "outside");
    assert.ok(loadModel(dir).model);
  });

  test("commitFiles refuses names that are not plain file names", () => {
    assert.throws(() => commitFiles(fresh(), new Map([["../x", "y"]]), []), /'\.\.\/x' is not a plain file name/);
    assert.throws(() => commitFiles(fresh(), new Map(), ["a/b"]), /'a\/b' is not a plain file name/);
  });
});

describe("atomic writes", () => {
  test("a temp file left by a killed writer is removed at the next write to that destination; a live writer's stays", () => {
    const dir = fresh();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const deadPid = Number(dead.stdout);
    writeFileSync(join(dir, `.model.gguf.tmp-${deadPid}-0`), "half");
    writeFileSync(join(dir, ".model.gguf.tmp-1-0"), "pid 1 is alive"); // init: a live writer
    writeFileSync(join(dir, `.other.gguf.tmp-${deadPid}-0`), "another destination");
    writeFileAtomic(join(dir, "model.gguf"), "whole");
    assert.deepEqual(readdirSync(dir).sort(), [".model.gguf.tmp-1-0", `.other.gguf.tmp-${deadPid}-0`, "model.gguf"]);
  });

  test("a link planted under a temporary name is never written through", () => {
    const dir = fresh();
    const victim = join(root, "planted-victim.txt");
    writeFileSync(victim, "precious");
    for (let i = 0; i < 300; i++) symlinkSync(victim, join(dir, `.f.txt.tmp-${process.pid}-${i}`));
    writeFileAtomic(join(dir, "f.txt"), "new");
    assert.equal(readFileSync(join(dir, "f.txt"), "utf8"), "new");
    assert.equal(readFileSync(victim, "utf8"), "precious");
  });
});

describe("run directory locks", () => {
  const text = "the people of the united states in order to form a more perfect union ".repeat(40);
  const opts = { text, nLayer: 1, nHead: 2, nEmbd: 8, blockSize: 8, batchSize: 2, evalIters: 1, maxSteps: 2 };

  test("a directory locked by a live process is refused, naming it; a stale lock (dead process) is taken over", async () => {
    const dir = fresh();
    const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    try {
      writeFileSync(
        join(dir, LOCK_FILE),
        JSON.stringify({ pid: sleeper.pid, host: hostname(), started: null, what: "train", since: "2024-01-01T00:00:00Z" }),
      );
      await assert.rejects(
        train({ ...opts, out: dir }),
        (e: Error) => e instanceof LockError && new RegExp(`is in use by process ${sleeper.pid} \\(train`).test(e.message),
      );
      assert.throws(() => lockDir(dir, "x"), LockError);
      assert.equal(readTrainerState(dir), null, "nothing was written");
    } finally {
      sleeper.kill();
    }
    await new Promise((r) => sleeper.on("close", r));
    // The holder is gone: its lock is stale.
    const r = await train({ ...opts, out: dir });
    assert.equal(r.status, "completed");
    assert.ok(!existsSync(join(dir, LOCK_FILE)), "released at the end");
  });

  test("a lock whose pid now belongs to a later process is stale (Linux start times)", async (t) => {
    if (!existsSync("/proc/self/stat")) return t.skip("no /proc");
    const dir = fresh();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: hostname(), started: "-1", what: "train", since: "then" }));
    const r = await train({ ...opts, out: dir });
    assert.equal(r.status, "completed");
  });

  test("metrics.jsonl that is a link is refused, and its target untouched", async () => {
    const dir = fresh();
    const victim = join(root, "metrics-victim.txt");
    writeFileSync(victim, "precious\n");
    symlinkSync(victim, join(dir, "metrics.jsonl"));
    await assert.rejects(train({ ...opts, out: dir }), /metrics\.jsonl: is a symbolic link/);
    assert.equal(readFileSync(victim, "utf8"), "precious\n");
  });
});
