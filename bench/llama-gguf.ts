// Llama-family generation against llama.cpp (node-llama-cpp 3.21.1) on the same GGUF files: batch-1
// generation, prompt processing and peak resident memory, per weight type and thread count, both
// engines measured in one run, taking turns. Run by hand (node-llama-cpp is installed on demand as
// bench/llamacpp.ts does, into $MOXING_LLAMACPP_DIR or a temp dir):
//
//   node --import tsx bench/llama-gguf.ts                                  both shapes, F16 Q8_0 Q4_0 Q4_K, 1 and 2 threads
//   node --import tsx bench/llama-gguf.ts --model smollm2-135m --type Q8_0 --threads 1 --reps 3 --json
//   node --import tsx bench/llama-gguf.ts --model qwen3-0.6b --type Q4_K_M --peer-addon /path/to/other/moxing_native.node
//
// --peer-addon: the peer is moxing again with another build of the native addon (MOXING_NATIVE_ADDON;
// e.g. main's, to measure a kernel change on whole models) instead of llama.cpp. --type takes
// llama.cpp's mixes too (Q4_K_M, Q5_K_M).
//
// The models are tools/shaped_models.ts's: SmolLM2-135M's and Qwen3-0.6B's exact shapes with random
// weights (written on demand under .tmp/shaped-models/). Each engine runs in its own child process
// (moxing with MOXING_THREADS, llama.cpp with the context's threads), so each one's peak resident
// memory (getrusage's ru_maxrss, the Node process included) is its own. Per turn each child:
//   prompt   evaluates a --prompt-token prompt of fixed random ids from an empty cache up to the
//            first generated token: prompt tokens/s = prompt length / that time
//   generate continues a 16-token prompt greedily for --tokens tokens: tokens/s counts the tokens
//            after the first, so the prompt is excluded; CPU ms per token (user + system) too.
// After a warm-up each, the engines alternate --reps times (moxing, llama.cpp, moxing, ...); medians
// and the median of the per-turn ratios are reported. Both keep the KV cache in float32, without
// flash attention (moxing's cache is float32; llama.cpp's default would be float16).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { nativeInfo } from "../src/backends/native/index.js";
import { generateIds } from "../src/generate/index.js";
import * as mx from "../src/index.js";
import { loadLlamaGGUF } from "../src/io/gguf-llama.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : fallback;
};
const models = flag("model", "smollm2-135m,qwen3-0.6b").split(",");
const types = flag("type", "F16,Q8_0,Q4_0,Q4_K").split(",");
const threadCounts = flag("threads", `1,${Math.min(2, cpus().length)}`)
  .split(",")
  .map(Number)
  .filter((v, i, a) => a.indexOf(v) === i);
const tokens = Number(flag("tokens", "32"));
const promptLen = Number(flag("prompt", "128"));
const reps = Number(flag("reps", "3"));
const asJson = argv.includes("--json");
const peerAddon = flag("peer-addon", "");
const peerName = peerAddon ? `moxing with ${peerAddon}` : "llama.cpp";
const NODE_LLAMA_CPP = "node-llama-cpp@3.21.1";

/** Fixed pseudo-random ids below `vocab` (the same for both engines). */
function promptIds(n: number, vocab: number, seed: number): number[] {
  let s = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(100 + (s % (vocab - 200)));
  }
  return out;
}

interface Turn {
  prompt_tokens_per_s: number;
  tokens_per_s: number;
  cpu_ms_per_token: number;
  max_rss_mb: number;
}

function maxRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

// ---- the workers: each answers a line "go" with one JSON line (a Turn) -------------------------------

function serve(run: () => Promise<Turn> | Turn, ready: object): void {
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const rl = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on("line", () => {
    chain = chain.then(async () => {
      process.stdout.write(`${JSON.stringify(await run())}\n`);
    });
  });
}

