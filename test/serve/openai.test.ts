// The official `openai` client against `moxing serve` on 127.0.0.1: plain and streamed chat,
// completions, embeddings (GPT and BERT), json_schema output that parses and validates, logprobs,
// seeds, stops, continuous batching, cancellation, and every error case in OpenAI's error shape.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Ajv } from "ajv";
import OpenAI from "openai";
import { encodeChat } from "../../src/chat/index.js";
import { loadBert } from "../../src/io/bert.js";
import { loadModel } from "../../src/io/index.js";
import { sentenceEmbeddings } from "../../src/pipelines/index.js";
import type { MoxingServer } from "../../src/serve/server.js";
import type { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";
import { tinyModelDir } from "../bert/helpers.js";
import { assertClose } from "../helpers.js";
import { readEvents, startServer, tinyChatModel } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-serve-openai-"));
const dirs = { chat: join(tmp, "chat"), random: join(tmp, "random"), bert: join(tmp, "bert") };
let server: MoxingServer;
let client: OpenAI;

before(async () => {
  tinyChatModel(dirs.chat);
  tinyChatModel(dirs.random, { steps: 0, seed: 9 }); // answers run on to max_tokens
  tinyModelDir(dirs.bert);
  server = await startServer({ models: [dirs.chat, dirs.random, dirs.bert], db: join(tmp, "feedback.db"), maxBatch: 4, maxQueue: 4 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "not-checked", maxRetries: 0 });
});
after(async () => {
  await server?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

const hi = [{ role: "user" as const, content: "hi" }];
/** logit_bias that keeps the random model from ending its turn, so it runs to max_tokens. */
let noEnd: Record<string, number> = {};
before(() => {
  const { tokenizer } = loadModel(dirs.random);
  noEnd = Object.fromEntries([...tokenizer.specialTokens.values()].map((id) => [String(id), -100]));
});

describe("chat completions", () => {
  test("GET /v1/models lists every model by its directory name", async () => {
    const ids = (await client.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids.sort(), ["bert", "chat", "random"]);
    assert.equal((await client.models.retrieve("chat")).id, "chat");
  });

  test("a plain answer: text, finish reason and usage counts", async () => {
    const r = await client.chat.completions.create({ model: "chat", messages: hi, temperature: 0 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]?.message.content, "hello there");
    assert.equal(r.choices[0]?.finish_reason, "stop");
    const { tokenizer } = loadModel(dirs.chat);
    const promptTokens = encodeChat(tokenizer, hi, { addGenerationPrompt: true }).ids.length;
    assert.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: 11, total_tokens: promptTokens + 11 });
  });

  test("a streamed answer arrives in pieces that add up, then [DONE], with usage when asked", async () => {
    const stream = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "bye" }],
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0]?.choices[0]?.delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, "ciao");
    assert.ok(chunks.filter((c) => c.choices[0]?.delta.content).length >= 2, "more than one piece");
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason, "stop");
    assert.equal(chunks[chunks.length - 1]?.usage?.completion_tokens, 4);
    // The raw stream ends with data: [DONE].
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: hi, temperature: 0, stream: true }),
    });
    assert.equal(raw.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const events = await readEvents(raw);
    assert.equal(events[events.length - 1], "[DONE]");
  });

  test("max_tokens, stop strings, seeds and n", async () => {
    const short = await client.chat.completions.create({ model: "chat", messages: hi, temperature: 0, max_tokens: 4 });
    assert.equal(short.choices[0]?.message.content, "hell");
    assert.equal(short.choices[0]?.finish_reason, "length");
    const cut = await client.chat.completions.create({ model: "chat", messages: hi, temperature: 0, stop: ["lo t"] });
    assert.equal(cut.choices[0]?.message.content, "hel");
    assert.equal(cut.choices[0]?.finish_reason, "stop");
    const ask = () =>
      client.chat.completions.create({ model: "random", messages: hi, temperature: 1, seed: 42, n: 3, max_tokens: 12, logit_bias: noEnd });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a.choices.length, 3);
    assert.deepEqual(
      a.choices.map((c) => c.message.content),
      b.choices.map((c) => c.message.content),
      "the same seed gives the same samples",
    );
    assert.notEqual(a.choices[0]?.message.content, a.choices[1]?.message.content, "each choice samples on its own");
    assert.equal(a.usage?.completion_tokens, 36);
  });

  test("logprobs: each token with its log-probability and the most likely alternatives", async () => {
    const r = await client.chat.completions.create({
      model: "chat",
      messages: hi,
      temperature: 0,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0]?.logprobs?.content ?? [];
    assert.equal(content.length, 5);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 3);
      assert.equal(t.top_logprobs[0]?.token, t.token, "greedy picks the most likely token");
      assert.equal(t.top_logprobs[0]?.logprob, t.logprob);
      assert.ok(t.logprob <= 0 && t.top_logprobs.reduce((s, x) => s + Math.exp(x.logprob), 0) <= 1 + 1e-9);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
    }
    assert.equal(content.map((t) => t.token).join(""), "hello");
  });

  test("response_format json_schema: the answer parses and validates, whatever the model", async () => {
    const schema = {
      type: "object",
      properties: {
        name: { type: "string", maxLength: 8 },
        age: { type: "integer" },
        mood: { enum: ["happy", "sad"] },
        tags: { type: "array", items: { type: "string", maxLength: 3 }, maxItems: 2 },
      },
      required: ["name", "age", "mood"],
      additionalProperties: false,
    };
    const validate = new Ajv().compile(schema);
    for (const model of ["random", "chat"]) {
      for (const seed of [1, 2, 3]) {
        const r = await client.chat.completions.create({
          model,
          messages: hi,
          seed,
          max_tokens: 60,
          response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
        });
        const text = r.choices[0]?.message.content ?? "";
        const value = JSON.parse(text);
        assert.ok(validate(value), `${model} seed ${seed}: ${text} ${JSON.stringify(validate.errors)}`);
      }
    }
    const obj = await client.chat.completions.create({
      model: "random",
      messages: hi,
      seed: 5,
      max_tokens: 30,
      response_format: { type: "json_object" },
    });
    assert.equal(typeof JSON.parse(obj.choices[0]?.message.content ?? ""), "object");
  });
});

