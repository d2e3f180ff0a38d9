// Load on `moxing serve` (127.0.0.1 only; every loop bounded in time and count):
//
//   node --import tsx bench/serve.ts                 16 streaming clients, 30 s per phase
//   node --import tsx bench/serve.ts --clients 8 --seconds 10 --json
//   MOXING_THREADS=1 node --import tsx bench/serve.ts   one native thread, here and in the server
//   node --import tsx bench/serve.ts --size medium      6 layers, 6 heads, 384 wide, block 256
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
// step and tokens/s at batch 1, 4 and 16 (sequences 20 to 84 tokens long), the sizes taking turns.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
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
const MAX_REQUESTS = 100_000; // a bound on each phase besides its time
const json = argv.includes("--json");
const SIZES = {
  small: { n_layer: 4, n_head: 4, n_embd: 128, block_size: 128 }, // nanoGPT's CPU size
  medium: { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256 },
};
const sizeFlag = argv.includes("--size") ? (argv[argv.indexOf("--size") + 1] as string) : "small";
if (!(sizeFlag in SIZES)) throw new Error(`bench/serve: --size is small or medium (got '${sizeFlag}')`);
const SIZE = SIZES[sizeFlag as keyof typeof SIZES];
const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Decode steps per batch size, in this process. The sizes take turns for about 8 s; each turn's
 *  64 steps are timed by wall clock and by this process's CPU time (on a shared machine a step that
 *  is preempted takes longer by the clock, not in CPU time). Medians over the turns. */
function engine(dir: string): { batch: number; msPerStep: number; cpuMsPerStep: number; tokensPerCpuS: number }[] {
  const { model } = loadModel(dir);
  const pool = new CachePool(model);
  const arena = new MemoryArena();
  const prompt = Array.from({ length: 20 }, (_, i) => 1 + (i % 90));
  const sizes = [1, 4, 16];
  const wall = new Map(sizes.map((B) => [B, [] as number[]]));
  const cpu = new Map(sizes.map((B) => [B, [] as number[]]));
  const run = (B: number, record: boolean) => {
    const seqs = Array.from({ length: B }, () => new DecodeSequence(prompt, pool, model.config.block_size));
    decodeStep(model, seqs, arena); // the prefill, not timed
    const w0 = performance.now();
    const c0 = process.cpuUsage();
    for (let t = 0; t < MAX_TOKENS; t++) {
      for (const s of seqs) s.push(5);
      decodeStep(model, seqs, arena);
    }
    const c = process.cpuUsage(c0);
    if (record) {
      wall.get(B)?.push((performance.now() - w0) / MAX_TOKENS);
      cpu.get(B)?.push((c.user + c.system) / 1000 / MAX_TOKENS);
    }
    for (const s of seqs) s.release();
  };
  for (const B of sizes) run(B, false); // warm-up
  const t0 = performance.now();
  while (performance.now() - t0 < 8000) for (const B of sizes) run(B, true);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return sizes.map((B) => {
    const cpuMs = med(cpu.get(B) as number[]);
    return {
      batch: B,
      msPerStep: Math.round(med(wall.get(B) as number[]) * 1000) / 1000,
      cpuMsPerStep: Math.round(cpuMs * 1000) / 1000,
      tokensPerCpuS: Math.round((B * 1000) / cpuMs),
    };
  });
}

