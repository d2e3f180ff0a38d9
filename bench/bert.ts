// BERT speed, moxing beside PyTorch, measured in the same invocation: sentences per second for
// inference and for fine-tuning, at bert-tiny (2 layers, 128 wide, 2 heads) and bert-mini (4, 256,
// 4) sizes with the 30,522-token vocabulary, batch 32, sequence length 64 and 128.
//
//   node --import tsx bench/bert.ts                 a table on stderr, one JSON object on stdout's last line
//   node --import tsx bench/bert.ts --quick         fewer repetitions (a smoke run)
//   node --import tsx bench/bert.ts --sizes tiny --seq 64 --reps 5
//
//   inference   eval mode, no gradients: a sequence classifier's logits (encoder, pooler, 2-label
//               head) of a (32, seq) batch of random token ids with an all-ones attention mask
//   finetune    train mode: the same forward with a cross-entropy loss against random labels,
//               backward, global-norm clipping at 1.0 and an AdamW step (lr 1e-4, eps 1e-8, weight
//               decay 0.01 except biases and LayerNorms), in a MemoryArena as moxing's fine-tuning
//               loop (src/train/loop.ts) runs each step
//
// Weights are random (Hugging Face's initialisation); dropout is 0 on both sides so they do the same
// arithmetic. Each figure is the median over --reps timed calls after 2 warm-up calls. The PyTorch
// figures come from bench/torch_bert_bench.py (tools/torch_bert.py's model with a classification
// head), run by /usr/bin/python3 with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and
// OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and torch.set_num_threads at moxing's thread count. Without
// torch the torch fields are null.

import { cpus } from "node:os";
import * as mx from "../src/index.js";
import { Bert, type BertPreset, bertConfig } from "../src/models/bert.js";
import { clipGradNorm } from "../src/train/grad.js";
import { timeIt } from "./timing.js";
import { runTorch } from "./torch.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const reps = Number(arg("reps") ?? (quick ? 3 : 10));
const warmup = 2;
const sizes = (arg("sizes") ?? "tiny,mini").split(",") as BertPreset[];
const seqs = (arg("seq") ?? "64,128").split(",").map(Number);
const BATCH = Number(arg("batch") ?? 32);
const VOCAB = 30522;

interface Workload {
  size: BertPreset;
  num_hidden_layers: number;
  hidden_size: number;
  num_attention_heads: number;
  intermediate_size: number;
  vocab_size: number;
  batch_size: number;
  seq_len: number;
}

function build(w: Workload): Bert {
  const config = bertConfig(w.size, { vocab_size: w.vocab_size, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 });
  return new Bert(config, { task: "text-classification", numLabels: 2, seed: 0 });
}

function batch(w: Workload) {
  const g = new mx.Generator(1);
  const shape = [w.batch_size, w.seq_len];
  return {
    inputs: {
      inputIds: mx.randint(1, w.vocab_size, shape, { generator: g }),
      tokenTypeIds: mx.zeros(shape, { dtype: "int32" }),
      attentionMask: mx.ones(shape, { dtype: "int32" }),
    },
    labels: mx.randint(0, 2, [w.batch_size], { generator: g }),
  };
}

function inference(w: Workload): { ms_per_batch: number; sentences_per_s: number } {
  const model = build(w);
  model.eval();
  const { inputs } = batch(w);
  const arena = new mx.MemoryArena();
  const ms = timeIt(
    () => {
      arena.reset();
      arena.run(() => mx.noGrad(() => model.forward(inputs).logits.contiguousData()));
    },
    reps,
    warmup,
  );
  return { ms_per_batch: ms, sentences_per_s: (w.batch_size * 1000) / ms };
}

function finetune(w: Workload): { ms_per_step: number; sentences_per_s: number } {
  const model = build(w);
  model.train();
  const { inputs, labels } = batch(w);
  const params = model.parameters();
  const optimizer = new mx.AdamW(model.optimGroups(0.01), { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8 });
  const arena = new mx.MemoryArena();
  const ms = timeIt(
    () => {
      optimizer.zeroGrad();
      arena.reset();
      arena.run(() => {
        const loss = model.forward(inputs, { labels }).loss as mx.Tensor;
        loss.item();
        loss.backward();
        clipGradNorm(params, 1);
        optimizer.step();
      });
      optimizer.zeroGrad();
    },
    reps,
    warmup,
  );
  return { ms_per_step: ms, sentences_per_s: (w.batch_size * 1000) / ms };
}