describe("completions and embeddings", () => {
  test("completions: text, echo, logprobs, several prompts", async () => {
    const r = await client.completions.create({
      model: "chat",
      prompt: ["hel", "ci"],
      max_tokens: 3,
      temperature: 0,
      echo: true,
      logprobs: 2,
    });
    assert.equal(r.choices.length, 2);
    assert.ok(r.choices[0]?.text.startsWith("hel"));
    assert.equal(r.choices[0]?.logprobs?.tokens?.length, 3);
    assert.equal(Object.keys(r.choices[0]?.logprobs?.top_logprobs?.[0] ?? {}).length, 2);
    assert.equal(r.usage?.prompt_tokens, 5);
    assert.equal(r.usage?.completion_tokens, 6);
    const stream = await client.completions.create({ model: "chat", prompt: [1, 2, 3], max_tokens: 4, temperature: 0, stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    assert.equal(text.length, 4);
  });

  test("embeddings: a GPT's mean-pooled unit vectors, a BERT's sentence vectors, base64 equal to floats", async () => {
    const r = await client.embeddings.create({ model: "chat", input: ["hi there", "bye"] }); // the client asks for base64
    assert.equal(r.data.length, 2);
    for (const d of r.data) {
      assert.equal(d.embedding.length, 32);
      assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-5);
    }
    const floats = await client.embeddings.create({ model: "chat", input: ["hi there", "bye"], encoding_format: "float" });
    assertClose("base64 = float", r.data[0]?.embedding ?? [], floats.data[0]?.embedding ?? [], 0, 0);
    const b = await client.embeddings.create({ model: "bert", input: ["the cat sees the ball"] });
    const { model, tokenizer } = loadBert(dirs.bert, { task: "feature-extraction" });
    const want = sentenceEmbeddings(model, tokenizer as WordPieceTokenizer, ["the cat sees the ball"])[0] as Float32Array;
    assertClose("BERT sentence embedding", b.data[0]?.embedding ?? [], want, 1e-5, 1e-6);
    assert.ok((b.usage?.prompt_tokens ?? 0) > 2);
  });
});

describe("errors, in OpenAI's shape", () => {
  const expectError = async (p: Promise<unknown>, status: number, check: (e: InstanceType<typeof OpenAI.APIError>) => void) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, status, e.message);
      check(e);
      return true;
    });
  };

  test("400: out of range, wrong type, unknown field, missing field, bad schema; 404: unknown model", async () => {
    await expectError(client.chat.completions.create({ model: "chat", messages: hi, temperature: -1 }), 400, (e) => {
      assert.equal(e.param, "temperature");
      assert.equal(e.type, "invalid_request_error");
    });
    await expectError(client.chat.completions.create({ model: "chat", messages: hi, max_tokens: "5" as unknown as number }), 400, (e) =>
      assert.equal(e.param, "max_tokens"),
    );
    await expectError(client.chat.completions.create({ model: "chat", messages: hi, frobnicate: true } as never), 400, (e) => {
      assert.equal(e.param, "frobnicate");
      assert.match(e.message, /Unrecognized request argument/);
    });
    await expectError(client.chat.completions.create({ model: "chat" } as never), 400, (e) => assert.equal(e.param, "messages"));
    await expectError(client.chat.completions.create({ model: "chat", messages: [{ role: "tool", content: "x" }] } as never), 400, (e) =>
      assert.equal(e.param, "messages[0].role"),
    );
    await expectError(client.chat.completions.create({ model: "chat", messages: hi, max_tokens: 1e9 }), 400, (e) =>
      assert.equal(e.code, "max_tokens_too_large"),
    );
    await expectError(
      client.chat.completions.create({
        model: "chat",
        messages: hi,
        response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a+$" } } },
      }),
      400,
      (e) => assert.match(e.message, /'pattern' is not supported/),
    );
    await expectError(client.chat.completions.create({ model: "bert", messages: hi }), 400, (e) =>
      assert.equal(e.code, "model_not_supported"),
    );
    await expectError(client.chat.completions.create({ model: "gpt-4o", messages: hi }), 404, (e) => {
      assert.equal(e.code, "model_not_found");
      assert.equal(e.param, "model");
    });
    await expectError(client.completions.create({ model: "chat", prompt: "x".repeat(65) }), 400, (e) =>
      assert.equal(e.code, "context_length_exceeded"),
    );
    await expectError(client.completions.create({ model: "chat", prompt: "ß" }), 400, (e) => assert.match(e.message, /cannot be encoded/));
  });

  test("413 for a body over the limit; 400 for a body that is not JSON", async () => {
    const big = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "x".repeat(2 << 20) }] }),
    });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, "request_too_large");
    const bad = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"model": ',
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(((await bad.json()) as { error: object }).error).sort(), ["code", "message", "param", "type"]);
  });

  test("429 with Retry-After when every slot and the queue are taken", async () => {
    const full = await startServer({ models: [dirs.random], maxBatch: 1, maxQueue: 0 });
    try {
      const c = new OpenAI({ baseURL: `${full.url}/v1`, apiKey: "x", maxRetries: 0 });
      const running = await c.chat.completions.create({ model: "random", messages: hi, max_tokens: 300, logit_bias: noEnd, stream: true });
      const it = running[Symbol.asyncIterator]();
      await it.next(); // it holds the only slot now
      await expectError(c.chat.completions.create({ model: "random", messages: hi, max_tokens: 5 }), 429, (e) => {
        assert.equal(e.headers?.get("retry-after"), "1");
        assert.equal(e.code, "rate_limit_exceeded");
      });
      let finish: string | null | undefined = null;
      for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
      assert.equal(finish, "length", "the running request was not disturbed");
    } finally {
      await full.shutdown(1000);
    }
  });

  test("401 without the API key on every route but /health", async () => {
    const locked = await startServer({ models: [dirs.chat], apiKey: "secret-key-1" });
    try {
      const wrong = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: "nope", maxRetries: 0 });
      await expectError(wrong.models.list(), 401, (e) => assert.equal(e.code, "invalid_api_key"));
      for (const path of ["/", "/api/info", "/v1/models"]) assert.equal((await fetch(`${locked.url}${path}`)).status, 401, path);
      assert.equal((await fetch(`${locked.url}/health`)).status, 200);
      const right = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: "secret-key-1", maxRetries: 0 });
      assert.equal(
        (await right.chat.completions.create({ model: "chat", messages: hi, temperature: 0 })).choices[0]?.message.content,
        "hello there",
      );
      // The studio: /?key=KEY sets a cookie that opens the rest.
      const login = await fetch(`${locked.url}/?key=secret-key-1`, { redirect: "manual" });
      assert.equal(login.status, 303);
      const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
      assert.equal((await fetch(`${locked.url}/api/info`, { headers: { cookie } })).status, 200);
    } finally {
      await locked.shutdown(1000);
    }
  });
});

