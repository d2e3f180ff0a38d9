// The studio's API (under /api): conversations kept in the feedback store, replies streamed as
// server-sent events, thumbs up/down, corrections, "show me two" choices, "learn now" (a LoRA update
// on the conversation's feedback, by `moxing sft` in a child process), the inside-the-model views,
// and the training runs' metrics.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { type PreferenceExample, preferenceExamples, type SFTExample, sftExamples } from "../chat/export.js";
import { chatPrompt } from "../chat/generate.js";
import type { ChatMessage } from "../chat/messages.js";
import type { FeedbackStore, StoredMessage } from "../chat/store.js";
import { saveModel } from "../io/checkpoint.js";
import { loadAdapter } from "../io/lora.js";
import { LEARN_DEFAULTS as CHAT_LEARN } from "../rlhf/learn.js";
import type { ServerContext } from "./context.js";
import { ApiError, invalidRequest, queueFull } from "./errors.js";
import { attentionView, embeddingView, positionView } from "./inside.js";
import type { ServedGPT } from "./models.js";
import { completionPrompts, disconnectSignal, endStream, generationRequests, openStream, sendEvent } from "./openai.js";
import type { GenerationResult } from "./scheduler.js";

const id = { type: "object", required: ["id"], properties: { id: { type: "string", pattern: "^[0-9]{1,15}$" } } } as const;
const SAMPLING = {
  temperature: { type: "number", minimum: 0, maximum: 2 },
  top_p: { type: "number", exclusiveMinimum: 0, maximum: 1 },
  max_tokens: { type: "integer", minimum: 1 },
  seed: { type: "integer" },
} as const;

interface ReplyBody {
  model: string;
  content: string;
  parent?: number | null;
  n?: 1 | 2;
  sampling?: { temperature?: number; top_p?: number; max_tokens?: number; seed?: number };
}

interface StudioMessage {
  id: number;
  role: string;
  content: string;
  parentId: number | null;
  model: string | null;
  sampling: unknown;
  rating: 1 | -1 | null;
  correction: string | null;
  chosenOver: number | null;
}

function messagesOf(store: FeedbackStore, conversationId: number): StudioMessage[] {
  const rating = store.db.prepare("SELECT rating FROM ratings WHERE message_id = ? ORDER BY id DESC LIMIT 1");
  const correction = store.db.prepare("SELECT content FROM corrections WHERE message_id = ? ORDER BY id DESC LIMIT 1");
  const choice = store.db.prepare("SELECT rejected_id FROM choices WHERE chosen_id = ? ORDER BY id DESC LIMIT 1");
  return store.conversation(conversationId).map((m: StoredMessage) => ({
    id: m.id,
    role: m.role,
    content: m.content,
    parentId: m.parentId,
    model: m.model,
    sampling: m.sampling,
    rating: ((rating.get(m.id) as { rating: 1 | -1 } | undefined)?.rating ?? null) as 1 | -1 | null,
    correction: (correction.get(m.id) as { content: string } | undefined)?.content ?? null,
    chosenOver: (choice.get(m.id) as { rejected_id: number } | undefined)?.rejected_id ?? null,
  }));
}

/** Run a store call, its errors (no such message, not an assistant answer, ...) as 400s. */
function storeCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw invalidRequest((e as Error).message);
  }
}

/** Greedy answer of the model to a conversation (for learn-now's before and after). */
async function greedyAnswer(m: ServedGPT, messages: ChatMessage[], maxTokens: number): Promise<string> {
  const { prompt, stopIds, maxNewTokens } = chatPrompt(m.model, m.tokenizer, messages, { maxNewTokens: maxTokens });
  const r = await m.scheduler.submit({ prompt, maxTokens: maxNewTokens, temperature: 0, topP: 1, seed: 0, stopIds });
  return r.text;
}

// ---- learn now ------------------------------------------------------------------------------------------

/** What learn-now trains on: thumbs-up answers and corrections (SFT), or preference pairs (DPO). */
export type LearnMethod = "sft" | "dpo";

