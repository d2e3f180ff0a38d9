// The OpenAI API: POST /v1/chat/completions, /v1/completions, /v1/embeddings, GET /v1/models.
// Bodies are checked against JSON schemas by fastify (Ajv) before a handler runs, so a wrong type,
// a value out of range or an unknown field is a 400 naming the field, as OpenAI answers.
// https://platform.openai.com/docs/api-reference

import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { chatPrompt } from "../chat/generate.js";
import { ChatError, type ChatMessage } from "../chat/messages.js";
import { endOfTurnIds } from "../chat/template.js";
import { sentenceEmbeddings } from "../tasks/embeddings.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import type { ServerContext } from "./context.js";
import { ApiError, invalidRequest, queueFull } from "./errors.js";
import { compileSchema, JsonConstraint, SchemaError } from "./json-schema.js";
import type { ServedGPT } from "./models.js";
import type { FinishReason, GenerationRequest, GenerationResult, TokenLogprob } from "./scheduler.js";

// ---- request schemas --------------------------------------------------------------------------------

const nullable = (t: string | string[]) => ({ type: [...(Array.isArray(t) ? t : [t]), "null"] });
const SAMPLING = {
  model: { type: "string" },
  max_tokens: { ...nullable("integer"), minimum: 1 },
  temperature: { ...nullable("number"), minimum: 0, maximum: 2 },
  top_p: { ...nullable("number"), exclusiveMinimum: 0, maximum: 1 },
  n: { ...nullable("integer"), minimum: 1 },
  stream: nullable("boolean"),
  stream_options: {
    ...nullable("object"),
    properties: { include_usage: { type: "boolean" } },
    additionalProperties: false,
  },
  stop: { ...nullable(["string", "array"]), items: { type: "string" }, maxItems: 4 },
  seed: nullable("integer"),
  frequency_penalty: { ...nullable("number"), minimum: -2, maximum: 2 },
  presence_penalty: { ...nullable("number"), minimum: -2, maximum: 2 },
  logit_bias: { ...nullable("object"), additionalProperties: { type: "number", minimum: -100, maximum: 100 } },
  // Accepted and not used: who the end user is, and OpenAI's storage options.
  user: { type: "string" },
  store: nullable("boolean"),
  metadata: nullable("object"),
  service_tier: nullable("string"),
} as const;

const TEXT_PART = {
  type: "object",
  properties: { type: { const: "text" }, text: { type: "string" } },
  required: ["type", "text"],
  additionalProperties: false,
};

const CHAT_BODY = {
  type: "object",
  required: ["model", "messages"],
  additionalProperties: false,
  properties: {
    ...SAMPLING,
    messages: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["role"],
        additionalProperties: false,
        properties: {
          role: { enum: ["system", "developer", "user", "assistant"] },
          content: { ...nullable(["string", "array"]), items: TEXT_PART },
          name: { type: "string" },
          refusal: nullable("string"),
        },
      },
    },
    max_completion_tokens: { ...nullable("integer"), minimum: 1 },
    logprobs: nullable("boolean"),
    top_logprobs: { ...nullable("integer"), minimum: 0, maximum: 20 },
    response_format: {
      type: "object",
      required: ["type"],
      additionalProperties: false,
      properties: {
        type: { enum: ["text", "json_object", "json_schema"] },
        json_schema: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,64}$" },
            description: { type: "string" },
            schema: { type: ["object", "boolean"] },
            strict: nullable("boolean"),
          },
        },
      },
    },
  },
} as const;

const COMPLETIONS_BODY = {
  type: "object",
  required: ["model", "prompt"],
  additionalProperties: false,
  properties: {
    ...SAMPLING,
    prompt: {
      type: ["string", "array"],
      items: { type: ["string", "integer", "array"], minimum: 0, items: { type: "integer", minimum: 0 } },
    },
    logprobs: { ...nullable("integer"), minimum: 0, maximum: 20 },
    echo: nullable("boolean"),
    suffix: nullable("string"),
    best_of: { ...nullable("integer"), minimum: 1 },
  },
} as const;