function moxingWorker(gguf: string): void {
  const { model, config } = loadLlamaGGUF(gguf);
  const long = promptIds(promptLen, config.vocab_size, 1);
  const short = promptIds(16, config.vocab_size, 2);
  const run = (): Turn => {
    const t0 = performance.now();
    for (const _ of generateIds(model, long, { temperature: 0, maxNewTokens: 1 })) break;
    const prompt = (performance.now() - t0) / 1000;
    let t1 = 0;
    let c1 = process.cpuUsage();
    let count = 0;
    for (const _ of generateIds(model, short, { temperature: 0, maxNewTokens: tokens })) {
      if (count === 0) {
        t1 = performance.now();
        c1 = process.cpuUsage();
      }
      count++;
    }
    const cpu = process.cpuUsage(c1);
    return {
      prompt_tokens_per_s: promptLen / prompt,
      tokens_per_s: (count - 1) / ((performance.now() - t1) / 1000),
      cpu_ms_per_token: (cpu.user + cpu.system) / 1000 / (count - 1),
      max_rss_mb: maxRssMb(),
    };
  };
  const be = mx.getBackend();
  serve(run, { engine: "moxing", backend: be.name, threads: be.threads?.() ?? 1, quant: nativeInfo().quant });
}

// The part of node-llama-cpp's API used here (it is installed on demand, so its types are not).
interface LlamaSequence {
  evaluate(ids: number[], opts: object): AsyncIterable<number>;
  dispose(): void;
}
interface NodeLlamaCpp {
  getLlama(opts: object): Promise<{
    loadModel(opts: { modelPath: string }): Promise<{
      createContext(opts: object): Promise<{ getSequence(): LlamaSequence; readonly currentThreads: number }>;
      readonly trainContextSize: number;
      readonly tokens: { bos: number | null };
    }>;
  }>;
  LlamaLogLevel: { error: unknown };
}

async function nodeLlamaCpp(): Promise<NodeLlamaCpp> {
  const dir = process.env.MOXING_LLAMACPP_DIR || join(tmpdir(), "moxing-node-llama-cpp-3.21.1");
  const pkg = join(dir, "node_modules", "node-llama-cpp", "package.json");
  if (!existsSync(pkg) || JSON.parse(readFileSync(pkg, "utf8")).version !== "3.21.1") {
    console.error(`installing ${NODE_LLAMA_CPP} into ${dir} (about 700 MB; once)...`);
    mkdirSync(dir, { recursive: true });
    const r = spawnSync("npm", ["i", "-E", NODE_LLAMA_CPP, "--prefix", dir, "--no-audit", "--no-fund"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`npm i ${NODE_LLAMA_CPP} failed`);
  }
  return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
}

async function llamaCppWorker(gguf: string, threads: number): Promise<void> {
  const { getLlama, LlamaLogLevel } = await nodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath: gguf });
  const ctx = await model.createContext({
    contextSize: promptLen + tokens + 32,
    threads,
    batchSize: 512,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const vocab = JSON.parse(flag("vocab", "0")) as number;
  const long = promptIds(promptLen, vocab, 1);
  const short = promptIds(16, vocab, 2);
  const run = async (): Promise<Turn> => {
    let seq = ctx.getSequence();
    const t0 = performance.now();
    for await (const _ of seq.evaluate(long, { temperature: 0, yieldEogToken: true })) break;
    const prompt = (performance.now() - t0) / 1000;
    seq.dispose();
    seq = ctx.getSequence();
    let t1 = 0;
    let c1 = process.cpuUsage();
    let count = 0;
    for await (const _ of seq.evaluate(short, { temperature: 0, yieldEogToken: true })) {
      if (count === 0) {
        t1 = performance.now();
        c1 = process.cpuUsage();
      }
      if (++count >= tokens) break;
    }
    const cpu = process.cpuUsage(c1);
    seq.dispose();
    return {
      prompt_tokens_per_s: promptLen / prompt,
      tokens_per_s: (count - 1) / ((performance.now() - t1) / 1000),
      cpu_ms_per_token: (cpu.user + cpu.system) / 1000 / (count - 1),
      max_rss_mb: maxRssMb(),
    };
  };
  serve(run, { engine: "llama.cpp", threads: ctx.currentThreads });
}

// ---- the driver ----------------------------------------------------------------------------------------

interface Child {
  ready: Promise<Record<string, unknown>>;
  turn(): Promise<Turn>;
  close(): void;
}

function startChild(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  child.on("exit", (code) => {
    for (const w of waiting.splice(0)) w(JSON.stringify({ error: `worker ${args.join(" ")} exited with ${code}` }));
  });
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) =>
      waiting.push((line) => {
        const r = JSON.parse(line);
        if (r.error) reject(new Error(r.error));
        else resolve(r);
      }),
    );
  return {
    ready: next(),
    turn() {
      const p = next();
      child.stdin.write("go\n");
      return p as unknown as Promise<Turn>;
    },
    close() {
      child.stdin.end();
    },
  };
}

