// Translation quality of moxing's Marian beside PyTorch's nn.Transformer of the same size trained the
// same (bench/torch_seq2seq.py): the same token ids (moxing's joint BPE), the same number of steps of
// the same batch size and length-bucketed batching, the same loss, optimiser and schedule; both decode
// the held-out books greedily, scored by moxing's sacreBLEU-exact BLEU and chrF (moxing also with beam
// search, 4 beams). The two trainings run at the same time (the peer as a child process).
//
//   node --import tsx scripts/bible-pairs.mjs --out data/bible           (once)
//   nice node --import tsx bench/seq2seq-quality.ts --data data/bible --direction en-es --steps N \
//        --out runs/quality-en-es [--threads 2] [--no-torch] [--no-beam]
//        [--d-model 256 --layers 3 --heads 4 --ffn 1024 --vocab-size 8000]   (train-seq2seq's default size)
//
// --threads N is each side's thread count (moxing's pool and torch.set_num_threads): the two trainings
// run at the same time, so on 2 cores give each 1. The size flags shape both models alike.
//
// Writes OUT/moxing/ (the model directory, metrics.jsonl), OUT/torch.json (the peer's losses and
// output ids; its progress in OUT/torch.log), OUT/hypotheses.{moxing,moxing-beam4,torch}.txt and OUT/result.json; prints the result.
// A run that stopped can be continued with the same command plus --resume: moxing resumes exactly from
// its last checkpoint; the peer runs as its own process and is waited for (started over only if it died).

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import "../src/index.js";
import { nativeInfo, nativeTesting } from "../src/backends/native/index.js";
import { readLines } from "../src/cli/train-seq2seq.js";
import { generateTexts } from "../src/generate/seq2seq.js";
import { loadMarian } from "../src/io/marian.js";
import { corpusBleu } from "../src/metrics/bleu.js";
import { corpusChrf } from "../src/metrics/chrf.js";
import { MARIAN_DEFAULTS } from "../src/models/marian.js";
import { getBackend } from "../src/tensor/backend.js";
import { progressReporter } from "../src/train/progress.js";
import { EOS_TOKEN, encodePairs, PAD_TOKEN, SEQ2SEQ_DEFAULTS, trainJointTokenizer, trainSeq2Seq } from "../src/train/seq2seq.js";
import { median } from "./timing.js";

const argv = process.argv.slice(2);
const str = (name: string, fallback?: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] as string) : fallback;
};
const dataDir = str("data", "data/bible") as string;
const direction = str("direction", "en-es") as string;
const steps = Number(str("steps", "2000"));
const out = str("out", `runs/quality-${direction}`) as string;
const threads = Number(str("threads", "2"));
const withTorch = !argv.includes("--no-torch");
const withBeam = !argv.includes("--no-beam");
// The model's size (the same for both frameworks); train-seq2seq's defaults unless given.
const num = (name: string, fallback: number) => Number(str(name, String(fallback)));
const layers = num("layers", MARIAN_DEFAULTS.encoder_layers);
const heads = num("heads", MARIAN_DEFAULTS.encoder_attention_heads);
const ffn = num("ffn", MARIAN_DEFAULTS.encoder_ffn_dim);
const shape = {
  d_model: num("d-model", MARIAN_DEFAULTS.d_model),
  encoder_layers: layers,
  decoder_layers: layers,
  encoder_attention_heads: heads,
  decoder_attention_heads: heads,
  encoder_ffn_dim: ffn,
  decoder_ffn_dim: ffn,
};
const vocabSize = num("vocab-size", SEQ2SEQ_DEFAULTS.vocabSize);
nativeTesting.setThreads(threads);
const resume = argv.includes("--resume");
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);
const D = SEQ2SEQ_DEFAULTS;

const [srcLang, tgtLang] = direction.split("-") as [string, string];
if (!["en-es", "es-en"].includes(direction)) throw new Error(`--direction must be en-es or es-en (got ${direction})`);
const read = (split: string) => ({
  source: readLines(join(dataDir, `${split}.${srcLang}`)),
  target: readLines(join(dataDir, `${split}.${tgtLang}`)),
});
const train = read("train");
const valid = read("valid");
const full = read("test");
// --test-limit N: only the first N held-out verses (a quick check of the script itself).
const limit = Number(str("test-limit", String(full.source.length)));
const test = { source: full.source.slice(0, limit), target: full.target.slice(0, limit) };