const EMBEDDINGS_BODY = {
  type: "object",
  required: ["model", "input"],
  additionalProperties: false,
  properties: {
    model: { type: "string" },
    input: {
      type: ["string", "array"],
      items: { type: ["string", "integer", "array"], minimum: 0, items: { type: "integer", minimum: 0 } },
    },
    encoding_format: { enum: ["float", "base64"] },
    dimensions: { type: "integer", minimum: 1 },
    user: { type: "string" },
  },
} as const;

interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  stop?: string | string[] | null;
  seed?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
}
interface ChatBody extends SamplingBody {
  messages: { role: "system" | "developer" | "user" | "assistant"; content?: string | { type: "text"; text: string }[] | null }[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  response_format?: { type: "text" | "json_object" | "json_schema"; json_schema?: { name: string; schema?: unknown } };
}
interface CompletionsBody extends SamplingBody {
  prompt: string | (string | number | number[])[];
  logprobs?: number | null;
  echo?: boolean | null;
  suffix?: string | null;
  best_of?: number | null;
}
interface EmbeddingsBody {
  model: string;
  input: string | (string | number | number[])[];
  encoding_format?: "float" | "base64";
  dimensions?: number;
}

// ---- shared by the routes ---------------------------------------------------------------------------

/** The sampling settings of a request, checked against the model, one GenerationRequest per choice. */
export function generationRequests(
  ctx: ServerContext,
  m: ServedGPT,
  body: SamplingBody,
  base: { prompt: number[]; stopIds: Set<number>; maxTokens: number; logprobs: number | null; schema?: unknown },
  signal: AbortSignal,
): GenerationRequest[] {
  const n = body.n ?? 1;
  if (n > ctx.limits.maxChoices)
    throw invalidRequest(`n is ${n}; this server gives at most ${ctx.limits.maxChoices} choices per request`, "n");
  const V = m.model.config.vocab_size;
  let logitBias: Map<number, number> | null = null;
  if (body.logit_bias) {
    logitBias = new Map();
    for (const [k, v] of Object.entries(body.logit_bias)) {
      const id = Number(k);
      if (!/^\d+$/.test(k) || id >= V)
        throw invalidRequest(`logit_bias: '${k}' is not a token id of this model (0 to ${V - 1})`, "logit_bias");
      logitBias.set(id, v);
    }
  }
  const stop = body.stop === null || body.stop === undefined ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const seed = body.seed ?? randomBytes(4).readUInt32LE(0);
  let grammar: ReturnType<typeof compileSchema> | null = null;
  if (base.schema !== undefined) {
    try {
      grammar = compileSchema(base.schema);
    } catch (e) {
      if (e instanceof SchemaError)
        throw invalidRequest(`response_format.json_schema.schema: ${e.message}`, "response_format.json_schema.schema");
      throw e;
    }
    const least = grammar.finish(grammar.start()).length;
    if (least > base.maxTokens)
      throw invalidRequest(
        `max_tokens is ${base.maxTokens}, but the shortest JSON the schema allows takes ${least}; give more tokens`,
        "max_tokens",
      );
  }
  return Array.from({ length: n }, (_, i) => ({
    prompt: base.prompt,
    maxTokens: base.maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    frequencyPenalty: body.frequency_penalty ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    logitBias,
    seed: (seed + i) >>> 0,
    stopIds: base.stopIds,
    stop: stop.filter((s) => s.length > 0),
    logprobs: base.logprobs,
    constraint: grammar ? new JsonConstraint(grammar, m.trie()) : null,
    signal,
  }));
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** Start a server-sent-event stream (the route owns the response from here on). */
export function openStream(reply: FastifyReply, headers: Record<string, string> = {}): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    ...headers,
  });
  res.flushHeaders();
  return res;
}

export function sendEvent(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}

/** End a stream; an error after the headers went out is reported as an error event first. */
export function endStream(res: ServerResponse, error?: unknown): void {
  if (error !== undefined) sendEvent(res, toApiError(error).body);
  sendEvent(res, "[DONE]");
  res.end();
}