export interface LearnStatus {
  id: string;
  state: "running" | "done" | "failed";
  method: LearnMethod;
  model: string;
  conversation: number;
  examples: number;
  step: number;
  maxSteps: number;
  loss: number | null;
  /** The context learned from (the newest piece of feedback's), its target answer, and the model's
   *  answer to it before and after the update. */
  prompt: ChatMessage[];
  target: string;
  before: string | null;
  after: string | null;
  adapterDir: string;
  error: string | null;
}

export interface LearnSettings {
  steps: number;
  learningRate: number;
  rank: number;
}
// The same update as `/learn` in `moxing chat` (rlhf/learn.ts): measured on the chat benchmark's model
// (BENCHMARKS.md §7), 15 steps at 3e-4 make a corrected answer stick while other answers barely move;
// 30 steps at 3e-3 learnt it too but broke every other answer. `moxing serve --learn-steps/--learn-rate`
// change it (a tiny model may need more).
export const LEARN_DEFAULTS: LearnSettings = { steps: CHAT_LEARN.steps, learningRate: CHAT_LEARN.learningRate, rank: CHAT_LEARN.rank };

/** The `moxing` command line this process can start: the same file layout (src/ under tsx, or dist/). */
function cliMain(): string {
  const here = fileURLToPath(import.meta.url);
  return join(dirname(here), "..", "cli", `main${extname(here)}`);
}

export class LearnJobs {
  private readonly jobs = new Map<string, LearnStatus>();
  private readonly children = new Set<ChildProcess>();
  constructor(
    private readonly ctx: ServerContext,
    readonly settings: LearnSettings = LEARN_DEFAULTS,
  ) {}

  get(jobId: string): LearnStatus {
    const j = this.jobs.get(jobId);
    if (!j) throw new ApiError(404, `No learn-now job '${jobId}'`, "not_found_error", "job");
    return j;
  }

  /** Where learn-now runs go: the runs directory (so the studio's training view shows them), else beside the database. */
  private baseDir(): string {
    return (
      this.ctx.runsDir ??
      (this.ctx.store?.path && this.ctx.store.path !== ":memory:"
        ? join(dirname(this.ctx.store.path), "moxing-learn")
        : join(tmpdir(), "moxing-learn"))
    );
  }

  start(m: ServedGPT, conversation: number, method: LearnMethod = "sft"): LearnStatus {
    const store = this.ctx.feedback();
    if (!m.chat) throw invalidRequest(`The model '${m.id}' is not a chat model; learn now trains a LoRA adapter on a chat model`, "model");
    if ([...this.jobs.values()].some((j) => j.state === "running" && j.model === m.id))
      throw new ApiError(
        409,
        `A learn-now update of '${m.id}' is already running; wait for it`,
        "invalid_request_error",
        null,
        "learn_running",
      );
    const examples: (SFTExample | PreferenceExample)[] = storeCall(() =>
      method === "sft" ? sftExamples(store, { conversationId: conversation }) : preferenceExamples(store, { conversationId: conversation }),
    );
    if (examples.length === 0) {
      throw invalidRequest(
        method === "sft"
          ? "This conversation has no feedback to learn from yet: give an answer a thumbs-up, or correct one"
          : "This conversation has no preferences to learn from yet: pick one of two answers, correct an answer, or rate one answer up and another down",
        "conversation",
        "no_feedback",
      );
    }
    const newest = examples[examples.length - 1] as SFTExample | PreferenceExample;
    const targetOf = (e: SFTExample | PreferenceExample) => (("completion" in e ? e.completion : e.chosen)[0] as ChatMessage).content;
    const runName = `learn-${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(2).toString("hex")}`;
    const dir = join(this.baseDir(), runName);
    const job: LearnStatus = {
      id: runName,
      state: "running",
      method,
      model: m.id,
      conversation,
      examples: examples.length,
      step: 0,
      maxSteps: this.settings.steps,
      loss: null,
      prompt: newest.prompt,
      target: targetOf(newest),
      before: null,
      after: null,
      adapterDir: join(dir, "adapter"),
      error: null,
    };
    this.jobs.set(job.id, job);
    this.run(m, job, dir, examples).catch((e: unknown) => {
      job.state = "failed";
      job.error = (e as Error).message;
    });
    return job;
  }