function buildModel(dir: string): Record<string, number> {
  const tok = CharTokenizer.fromText(`${Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")}\n`);
  const { imStart, imEnd } = useChatML(tok);
  const model = new GPT({ vocab_size: tok.vocabSize, ...SIZE }, { seed: 1 });
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
        env: { ...process.env, MOXING_QUIET: "1" },
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
  /** The server process's CPU time over the phase, and the tokens it produced per CPU second:
   *  on a shared machine the time others take from it does not count against it. */
  serverCpuS: number;
  tokensPerCpuS: number;
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** `clients` loops streaming chat answers for `seconds`; one result per phase. */
async function phase(
  name: string,
  pid: number,
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
  const cpu0 = cpuSeconds(pid);
  const end = t0 + seconds * 1000;
  // node:http with keep-alive and a cheap scan of each chunk: the client should cost the shared
  // CPUs as little as it can, so the figures are the server's.
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const { hostname, port } = new URL(url);
  const marker = '"delta":{"content":"';
  const one = (start: number) =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: hostname, port, path: "/v1/chat/completions", method: "POST", agent, headers: { "content-type": "application/json" } },
        (res) => {
          if ((res.statusCode ?? 0) >= 500) status5xx++;
          if (res.statusCode !== 200) failed++;
          let tail = "";
          let first = true;
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            // Count content pieces (one token each for a character model), markers split across chunks included.
            const text = tail + chunk;
            let at = text.indexOf(marker);
            while (at >= 0) {
              // Counted once the character after the marker is here (an empty piece is not a token).
              if (at + marker.length < text.length && text[at + marker.length] !== '"') {
                tokens++;
                if (first) {
                  ttft.push(performance.now() - start);
                  first = false;
                }
              }
              at = text.indexOf(marker, at + 1);
            }
            tail = text.slice(-marker.length);
          });
          res.on("end", () => {
            if (res.statusCode === 200) requests++;
            resolve();
          });
        },
      );
      req.on("error", () => {
        failed++;
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end && requests < MAX_REQUESTS) await one(performance.now());
    }),
  );
  agent.destroy();
  const elapsed = (performance.now() - t0) / 1000;
  const serverCpuS = cpuSeconds(pid) - cpu0;
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
    serverCpuS: Math.round(serverCpuS * 10) / 10,
    tokensPerCpuS: Math.round(tokens / serverCpuS),
  };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), "moxing-bench-serve-"));
  const dir = join(tmp, "bench");
  const bias = buildModel(dir);
  const results: PhaseResult[] = [];
  try {
    const steps = engine(dir);

    for (const [name, clients, maxBatch] of [
      ["batched", CLIENTS, 16],
      ["one at a time", CLIENTS, 1],
      ["alone", 1, 16],
    ] as const) {
      if (!json) console.error(`bench/serve: phase "${name}"...`);
      const { p, url } = await startServer(dir, maxBatch);
      try {
        await phase("warm-up", p.pid as number, url, Math.min(clients, 4), 2, bias, maxBatch);
        results.push(await phase(name, p.pid as number, url, clients, SECONDS, bias, maxBatch));
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
      console.log(
        `moxing serve under load: ${cpu}, ${cpus().length} cores; GPT ${JSON.stringify(SIZE)}; ${MAX_TOKENS} tokens per answer, ${SECONDS} s per phase`,
      );
      console.log("| engine, batch | ms per step (wall) | CPU ms per step | tokens per CPU second |");
      console.log("|---|---|---|---|");
      for (const e of steps) console.log(`| ${e.batch} | ${e.msPerStep} | ${e.cpuMsPerStep} | ${e.tokensPerCpuS} |`);
      console.log(
        "| phase | clients | max batch | requests | TTFT p50 ms | TTFT p99 ms | tokens/s | server CPU s | tokens per server CPU s | 5xx | failed | mean batch |",
      );
      console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
      for (const r of results) {
        console.log(
          `| ${r.phase} | ${r.clients} | ${r.maxBatch} | ${r.requests} | ${r.ttftP50} | ${r.ttftP99} | ${r.tokensPerS} | ${r.serverCpuS} | ${r.tokensPerCpuS} | ${r.status5xx} | ${r.failed} | ${r.meanBatch} |`,
        );
      }
      const [b, o] = results;
      if (b && o)
        console.log(
          `batched / one at a time: ${(b.tokensPerS / o.tokensPerS).toFixed(2)}x the tokens/s, ${(b.tokensPerCpuS / o.tokensPerCpuS).toFixed(2)}x the tokens per server CPU second`,
        );
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