/** Anything thrown by a handler as the ApiError to answer with. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ChatError)
    return invalidRequest(e.message, "messages", /does not fit the context/.test(e.message) ? "context_length_exceeded" : null);
  return new ApiError(500, `The server had an error while processing your request: ${(e as Error)?.message ?? String(e)}`, "server_error");
}

const usageOf = (rs: GenerationResult[]) => {
  const prompt = rs[0]?.promptTokens ?? 0;
  const completion = rs.reduce((s, r) => s + r.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
};

const chatLogprobs = (lps: TokenLogprob[]) => ({
  content: lps.map((l) => ({
    token: l.token,
    logprob: l.logprob,
    bytes: l.bytes,
    top_logprobs: l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  })),
  refusal: null,
});

/** The text of a message's content: a string, or text parts joined. */
function contentText(c: ChatBody["messages"][number]["content"]): string {
  if (c === null || c === undefined) return "";
  return typeof c === "string" ? c : c.map((p) => p.text).join("");
}

export function chatMessages(body: ChatBody): ChatMessage[] {
  // OpenAI's "developer" messages are what system messages were before o1.
  return body.messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: contentText(m.content) }));
}

/** The json_schema (or json_object) of response_format, or undefined for free text. */
function responseSchema(body: ChatBody): unknown {
  const rf = body.response_format;
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return { type: "object" };
  if (!rf.json_schema) throw invalidRequest("response_format: type json_schema needs a json_schema object", "response_format.json_schema");
  return rf.json_schema.schema ?? {};
}

const now = () => Math.floor(Date.now() / 1000);
const newId = (prefix: string) => `${prefix}-${randomBytes(12).toString("hex")}`;

// ---- routes -------------------------------------------------------------------------------------------

