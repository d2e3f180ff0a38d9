// `moxing serve`: the OpenAI-compatible server and the studio, until Ctrl-C or SIGTERM.

import { createServer } from "../serve/server.js";
import { LEARN_DEFAULTS } from "../serve/studio.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing serve: an OpenAI-compatible server, and the studio (chat, feedback, inside the model, training)

Usage: moxing serve --model DIR|FILE [--model ...] [flags]

  --model PATH           a model to serve (repeatable): a GPT directory, .safetensors or .gguf file, or a
                         BERT directory (embeddings only); requests name it by its file or directory name
  --host HOST            the address to listen on (default 127.0.0.1: this machine only)
  --port N               default 8080 (0: any free port)
  --api-key KEY          require 'Authorization: Bearer KEY' on every route but /health (the studio: open
                         /?key=KEY once); also read from MOXING_API_KEY
  --db FILE              the feedback database the studio writes (default moxing-feedback.db)
  --runs DIR             training runs to chart in the studio (folders holding metrics.jsonl)
  --max-batch N          sequences decoded together (default 16)
  --max-queue N          requests waiting for a slot before answering 429 (default 64)
  --max-tokens N         max_tokens when a request gives none (default 256)
  --max-tokens-limit N   the largest max_tokens a request may ask for (default 4096)
  --shutdown-timeout S   on SIGTERM or Ctrl-C, seconds to let running answers finish (default 10)
  --learn-steps N        the studio's "learn now": LoRA steps (default ${LEARN_DEFAULTS.steps})
  --learn-rate LR        its learning rate (default ${LEARN_DEFAULTS.learningRate})
  --lora-r N             its adapters' rank (default ${LEARN_DEFAULTS.rank})

API (https://platform.openai.com/docs/api-reference; use any OpenAI client with base URL http://HOST:PORT/v1):
  POST /v1/chat/completions   messages, stream, max_tokens, temperature, top_p, stop, seed, n, logprobs,
                              top_logprobs, response_format json_schema (constrained decoding), ...
  POST /v1/completions        POST /v1/embeddings        GET /v1/models        GET /health
The studio is at http://HOST:PORT/ .`;

export const serveCommand: Command = {
  summary: "serve models over the OpenAI API, with the studio web page",
  help: HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("serve", argv, {
      model: { type: "string", multiple: true },
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      db: { type: "string" },
      runs: { type: "string" },
      "max-batch": { type: "string" },
      "max-queue": { type: "string" },
      "max-tokens": { type: "string" },
      "max-tokens-limit": { type: "string" },
      "shutdown-timeout": { type: "string" },
      "learn-steps": { type: "string" },
      "learn-rate": { type: "string" },
      "lora-r": { type: "string" },
    });
    if (positionals.length) throw new UsageError(`serve: unexpected argument '${positionals[0]}'; give models with --model`);
    if (!v.model?.length) throw new UsageError("serve: --model DIR|FILE is required");
    const port = num("serve", "port", v.port, 8080, { int: true, min: 0 });
    if (port > 65535) throw new UsageError(`serve: --port must be at most 65535 (got '${v.port}')`);
    const apiKey = v["api-key"] ?? process.env.MOXING_API_KEY ?? null;
    if (apiKey !== null && apiKey.length < 8) throw new UsageError("serve: --api-key must be at least 8 characters");
    const maxTokensLimit = num("serve", "max-tokens-limit", v["max-tokens-limit"], 4096, { int: true, min: 1 });
    const defaultMaxTokens = num("serve", "max-tokens", v["max-tokens"], Math.min(256, maxTokensLimit), { int: true, min: 1 });
    if (defaultMaxTokens > maxTokensLimit) throw new UsageError("serve: --max-tokens must not exceed --max-tokens-limit");
    const graceS = num("serve", "shutdown-timeout", v["shutdown-timeout"], 10, { min: 0 });
    const host = v.host ?? "127.0.0.1";
    const server = await createServer({
      models: v.model,
      host,
      port,
      apiKey,
      db: v.db ?? "moxing-feedback.db",
      runsDir: v.runs ?? null,
      maxBatch: num("serve", "max-batch", v["max-batch"], 16, { int: true, min: 1 }),
      maxQueue: num("serve", "max-queue", v["max-queue"], 64, { int: true, min: 0 }),
      defaultMaxTokens,
      maxTokensLimit,
      learn: {
        steps: num("serve", "learn-steps", v["learn-steps"], LEARN_DEFAULTS.steps, { int: true, min: 1 }),
        learningRate: num("serve", "learn-rate", v["learn-rate"], LEARN_DEFAULTS.learningRate, { min: 0 }),
        rank: num("serve", "lora-r", v["lora-r"], LEARN_DEFAULTS.rank, { int: true, min: 1 }),
      },
    });
    const ids = [...server.ctx.models.values()].map((m) => `${m.id} (${m.kind}${m.kind === "gpt" && m.chat ? ", chat" : ""})`);
    console.log(`moxing serve: ${ids.join(", ")} at ${server.url}/v1 ; the studio at ${server.url}/`);
    if (!["127.0.0.1", "localhost", "::1"].includes(host) && apiKey === null) {
      console.error(`moxing serve: warning: listening on ${host} without --api-key: anyone who can reach it can use it`);
    }
    if (server.ctx.store) console.log(`moxing serve: feedback goes to ${server.ctx.store.path}`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        console.log(`moxing serve: ${signal}: taking no new requests; letting running answers finish (up to ${graceS} s)`);
        server.shutdown(graceS * 1000).then(resolve, (e: unknown) => {
          console.error(`moxing serve: shutting down: ${(e as Error).message}`);
          resolve();
        });
      };
      const onInt = () => stop("SIGINT");
      const onTerm = () => stop("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    });
    console.log("moxing serve: stopped");
    return 0;
  },
};