interface Row {
  model: string;
  type: string;
  threads: number;
  moxing: Turn & { info: Record<string, unknown> };
  /** The peer: llama.cpp, or moxing with --peer-addon's build. */
  llama_cpp: Turn & { info: Record<string, unknown> };
  generate_ratio: number;
  prompt_ratio: number;
  generate_ratios: number[];
  prompt_ratios: number[];
}

const med = (xs: number[]) => median(xs);

function summarise(turns: Turn[]): Turn {
  return {
    prompt_tokens_per_s: med(turns.map((t) => t.prompt_tokens_per_s)),
    tokens_per_s: med(turns.map((t) => t.tokens_per_s)),
    cpu_ms_per_token: med(turns.map((t) => t.cpu_ms_per_token)),
    max_rss_mb: Math.max(...turns.map((t) => t.max_rss_mb)),
  };
}

async function measure(model: string, type: string, threads: number): Promise<Row> {
  const { shapedModel, SHAPED } = await import("../tools/shaped_models.js");
  const gguf = shapedModel(model, type as never);
  const vocab = (SHAPED[model]?.config.vocab_size ?? 0) as number;
  const mox = startChild(["--moxing-worker", gguf, "--prompt", String(promptLen), "--tokens", String(tokens)], {
    MOXING_THREADS: String(threads),
    MOXING_QUIET: "1",
  });
  const lc = peerAddon
    ? startChild(["--moxing-worker", gguf, "--prompt", String(promptLen), "--tokens", String(tokens)], {
        MOXING_THREADS: String(threads),
        MOXING_QUIET: "1",
        MOXING_NATIVE_ADDON: peerAddon,
      })
    : startChild(
        [
          "--llamacpp-worker",
          gguf,
          "--threads",
          String(threads),
          "--vocab",
          String(vocab),
          "--prompt",
          String(promptLen),
          "--tokens",
          String(tokens),
        ],
        { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
      );
  const [mi, li] = [await mox.ready, await lc.ready];
  await mox.turn(); // warm-up each
  await lc.turn();
  const m: Turn[] = [];
  const l: Turn[] = [];
  for (let r = 0; r < reps; r++) {
    m.push(await mox.turn());
    l.push(await lc.turn());
  }
  mox.close();
  lc.close();
  const gr = m.map((t, i) => t.tokens_per_s / (l[i] as Turn).tokens_per_s);
  const pr = m.map((t, i) => t.prompt_tokens_per_s / (l[i] as Turn).prompt_tokens_per_s);
  return {
    model,
    type,
    threads,
    moxing: { ...summarise(m), info: mi },
    llama_cpp: { ...summarise(l), info: li },
    generate_ratio: med(gr),
    prompt_ratio: med(pr),
    generate_ratios: gr,
    prompt_ratios: pr,
  };
}

async function main(): Promise<void> {
  const w = argv.indexOf("--moxing-worker");
  if (w >= 0) return moxingWorker(argv[w + 1] as string);
  const lw = argv.indexOf("--llamacpp-worker");
  if (lw >= 0) return llamaCppWorker(argv[lw + 1] as string, Number(flag("threads", "1")));
  const rows: Row[] = [];
  for (const model of models)
    for (const type of types)
      for (const threads of threadCounts) {
        const row = await measure(model, type, threads);
        rows.push(row);
        if (!asJson) {
          const f = (v: number) => v.toFixed(1);
          console.log(
            `${model} ${type} ${threads}t  generate: moxing ${f(row.moxing.tokens_per_s)} tok/s (${f(row.moxing.cpu_ms_per_token)} cpu ms/tok), ${peerName} ${f(row.llama_cpp.tokens_per_s)} (${f(row.llama_cpp.cpu_ms_per_token)}), ratio ${row.generate_ratio.toFixed(2)}` +
              ` | prompt ${promptLen}: moxing ${f(row.moxing.prompt_tokens_per_s)} tok/s, ${peerName} ${f(row.llama_cpp.prompt_tokens_per_s)}, ratio ${row.prompt_ratio.toFixed(2)}` +
              ` | peak RSS: moxing ${row.moxing.max_rss_mb.toFixed(0)} MB, ${peerName} ${row.llama_cpp.max_rss_mb.toFixed(0)} MB`,
          );
        }
      }
  if (asJson)
    console.log(
      JSON.stringify(
        { date: new Date().toISOString(), cpu: cpus()[0]?.model, peer: peerName, tokens, prompt: promptLen, reps, rows },
        null,
        1,
      ),
    );
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
