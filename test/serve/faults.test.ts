// Faults, bounded in count and time, on 127.0.0.1 only:
//   1,000 streaming requests cancelled mid-stream: nothing is left running (no sequence decoding or
//   waiting, no open connection) and memory is back to its level before;
//   1,000 malformed requests (fuzzed and truncated JSON, wrong types, huge max_tokens, negative
//   temperature, unknown fields, 10 MB bodies, deep nesting, wrong content types): each gets a 4xx with
//   OpenAI's error body, and the server keeps answering good requests in between.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { ServedGPT } from "../../src/serve/models.js";
import type { MoxingServer } from "../../src/serve/server.js";
import { Generator } from "../../src/tensor/random.js";
import { startServer, tinyChatModel } from "./helpers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const tmp = mkdtempSync(join(tmpdir(), "moxing-serve-faults-"));
let server: MoxingServer;
let port: number;
let model: ServedGPT;

before(async () => {
  tinyChatModel(join(tmp, "random"), { steps: 0 });
  server = await startServer({ models: [join(tmp, "random")], maxBatch: 16 });
  port = Number(new URL(server.url).port);
  model = server.ctx.models.get("random") as ServedGPT;
});
after(async () => {
  await server?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: string;
}

/** One request on its own connection (closed after it), so the server's connection count means something. */
function send(
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = { "content-type": "application/json" },
  method = "POST",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered: Reply | null = null;
    const req = request(
      { host: "127.0.0.1", port, path, method, agent: false, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          answered = { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() };
          resolve(answered);
        });
      },
    );
    // A server that answers 413 before reading a huge body may close while we still write it: the
    // answer counts if it came.
    req.on("error", (e) => (answered ? resolve(answered) : reject(e)));
    req.end(body);
  });
}

/** Start a streamed chat answer and cancel it (close the connection) once the first piece arrives. */
function cancelAfterFirstPiece(): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({
      model: "random",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 500,
      stream: true,
      logit_bias: endBias,
    });
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/chat/completions",
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        assert.equal(res.statusCode, 200);
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
          if (text.includes('"content":"') && !text.endsWith('"content":""')) {
            req.destroy();
            resolve();
          }
        });
        res.on("end", () => reject(new Error("the stream ended before it was cancelled")));
      },
    );
    req.on("error", (e) => (req.destroyed ? undefined : reject(e)));
    req.end(body);
  });
}
let endBias: Record<string, number> = {};

