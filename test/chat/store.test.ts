// The feedback store: its API, schema versions and migrations, the TRL export (library and CLI), and
// durability: a writer killed with SIGKILL at random moments, many times, loses no committed row and
// leaves a database that opens.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import {
  FeedbackStore,
  FeedbackStoreError,
  MIGRATIONS,
  migrateFeedbackStore,
  preferenceExamples,
  SCHEMA_VERSION,
  sftExamples,
} from "../../src/chat/index.js";
import { assertOneLineError, moxing, repo } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-store-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dbPath = () => join(tmp, `f${n++}.db`);

/** A conversation with a retried answer: the first rated down and corrected, the retry rated up and chosen. */
function populate(store: FeedbackStore) {
  const conv = store.startConversation({ title: "sotu", system: "Answer briefly." });
  const q = store.addMessage(conv, { role: "user", content: "Who spoke in 1962?" });
  const bad = store.addMessage(conv, {
    role: "assistant",
    content: "Lincoln.",
    model: "runs/sft",
    sampling: { temperature: 0.8, top_k: 40 },
  });
  const good = store.addMessage(conv, {
    role: "assistant",
    content: "John F. Kennedy.",
    parentId: q,
    model: "runs/sft",
    sampling: { temperature: 0.8 },
  });
  store.rate(bad, -1);
  store.rate(good, -1);
  store.rate(good, 1); // the newest rating counts
  store.correct(bad, "John F. Kennedy (Democrat).");
  store.choose(good, bad);
  const q2 = store.addMessage(conv, { role: "user", content: "Which party?", parentId: good });
  const a2 = store.addMessage(conv, { role: "assistant", content: "Democratic.", model: "runs/sft", sampling: { temperature: 0 } });
  return { conv, q, bad, good, q2, a2 };
}