  private async run(m: ServedGPT, job: LearnStatus, dir: string, examples: (SFTExample | PreferenceExample)[]): Promise<void> {
    const answerTokens = Math.min(this.ctx.limits.defaultMaxTokens, m.tokenizer.encode(job.target).length * 2 + 8);
    job.before = await greedyAnswer(m, job.prompt, answerTokens);
    mkdirSync(dir, { recursive: true });
    const data = join(dir, "data.jsonl");
    writeFileSync(data, examples.map((e) => `${JSON.stringify(e)}\n`).join(""));
    // The child loads the base from a directory: a model served from a file is saved as one first.
    let base = m.path;
    if (!statSync(base).isDirectory()) {
      base = join(dir, "base");
      saveModel(base, m.model, m.tokenizer);
    }
    const s = this.settings;
    const args = [
      ...process.execArgv,
      cliMain(),
      job.method, // `moxing sft` or `moxing dpo` (with LoRA, DPO's reference is the base: the adapters disabled)
      "--model",
      base,
      "--data",
      data,
      "--out",
      job.adapterDir,
      "--lora-r",
      String(s.rank),
      "--lora-alpha",
      String(2 * s.rank),
      "--lora-dropout",
      "0",
      "--max-steps",
      String(s.steps),
      "--batch-size",
      String(Math.min(4, examples.length)),
      "--learning-rate",
      String(s.learningRate),
      "--min-lr",
      String(s.learningRate / 10),
      "--warmup-steps",
      "0",
      "--eval-fraction",
      "0",
      "--checkpoint-interval",
      String(s.steps),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, MOXING_QUIET: "1" } });
    this.children.add(child);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const metrics = join(job.adapterDir, "metrics.jsonl");
    const poll = setInterval(() => this.progress(job, metrics), 250);
    const code = await new Promise<number | null>((res) => child.on("close", (c) => res(c)));
    clearInterval(poll);
    this.children.delete(child);
    this.progress(job, metrics);
    if (code !== 0) {
      const last = stderr.trim().split("\n").filter(Boolean).pop() ?? `exit ${code}`;
      throw new Error(`the LoRA update failed: ${last}`);
    }
    // Between two decode steps (this runs on the event loop, as they do): swap the adapter in.
    m.adapter?.lora.unload();
    m.adapter = null;
    const lora = loadAdapter(job.adapterDir, m.model);
    m.adapter = { lora, dir: job.adapterDir };
    job.after = await greedyAnswer(m, job.prompt, answerTokens);
    job.state = "done";
  }

  private progress(job: LearnStatus, metrics: string): void {
    if (!existsSync(metrics)) return;
    const lines = readFileSync(metrics, "utf8").trim().split("\n").filter(Boolean);
    const last = lines.length ? (JSON.parse(lines[lines.length - 1] as string) as { step?: number; train_loss?: number }) : null;
    if (last) {
      job.step = last.step ?? job.step;
      job.loss = last.train_loss ?? job.loss;
    }
  }

  /** Stop running updates (the server is shutting down). */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.children].map(
        (c) =>
          new Promise<void>((res) => {
            c.once("close", () => res());
            c.kill("SIGTERM");
          }),
      ),
    );
  }
}

// ---- training runs ---------------------------------------------------------------------------------------

