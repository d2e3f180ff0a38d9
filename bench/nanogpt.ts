// `moxing train` beside nanoGPT's own train.py, run as published, on the same text and configuration:
// nanoGPT's CPU configuration from its README (n_layer 4, n_head 4, n_embd 128, block_size 64,
// batch_size 12, dropout 0, eval_iters 20, no compile), character-level, 90/10 split.
//
//   node --import tsx bench/nanogpt.ts --nanogpt DIR [--steps 300] [--threads 1] [--turns 3] [--json]
//
// DIR is a checkout of https://github.com/karpathy/nanoGPT (nothing of it is copied here). The
// script writes the text as nanoGPT's data/shakespeare_char/prepare.py would (train.bin, val.bin
// as uint16 character ids, meta.pkl with vocab_size) into a temporary working directory, and runs
//   /usr/bin/python3 DIR/train.py DIR/config/train_shakespeare_char.py --device=cpu --compile=False ...
// there with Debian's torch (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, OMP_NUM_THREADS and
// OPENBLAS_NUM_THREADS set to --threads), then `moxing train` with MOXING_THREADS=--threads on the
// same file. The two take --turns alternating turns, so a shared machine's drift hits both alike;
// each turn's figure is the median of its per-step times (steps 10 and on: nanoGPT's step 0
// includes its first evaluation). The text is the State of the Union addresses since 1900, what
// `npm start` trains on, or --data FILE.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sotuCorpus } from "../src/data/sotu.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const nanogpt = opt("nanogpt") ?? process.env.NANOGPT_DIR;
const steps = Number(opt("steps") ?? 300);
const threads = Number(opt("threads") ?? 1);
const turns = Number(opt("turns") ?? 3);
const asJson = argv.includes("--json");
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);

// nanoGPT's README, "I only have a macbook" (CPU): the configuration both sides run.
const CONFIG = { n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12, dropout: 0, eval_iters: 20 };

function prepare(dir: string, text: string): void {
  // As data/shakespeare_char/prepare.py: sorted characters, ids as uint16, first 90% train.
  const chars = [...new Set(Array.from(text))].sort();
  const stoi = new Map(chars.map((c, i) => [c, i]));
  const ids = Uint16Array.from(Array.from(text), (c) => stoi.get(c) as number);
  const n = Math.floor(ids.length * 0.9);
  const data = join(dir, "data", "moxing_bench");
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, "train.bin"), ids.subarray(0, n));
  writeFileSync(join(data, "val.bin"), ids.subarray(n));
  // meta.pkl: train.py reads vocab_size from it.
  const py = spawnSync(
    "/usr/bin/python3",
    ["-c", `import pickle,sys; pickle.dump({'vocab_size': ${chars.length}}, open(sys.argv[1], 'wb'))`, join(data, "meta.pkl")],
    { encoding: "utf8" },
  );
  if (py.status !== 0) throw new Error(`writing meta.pkl failed: ${py.stderr}`);
}