describe("FeedbackStore", () => {
  test("a new database is WAL, synchronous=FULL, at the current schema version", () => {
    const store = FeedbackStore.open(dbPath());
    assert.equal(store.db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(store.db.pragma("synchronous", { simple: true }), 2); // FULL
    assert.equal(store.schemaVersion, SCHEMA_VERSION);
    store.close();
  });

  test("messages form a thread with the model and sampling settings of each answer", () => {
    const store = FeedbackStore.open(dbPath());
    const ids = populate(store);
    const thread = store.thread(ids.a2);
    assert.deepEqual(
      thread.map((m) => [m.role, m.content]),
      [
        ["system", "Answer briefly."],
        ["user", "Who spoke in 1962?"],
        ["assistant", "John F. Kennedy."],
        ["user", "Which party?"],
        ["assistant", "Democratic."],
      ],
    );
    assert.deepEqual(store.message(ids.bad)?.sampling, { temperature: 0.8, top_k: 40 });
    assert.equal(store.message(ids.bad)?.model, "runs/sft");
    assert.equal(store.message(ids.bad)?.parentId, ids.q);
    assert.equal(store.message(ids.good)?.parentId, ids.q, "a retry is a sibling of the first answer");
    assert.deepEqual(store.counts(), { conversations: 1, messages: 6, ratings: 3, choices: 1, corrections: 1 });
    store.close();
  });

  test("feedback is refused where it makes no sense", () => {
    const store = FeedbackStore.open(dbPath());
    const ids = populate(store);
    assert.throws(() => store.rate(ids.q, 1), /message \d+ is a user message/);
    assert.throws(() => store.rate(ids.good, 2 as 1), /\+1 or -1/);
    assert.throws(() => store.choose(ids.good, ids.a2), /answer different contexts/);
    assert.throws(() => store.choose(ids.good, ids.good), /same message/);
    assert.throws(() => store.correct(ids.good, ""), /empty/);
    assert.throws(() => store.addMessage(999, { role: "user", content: "x" }), /no conversation 999/);
    assert.throws(() => store.rate(12345, 1), /no message 12345/);
    store.close();
  });

  test("migrations: applied in order, each in a transaction; a newer file is refused", () => {
    const path = dbPath();
    FeedbackStore.open(path).close();
    const extra = [...MIGRATIONS, { version: SCHEMA_VERSION + 1, description: "test", sql: "ALTER TABLE ratings ADD COLUMN note TEXT;" }];
    const broken = [
      ...MIGRATIONS,
      { version: SCHEMA_VERSION + 1, description: "broken", sql: "CREATE TABLE t (x); SELECT * FROM nowhere;" },
    ];
    const db = new Database(path);
    assert.throws(() => migrateFeedbackStore(db, broken), /no such table: nowhere/);
    assert.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION, "a failed migration leaves the old version");
    assert.equal(
      (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'").get() as { n: number }).n,
      0,
      "and none of its changes",
    );
    assert.deepEqual(migrateFeedbackStore(db, extra), [SCHEMA_VERSION + 1]);
    assert.deepEqual(migrateFeedbackStore(db, extra), [], "migrating twice does nothing");
    db.close();
    assert.throws(
      () => FeedbackStore.open(path),
      (e: Error) => e instanceof FeedbackStoreError && /newer than this moxing knows/.test(e.message),
    );
    const v1 = FeedbackStore.open(path, { migrations: extra });
    assert.equal(v1.schemaVersion, SCHEMA_VERSION + 1);
    v1.close();
  });

  test("a file that is not a feedback database gets a clear error", () => {
    const path = join(tmp, "not-a-db.db");
    writeFileSync(path, "this is not sqlite ".repeat(100));
    assert.throws(() => FeedbackStore.open(path), /not a moxing feedback database|damaged/);
  });
});

describe("export to TRL JSONL", () => {
  test("sft: thumbs-up answers and corrections as prompt-completion conversations", () => {
    const store = FeedbackStore.open(dbPath());
    populate(store);
    const sft = sftExamples(store);
    const context = [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: "Who spoke in 1962?" },
    ];
    assert.deepEqual(sft, [
      { prompt: context, completion: [{ role: "assistant", content: "John F. Kennedy." }] },
      { prompt: context, completion: [{ role: "assistant", content: "John F. Kennedy (Democrat)." }] },
    ]);
    store.close();
  });

  test("preference: a correction is chosen over the answer it corrects; choices and up/down pairs follow", () => {
    const store = FeedbackStore.open(dbPath());
    populate(store);
    const pref = preferenceExamples(store);
    const pairs = pref.map((p) => [p.chosen[0]?.content, p.rejected[0]?.content]);
    assert.deepEqual(pairs, [
      ["John F. Kennedy (Democrat).", "Lincoln."],
      ["John F. Kennedy.", "Lincoln."],
    ]);
    assert.deepEqual(
      pref[0]?.prompt.map((m) => m.role),
      ["system", "user"],
    );
    store.close();
  });

  test("moxing feedback export writes the files; bad flags are one-line usage errors", async () => {
    const path = dbPath();
    const store = FeedbackStore.open(path);
    populate(store);
    store.close();
    const out = join(tmp, "pref.jsonl");
    const r = await moxing(["feedback", "export", "--format", "preference", "--db", path, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(lines[0]), ["prompt", "chosen", "rejected"]);
    const stats = await moxing(["feedback", "stats", "--db", path]);
    assert.deepEqual(JSON.parse(stats.stdout), { conversations: 1, messages: 6, ratings: 3, choices: 1, corrections: 1 });
    assertOneLineError(
      await moxing(["feedback", "export", "--format", "dpo", "--db", path, "--out", out]),
      /--format must be sft or preference/,
      2,
    );
    assertOneLineError(
      await moxing(["feedback", "export", "--format", "sft", "--db", join(tmp, "missing.db"), "--out", out]),
      /does not exist/,
      2,
    );
  });
});

describe("durability", () => {
  test("SIGKILL at random moments, 20 times: every committed row survives and the database opens", async () => {
    const path = dbPath();
    // As in store-writer.ts.
    const answerOf = (i: number) => `answer ${i} ${"x".repeat((i * 97) % 3000)}`;
    const committed: { i: number; conv: number; answer: number }[] = [];
    let next = 0;
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 20; round++) {
      const child = spawn(process.execPath, ["--import", "tsx", "test/chat/store-writer.ts", path, String(next)], { cwd: repo });
      let out = "";
      let killTimer: NodeJS.Timeout | undefined;
      const exited = new Promise<string | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
      child.stderr.on("data", (d) => process.stderr.write(d));
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        // Once it is writing, kill it at a random moment within the next ~40 ms.
        if (killTimer === undefined && out.includes("\n")) killTimer = setTimeout(() => child.kill("SIGKILL"), Math.floor(random() * 40));
      });
      assert.equal(await exited, "SIGKILL", `round ${round}: the writer ended before it was killed`);
      for (const line of out.split("\n")) {
        const m = /^committed (\d+) (\d+) (\d+)$/.exec(line);
        if (m) committed.push({ i: Number(m[1]), conv: Number(m[2]), answer: Number(m[3]) });
      }
      next = (committed[committed.length - 1]?.i ?? next) + 1000; // fresh indices: lost-but-unreported rows cannot be mistaken

      const store = FeedbackStore.open(path);
      assert.equal(store.db.pragma("integrity_check", { simple: true }), "ok");
      for (const c of committed) {
        const m = store.message(c.answer);
        assert.ok(m, `round ${round}: committed answer ${c.answer} (example ${c.i}) is missing`);
        assert.equal(m.content, answerOf(c.i));
        assert.deepEqual(m.sampling, { temperature: 0.7, seed: c.i });
      }
      // Transactions are all or nothing: every conversation in the file is complete.
      const partial = store.db
        .prepare(
          `SELECT c.id FROM conversations c WHERE (SELECT count(*) FROM messages WHERE conversation_id = c.id) != 3
             OR (SELECT count(*) FROM ratings r JOIN messages m ON r.message_id = m.id WHERE m.conversation_id = c.id) != 1
             OR (SELECT count(*) FROM corrections r JOIN messages m ON r.message_id = m.id WHERE m.conversation_id = c.id) != 1`,
        )
        .all();
      assert.deepEqual(partial, [], `round ${round}: half-written conversations`);
      store.close();
    }
    assert.ok(committed.length >= 20, `only ${committed.length} commits were reported`);
  });
});
