// `moxing serve`'s server: the OpenAI API and the studio in one fastify process.
//
// fastify because it validates JSON bodies against schemas (Ajv, compiled once) before a handler
// runs, streams responses without buffering them, has body limits, hooks and graceful close built in,
// and is well kept. Ajv is set to reject what a lenient parser would let through: no type coercion
// ("5" is not 5), no silently dropped unknown fields, so malformed requests get a 400 naming the field.
//
// Security, for a server meant for one machine: it binds 127.0.0.1 unless told otherwise; with an
// API key every route but /health needs it (the Bearer header, or for the studio's pages a cookie set
// by opening /?key=KEY once); on a loopback address requests must name a loopback Host, so a web page
// elsewhere cannot reach it through DNS rebinding; the studio's pages load nothing from outside.

import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { FeedbackStore } from "../chat/store.js";
import { DEFAULT_LIMITS, type ServeLimits, ServerContext } from "./context.js";
import { ApiError, invalidRequest, shuttingDown } from "./errors.js";
import { loadServedModel, modelIds } from "./models.js";
import { registerOpenAIRoutes, toApiError } from "./openai.js";
import type { SchedulerOptions } from "./scheduler.js";
import { LEARN_DEFAULTS, LearnJobs, type LearnSettings, registerStudioRoutes } from "./studio.js";

export interface ServeOptions extends SchedulerOptions, Partial<ServeLimits> {
  /** Model directories or files (GPT: directory, .safetensors or .gguf; BERT: directory). */
  models: string[];
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  apiKey?: string | null;
  /** Where training runs live (each a directory with metrics.jsonl): the studio's training view. */
  runsDir?: string | null;
  /** The feedback database (SQLite); created if missing. */
  db?: string | null;
  /** The studio's "learn now" update (default LEARN_DEFAULTS: 15 steps at 3e-4, rank 8). */
  learn?: Partial<LearnSettings>;
}

export interface MoxingServer {
  app: FastifyInstance;
  ctx: ServerContext;
  /** http://host:port once listening. */
  url: string;
  /** Stop taking requests, let running generations finish for up to graceMs, cancel the rest, close. */
  shutdown(graceMs?: number): Promise<void>;
}

/** The moxing package's root (where web/ and node_modules/ are), from src/ or dist/src/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, "package.json");
    if (existsSync(p) && (JSON.parse(readFileSync(p, "utf8")) as { name?: string }).name === "moxing") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("moxing serve: cannot find the moxing package (its package.json) above the server's files");
    dir = up;
  }
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** The studio's files, read once: URL path -> [content type, bytes]. A fixed table, so no request
 *  path ever reaches the file system. */
function staticFiles(): Map<string, [string, Buffer]> {
  const root = packageRoot();
  const files = new Map<string, [string, Buffer]>();
  const web = join(root, "web");
  for (const name of existsSync(web) ? readdirSync(web) : []) {
    const type = CONTENT_TYPES[extname(name)];
    const path = join(web, name);
    if (type && statSync(path).isFile()) files.set(`/${name}`, [type, readFileSync(path)]);
  }
  const index = files.get("/index.html");
  if (index) files.set("/", index);
  const uplot = dirname(createRequire(import.meta.url).resolve("uplot/package.json"));
  for (const name of ["uPlot.iife.min.js", "uPlot.min.css"]) {
    files.set(`/vendor/${name}`, [CONTENT_TYPES[extname(name)] as string, readFileSync(join(uplot, "dist", name))]);
  }
  return files;
}

/** "/messages/0/role" -> "messages[0].role" (how OpenAI names a field in errors). */
function paramName(instancePath: string, child?: string): string | null {
  const parts = instancePath.split("/").filter(Boolean);
  if (child !== undefined) parts.push(child);
  if (parts.length === 0) return null;
  return parts.reduce((acc, p, i) => (/^\d+$/.test(p) ? `${acc}[${p}]` : i === 0 ? p : `${acc}.${p}`), "");
}

/** A fastify/Ajv validation failure as OpenAI words it. */
function validationError(err: FastifyError): ApiError {
  const v = err.validation?.[0];
  if (!v) return invalidRequest(err.message);
  const params = v.params as Record<string, unknown>;
  const at = paramName(v.instancePath);
  switch (v.keyword) {
    case "additionalProperties": {
      const name = paramName(v.instancePath, String(params.additionalProperty));
      return invalidRequest(`Unrecognized request argument supplied: ${name}`, name, "unknown_parameter");
    }
    case "required": {
      const name = paramName(v.instancePath, String(params.missingProperty));
      return invalidRequest(`Missing required parameter: '${name}'`, name, "missing_required_parameter");
    }
    case "type":
      return at === null
        ? invalidRequest("The request body must be a JSON object", null, "invalid_type")
        : invalidRequest(`Invalid type for '${at}': expected ${String(params.type).replace(/,/g, " or ")}`, at, "invalid_type");
    default:
      return invalidRequest(`Invalid value for '${at ?? "body"}': ${v.message ?? "not allowed"}`, at, "invalid_value");
  }
}

