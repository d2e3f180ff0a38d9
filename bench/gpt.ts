// The GPT quality benchmark: moxing and a PyTorch implementation of the same model
// (bench/torch_gpt.py) train with identical hyperparameters on the same text, and their
// validation losses and training speed are printed side by side.
//
//   node --import tsx bench/gpt.ts [--steps 2000] [--json]
//
// The text is the State of the Union addresses since 1990 (about 1.1 M characters, the size of
// nanoGPT's tiny Shakespeare), char tokenizer, 90/10 split, nanoGPT's CPU configuration:
// n_layer 4, n_head 4, n_embd 128, block_size 64, batch_size 12, lr 1e-3 with 100 warmup steps
// and cosine decay to 1e-4, AdamW betas (0.9, 0.99), weight decay 0.1, clip 1.0, dropout 0.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import "../src/index.js";
import { sotuCorpus } from "../src/data/sotu.js";
import { getBackend } from "../src/tensor/backend.js";
import { train } from "../src/train/trainer.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const steps = flag("steps", 2000);
const evalIters = flag("eval-iters", 20);
const root = fileURLToPath(new URL("../", import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moxing-bench-gpt-"));
  const data = join(dir, "sotu-1990.txt");
  writeFileSync(data, sotuCorpus(1990));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`bench/gpt: ${steps} steps, backend ${getBackend().name}, data ${data}`);
  try {
    const t0 = performance.now();
    const r = await train({ data, out: join(dir, "run"), maxSteps: steps, evalInterval: steps, evalIters, seed: 1337 });
    const wall = (performance.now() - t0) / 1000;
    const metrics = readFileSync(join(dir, "run", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { ms_per_step: number });
    const ms = median(metrics.slice(5).map((m) => m.ms_per_step));
    const moxing = {
      val_loss: r.valLoss,
      train_loss: r.trainLoss,
      ms_per_step: ms,
      train_tokens_per_s: (12 * 64 * 1000) / ms,
      wall_s: wall,
    };
    log(`moxing: val loss ${r.valLoss?.toFixed(4)}, ${ms.toFixed(1)} ms/step, ${wall.toFixed(0)} s`);

    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const t1 = performance.now();
    const p = spawnSync(
      "/usr/bin/python3",
      [
        `${root}bench/torch_gpt.py`,
        "--data",
        data,
        "--max-steps",
        String(steps),
        "--eval-iters",
        String(evalIters),
        "--threads",
        String(cpus().length),
      ],
      { env, encoding: "utf8" },
    );
    const torch =
      p.status === 0 ? { ...JSON.parse(p.stdout.trim().split("\n").pop() as string), wall_s: (performance.now() - t1) / 1000 } : null;
    if (!torch) log(`torch: unavailable (${p.stderr.split("\n").slice(-2).join(" ").trim()})`);
    else log(`torch: val loss ${torch.val_loss.toFixed(4)}, ${torch.ms_per_step.toFixed(1)} ms/step, ${torch.wall_s.toFixed(0)} s`);
    const result = {
      steps,
      moxing,
      torch,
      val_loss_diff: torch && r.valLoss !== null ? r.valLoss - torch.val_loss : null,
      speedup: torch ? torch.ms_per_step / ms : null,
    };
    if (torch) log(`val loss difference ${result.val_loss_diff?.toFixed(4)} nats; training speed-up ${result.speedup?.toFixed(2)}x`);
    console.log(JSON.stringify(result));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
