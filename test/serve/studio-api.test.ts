// The studio's API: conversations and feedback in the store, "learn now" (a LoRA update by `moxing sft`
// in a child process) changing the answer, and the inside-the-model views on real models.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadModel } from "../../src/io/index.js";
import { sinusoidalTable } from "../../src/nn/positional.js";
import { type AttentionView, type EmbeddingView, type LearnStatus, type PositionView, pca2, tsne2 } from "../../src/serve/index.js";
import type { MoxingServer } from "../../src/serve/server.js";
import { Generator } from "../../src/tensor/random.js";
import { tinyModelDir } from "../bert/helpers.js";
import { assertClose } from "../helpers.js";
import { readEvents, startServer, TINY_LEARN, tinyChatModel } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-studio-api-"));
let server: MoxingServer;

before(async () => {
  tinyChatModel(join(tmp, "chat"));
  tinyChatModel(join(tmp, "sine"), { steps: 0, pos: "sinusoidal" });
  tinyModelDir(join(tmp, "bert"));
  server = await startServer({
    models: [join(tmp, "chat"), join(tmp, "sine"), join(tmp, "bert")],
    db: join(tmp, "fb.db"),
    runsDir: join(tmp, "runs"),
    learn: TINY_LEARN,
  });
});
after(async () => {
  await server?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

async function call<T>(path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${server.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

async function reply(conv: number, content: string, extra: object = {}) {
  const res = await fetch(`${server.url}/api/conversations/${conv}/reply`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "chat", content, sampling: { temperature: 0 }, ...extra }),
  });
  assert.equal(res.status, 200);
  const events = (await readEvents(res)) as { type: string; choices?: { id: number; text: string }[] }[];
  return events.find((e) => e.type === "done")?.choices ?? [];
}

describe("conversations and learn now", () => {
  test("feedback errors are 400s and 404s naming the problem", async () => {
    const conv = (await call<{ id: number }>("/api/conversations", {})).json.id;
    const [answer] = await reply(conv, "hi");
    const user = (answer?.id ?? 0) - 1;
    const bad = await call<{ error: { message: string } }>(`/api/messages/${user}/rate`, { rating: 1 });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /user message; feedback is given on assistant answers/);
    assert.equal((await call(`/api/messages/${answer?.id}/rate`, { rating: 2 })).status, 400);
    assert.equal((await call("/api/conversations/999/reply", { model: "chat", content: "hi" })).status, 404);
    const none = await call<{ error: { code: string } }>(`/api/conversations/${conv}/learn`, { model: "chat" });
    assert.equal(none.status, 400);
    assert.equal(none.json.error.code, "no_feedback");
  });

  test("learn now: a correction, a LoRA update, and the answer after it is the corrected one", async () => {
    const conv = (await call<{ id: number }>("/api/conversations", {})).json.id;
    const [answer] = await reply(conv, "hi");
    assert.equal(answer?.text, "hello there");
    assert.equal((await call(`/api/messages/${answer?.id}/correct`, { content: "ciao" })).status, 200);
    let job = (await call<LearnStatus>(`/api/conversations/${conv}/learn`, { model: "chat" })).json;
    assert.equal(job.state, "running");
    assert.equal(job.target, "ciao");
    const deadline = Date.now() + 120_000;
    while (job.state === "running" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      job = (await call<LearnStatus>(`/api/learn/${job.id}`)).json;
    }
    assert.equal(job.state, "done", job.error ?? "still running");
    assert.equal(job.before, "hello there");
    assert.equal(job.after, "ciao", "the update taught the corrected answer");
    assert.equal(job.step, job.maxSteps);
    assert.ok(existsSync(join(job.adapterDir, "adapter_config.json")), "a PEFT adapter was saved");
    // The served model now answers with the adapter; its run is in the training view.
    const info = (await call<{ models: { id: string; adapter: string | null }[] }>("/api/info")).json;
    assert.equal(info.models.find((m) => m.id === "chat")?.adapter, job.adapterDir);
    const runs = (await call<{ name: string }[]>("/api/runs")).json;
    assert.ok(runs.some((r) => r.name === `${job.id}/adapter`));
    const metrics = (await call<{ lines: { step: number }[] }>(`/api/runs/metrics?run=${encodeURIComponent(`${job.id}/adapter`)}`)).json;
    assert.equal(metrics.lines.length, job.maxSteps);
    // Taking the adapter off brings the old answer back.
    assert.equal((await call("/api/adapter/reset", { model: "chat" })).status, 200);
    const conv2 = (await call<{ id: number }>("/api/conversations", {})).json.id;
    assert.equal((await reply(conv2, "hi"))[0]?.text, "hello there");
  });

  test("the stop button ends a running answer, which is kept as far as it got", async () => {
    const conv = (await call<{ id: number }>("/api/conversations", {})).json.id;
    // The random model's greedy answer cycles without ever ending its turn: only the stop ends it.
    const res = await fetch(`${server.url}/api/conversations/${conv}/reply`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sine", content: "hi", sampling: { temperature: 0, max_tokens: 4000 } }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const dec = new TextDecoder();
    let text = "";
    while (!text.includes('"type":"delta"')) text += dec.decode((await reader.read()).value);
    const start = JSON.parse((/data: (\{"type":"start"[^\n]*)/.exec(text) as RegExpExecArray)[1] as string) as { request: string };
    assert.deepEqual((await call(`/api/requests/${start.request}/stop`, {})).json, { stopped: true });
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += dec.decode(r.value);
    const done = JSON.parse((/data: (\{"type":"done"[^\n]*)/.exec(text) as RegExpExecArray)[1] as string) as {
      choices: { id: number; text: string; finish_reason: string }[];
    };
    const answer = done.choices[0];
    assert.equal(answer?.finish_reason, "abort");
    assert.ok((answer?.text.length ?? 0) > 0 && (answer?.text.length ?? 0) < 4000);
    const stored = (await call<{ messages: { id: number; content: string }[] }>(`/api/conversations/${conv}`)).json.messages;
    assert.equal(stored.find((m) => m.id === answer?.id)?.content, answer?.text);
  });

  test("learn now with DPO: a preference pair, and the update prefers the chosen answer", async () => {
    const conv = (await call<{ id: number }>("/api/conversations", {})).json.id;
    const [answer] = await reply(conv, "bye");
    assert.equal(answer?.text, "ciao");
    // A correction is a preference pair: the person's answer chosen over the model's.
    await call(`/api/messages/${answer?.id}/correct`, { content: "hello there" });
    let job = (await call<LearnStatus>(`/api/conversations/${conv}/learn`, { model: "chat", method: "dpo" })).json;
    assert.equal(job.method, "dpo");
    assert.equal(job.target, "hello there");
    const deadline = Date.now() + 120_000;
    while (job.state === "running" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      job = (await call<LearnStatus>(`/api/learn/${job.id}`)).json;
    }
    assert.equal(job.state, "done", job.error ?? "still running");
    assert.equal(job.before, "ciao");
    const metrics = (await call<{ lines: { train_loss: number }[] }>(`/api/runs/metrics?run=${encodeURIComponent(`${job.id}/adapter`)}`))
      .json.lines;
    // DPO's loss starts at log 2 (the policy equals its reference) and falls as the chosen answer gains.
    assert.ok(Math.abs((metrics[0]?.train_loss ?? 0) - Math.log(2)) < 0.05, `first loss ${metrics[0]?.train_loss}`);
    assert.ok((metrics[metrics.length - 1]?.train_loss ?? 1) < 0.3, `last loss ${metrics[metrics.length - 1]?.train_loss}`);
    assert.notEqual(job.after, "ciao", `the rejected answer is no longer the greedy one (${job.after})`);
    assert.ok(job.after?.startsWith("hel"), `the answer moved towards the chosen one (${job.after})`);
    await call("/api/adapter/reset", { model: "chat" });
    const none = await call<{ error: { code: string } }>(
      `/api/conversations/${(await call<{ id: number }>("/api/conversations", {})).json.id}/learn`,
      {
        model: "chat",
        method: "dpo",
      },
    );
    assert.equal(none.json.error.code, "no_feedback");
  });

  test("run names cannot leave the runs directory", async () => {
    const r = await call<{ error: { message: string } }>(`/api/runs/metrics?run=${encodeURIComponent("../..")}`);
    assert.equal(r.status, 400);
  });
});

describe("inside the model", () => {
  test("embeddings: the seed's words the vocabulary can spell, in 2-D, with similarities and the analogy", async () => {
    for (const method of ["pca", "tsne"]) {
      const r = await call<EmbeddingView>("/api/inside/embeddings", { model: "chat", method });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.words.slice(0, 3), ["猫", "狗", "汉堡"]);
      assert.equal(r.json.points.length, r.json.words.length);
      assert.deepEqual(r.json.tokens[2], ["汉", "堡"]);
      assert.ok(r.json.similarities.some((s) => s.a === "猫" && s.b === "狗"));
      const king = r.json.analogies.find((a) => a.a === "king");
      assert.ok(king && king.nearest.length > 0 && king.nearest.every((n) => !["king", "man", "woman"].includes(n.word)));
    }
    const bert = await call<EmbeddingView>("/api/inside/embeddings", { model: "bert", words: ["cat", "dog", "ball", "zzzqx"] });
    assert.deepEqual(bert.json.missing, ["zzzqx"]);
    const few = await call<{ error: { param: string } }>("/api/inside/embeddings", { model: "chat", words: ["猫"] });
    assert.equal(few.status, 400);
  });

  test("PCA keeps the main direction; t-SNE keeps clusters apart", () => {
    const g = new Generator(4);
    const line = Array.from({ length: 20 }, (_, i) => Float64Array.from([i, 2 * i, -i].map((v) => v + g.random() * 1e-3)));
    const p = pca2(line);
    const spread = (k: 0 | 1) => Math.max(...p.map((q) => q[k])) - Math.min(...p.map((q) => q[k]));
    assert.ok(spread(0) > 1000 * spread(1), "points on a line project onto the first component");
    const cluster = (c: number) => Array.from({ length: 10 }, () => Float64Array.from({ length: 8 }, () => c + g.random()));
    const y = tsne2([...cluster(0), ...cluster(20)], new Generator(1), 300);
    const d = (a: number, b: number) => Math.hypot((y[a]?.[0] ?? 0) - (y[b]?.[0] ?? 0), (y[a]?.[1] ?? 0) - (y[b]?.[1] ?? 0));
    let within = 0;
    let between = 0;
    for (let i = 0; i < 20; i++) {
      for (let j = i + 1; j < 20; j++) {
        if (i < 10 === j < 10) within = Math.max(within, d(i, j));
        else between += d(i, j) / 100;
      }
    }
    assert.ok(between > 2 * within, `clusters apart: mean distance between ${between}, largest within ${within}`);
  });

  test("positions: the learned table or the sinusoidal one, and their similarity", async () => {
    const learned = (await call<PositionView>("/api/inside/positions", { model: "chat" })).json;
    assert.equal(learned.kind, "learned");
    const wpe = loadModel(join(tmp, "chat")).model.transformer.wpe?.weight.contiguousData() as Float32Array;
    assertClose("position 3", learned.table[3] ?? [], wpe.slice(3 * 32, 4 * 32), 0, 1e-4);
    const sine = (await call<PositionView>("/api/inside/positions", { model: "sine" })).json;
    assert.equal(sine.kind, "sinusoidal");
    assertClose(
      "sinusoidal row 5",
      sine.table[5] ?? [],
      (sinusoidalTable(64, 32).contiguousData() as Float32Array).slice(5 * 32, 6 * 32),
      0,
      1e-4,
    );
    for (let i = 0; i < 64; i++) assert.ok(Math.abs((sine.similarity[i]?.[i] ?? 0) - 1) < 1e-3);
    assert.equal((await call<PositionView>("/api/inside/positions", { model: "bert" })).json.table.length, 64);
  });

  test("attention: every layer and head; rows are distributions; a GPT never looks ahead, BERT does", async () => {
    const gpt = (await call<AttentionView>("/api/inside/attention", { model: "chat", text: "hi there" })).json;
    assert.equal(gpt.tokens.join(""), "hi there");
    assert.equal(gpt.weights.length, 2);
    assert.equal(gpt.weights[0]?.length, 2);
    for (const head of gpt.weights.flat()) {
      head.forEach((row, q) => {
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-3);
        assert.ok(
          row.slice(q + 1).every((w) => w === 0),
          "causal",
        );
      });
    }
    const bert = (await call<AttentionView>("/api/inside/attention", { model: "bert", text: "the cat sees the ball" })).json;
    assert.equal(bert.tokens[0], "[CLS]");
    const first = bert.weights[0]?.[0]?.[0] ?? [];
    assert.ok(
      first.slice(1).some((w) => w > 0),
      "bidirectional",
    );
    const long = await call("/api/inside/attention", { model: "chat", text: "x".repeat(65) });
    assert.equal(long.status, 400);
  });
});