export function registerOpenAIRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/v1/models", async () => ({
    object: "list",
    data: [...ctx.models.values()].map((m) => ({ id: m.id, object: "model", created: m.created, owned_by: "moxing" })),
  }));
  app.get<{ Params: { id: string } }>("/v1/models/:id", async (req) => {
    const m = ctx.model(req.params.id);
    return { id: m.id, object: "model", created: m.created, owned_by: "moxing" };
  });

  app.post("/v1/chat/completions", { schema: { body: CHAT_BODY } }, async (req: FastifyRequest, reply) => {
    const body = req.body as ChatBody;
    const m = ctx.generator(body.model, "/v1/chat/completions");
    if (!m.chat) {
      throw invalidRequest(
        `The model '${m.id}' is not a chat model (its tokenizer has no end-of-turn token); use /v1/completions, or make it one with \`moxing sft\``,
        "model",
        "model_not_supported",
      );
    }
    if (body.top_logprobs !== null && body.top_logprobs !== undefined && !body.logprobs)
      throw invalidRequest("top_logprobs needs logprobs: true", "top_logprobs");
    const requested = ctx.maxTokens(
      body.max_completion_tokens ?? body.max_tokens,
      body.max_completion_tokens ? "max_completion_tokens" : "max_tokens",
    );
    // As chatReply: the answer may not push the conversation out of the context; it gets what is left.
    const { prompt, stopIds, maxNewTokens: maxTokens } = chatPrompt(m.model, m.tokenizer, chatMessages(body), { maxNewTokens: requested });
    const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : null;
    const signal = disconnectSignal(reply);
    const reqs = generationRequests(ctx, m, body, { prompt, stopIds, maxTokens, logprobs, schema: responseSchema(body) }, signal);
    const id = newId("chatcmpl");
    const created = now();
    const head = { id, object: "chat.completion.chunk", created, model: m.id, system_fingerprint: null };
    if (!body.stream) {
      const results = await m.scheduler.submitAll(reqs);
      return {
        id,
        object: "chat.completion",
        created,
        model: m.id,
        system_fingerprint: null,
        choices: results.map((r, index) => ({
          index,
          message: { role: "assistant", content: r.text, refusal: null },
          logprobs: logprobs === null ? null : chatLogprobs(r.logprobs),
          finish_reason: r.finishReason,
        })),
        usage: usageOf(results),
      };
    }
    if (!m.scheduler.hasRoom(reqs.length)) throw queueFull(1); // before the stream opens
    const res = openStream(reply);
    reqs.forEach((r, index) => {
      sendEvent(res, {
        ...head,
        choices: [{ index, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }],
      });
      r.onDelta = (text, lps) =>
        sendEvent(res, {
          ...head,
          choices: [{ index, delta: { content: text }, logprobs: logprobs === null ? null : chatLogprobs(lps), finish_reason: null }],
        });
    });
    await streamResults(res, m, reqs, head, body.stream_options?.include_usage ?? false);
  });

  app.post("/v1/completions", { schema: { body: COMPLETIONS_BODY } }, async (req: FastifyRequest, reply) => {
    const body = req.body as CompletionsBody;
    const m = ctx.generator(body.model, "/v1/completions");
    if (body.suffix) throw invalidRequest("suffix (insertion) is not supported: these models only continue text", "suffix");
    const n = body.n ?? 1;
    if (body.best_of !== null && body.best_of !== undefined && body.best_of !== n)
      throw invalidRequest(`best_of (${body.best_of}) must equal n (${n}): this server returns every sample it draws`, "best_of");
    const prompts = completionPrompts(m, body.prompt);
    const maxTokens = ctx.maxTokens(body.max_tokens ?? 16, "max_tokens"); // OpenAI's default for completions
    const stopIds = new Set(endOfTurnIds(m.tokenizer));
    const logprobs = body.logprobs ?? null;
    const signal = disconnectSignal(reply);
    const reqs = prompts.flatMap((p) => generationRequests(ctx, m, body, { prompt: p.ids, stopIds, maxTokens, logprobs }, signal));
    const id = newId("cmpl");
    const created = now();
    const head = { id, object: "text_completion", created, model: m.id, system_fingerprint: null };
    const echoOf = (i: number) => (body.echo ? (prompts[Math.floor(i / n)] as { text: string }).text : "");
    if (!body.stream) {
      const results = await m.scheduler.submitAll(reqs);
      const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
      results.forEach((r, i) => {
        if (i % n === 0) usage.prompt_tokens += r.promptTokens;
        usage.completion_tokens += r.completionTokens;
      });
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      return {
        ...head,
        choices: results.map((r, index) => ({
          index,
          text: echoOf(index) + r.text,
          logprobs: logprobs === null ? null : completionLogprobs(r.logprobs, echoOf(index).length),
          finish_reason: r.finishReason,
        })),
        usage,
      };
    }
    if (!m.scheduler.hasRoom(reqs.length)) throw queueFull(1);
    const res = openStream(reply);
    reqs.forEach((r, index) => {
      const echo = echoOf(index);
      if (echo) sendEvent(res, { ...head, choices: [{ index, text: echo, logprobs: null, finish_reason: null }] });
      r.onDelta = (text, lps) =>
        sendEvent(res, {
          ...head,
          choices: [{ index, text, logprobs: logprobs === null ? null : completionLogprobs(lps, 0), finish_reason: null }],
        });
    });
    await streamResults(res, m, reqs, head, body.stream_options?.include_usage ?? false, "text");
  });

  app.post("/v1/embeddings", { schema: { body: EMBEDDINGS_BODY } }, async (req: FastifyRequest) => {
    const body = req.body as EmbeddingsBody;
    const m = ctx.embedder(body.model);
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    if (inputs.length === 0) throw invalidRequest("input is empty; give a string or an array of them", "input");
    if (inputs.length > 2048) throw invalidRequest(`input has ${inputs.length} items; at most 2048`, "input");
    let vectors: Float32Array[];
    let tokens = 0;
    if (m.kind === "bert") {
      if (inputs.some((x) => typeof x !== "string"))
        throw invalidRequest("token-id input is supported for GPT models; give this BERT model strings", "input");
      const texts = inputs as string[];
      if (texts.some((t) => t.length === 0)) throw invalidRequest("input contains an empty string", "input");
      for (const t of texts) tokens += m.tokenizer.encode(t, { disallowedSpecial: [] }).length + 2; // [CLS] and [SEP]
      vectors = sentenceEmbeddings(m.model, m.tokenizer as WordPieceTokenizer, texts);
    } else {
      const seqs = completionPrompts(m, body.input).map((p) => p.ids);
      vectors = seqs.map((ids) => {
        tokens += ids.length;
        return gptEmbedding(m, ids);
      });
    }
    const dim = vectors[0]?.length ?? 0;
    if (body.dimensions !== undefined && body.dimensions !== dim)
      throw invalidRequest(`dimensions is ${body.dimensions}, but this model's embeddings have ${dim}`, "dimensions");
    return {
      object: "list",
      model: m.id,
      data: vectors.map((v, index) => ({
        object: "embedding",
        index,
        embedding: body.encoding_format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v),
      })),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });
}