/** Runs under the runs directory: folders (up to three deep) holding a metrics.jsonl. */
function listRuns(root: string): { name: string; steps: number; updated: number }[] {
  const out: { name: string; steps: number; updated: number }[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    if (entries.includes("metrics.jsonl")) {
      const p = join(dir, "metrics.jsonl");
      const st = statSync(p);
      const text = readFileSync(p, "utf8");
      out.push({ name: relative(root, dir) || ".", steps: text.split("\n").filter(Boolean).length, updated: st.mtimeMs });
    }
    if (depth >= 3) return;
    for (const e of entries) {
      const p = join(dir, e);
      if (!e.startsWith(".") && statSync(p, { throwIfNoEntry: false })?.isDirectory()) walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return out.sort((a, b) => b.updated - a.updated);
}

/** A run's metrics.jsonl from line `from` on, parsed; a run's name never leaves the runs directory. */
function runMetrics(root: string, name: string, from: number): { lines: unknown[]; next: number } {
  const dir = resolve(root, name);
  if (dir !== resolve(root) && !dir.startsWith(resolve(root) + sep))
    throw invalidRequest(`run '${name}' is not under the runs directory`, "run");
  const p = join(dir, "metrics.jsonl");
  if (!existsSync(p)) throw new ApiError(404, `No run '${name}' (no metrics.jsonl there)`, "not_found_error", "run");
  const all = readFileSync(p, "utf8").split("\n");
  // The last line may be half-written by a running trainer: only whole lines count.
  const whole = all.slice(0, -1);
  const lines: unknown[] = [];
  for (const l of whole.slice(from)) {
    try {
      lines.push(JSON.parse(l));
    } catch {
      break;
    }
  }
  return { lines, next: from + lines.length };
}

// ---- routes ------------------------------------------------------------------------------------------------

export function registerStudioRoutes(app: FastifyInstance, ctx: ServerContext, learn: LearnJobs): void {
  const inFlight = new Map<string, AbortController>();

  app.get("/api/info", async () => ({
    models: [...ctx.models.values()].map((m) =>
      m.kind === "gpt"
        ? {
            id: m.id,
            kind: m.kind,
            chat: m.chat,
            adapter: m.adapter?.dir ?? null,
            config: m.model.config,
            vocabSize: m.tokenizer.vocabSize,
          }
        : { id: m.id, kind: m.kind, chat: false, adapter: null, config: m.model.config, vocabSize: m.tokenizer.vocabSize },
    ),
    feedback: ctx.store ? ctx.store.path : null,
    runs: ctx.runsDir,
    limits: ctx.limits,
  }));

  app.get("/api/conversations", async () => {
    const store = ctx.feedback();
    return store.db
      .prepare(
        "SELECT c.id, c.title, c.created_at AS created, count(m.id) AS messages FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.id DESC LIMIT 100",
      )
      .all();
  });

  app.post(
    "/api/conversations",
    {
      schema: {
        body: { type: "object", additionalProperties: false, properties: { system: { type: "string" }, title: { type: "string" } } },
      },
    },
    async (req) => {
      const b = (req.body ?? {}) as { system?: string; title?: string };
      const conv = ctx.feedback().startConversation({ title: b.title, system: b.system || undefined });
      return { id: conv, messages: messagesOf(ctx.feedback(), conv) };
    },
  );

  app.get<{ Params: { id: string } }>("/api/conversations/:id", { schema: { params: id } }, async (req) => {
    const conv = Number(req.params.id);
    const store = ctx.feedback();
    if (!store.db.prepare("SELECT 1 FROM conversations WHERE id = ?").get(conv))
      throw new ApiError(404, `No conversation ${conv}`, "not_found_error", "id");
    return { id: conv, messages: messagesOf(store, conv) };
  });

  app.post<{ Params: { id: string } }>(
    "/api/conversations/:id/reply",
    {
      schema: {
        params: id,
        body: {
          type: "object",
          required: ["model", "content"],
          additionalProperties: false,
          properties: {
            model: { type: "string" },
            content: { type: "string", minLength: 1, maxLength: 100_000 },
            parent: { type: ["integer", "null"] },
            n: { enum: [1, 2] },
            sampling: { type: "object", additionalProperties: false, properties: SAMPLING },
          },
        },
      },
    },
    async (req, reply) => {
      const conv = Number(req.params.id);
      const body = req.body as ReplyBody;
      const store = ctx.feedback();
      const m = ctx.generator(body.model, "chat");
      if (!m.chat) throw invalidRequest(`The model '${m.id}' is not a chat model`, "model");
      const s = body.sampling ?? {};
      const requested = ctx.maxTokens(s.max_tokens, "sampling.max_tokens");
      if (!store.db.prepare("SELECT 1 FROM conversations WHERE id = ?").get(conv))
        throw new ApiError(404, `No conversation ${conv}`, "not_found_error", "id");
      // The new message follows `parent`, by default the conversation's newest message.
      const newest = store.db.prepare("SELECT id FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1").get(conv) as
        | { id: number }
        | undefined;
      const parent = body.parent === undefined ? (newest?.id ?? null) : body.parent;
      const before = parent === null ? [] : storeCall(() => store.thread(parent));
      const thread: ChatMessage[] = [...before.map((x) => ({ role: x.role, content: x.content })), { role: "user", content: body.content }];
      const { prompt, stopIds, maxNewTokens: maxTokens } = chatPrompt(m.model, m.tokenizer, thread, { maxNewTokens: requested });
      const signal = disconnectSignal(reply);
      const stop = new AbortController();
      signal.addEventListener("abort", () => stop.abort());
      const requestId = randomBytes(8).toString("hex");
      const reqs = generationRequests(
        ctx,
        m,
        { model: m.id, n: body.n ?? 1, temperature: s.temperature ?? 0.8, top_p: s.top_p ?? 1, seed: s.seed },
        { prompt, stopIds, maxTokens, logprobs: null },
        stop.signal,
      );
      if (!m.scheduler.hasRoom(reqs.length)) throw queueFull(1);
      const userId = storeCall(() => store.addMessage(conv, { role: "user", content: body.content, parentId: parent }));
      const res = openStream(reply, { "x-request-id": requestId });
      inFlight.set(requestId, stop);
      sendEvent(res, { type: "start", request: requestId, user: userId });
      reqs.forEach((r, choice) => {
        r.onDelta = (text) => sendEvent(res, { type: "delta", choice, text });
      });
      let results: GenerationResult[];
      try {
        results = await Promise.all(reqs.map((r) => m.scheduler.submit(r)));
      } catch (e) {
        inFlight.delete(requestId);
        endStream(res, e);
        return;
      }
      inFlight.delete(requestId);
      const sampling = { temperature: s.temperature ?? 0.8, top_p: s.top_p ?? 1, max_tokens: maxTokens, seed: reqs[0]?.seed ?? null };
      // Stored even when stopped early: it is what the person saw, and may be corrected.
      const ids = results.map((r) =>
        store.addMessage(conv, { role: "assistant", content: r.text, parentId: userId, model: m.id, sampling }),
      );
      sendEvent(res, {
        type: "done",
        choices: results.map((r, choice) => ({ choice, id: ids[choice], text: r.text, finish_reason: r.finishReason })),
      });
      endStream(res);
    },
  );

  app.post<{ Params: { id: string } }>(
    "/api/requests/:id/stop",
    { schema: { params: { type: "object", properties: { id: { type: "string" } } } } },
    async (req) => {
      const c = inFlight.get(req.params.id);
      c?.abort();
      return { stopped: c !== undefined };
    },
  );

  app.post<{ Params: { id: string } }>(
    "/api/messages/:id/rate",
    {
      schema: {
        params: id,
        body: { type: "object", required: ["rating"], additionalProperties: false, properties: { rating: { enum: [1, -1] } } },
      },
    },
    async (req) => ({ id: storeCall(() => ctx.feedback().rate(Number(req.params.id), (req.body as { rating: 1 | -1 }).rating)) }),
  );
  app.post<{ Params: { id: string } }>(
    "/api/messages/:id/correct",
    {
      schema: {
        params: id,
        body: {
          type: "object",
          required: ["content"],
          additionalProperties: false,
          properties: { content: { type: "string", minLength: 1, maxLength: 100_000 } },
        },
      },
    },
    async (req) => ({ id: storeCall(() => ctx.feedback().correct(Number(req.params.id), (req.body as { content: string }).content)) }),
  );
  app.post<{ Params: { id: string } }>(
    "/api/messages/:id/choose",
    {
      schema: {
        params: id,
        body: { type: "object", required: ["rejected"], additionalProperties: false, properties: { rejected: { type: "integer" } } },
      },
    },
    async (req) => ({ id: storeCall(() => ctx.feedback().choose(Number(req.params.id), (req.body as { rejected: number }).rejected)) }),
  );

  app.post<{ Params: { id: string } }>(
    "/api/conversations/:id/learn",
    {
      schema: {
        params: id,
        body: {
          type: "object",
          required: ["model"],
          additionalProperties: false,
          properties: { model: { type: "string" }, method: { enum: ["sft", "dpo"] } },
        },
      },
    },
    async (req) => {
      const b = req.body as { model: string; method?: LearnMethod };
      return learn.start(ctx.generator(b.model, "learn now"), Number(req.params.id), b.method ?? "sft");
    },
  );
  app.get<{ Params: { id: string } }>("/api/learn/:id", async (req) => learn.get(req.params.id));
  app.post(
    "/api/adapter/reset",
    { schema: { body: { type: "object", required: ["model"], additionalProperties: false, properties: { model: { type: "string" } } } } },
    async (req) => {
      const m = ctx.generator((req.body as { model: string }).model, "adapters");
      m.adapter?.lora.unload();
      m.adapter = null;
      return { model: m.id, adapter: null };
    },
  );

  app.post(
    "/api/inside/embeddings",
    {
      schema: {
        body: {
          type: "object",
          required: ["model"],
          additionalProperties: false,
          properties: {
            model: { type: "string" },
            words: { type: "array", items: { type: "string", maxLength: 64 }, maxItems: 300 },
            method: { enum: ["pca", "tsne"] },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as { model: string; words?: string[]; method?: "pca" | "tsne" };
      return embeddingView(ctx.model(b.model), b.words, b.method ?? "pca");
    },
  );
  app.post(
    "/api/inside/positions",
    { schema: { body: { type: "object", required: ["model"], additionalProperties: false, properties: { model: { type: "string" } } } } },
    async (req) => positionView(ctx.model((req.body as { model: string }).model)),
  );
  app.post(
    "/api/inside/attention",
    {
      schema: {
        body: {
          type: "object",
          required: ["model", "text"],
          additionalProperties: false,
          properties: { model: { type: "string" }, text: { type: "string", minLength: 1, maxLength: 2000 } },
        },
      },
    },
    async (req) => {
      const b = req.body as { model: string; text: string };
      return attentionView(ctx.model(b.model), b.text);
    },
  );

  app.post(
    "/api/inside/next",
    {
      schema: {
        body: {
          type: "object",
          required: ["model", "text"],
          additionalProperties: false,
          properties: {
            model: { type: "string" },
            text: { type: "string", minLength: 1, maxLength: 2000 },
            chat: { type: "boolean" },
            steps: { type: "integer", minimum: 1, maximum: 64 },
            top_k: { type: "integer", minimum: 1, maximum: 20 },
            temperature: { type: "number", minimum: 0, maximum: 2 },
            seed: { type: "integer" },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as {
        model: string;
        text: string;
        chat?: boolean;
        steps?: number;
        top_k?: number;
        temperature?: number;
        seed?: number;
      };
      const m = ctx.generator(b.model, "the next-token view");
      let prompt: number[];
      let steps = b.steps ?? 8;
      if (b.chat) {
        if (!m.chat) throw invalidRequest(`The model '${m.id}' is not a chat model; untick "as a chat message"`, "chat");
        ({ prompt, maxNewTokens: steps } = chatPrompt(m.model, m.tokenizer, [{ role: "user", content: b.text }], { maxNewTokens: steps }));
      } else {
        prompt = completionPrompts(m, b.text)[0]?.ids as number[];
      }
      // No stop tokens: the view shows every step's distribution, an end-of-turn token included.
      const r = await m.scheduler.submit({
        prompt,
        maxTokens: steps,
        temperature: b.temperature ?? 0,
        topP: 1,
        seed: b.seed ?? 0,
        stopIds: new Set(),
        logprobs: b.top_k ?? 8,
      });
      return {
        steps: r.logprobs.map((l) => ({
          token: l.token,
          logprob: l.logprob,
          top: l.top.map((t) => ({ token: t.token, logprob: t.logprob })),
        })),
      };
    },
  );

  app.get("/api/runs", async () => (ctx.runsDir ? listRuns(ctx.runsDir) : []));
  app.get<{ Querystring: { run?: string; from?: string } }>("/api/runs/metrics", async (req) => {
    if (!ctx.runsDir) throw invalidRequest("This server has no runs directory; start it with --runs DIR", "run");
    const from = Number(req.query.from ?? 0);
    if (!Number.isInteger(from) || from < 0) throw invalidRequest("from must be a non-negative integer", "from");
    return runMetrics(ctx.runsDir, req.query.run ?? "", from);
  });
}
