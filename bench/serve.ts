// Load on `moxing serve` (127.0.0.1 only; every loop bounded in time and count):
//
//   node --import tsx bench/serve.ts                 16 streaming clients, 30 s per phase
//   node --import tsx bench/serve.ts --clients 8 --seconds 10 --json
//   node --import tsx bench/serve.ts --threads 1      the server's native thread count (MOXING_THREADS)
//
// The model: nanoGPT's CPU size (4 layers, 4 heads, 128 wide; block 128) with random weights and
// ChatML tokens on a character vocabulary, so every answer runs to max_tokens (64; logit_bias keeps
// the end-of-turn tokens away). The server runs in its own process (`moxing serve`); the clients
// here stream /v1/chat/completions, each sending its next request when the last one ends.
// Phases, one after the other, each with a fresh server:
//   batched      --clients concurrent clients, the server decoding them together (--max-batch 16)
//   one at a time the same clients, the server with --max-batch 1: each request waits its turn
//   alone        one client, for the time to first token of a lone request
// Reported per phase: requests completed, time to first token (TTFT: request sent to first content
// chunk) p50/p99, completion tokens per second over the phase, 5xx and failed requests, and the
// server's mean decode batch. Then autocannon: --clients connections of non-streamed completions
// (16 tokens) for 10 s, batched, for requests/s and latency percentiles. Exits 1 on any 5xx.
// First, without HTTP: the engine's decode step (src/generate/batch.ts) in this process, ms per
// step and tokens/s at batch 1, 4 and 16, sequences 20 to 84 tokens long.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { useChatML } from "../src/chat/template.js";
import { CachePool, DecodeSequence, decodeStep } from "../src/generate/batch.js";
import { loadModel, saveModel } from "../src/io/checkpoint.js";
import { GPT } from "../src/models/gpt.js";
import { MemoryArena } from "../src/tensor/memory.js";
import "../src/index.js";
import { CharTokenizer } from "../src/tokenizers/char.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const CLIENTS = flag("clients", 16);
const SECONDS = flag("seconds", 30);
const MAX_TOKENS = flag("tokens", 64);
const THREADS = argv.includes("--threads") ? String(flag("threads", 1)) : undefined; // the server's MOXING_THREADS
const MAX_REQUESTS = 100_000; // a bound on each phase besides its time
const json = argv.includes("--json");
const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Decode steps per batch size, in this process: median ms per step over ~2 s each. */
function engine(dir: string): { batch: number; msPerStep: number; tokensPerS: number }[] {
  const { model } = loadModel(dir);
  const pool = new CachePool(model);
  const arena = new MemoryArena();
  const prompt = Array.from({ length: 20 }, (_, i) => 1 + (i % 90));
  return [1, 4, 16, 1].map((B) => {
    const times: number[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < 2000) {
      const seqs = Array.from({ length: B }, () => new DecodeSequence(prompt, pool, model.config.block_size));
      decodeStep(model, seqs, arena); // the prefill, not timed
      for (let t = 0; t < MAX_TOKENS; t++) {
        for (const s of seqs) s.push(5);
        const s0 = performance.now();
        decodeStep(model, seqs, arena);
        times.push(performance.now() - s0);
      }
      for (const s of seqs) s.release();
    }
    const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)] as number;
    return { batch: B, msPerStep: Math.round(ms * 1000) / 1000, tokensPerS: Math.round((B * 1000) / ms) };
  });
}

function buildModel(dir: string): Record<string, number> {
  const tok = CharTokenizer.fromText(`${Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")}\n`);
  const { imStart, imEnd } = useChatML(tok);
  const model = new GPT({ vocab_size: tok.vocabSize, n_layer: 4, n_head: 4, n_embd: 128, block_size: 128 }, { seed: 1 });
  saveModel(dir, model, tok);
  return { [String(imStart)]: -100, [String(imEnd)]: -100 };
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL"); // never leave a server behind
});

function startServer(dir: string, maxBatch: number): Promise<{ p: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/main.ts",
        "serve",
        "--model",
        dir,
        "--port",
        "0",
        "--db",
        join(dir, "..", "fb.db"),
        "--max-batch",
        String(maxBatch),
        "--max-queue",
        "256",
      ],
      {
        cwd: repo,
        env: { ...process.env, MOXING_QUIET: "1", ...(THREADS ? { MOXING_THREADS: THREADS } : {}) },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    children.add(p);
    let out = "";
    p.stdout?.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/[^ ]+)\/v1/.exec(out);
      if (m) resolve({ p, url: m[1] as string });
    });
    p.on("close", (code) => {
      children.delete(p);
      reject(new Error(`moxing serve exited (${code}): ${out}`));
    });
  });
}

async function stop(p: ChildProcess): Promise<void> {
  const done = new Promise((r) => p.once("close", r));
  p.kill("SIGTERM");
  await done;
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number) : Number.NaN;
};

interface PhaseResult {
  phase: string;
  clients: number;
  maxBatch: number;
  requests: number;
  ttftP50: number;
  ttftP99: number;
  tokensPerS: number;
  status5xx: number;
  failed: number;
  meanBatch: number;
}