/** Any error reaching fastify's error handler as the OpenAI error to answer with. */
function httpError(err: FastifyError, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) return validationError(err);
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError(
        413,
        `The request body is larger than this server's limit of ${bodyLimit} bytes`,
        "invalid_request_error",
        null,
        "request_too_large",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError(
        415,
        "Send the body as JSON (Content-Type: application/json)",
        "invalid_request_error",
        null,
        "unsupported_media_type",
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return invalidRequest("The request body is empty; send a JSON object", null, "invalid_json");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return invalidRequest("The Content-Length header does not match the body", null, "invalid_request");
  }
  if (err instanceof SyntaxError || err.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
    return invalidRequest(`We could not parse the JSON body of your request (${err.message}); send valid JSON`, null, "invalid_json");
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, err.message, "invalid_request_error");
  return toApiError(err);
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);
const hostOf = (host: string) => (host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d+$/, ""));
const digest = (s: string) => createHash("sha256").update(s).digest();
const KEY_COOKIE = "moxing_key";

export async function createServer(opts: ServeOptions): Promise<MoxingServer> {
  if (opts.models.length === 0) throw new Error("moxing serve: give at least one model (--model DIR|FILE)");
  const limits: ServeLimits = {
    defaultMaxTokens: opts.defaultMaxTokens ?? DEFAULT_LIMITS.defaultMaxTokens,
    maxTokensLimit: opts.maxTokensLimit ?? DEFAULT_LIMITS.maxTokensLimit,
    maxChoices: opts.maxChoices ?? DEFAULT_LIMITS.maxChoices,
    bodyLimit: opts.bodyLimit ?? DEFAULT_LIMITS.bodyLimit,
  };
  const ids = modelIds(opts.models);
  const models = new Map(opts.models.map((p, i) => [ids[i] as string, loadServedModel(p, ids[i] as string, opts)]));
  const store = opts.db ? FeedbackStore.open(opts.db) : null;
  const ctx = new ServerContext(models, limits, store, opts.runsDir ?? null);
  const host = opts.host ?? "127.0.0.1";
  const loopbackOnly = LOOPBACK.has(host);
  const key = opts.apiKey ? digest(opts.apiKey) : null;
  const files = staticFiles();

  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyLimit,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, allowUnionTypes: true } },
    // The error handler answers in OpenAI's shape; fastify's own 503 while closing is not.
    return503OnClosing: false,
  });

  app.addHook("onRequest", async (req, reply) => {
    if (loopbackOnly && !LOOPBACK.has(hostOf(req.headers.host ?? ""))) {
      throw new ApiError(
        403,
        `Host '${req.headers.host}' is not this server; use http://127.0.0.1 or http://localhost`,
        "invalid_request_error",
        null,
        "forbidden_host",
      );
    }
    const path = req.url.split("?")[0] as string;
    if (ctx.draining && path !== "/health") throw shuttingDown();
    if (!key || path === "/health") return;
    const auth = req.headers.authorization;
    const cookie = /(?:^|;\s*)moxing_key=([^;]+)/.exec(req.headers.cookie ?? "")?.[1];
    const given = auth?.startsWith("Bearer ") ? auth.slice(7) : cookie ? decodeURIComponent(cookie) : null;
    if (given !== null && timingSafeEqual(digest(given), key)) return;
    // The studio's pages cannot send a header: opening /?key=KEY once sets the cookie.
    const fromQuery = new URL(req.url, "http://x").searchParams.get("key");
    if (path === "/" && fromQuery !== null && timingSafeEqual(digest(fromQuery), key)) {
      reply.header("set-cookie", `${KEY_COOKIE}=${encodeURIComponent(fromQuery)}; HttpOnly; SameSite=Strict; Path=/`);
      return reply.redirect("/", 303);
    }
    throw new ApiError(
      401,
      given === null
        ? "You didn't provide an API key: send 'Authorization: Bearer KEY' (for the studio, open /?key=KEY once)"
        : "Incorrect API key provided",
      "authentication_error",
      null,
      "invalid_api_key",
    );
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const e = httpError(err, limits.bodyLimit);
    if (e.status >= 500 && !(err instanceof ApiError)) console.error(`moxing serve: ${err.stack ?? err.message}`);
    reply.code(e.status).headers(e.headers).send(e.body);
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .code(404)
      .send(new ApiError(404, `Unknown request URL: ${req.method} ${req.url.split("?")[0]}`, "not_found_error", null, "unknown_url").body);
  });

  app.get("/health", async () => ({
    status: ctx.draining ? "shutting_down" : "ok",
    models: [...models.values()].map((m) => {
      if (m.kind !== "gpt") return { id: m.id, kind: m.kind };
      const { steps, tokens, maxBatchSeen, recentBatches } = m.scheduler.stats;
      const meanBatch = recentBatches.length ? recentBatches.reduce((a, b) => a + b, 0) / recentBatches.length : 0;
      return { id: m.id, kind: m.kind, ...m.scheduler.load, steps, tokens, maxBatchSeen, meanBatch: Math.round(meanBatch * 100) / 100 };
    }),
  }));
  registerOpenAIRoutes(app, ctx);
  const learn = new LearnJobs(ctx, { ...LEARN_DEFAULTS, ...(opts.learn ?? {}) });
  registerStudioRoutes(app, ctx, learn);
  for (const [path, [type, bytes]] of files) {
    app.get(path, async (_req, reply) =>
      reply
        .type(type)
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'")
        .send(bytes),
    );
  }

  await app.listen({ host, port: opts.port ?? 8080 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 8080);
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | null = null;
  const shutdown = (graceMs = 10_000): Promise<void> => {
    closing ??= (async () => {
      ctx.draining = true;
      const closed = app.close(); // no new connections; idle keep-alive ones close now
      const gpts = ctx.gpts();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(gpts.map((m) => m.scheduler.idle())),
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
      for (const m of gpts) m.scheduler.cancelAll();
      await learn.stopAll();
      await closed;
      store?.close();
    })();
    return closing;
  };
  return { app, ctx, url, shutdown };
}
