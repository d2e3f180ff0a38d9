// Exact resume: a training process killed with SIGKILL after a checkpoint, then resumed, logs
// bit-for-bit the same losses as an uninterrupted run, and ends with the same weights. Dropout and
// gradient accumulation are on, so every RNG stream and the optimizer state must be restored.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const child = join(here, "fixtures", "train-child.ts");
const root = mkdtempSync(join(tmpdir(), "moxing-resume-"));
after(() => rmSync(root, { recursive: true, force: true }));

const words = ["the", "union", "is", "strong", "and", "we", "will", "build", "a", "nation", "of", "hope", "people", "work"];
let text = "";
for (let i = 0; text.length < 6000; i++) text += `${words[(i * 7 + (i >> 2)) % words.length]}${i % 11 === 10 ? ".\n" : " "}`;
const data = join(root, "data.txt");
writeFileSync(data, text);

const options = (out: string) => ({
  out,
  data,
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  blockSize: 16,
  batchSize: 4,
  gradAccum: 2,
  dropout: 0.1,
  maxSteps: 40,
  warmupSteps: 5,
  evalInterval: 5,
  evalIters: 2,
  checkpointInterval: 10,
  seed: 7,
});

/** Run the child; resolve with its stdout once it exits, or kill it once `killOn` appears in stdout. */
function runChild(opts: object, killOn?: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", child, JSON.stringify(opts)], { cwd: repo });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
      if (killOn && stdout.includes(killOn)) p.kill("SIGKILL");
    });
    p.stderr.on("data", (d) => {
      stderr += d;
    });
    p.on("error", reject);
    p.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);

test("SIGKILL mid-run, then --resume: the same losses bit for bit, the same final weights", { timeout: 60_000 }, async () => {
  const a = join(root, "uninterrupted");
  const b = join(root, "killed");
  const [full, killed] = await Promise.all([runChild(options(a)), runChild({ ...options(b), pauseAtStep: 25 }, "paused 25")]);
  assert.equal(full.code, 0, full.stderr);
  assert.match(full.stdout, /completed 40/);
  assert.equal(killed.signal, "SIGKILL", killed.stderr);
  assert.match(killed.stdout, /checkpoint 20\n/);
  assert.doesNotMatch(killed.stdout, /checkpoint 30/);
  // The killed run had logged steps past its last checkpoint; resuming must drop and redo them.
  assert.equal(metrics(b).at(-1)?.step, 25);
  const state = JSON.parse(readFileSync(join(b, "trainer_state.json"), "utf8"));
  assert.equal(state.step, 20);

  const resumed = await runChild({ out: b, resume: true });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /completed 40/);

  const ma = metrics(a);
  const mb = metrics(b);
  assert.equal(mb.length, 40);
  assert.deepEqual(
    mb.map((m) => m.step),
    ma.map((m) => m.step),
  );
  for (let i = 0; i < ma.length; i++) {
    for (const key of ["train_loss", "val_loss", "eval_train_loss", "lr", "grad_norm"]) {
      assert.equal(mb[i]?.[key], ma[i]?.[key], `step ${ma[i]?.step} ${key}`);
    }
  }
  assert.ok(ma.filter((m) => m.val_loss !== undefined).length === 8, "an evaluation every 5 steps");
  assert.deepEqual(readFileSync(join(b, "model.safetensors")), readFileSync(join(a, "model.safetensors")));
  assert.deepEqual(readFileSync(join(b, "optimizer.safetensors")), readFileSync(join(a, "optimizer.safetensors")));
});
