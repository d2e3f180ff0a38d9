// Training speed of moxing's Marian beside PyTorch's nn.Transformer of the same size
// (bench/torch_seq2seq.py), on the same batches of the same token ids, in alternating turns: a few
// moxing steps, then the same number of torch steps in a PyTorch process kept alive between turns,
// and so on, so both see the same load on a shared machine. Prints the median wall and CPU
// milliseconds per step of each and their ratio.
//
//   node scripts/bible-pairs.mjs --out data/bible         (once; needs Debian's diatheke + sword texts)
//   node --import tsx bench/seq2seq.ts [--data data/bible] [--rounds 6] [--steps 3] [--batch-size 32]
//        [--bucket 100] [--threads 2] [--warmup 4] [--json]
//        [--d-model 256 --layers 3 --heads 4 --ffn 1024 --vocab-size 8000]   (train-seq2seq's default size)
//
// With --data the examples are the English->Spanish training pairs tokenized by a joint byte-level
// BPE of 8,000 tokens trained on them (as train-seq2seq does); without it, random ids with the
// same lengths as those pairs have (mean 33 tokens a side, 1 to 128), so the command runs anywhere.
// The model is train-seq2seq's default Marian (d_model 256, 3 + 3 layers, 4 heads, FFN 1024,
// vocabulary 8,000: 7.6M parameters); each step is what the training loop does: forward with
// label-smoothed cross-entropy, backward, global-norm clipping, AdamW. Batches are made as the trainer
// makes them: length-bucketed (pools of --bucket batches sorted by length; 0: random rows).
// PyTorch runs with its best settings here: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they halve
// its speed on this machine), OPENBLAS_NUM_THREADS and torch.set_num_threads at --threads.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import "../src/index.js";
import { nativeInfo, nativeTesting } from "../src/backends/native/index.js";
import { MarianMTModel } from "../src/models/marian.js";
import { AdamW } from "../src/optim/adamw.js";
import { getBackend } from "../src/tensor/backend.js";
import { MemoryArena } from "../src/tensor/memory.js";
import { Generator } from "../src/tensor/random.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { clipGradNorm, forwardBackward } from "../src/train/grad.js";
import { collatePairs, EOS_TOKEN, type Example, encodePairs, epochOrder, PAD_TOKEN, trainJointTokenizer } from "../src/train/seq2seq.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const str = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const rounds = flag("rounds", 6);
const stepsPerRound = flag("steps", 3);
const batchSize = flag("batch-size", 32);
const threads = flag("threads", 2);
const bucket = flag("bucket", 100);
// Warm-up steps each, before the measured rounds: moxing's step arena settles on the buffers of
// the batches' shapes over a few steps (as PyTorch's caching allocator does).
const warmup = flag("warmup", 4);
const dataDir = str("data");
const layers = flag("layers", 3);
const heads = flag("heads", 4);
const ffn = flag("ffn", 1024);
const shape = {
  d_model: flag("d-model", 256),
  encoder_layers: layers,
  decoder_layers: layers,
  encoder_attention_heads: heads,
  decoder_attention_heads: heads,
  encoder_ffn_dim: ffn,
  decoder_ffn_dim: ffn,
};
const vocabSize = flag("vocab-size", 8000);
nativeTesting.setThreads(threads);
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);
const MAX_LENGTH = 128;

/** Token ids of the training pairs, and the vocabulary's size and special ids. */
function examples(): { ex: Example[]; vocab: number; pad: number; eos: number; source: string } {
  if (dataDir) {
    const read = (f: string) => readFileSync(join(dataDir, f), "utf8").replace(/\n$/, "").split("\n");
    const data = { source: read("train.en"), target: read("train.es") };
    const tok = trainJointTokenizer(data, vocabSize);
    const eos = tok.specialTokens.get(EOS_TOKEN) as number;
    return {
      ex: encodePairs(tok, data, eos, MAX_LENGTH),
      vocab: tok.vocabSize,
      pad: tok.specialTokens.get(PAD_TOKEN) as number,
      eos,
      source: `${dataDir}/train.{en,es}`,
    };
  }
  // Lengths like the Bible pairs' (a side: mean 33, most 15-55 tokens, long tail to 128).
  const g = new Generator(7);
  const len = () => Math.min(MAX_LENGTH, Math.max(2, Math.round(Math.exp(3.4 + 0.45 * g.normal()))));
  const ids = (n: number) => [...Array.from({ length: n - 1 }, () => 2 + g.randint(vocabSize - 2)), 0];
  const ex = Array.from({ length: 4096 }, () => ({ src: ids(len()), tgt: ids(len()) }));
  return { ex, vocab: vocabSize, pad: 1, eos: 0, source: "random ids with Bible-like lengths" };
}

