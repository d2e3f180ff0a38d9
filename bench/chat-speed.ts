// SFT and DPO training speed, moxing beside PyTorch (bench/torch_chat.py), in one run with alternating
// turns: the same GPT (the chat benchmark's: 4 layers, 128 wide, context 160, the character vocabulary
// of the addresses since 1900 plus ChatML's two tokens), the same batches (SYNTHETIC chat examples:
// 16 SFT examples; 8 preference pairs, chosen and rejected through the policy and a frozen reference),
// and the same step: forward, loss, backward, gradient clipping at 1.0, AdamW. Tokens are the real
// (unpadded) tokens of a batch, for both. moxing's rows "SFT" and "DPO" run as its trainers do,
// padding-free (the model skips the padded positions; TRL's padding_free, which needs flash-attention
// and so CUDA); "SFT-PADDED" and "DPO-PADDED" run over the padded batch, as the PyTorch side does.
//
//   node --import tsx bench/chat-speed.ts [--rounds 5] [--steps 4] [--threads 2]
//
// PyTorch runs with its best settings: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, OPENBLAS_NUM_THREADS
// and torch.set_num_threads at --threads. Prints one JSON object, then a table of medians.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import "../src/index.js";
import { useChatML } from "../src/chat/template.js";
import { chatFacts, chatRecords, syntheticChat } from "../src/data/chat.js";
import { sotuCorpus } from "../src/data/sotu.js";
import { GPT } from "../src/models/gpt.js";
import { AdamW } from "../src/optim/adamw.js";
import { padBatch } from "../src/rlhf/common.js";
import { encodePreference, encodeSFT, preferenceRecord, sftRecord } from "../src/rlhf/datasets.js";
import { dpoLoss, sequenceLogprobs, sftLoss } from "../src/rlhf/losses.js";
import { noGrad } from "../src/tensor/autograd.js";
import { MemoryArena } from "../src/tensor/memory.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { CharTokenizer } from "../src/tokenizers/char.js";
import { clipGradNorm, forwardBackward } from "../src/train/grad.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, steps: { type: "string" }, threads: { type: "string" } } });
const rounds = Number(values.rounds ?? 5);
const steps = Number(values.steps ?? 4);
const threads = Number(values.threads ?? 2);

// ---- the batches ---------------------------------------------------------------------------------
const tokenizer = CharTokenizer.fromText(sotuCorpus(1900));
useChatML(tokenizer);
const config = { vocab_size: tokenizer.vocabSize, n_layer: 4, n_head: 4, n_embd: 128, block_size: 160 };
const { sft: sftRecs, preference: prefRecs } = chatRecords(syntheticChat({ seed: 1 }).train, chatFacts());
const sft = sftRecs.slice(0, 16).map((r, i) => encodeSFT(tokenizer, sftRecord(r, `sft ${i}`), config.block_size));
const pairs = prefRecs.slice(0, 8).map((r, i) => encodePreference(tokenizer, preferenceRecord(r, `pair ${i}`), config.block_size));
const dpoSeqs = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
const tokensOf = (rows: { ids: number[] }[]) => rows.reduce((s, r) => s + r.ids.length, 0);

// ---- moxing ------------------------------------------------------------------------------------------
const policy = new GPT(config, { seed: 0 });
const reference = new GPT(config, { seed: 0 });
for (const p of reference.parameters()) p.requiresGrad = false;
reference.eval();
const optimizer = new AdamW(policy.optimGroups(0), { lr: 1e-4 });
const params = policy.parameters();
const arena = new MemoryArena();
/** One step as runLoop takes it (src/train/loop.ts): arena, forward + backward, clip, AdamW. */
function step(loss: () => Tensor): void {
  optimizer.zeroGrad();
  arena.reset();
  arena.run(() => {
    forwardBackward(1, () => ({ loss: loss() }));
    clipGradNorm(params, 1);
    optimizer.step();
  });
  optimizer.zeroGrad();
}
const sftBatch = padBatch(sft);
const dpoBatch = padBatch(dpoSeqs);
const n = pairs.length;
// Padding-free (forward's lengths) is how moxing's trainers run; "-padded" runs the same step over the
// padded batch as PyTorch does, for the like-for-like figure.
const sftStep = (lengths: number[] | null) => () =>
  step(() => sftLoss(policy.forward(sftBatch.x, { lengths }).logits, sftBatch.ids, sftBatch.mask));