describe("scheduling", () => {
  test("concurrent requests share decode steps; a later one joins the running batch", async () => {
    const m = server.ctx.models.get("random");
    assert.ok(m?.kind === "gpt");
    const before = m.scheduler.stats.maxBatchSeen;
    const first = client.chat.completions.create({ model: "random", messages: hi, max_tokens: 60, stream: true, logit_bias: noEnd });
    const stream = await first;
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await it.next(); // the first request is decoding
    // The random model may sample an end token first: keep it from ending, so it decodes its 5 tokens.
    const second = await client.chat.completions.create({
      model: "random",
      messages: [{ role: "user", content: "bye" }],
      max_tokens: 5,
      logit_bias: noEnd,
    });
    assert.equal(second.usage?.completion_tokens, 5);
    let rest = 0;
    for (let r = await it.next(); !r.done; r = await it.next()) if (r.value.choices[0]?.delta.content) rest++;
    assert.ok(rest > 10, `the first request was still running when the second finished (${rest} pieces left)`);
    assert.ok(m.scheduler.stats.maxBatchSeen >= 2 || before >= 2, "two sequences were decoded in one step");
  });

  test("a client that disconnects cancels its generation", async () => {
    const m = server.ctx.models.get("random");
    assert.ok(m?.kind === "gpt");
    const tokensBefore = m.scheduler.stats.tokens;
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "random", messages: hi, max_tokens: 4000, stream: true, logit_bias: noEnd },
      { signal: ac.signal },
    );
    let pieces = 0;
    try {
      for await (const _ of stream) if (++pieces === 3) ac.abort();
    } catch {
      // the aborted read may end the loop or throw: either way the connection is gone
    }
    assert.equal(pieces, 3);
    await m.scheduler.idle();
    assert.equal(m.scheduler.load.active, 0);
    assert.ok(
      m.scheduler.stats.tokens - tokensBefore < 400,
      `generation stopped early (${m.scheduler.stats.tokens - tokensBefore} tokens)`,
    );
  });
});