function runNanoGPT(work: string, dir: string): number {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const args = [
    join(dir, "train.py"),
    join(dir, "config", "train_shakespeare_char.py"),
    "--device=cpu",
    "--compile=False",
    `--eval_iters=${CONFIG.eval_iters}`,
    "--log_interval=1",
    `--block_size=${CONFIG.block_size}`,
    `--batch_size=${CONFIG.batch_size}`,
    `--n_layer=${CONFIG.n_layer}`,
    `--n_head=${CONFIG.n_head}`,
    `--n_embd=${CONFIG.n_embd}`,
    `--max_iters=${steps}`,
    `--lr_decay_iters=${steps}`,
    `--dropout=${CONFIG.dropout}.0`,
    "--dataset=moxing_bench",
    `--out_dir=${join(work, "nanogpt-out")}`,
    `--eval_interval=${steps + 1000}`,
  ];
  const r = spawnSync("/usr/bin/python3", args, { cwd: work, env, encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`nanoGPT's train.py failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n")}`);
  // "iter 10: loss 2.5432, time 85.34ms, mfu -100.00%"
  const ms = [...r.stdout.matchAll(/^iter (\d+): loss [\d.]+, time ([\d.]+)ms/gm)]
    .filter((m) => Number(m[1]) >= 10)
    .map((m) => Number(m[2]));
  if (ms.length === 0) throw new Error(`no timings in nanoGPT's output:\n${r.stdout.slice(-500)}`);
  return median(ms);
}

function runMoxing(work: string, data: string, turn: number): number {
  const out = join(work, `moxing-out-${turn}`);
  const args = [
    ...process.execArgv,
    join(root, "src", "cli", "main.ts"),
    "train",
    "--data",
    data,
    "--out",
    out,
    "--max-steps",
    String(steps),
    "--eval-interval",
    String(steps + 1000),
    "--eval-iters",
    String(CONFIG.eval_iters),
    "--n-layer",
    String(CONFIG.n_layer),
    "--n-head",
    String(CONFIG.n_head),
    "--n-embd",
    String(CONFIG.n_embd),
    "--block-size",
    String(CONFIG.block_size),
    "--batch-size",
    String(CONFIG.batch_size),
  ];
  const r = spawnSync(process.execPath, args, {
    env: { ...process.env, MOXING_THREADS: String(threads) },
    encoding: "utf8",
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`moxing train failed: ${r.stderr.trim().split("\n").slice(-5).join("\n")}`);
  const ms = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { step: number; ms_per_step?: number })
    .filter((m) => m.step >= 10 && typeof m.ms_per_step === "number")
    .map((m) => m.ms_per_step as number);
  return median(ms);
}

function main(): void {
  if (!nanogpt || !existsSync(join(nanogpt, "train.py"))) {
    throw new Error("bench/nanogpt: pass --nanogpt DIR (a checkout of karpathy/nanoGPT, with train.py) or set NANOGPT_DIR");
  }
  const dir = resolve(nanogpt);
  const work = mkdtempSync(join(tmpdir(), "moxing-nanogpt-"));
  try {
    const dataArg = opt("data");
    const text = dataArg ? readFileSync(dataArg, "utf8") : sotuCorpus(1900);
    const data = join(work, "input.txt");
    writeFileSync(data, text);
    prepare(work, text);
    // train.py execs ./configurator.py from its working directory.
    copyFileSync(join(dir, "configurator.py"), join(work, "configurator.py"));
    log(
      `bench/nanogpt: ${steps} steps, ${threads} thread(s), ${turns} turns each, ${cpus()[0]?.model ?? "cpu"}, ${text.length} characters`,
    );
    const rows: { turn: number; nanogpt_ms: number; moxing_ms: number; ratio: number }[] = [];
    for (let t = 0; t < turns; t++) {
      const n = runNanoGPT(work, dir);
      const m = runMoxing(work, data, t);
      rows.push({ turn: t + 1, nanogpt_ms: n, moxing_ms: m, ratio: n / m });
      log(
        `  turn ${t + 1}: nanoGPT train.py ${n.toFixed(1)} ms/step, moxing train ${m.toFixed(1)} ms/step, speed-up ${(n / m).toFixed(2)}x`,
      );
    }
    const result = {
      steps,
      threads,
      cpu: cpus()[0]?.model ?? "unknown",
      nanogpt_ms_per_step: median(rows.map((r) => r.nanogpt_ms)),
      moxing_ms_per_step: median(rows.map((r) => r.moxing_ms)),
      speedup_median: median(rows.map((r) => r.ratio)),
      turns: rows,
    };
    log(
      `median: nanoGPT ${result.nanogpt_ms_per_step.toFixed(1)} ms/step, moxing ${result.moxing_ms_per_step.toFixed(1)} ms/step; per-turn speed-up median ${result.speedup_median.toFixed(2)}x`,
    );
    if (asJson) console.log(JSON.stringify(result));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