const dpoStep = (lengths: number[] | null) => () =>
  step(() => {
    const pol = sequenceLogprobs(policy.forward(dpoBatch.x, { lengths }).logits, dpoBatch.ids, dpoBatch.mask).sum;
    const ref = noGrad(() => sequenceLogprobs(reference.forward(dpoBatch.x, { lengths }).logits, dpoBatch.ids, dpoBatch.mask).sum);
    return dpoLoss(
      {
        policyChosen: pol.slice(0, 0, n),
        policyRejected: pol.slice(0, n, 2 * n),
        refChosen: ref.slice(0, 0, n),
        refRejected: ref.slice(0, n, 2 * n),
      },
      { beta: 0.1 },
    ).loss;
  });
const moxingSteps: Record<string, () => void> = {
  sft: sftStep(sftBatch.lengths),
  dpo: dpoStep(dpoBatch.lengths),
  "sft-padded": sftStep(null),
  "dpo-padded": dpoStep(null),
};
policy.train();

// ---- PyTorch -----------------------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), "moxing-chat-speed-"));
const spec = join(dir, "spec.json");
writeFileSync(
  spec,
  JSON.stringify({
    threads,
    config,
    sft: { ids: sft.map((e) => e.ids), mask: sft.map((e) => e.mask) },
    dpo: { ids: dpoSeqs.map((e) => e.ids), mask: dpoSeqs.map((e) => e.mask) },
  }),
);
const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
delete env.OPENBLAS_CORETYPE;
delete env.OPENBLAS_L2_SIZE;
const py = spawn("/usr/bin/python3", [new URL("torch_chat.py", import.meta.url).pathname, spec], {
  env,
  stdio: ["pipe", "pipe", "inherit"],
});
const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
const next = async () => JSON.parse(((await lines.next()).value as string) ?? "null");
const ready = await next();

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const result: Record<string, { moxing: number[]; torch: number[]; tokens: number }> = {};
for (const op of ["sft", "dpo", "sft-padded", "dpo-padded"] as const) {
  const torchOp = op.replace("-padded", "");
  const tokens = torchOp === "sft" ? tokensOf(sft) : tokensOf(dpoSeqs);
  const r = { moxing: [] as number[], torch: [] as number[], tokens };
  result[op] = r;
  moxingSteps[op]?.(); // warm-up: first-step allocations, on both sides
  py.stdin.write(`${JSON.stringify({ op: torchOp, steps: 1 })}\n`);
  await next();
  for (let round = 0; round < rounds; round++) {
    const turns = round % 2 === 0 ? ["moxing", "torch"] : ["torch", "moxing"];
    for (const who of turns) {
      if (who === "torch") {
        py.stdin.write(`${JSON.stringify({ op: torchOp, steps })}\n`);
        const t = await next();
        r.torch.push(...(t.seconds as number[]).map((s) => tokens / s));
      } else {
        for (let i = 0; i < steps; i++) {
          const t0 = performance.now();
          moxingSteps[op]?.();
          r.moxing.push(tokens / ((performance.now() - t0) / 1000));
        }
      }
    }
  }
}
py.stdin.end();

const summary = Object.fromEntries(
  Object.entries(result).map(([op, r]) => [
    op,
    {
      tokens_per_step: r.tokens,
      moxing_tokens_per_s: Math.round(median(r.moxing)),
      torch_tokens_per_s: Math.round(median(r.torch)),
      ratio: Number((median(r.moxing) / median(r.torch)).toFixed(2)),
      samples: r.moxing.length,
    },
  ]),
);
console.log(JSON.stringify({ config, threads, rounds, steps, torch: ready.torch, ...summary }));
console.log("\n| step | tokens/step | moxing tokens/s | PyTorch tokens/s | moxing / PyTorch |");
console.log("|---|---|---|---|---|");
for (const [op, s] of Object.entries(summary)) {
  console.log(`| ${op.toUpperCase()} | ${s.tokens_per_step} | ${s.moxing_tokens_per_s} | ${s.torch_tokens_per_s} | ${s.ratio}x |`);
}