type TorchResult = {
  torch: string;
  threads: number;
  configs: { inference: { sentences_per_s: number }; finetune: { sentences_per_s: number } }[];
};

function torchBench(workloads: Workload[], threads: number): TorchResult | { error: string } {
  try {
    const r = runTorch<TorchResult>(
      "torch_bert_bench.py",
      ["--threads", String(threads), "--reps", String(reps), "--warmup", String(warmup), "--configs", JSON.stringify(workloads)],
      threads,
    );
    return r.ok ? r.value : { error: r.reason };
  } catch (e) {
    return { error: (e as Error).message }; // the table still shows moxing's figures
  }
}

function main(): void {
  const backend = mx.getBackend();
  const threads = backend.threads?.() ?? 1;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(
    `bench/bert: backend ${backend.name}, ${threads} thread(s), ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores; ` +
      `batch ${BATCH}, ${reps} reps (median)${quick ? " (quick)" : ""}`,
  );
  const workloads: Workload[] = sizes.flatMap((size) =>
    seqs.map((seq_len) => ({ size, ...bertConfig(size), vocab_size: VOCAB, batch_size: BATCH, seq_len })),
  );
  for (const w of workloads) {
    if (!(w.seq_len >= 1 && w.seq_len <= 512)) throw new Error(`bench/bert: sequence length ${w.seq_len} is not in 1..512`);
  }
  const slim = workloads.map(
    ({ size, num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, vocab_size, batch_size, seq_len }) => ({
      size,
      num_hidden_layers,
      hidden_size,
      num_attention_heads,
      intermediate_size,
      vocab_size,
      batch_size,
      seq_len,
    }),
  );

  const t0 = performance.now();
  const tr = torchBench(slim, threads);
  const torch = "error" in tr ? null : tr;
  if (!torch) log(`torch: unavailable (${(tr as { error: string }).error})`);
  else log(`torch ${torch.torch}, ${torch.threads} thread(s): ${((performance.now() - t0) / 1000).toFixed(0)} s`);

  const rows = slim.map((w, i) => {
    const inf = inference(w);
    const ft = finetune(w);
    const t = torch?.configs[i] ?? null;
    return {
      ...w,
      params: build(w).paramCount().total,
      moxing: { inference: inf, finetune: ft },
      torch: t ? { inference: t.inference, finetune: t.finetune } : null,
      inference_ratio: t ? inf.sentences_per_s / t.inference.sentences_per_s : null,
      finetune_ratio: t ? ft.sentences_per_s / t.finetune.sentences_per_s : null,
    };
  });

  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "-" : x.toFixed(d));
  log("\nsentences/s (median); ratio = moxing / torch");
  log("size  params   seq  | inference: moxing    torch  ratio | fine-tune: moxing    torch  ratio");
  for (const r of rows) {
    log(
      `${r.size.padEnd(5)} ${(r.params / 1e6).toFixed(2).padStart(5)}M ${String(r.seq_len).padStart(5)}  |` +
        `            ${f(r.moxing.inference.sentences_per_s).padStart(6)} ${f(r.torch?.inference.sentences_per_s).padStart(8)} ${f(r.inference_ratio, 2).padStart(6)} |` +
        `            ${f(r.moxing.finetune.sentences_per_s).padStart(6)} ${f(r.torch?.finetune.sentences_per_s).padStart(8)} ${f(r.finetune_ratio, 2).padStart(6)}`,
    );
  }
  console.log(
    JSON.stringify({
      backend: backend.name,
      threads,
      batch_size: BATCH,
      reps,
      torch_version: torch?.torch ?? null,
      torch_threads: torch?.threads ?? null,
      results: rows,
    }),
  );
}

main();