/** Wait for every choice of a streamed request, then the finish chunks, usage, and [DONE]. */
async function streamResults(
  res: ServerResponse,
  m: ServedGPT,
  reqs: GenerationRequest[],
  head: Record<string, unknown>,
  includeUsage: boolean,
  kind: "chat" | "text" = "chat",
): Promise<void> {
  const finishChunk = (index: number, reason: FinishReason) =>
    kind === "chat"
      ? { ...head, choices: [{ index, delta: {}, logprobs: null, finish_reason: reason }] }
      : { ...head, choices: [{ index, text: "", logprobs: null, finish_reason: reason }] };
  try {
    const results = await Promise.all(
      reqs.map((r, index) =>
        m.scheduler.submit(r).then((out) => {
          sendEvent(res, finishChunk(index, out.finishReason));
          return out;
        }),
      ),
    );
    if (includeUsage) sendEvent(res, { ...head, choices: [], usage: usageOf(results) });
    endStream(res);
  } catch (e) {
    endStream(res, e);
  }
}

/** The completions API's logprobs: tokens, their log-probabilities, the top ones, text offsets. */
function completionLogprobs(lps: TokenLogprob[], offset: number) {
  const text_offset: number[] = [];
  let at = offset;
  for (const l of lps) {
    text_offset.push(at);
    at += l.token.length;
  }
  return {
    tokens: lps.map((l) => l.token),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}

/** The prompts of a completions (or embeddings) request as token ids: a string, strings, token ids, or arrays of them. */
export function completionPrompts(m: ServedGPT, prompt: string | (string | number | number[])[]): { ids: number[]; text: string }[] {
  const V = m.model.config.vocab_size;
  const bs = m.model.config.block_size;
  const fromIds = (ids: number[]) => {
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined) throw invalidRequest(`prompt: token id ${bad} is not in this model's vocabulary (0 to ${V - 1})`, "prompt");
    return { ids, text: m.tokenizer.decode(ids) };
  };
  const fromText = (text: string) => {
    let ids: number[];
    try {
      ids = m.tokenizer.encode(text);
    } catch (e) {
      throw invalidRequest(`prompt: the text cannot be encoded by this model's tokenizer: ${(e as Error).message}`, "prompt");
    }
    return { ids, text };
  };
  let prompts: { ids: number[]; text: string }[];
  if (typeof prompt === "string") prompts = [fromText(prompt)];
  else if (prompt.length > 0 && prompt.every((p) => typeof p === "number")) prompts = [fromIds(prompt as number[])];
  else if (prompt.every((p) => typeof p === "string")) prompts = (prompt as string[]).map(fromText);
  else if (prompt.every((p) => Array.isArray(p))) prompts = (prompt as number[][]).map(fromIds);
  else throw invalidRequest("prompt must be a string, an array of strings, an array of token ids, or an array of those arrays", "prompt");
  if (prompts.length === 0) throw invalidRequest("prompt is an empty array", "prompt");
  for (const p of prompts) {
    if (p.ids.length === 0) throw invalidRequest("prompt is empty; give at least one token", "prompt");
    if (p.ids.length > bs)
      throw invalidRequest(
        `prompt has ${p.ids.length} tokens; this model's context (block_size) is ${bs}`,
        "prompt",
        "context_length_exceeded",
      );
  }
  return prompts;
}

/** A GPT's embedding of a text: the mean of its last hidden states (after ln_f), L2-normalised. */
export function gptEmbedding(m: ServedGPT, ids: number[]): Float32Array {
  const C = m.model.config.n_embd;
  const h = noGrad(() => m.model.hiddenStates(tensor([ids], { dtype: "int32" }))); // (1, T, C)
  const d = h.contiguousData() as Float32Array;
  const v = new Float32Array(C);
  for (let t = 0; t < ids.length; t++) for (let c = 0; c < C; c++) v[c] = (v[c] as number) + (d[t * C + c] as number) / ids.length;
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}