/** `clients` loops streaming chat answers for `seconds`; one result per phase. */
async function phase(
  name: string,
  url: string,
  clients: number,
  seconds: number,
  bias: Record<string, number>,
  maxBatch: number,
): Promise<PhaseResult> {
  const ttft: number[] = [];
  let tokens = 0;
  let requests = 0;
  let status5xx = 0;
  let failed = 0;
  const body = JSON.stringify({
    model: "bench",
    messages: [{ role: "user", content: "Tell me a story." }],
    max_tokens: MAX_TOKENS,
    stream: true,
    logit_bias: bias,
  });
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end && requests < MAX_REQUESTS) {
        const start = performance.now();
        try {
          const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
          if (res.status >= 500) status5xx++;
          if (!res.ok) {
            failed++;
            await res.text();
            continue;
          }
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          const dec = new TextDecoder();
          let first = true;
          let text = "";
          for (let r = await reader.read(); !r.done; r = await reader.read()) {
            text += dec.decode(r.value, { stream: true });
            if (first && text.includes('"content":"') && /"content":"[^"]/.test(text)) {
              ttft.push(performance.now() - start);
              first = false;
            }
          }
          // Count the pieces that carry content (one token each for a character model).
          tokens += (text.match(/"delta":\{"content":"/g) ?? []).length;
          requests++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const health = (await (await fetch(`${url}/health`)).json()) as { models: { meanBatch: number }[] };
  return {
    phase: name,
    clients,
    maxBatch,
    requests,
    ttftP50: Math.round(pct(ttft, 0.5)),
    ttftP99: Math.round(pct(ttft, 0.99)),
    tokensPerS: Math.round(tokens / elapsed),
    status5xx,
    failed,
    meanBatch: health.models[0]?.meanBatch ?? 0,
  };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), "moxing-bench-serve-"));
  const dir = join(tmp, "bench");
  const bias = buildModel(dir);
  const results: PhaseResult[] = [];
  try {
    const steps = engine(dir).slice(1); // the first batch-1 pass warms up

    for (const [name, clients, maxBatch] of [
      ["batched", CLIENTS, 16],
      ["one at a time", CLIENTS, 1],
      ["alone", 1, 16],
    ] as const) {
      if (!json) console.error(`bench/serve: phase "${name}"...`);
      const { p, url } = await startServer(dir, maxBatch);
      try {
        await phase("warm-up", url, Math.min(clients, 4), 2, bias, maxBatch);
        results.push(await phase(name, url, clients, SECONDS, bias, maxBatch));
      } finally {
        await stop(p);
      }
    }
    // autocannon: non-streamed completions, batched.
    const { p, url } = await startServer(dir, 16);
    let cannon: Record<string, unknown> | null = null;
    try {
      const autocannon = createRequire(import.meta.url)("autocannon") as (o: object) => Promise<{
        requests: { average: number };
        latency: { p50: number; p99: number };
        non2xx: number;
        errors: number;
        "5xx": number;
      }>;
      const r = await autocannon({
        url: `${url}/v1/completions`,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "bench", prompt: "Once upon a time", max_tokens: 16, logit_bias: bias }),
        connections: CLIENTS,
        duration: Math.min(10, SECONDS), // the bound (autocannon's `amount` would override it)
      });
      cannon = {
        requestsPerS: r.requests.average,
        latencyP50: r.latency.p50,
        latencyP99: r.latency.p99,
        non2xx: r.non2xx,
        status5xx: r["5xx"],
        errors: r.errors,
      };
    } finally {
      await stop(p);
    }
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    if (json)
      console.log(
        JSON.stringify(
          {
            cpu,
            cores: cpus().length,
            clients: CLIENTS,
            seconds: SECONDS,
            maxTokens: MAX_TOKENS,
            engine: steps,
            results,
            autocannon: cannon,
          },
          null,
          2,
        ),
      );
    else {
      console.log(`moxing serve under load: ${cpu}, ${cpus().length} cores; ${MAX_TOKENS} tokens per answer, ${SECONDS} s per phase`);
      console.log(`engine decode step: ${steps.map((e) => `batch ${e.batch} ${e.msPerStep} ms (${e.tokensPerS} tok/s)`).join(", ")}`);
      console.log("| phase | clients | max batch | requests | TTFT p50 ms | TTFT p99 ms | tokens/s | 5xx | failed | mean batch |");
      console.log("|---|---|---|---|---|---|---|---|---|---|");
      for (const r of results) {
        console.log(
          `| ${r.phase} | ${r.clients} | ${r.maxBatch} | ${r.requests} | ${r.ttftP50} | ${r.ttftP99} | ${r.tokensPerS} | ${r.status5xx} | ${r.failed} | ${r.meanBatch} |`,
        );
      }
      const [b, o] = results;
      if (b && o) console.log(`batched / one at a time: ${(b.tokensPerS / o.tokensPerS).toFixed(2)}x the tokens/s`);
      console.log(`autocannon, ${CLIENTS} connections, non-streamed 16-token completions: ${JSON.stringify(cannon)}`);
    }
    const bad = results.reduce((s, r) => s + r.status5xx, 0) + Number(cannon?.status5xx ?? 0);
    if (bad > 0) {
      console.error(`bench/serve: ${bad} responses were 5xx`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/serve: ${(e as Error).message}`);
  process.exit(1);
});