async function pool<T>(n: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

const connections = () => new Promise<number>((r) => server.app.server.getConnections((_, n) => r(n)));
async function settled(): Promise<void> {
  await model.scheduler.idle();
  for (let i = 0; i < 100 && (await connections()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
}
function memory(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe("faults", () => {
  test("1,000 requests cancelled mid-stream: nothing left running, memory back to its level", async () => {
    // The random model's special tokens biased away, so no answer ends before it is cancelled.
    endBias = Object.fromEntries([...model.tokenizer.specialTokens.values()].map((id) => [String(id), -100]));
    await pool(64, 16, cancelAfterFirstPiece); // warm up: caches, step buffers, compiled code
    await settled();
    const before = memory();
    const tokensBefore = model.scheduler.stats.tokens;
    const t0 = Date.now();
    await pool(1000, 16, cancelAfterFirstPiece);
    await settled();
    const after = memory();
    assert.deepEqual(
      { ...model.scheduler.load, cachesAllocated: 0 },
      { active: 0, waiting: 0, cachesAllocated: 0 },
      "nothing decoding or waiting",
    );
    assert.ok(model.scheduler.load.cachesAllocated <= 16, `caches are reused (${model.scheduler.load.cachesAllocated} for a batch of 16)`);
    assert.equal(await connections(), 0, "no connection left open");
    const generated = model.scheduler.stats.tokens - tokensBefore;
    assert.ok(generated < 1000 * 60, `the cancelled answers stopped early (${generated} tokens for 1,000 requests of up to 500)`);
    const grew = (after - before) / 2 ** 20;
    assert.ok(grew < 8, `memory back to its level: ${(before / 2 ** 20).toFixed(1)} MiB before, ${(after / 2 ** 20).toFixed(1)} MiB after`);
    assert.ok(Date.now() - t0 < 240_000);
    // And it still answers.
    const ok = await send(
      "/v1/chat/completions",
      JSON.stringify({ model: "random", messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
    );
    assert.equal(ok.status, 200);
  });

  test("1,000 malformed requests each get a 4xx in OpenAI's shape, and good requests still succeed", async () => {
    const g = new Generator(2024);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(g.random() * xs.length)] as T;
    const good = { model: "random", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0.7 };
    const goodText = JSON.stringify(good);
    const wrong: Record<string, unknown[]> = {
      model: [5, null, [], {}, ""],
      messages: [
        "hi",
        [],
        [{}],
        [{ role: "robot", content: "x" }],
        [{ role: "user", content: 5 }],
        [{ role: "user", content: [{ type: "image" }] }],
        null,
      ],
      temperature: ["hot", [], {}, true, -0.1, -1e9, 2.5],
      max_tokens: [1.5, "5", -3, 0, 1e6, 2 ** 31, 1e300],
      n: [0, 1.5, 99, "2"],
      stop: [[1], 5, ["a", "b", "c", "d", "e"]],
      top_p: [0, 1.5, -1, "1"],
      logprobs: ["yes", 1],
      top_logprobs: [21, -1, 2.5],
      seed: [1.5, "x", {}],
      stream: ["yes", 1],
      response_format: [{ type: "xml" }, { type: "json_schema" }, { type: "json_schema", json_schema: { name: "bad name!" } }, "json"],
      logit_bias: [{ abc: 1 }, { "1": 500 }, { "999999": 1 }, []],
      frequency_penalty: [3, -3, "0"],
    };
    const kinds: (() => { body: string | Buffer; headers?: Record<string, string>; method?: string; path?: string })[] = [
      () => ({ body: goodText.slice(0, Math.floor(g.random() * goodText.length)) }), // truncated JSON
      () => {
        // Garbage: random printable bytes that never start like JSON.
        const n = 1 + Math.floor(g.random() * 200);
        return { body: `x${Array.from({ length: n }, () => String.fromCharCode(33 + Math.floor(g.random() * 94))).join("")}` };
      },
      () => {
        const field = pick(Object.keys(wrong));
        return { body: JSON.stringify({ ...good, [field]: pick(wrong[field] as unknown[]) }) };
      },
      () => ({ body: JSON.stringify({ ...good, [`field_${Math.floor(g.random() * 1e6)}`]: 1 }) }), // unknown field
      () => ({ body: JSON.stringify({ ...good, max_tokens: 10 ** (7 + Math.floor(g.random() * 20)) }) }), // huge max_tokens
      () => ({ body: JSON.stringify({ ...good, temperature: -g.random() * 100 - 1e-3 }) }), // negative temperature
      () => ({ body: JSON.stringify({ ...good, model: `gpt-${Math.floor(g.random() * 100)}` }) }), // unknown model: 404
      () => ({ body: goodText, headers: { "content-type": pick(["text/plain", "application/x-www-form-urlencoded", "application/xml"]) } }),
      () => ({ body: `{"model":"random","messages":${"[".repeat(20000)}${"]".repeat(20000)}}` }), // deep nesting
      () => ({ body: '{"__proto__":{"admin":true},"model":"random","messages":[{"role":"user","content":"hi"}]}' }),
      () => ({ body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) }), // invalid UTF-8
      () => ({ body: "", method: "POST" }),
      () => ({ body: goodText, method: "PUT" }),
      () => ({ body: JSON.stringify([good]) }), // an array, not an object
      () => ({
        body: JSON.stringify({ model: "random", prompt: pick([[], [[]], [-1], [1.5], ["a", 1], [[1], "a"]]) }),
        path: "/v1/completions",
      }),
      () => ({ body: JSON.stringify({ model: "random", input: pick(["", [], [""], [-1], 5]) }), path: "/v1/embeddings" }),
    ];
    const cases = Array.from({ length: 995 }, () => pick(kinds)());
    // Five bodies of 10 MB, ten times the limit.
    for (let i = 0; i < 5; i++)
      cases.push({ body: JSON.stringify({ ...good, messages: [{ role: "user", content: "x".repeat(10 << 20) }] }) });
    let goodAnswered = 0;
    const replies = await pool(cases.length, 16, async (i) => {
      const c = cases[i] as (typeof cases)[number];
      const r = await send(
        c.path ?? "/v1/chat/completions",
        c.body,
        c.headers ?? { "content-type": "application/json" },
        c.method ?? "POST",
      );
      if (i % 50 === 0) {
        const ok = await send("/v1/chat/completions", goodText);
        assert.equal(ok.status, 200, `a good request after malformed one ${i}: ${ok.body}`);
        goodAnswered++;
      }
      return r;
    });
    replies.forEach((r, i) => {
      const c = cases[i] as (typeof cases)[number];
      const what = typeof c.body === "string" ? c.body.slice(0, 120) : `bytes ${c.body.toString("hex")}`;
      assert.ok(r.status >= 400 && r.status < 500, `case ${i} (${what}) got ${r.status}: ${r.body.slice(0, 200)}`);
      const err = (JSON.parse(r.body) as { error: { message: unknown; type: unknown } }).error;
      assert.equal(typeof err.message, "string", `case ${i}: an OpenAI error body`);
      assert.equal(typeof err.type, "string");
    });
    assert.equal(goodAnswered, 20);
    const statuses = new Set(replies.map((r) => r.status));
    assert.ok(statuses.has(400) && statuses.has(404) && statuses.has(413), `the kinds of 4xx: ${[...statuses].join(", ")}`);
    await settled();
    assert.deepEqual(model.scheduler.load.active, 0);
  });
});