/** The peer's run: the same ids and settings; resolves with its JSON result (or null without torch). */
function runTorch(idsFile: string, resultFile: string): Promise<unknown> {
  if (!withTorch) return Promise.resolve(null);
  if (existsSync(resultFile)) return Promise.resolve(JSON.parse(readFileSync(resultFile, "utf8")));
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const args = [
    join(root, "bench/torch_seq2seq.py"),
    "train",
    "--data",
    idsFile,
    "--out",
    resultFile,
    "--steps",
    String(steps),
    "--threads",
    String(threads),
    "--batch-size",
    String(D.batchSize),
    "--max-length",
    String(D.maxLength),
    "--lr",
    String(D.learningRate),
    "--warmup",
    String(D.warmupSteps),
    "--weight-decay",
    String(D.weightDecay),
    "--grad-clip",
    String(D.gradClip),
    "--label-smoothing",
    String(D.labelSmoothing),
    "--seed",
    String(D.seed),
    "--bucket",
    String(D.bucket),
  ];
  // The peer runs in the background, its log in OUT/torch.log and its pid in OUT/torch.pid: a rerun
  // with --resume finds it alive and waits for it. It is NOT detached: a detached child gets its own
  // session, and with Linux's scheduler autogroups (kernel.sched_autogroup_enabled=1, as on the
  // development machine) every session gets an equal share of the CPU, so on a loaded machine the
  // peer ran at several times moxing's share (measured: 100 s against 21 s of CPU in the same 5.5
  // minutes) and the per-step times compared nothing. In the same session both compete alike; Ctrl-C
  // then stops both, and --resume starts the peer over.
  const logFile = resultFile.replace(/\.json$/, ".log");
  const pidFile = resultFile.replace(/\.json$/, ".pid");
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  let pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
  if (!(pid > 0 && alive(pid))) {
    const fd = openSync(logFile, "a");
    const p = spawn("/usr/bin/python3", args, { env, stdio: ["ignore", fd, fd] });
    p.unref();
    closeSync(fd);
    pid = p.pid as number;
    writeFileSync(pidFile, String(pid));
    log(`torch: training as process ${pid}, log in ${logFile}`);
  } else log(`torch: still training as process ${pid}, log in ${logFile}`);
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(resultFile)) {
        clearInterval(poll);
        resolve(JSON.parse(readFileSync(resultFile, "utf8")));
      } else if (!alive(pid)) {
        clearInterval(poll);
        reject(new Error(`the PyTorch peer (process ${pid}) stopped without a result; see ${logFile}`));
      }
    }, 5000);
  });
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  const modelDir = join(out, "moxing");
  // The ids the peer trains on: the joint tokenizer train-seq2seq trains (same data, same procedure,
  // so the same vocabulary; checked below against the one the moxing run saves).
  const tokenizer = trainJointTokenizer(train, vocabSize);
  const eos = tokenizer.specialTokens.get(EOS_TOKEN) as number;
  const pad = tokenizer.specialTokens.get(PAD_TOKEN) as number;
  // The config train-seq2seq gives a new model (checked against the saved one below).
  const config = {
    ...MARIAN_DEFAULTS,
    ...shape,
    vocab_size: tokenizer.vocabSize,
    decoder_vocab_size: tokenizer.vocabSize,
    max_position_embeddings: D.maxLength,
    max_length: D.maxLength,
    pad_token_id: pad,
    decoder_start_token_id: pad,
    eos_token_id: eos,
    forced_eos_token_id: eos,
    bad_words_ids: [[pad]],
  };
  const idsFile = join(out, "ids.json");
  const torchFile = join(out, "torch.json");
  writeFileSync(
    idsFile,
    JSON.stringify({
      config,
      train: encodePairs(tokenizer, train, eos, D.maxLength),
      translate: { test: encodePairs(tokenizer, { source: test.source, target: test.source }, eos, D.maxLength).map((e) => e.src) },
    }),
  );
  const torchRun = runTorch(idsFile, torchFile);
  torchRun.catch(() => {}); // awaited below; keep an early failure from being unhandled meanwhile
  const started = performance.now();
  const { model, tokenizer: saved } = await trainSeq2Seq(
    {
      out: modelDir,
      train,
      model: shape,
      vocabSize,
      valid,
      maxSteps: steps,
      evalInterval: steps,
      checkpointInterval: 250,
      evalSamples: 0,
      resume: resume && existsSync(modelDir),
    },
    progressReporter(process.stderr),
  );
  const moxingWall = (performance.now() - started) / 1000;
  if (JSON.stringify(saved.toJSON()) !== JSON.stringify(tokenizer.toJSON()) || JSON.stringify(model.config) !== JSON.stringify(config))
    throw new Error("the moxing run's tokenizer or config differs from the ones given to the peer");

  const loaded = loadMarian(modelDir);
  const score = (hyps: string[]) => ({
    bleu: corpusBleu(hyps, [test.target]).score,
    chrf: corpusChrf(hyps, [test.target]).score,
  });
  const specials = new Set(tokenizer.specialTokens.values());
  log(`moxing: translating ${test.source.length} held-out verses (greedy${withBeam ? ", then 4 beams" : ""})`);
  const greedy = generateTexts(loaded.model, loaded.tokenizer ?? tokenizer, test.source, {
    numBeams: 1,
    maxLength: D.maxLength,
    batchSize: 32,
  });
  writeFileSync(join(out, "hypotheses.moxing.txt"), `${greedy.join("\n")}\n`);
  const beam = withBeam
    ? generateTexts(loaded.model, loaded.tokenizer ?? tokenizer, test.source, {
        numBeams: 4,
        maxLength: D.maxLength,
        batchSize: 16,
      })
    : null;
  if (beam) writeFileSync(join(out, "hypotheses.moxing-beam4.txt"), `${beam.join("\n")}\n`);
  const state = JSON.parse(readFileSync(join(modelDir, "trainer_state.json"), "utf8")) as { elapsed_ms: number; last_train_loss: number };
  const moxing = {
    steps,
    train_loss: state.last_train_loss,
    train_s: state.elapsed_ms / 1000,
    wall_s: moxingWall,
    greedy: score(greedy),
    beam4: beam ? score(beam) : null,
    ms_per_step: state.elapsed_ms / steps,
  };
  log(
    `moxing: greedy BLEU ${moxing.greedy.bleu.toFixed(2)} chrF ${moxing.greedy.chrf.toFixed(2)}` +
      (moxing.beam4 ? `; beam 4 BLEU ${moxing.beam4.bleu.toFixed(2)}` : ""),
  );

  const t = (await torchRun) as {
    torch: string;
    params: number;
    train_s: number;
    train_cpu_s: number;
    log: { train_loss: number; ms: number }[];
    hypotheses: { test: number[][] };
  } | null;
  let torch = null;
  if (t) {
    const hyps = t.hypotheses.test.map((ids) => tokenizer.decode(ids.filter((id) => !specials.has(id))).trim());
    writeFileSync(join(out, "hypotheses.torch.txt"), `${hyps.join("\n")}\n`);
    torch = {
      version: t.torch,
      params: t.params,
      steps: t.log.length,
      train_loss: t.log[t.log.length - 1]?.train_loss,
      train_s: t.train_s,
      train_cpu_s: t.train_cpu_s,
      ms_per_step: (t.train_s * 1000) / t.log.length,
      median_ms_per_step: median(t.log.map((l) => l.ms)),
      greedy: score(hyps),
    };
    log(`torch: greedy BLEU ${torch.greedy.bleu.toFixed(2)} chrF ${torch.greedy.chrf.toFixed(2)}`);
  }
  const result = {
    direction,
    data: `${dataDir} (train ${train.source.length} pairs; test: Ruth, Ecclesiastes, Mark, ${test.source.length} verses)`,
    cpu: cpus()[0]?.model ?? "unknown",
    backend: getBackend().name,
    isa: nativeInfo().isa,
    threads,
    params: model.numParameters(),
    batch_size: D.batchSize,
    model: shape,
    vocab: tokenizer.vocabSize,
    moxing,
    torch,
    bleu_diff: torch ? moxing.greedy.bleu - torch.greedy.bleu : null,
    step_speedup: torch ? torch.ms_per_step / moxing.ms_per_step : null,
  };
  writeFileSync(join(out, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

await main();