async function main(): Promise<void> {
  const { ex, vocab, pad, eos, source } = examples();
  const config = {
    ...shape,
    vocab_size: vocab,
    decoder_vocab_size: vocab,
    pad_token_id: pad,
    decoder_start_token_id: pad,
    eos_token_id: eos,
    forced_eos_token_id: eos,
    max_position_embeddings: MAX_LENGTH,
  };
  const model = new MarianMTModel(config, { seed: 42 });
  const optimizer = new AdamW(model.optimGroups(0.01), { lr: 5e-4, betas: [0.9, 0.98], eps: 1e-9 });
  const params = model.parameters();
  const dir = mkdtempSync(join(tmpdir(), "moxing-bench-seq2seq-"));
  const idsFile = join(dir, "ids.json");
  writeFileSync(idsFile, JSON.stringify({ config: { ...model.config }, train: ex }));

  // The batches, the same for both, as the trainer makes them, padded to the longest row (rounded up to 8).
  const total = rounds * stepsPerRound + warmup;
  const order = epochOrder(ex, batchSize, bucket, new Generator(3));
  const batches = Array.from({ length: total }, (_, i) => order.slice(i * batchSize, (i + 1) * batchSize));
  const meanLen = (side: "src" | "tgt") => batches.flat().reduce((n, i) => n + (ex[i] as Example)[side].length, 0) / batches.flat().length;
  const padded = batches.map(
    (b) =>
      collatePairs(
        b.map((i) => ex[i] as Example),
        pad,
        MAX_LENGTH,
      ).labels.shape[1] as number,
  );

  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const py = spawn("/usr/bin/python3", [join(root, "bench/torch_seq2seq.py"), "serve", "--data", idsFile, "--threads", String(threads)], {
    env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error("bench/seq2seq: the PyTorch peer exited; is Debian's python3-torch installed?");
    return JSON.parse(r.value);
  };
  const torchInfo = await next();

  const arena = new MemoryArena();
  model.train();
  const moxingStep = (idx: number[]) => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    arena.reset();
    const loss = arena.run(() => {
      const r = forwardBackward(1, () => {
        const b = collatePairs(
          idx.map((i) => ex[i] as Example),
          pad,
          MAX_LENGTH,
        );
        return { loss: model.forward(b, { labelSmoothing: 0.1, labelledOnly: true }).loss as Tensor, tokens: b.tokens };
      });
      clipGradNorm(params, 1);
      optimizer.step();
      return r.loss;
    });
    optimizer.zeroGrad({ recycle: true }); // as the training loop does
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpu_ms: (c.user + c.system) / 1000, loss };
  };

  const mx: { ms: number; cpu_ms: number }[] = [];
  const pt: { ms: number; cpu_ms: number }[] = [];
  // Warm-up steps each (allocation, caches), then alternating rounds.
  for (let i = 0; i < warmup; i++) moxingStep(batches[i] as number[]);
  py.stdin.write(`${JSON.stringify({ steps: batches.slice(0, warmup) })}\n`);
  await next();
  for (let r = 0; r < rounds; r++) {
    const chunk = batches.slice(warmup + r * stepsPerRound, warmup + (r + 1) * stepsPerRound);
    const m = chunk.map((b) => moxingStep(b));
    py.stdin.write(`${JSON.stringify({ steps: chunk })}\n`);
    const t = (await next()).steps as { ms: number; cpu_ms: number }[];
    mx.push(...m);
    pt.push(...t);
    log(
      `round ${r + 1}/${rounds}: moxing ${median(m.map((x) => x.ms)).toFixed(0)} ms/step (cpu ${median(m.map((x) => x.cpu_ms)).toFixed(0)}), ` +
        `torch ${median(t.map((x) => x.ms)).toFixed(0)} ms/step (cpu ${median(t.map((x) => x.cpu_ms)).toFixed(0)})`,
    );
  }
  py.stdin.write(`${JSON.stringify({ quit: true })}\n`);
  rmSync(dir, { recursive: true, force: true });
  const med = (xs: { ms: number; cpu_ms: number }[], k: "ms" | "cpu_ms") => median(xs.map((x) => x[k]));
  const tot = (xs: { ms: number; cpu_ms: number }[], k: "ms" | "cpu_ms") => xs.reduce((a, x) => a + x[k], 0);
  const result = {
    cpu: cpus()[0]?.model ?? "unknown",
    backend: getBackend().name,
    isa: nativeInfo().isa,
    threads,
    data: source,
    batch_size: batchSize,
    bucket,
    model: shape,
    mean_tokens: { source: meanLen("src"), target: meanLen("tgt") },
    mean_padded_target: padded.reduce((a, b) => a + b, 0) / padded.length,
    params: { moxing: model.numParameters(), torch: torchInfo.params },
    torch: torchInfo.torch,
    steps_each: mx.length,
    moxing: { ms_per_step: med(mx, "ms"), cpu_ms_per_step: med(mx, "cpu_ms") },
    pytorch: { ms_per_step: med(pt, "ms"), cpu_ms_per_step: med(pt, "cpu_ms") },
    speedup_wall: med(pt, "ms") / med(mx, "ms"),
    speedup_cpu: med(pt, "cpu_ms") / med(mx, "cpu_ms"),
    // Batches differ in length from step to step, so the medians of the two sides can fall on
    // different batches; the ratio of the totals over the same batches is the paired figure.
    speedup_total_wall: tot(pt, "ms") / tot(mx, "ms"),
    speedup_total_cpu: tot(pt, "cpu_ms") / tot(mx, "cpu_ms"),
  };
  log(
    `moxing ${result.moxing.ms_per_step.toFixed(0)} ms/step, PyTorch ${result.pytorch.ms_per_step.toFixed(0)} ms/step: ` +
      `moxing ${result.speedup_wall.toFixed(2)}x faster (CPU time ${result.speedup_cpu.toFixed(2)}x); ` +
      `totals over the same ${mx.length} batches: ${result.speedup_total_wall.toFixed(2)}x wall, ${result.speedup_total_cpu.toFixed(2)}x CPU`,
  );
  if (argv.includes("--json")) console.log(JSON.stringify(result));
  else console.log(JSON.stringify(result, null, 2));
}

await main();
