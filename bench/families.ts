// The figures of the other families (issue 15), and subject-line generation: ListOps accuracy of the Tree-LSTM beside an LSTM and a
// Transformer of about the same size trained the same; the hierarchical attention network beside the
// flat BERT classifier truncated at its maximum length (512 tokens) on State of the Union addresses by
// party and on spam; the sentence autoencoder's and VAE's reconstruction accuracy; a Marian model
// writing SpamAssassin subject lines from the bodies beside the body's first line (ROUGE-L, chrF). Every figure is a
// `moxing` command (printed as it runs), so each can be rerun alone.
//
//   nice node --import tsx bench/families.ts [--out runs/families] [--only listops-tree-lstm,han-sotu,...]
//        [--lanes 2] [--steps listops=3000,han-sotu=350,han-spam=900,mlm=1000,bert-sotu=N,bert-spam=N,autoencoder=12000,subjects=700]
//        [--subjects-size 256,3,4,1024]
//
// --lanes N runs N jobs at a time, each with MOXING_THREADS=1 when N > 1 (the output of each job in
// OUT/NAME.log). --steps shrinks (or grows) the training of a job family: listops (each of the three
// models), han-sotu, han-spam, mlm (BERT's masked-LM pretraining, both corpora), bert-sotu and
// bert-spam (fine-tuning steps; without them, 10 and 3 epochs), autoencoder (both forms), subjects.
// --subjects-size d_model,layers,heads,ffn shapes the subject-line Marian (train-seq2seq's default
// otherwise). The autoencoder jobs also print an interpolation to OUT/NAME/interpolation.txt.
//
// Jobs whose results exist are skipped (run the same command again after a stop; the training
// commands themselves resume with --resume). At the end OUT/summary.json holds every job's result.
// BERT is pretrained with masked-LM on the training documents only (tiny size: 2 layers, 128 wide,
// 512 positions), then fine-tuned; the HAN starts from scratch on the same training documents.

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sotuParty, spamDocuments } from "../src/data/documents.js";
import type { LabeledText } from "../src/data/labeled.js";
import { firstLineBaseline, spamSubjects } from "../src/data/subjects.js";
import { corpusBleu } from "../src/metrics/bleu.js";
import { corpusChrf } from "../src/metrics/chrf.js";
import { corpusRougeL } from "../src/metrics/rouge.js";

const argv = process.argv.slice(2);
const str = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const out = str("out") ?? "runs/families";
const only = str("only")?.split(",");
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);
const lanes = Number(str("lanes") ?? "1");
const stepsGiven = new Map(
  (str("steps") ?? "")
    .split(",")
    .filter(Boolean)
    .map((kv) => {
      const [k, v] = kv.split("=");
      if (!k || !(Number(v) > 0)) throw new Error(`--steps takes name=N pairs (got '${kv}')`);
      return [k, Number(v)] as const;
    }),
);
const stepsOf = (key: string, fallback: number) => stepsGiven.get(key) ?? fallback;
const subjectsSize = str("subjects-size")?.split(",").map(Number);

/** Runs `moxing ARGS` to the end; with a log file, its output goes there. */
function moxing(args: string[], logFile?: string, capture?: string): Promise<void> {
  const line = `$ moxing ${args.join(" ")}`;
  log(line);
  const env = lanes > 1 ? { ...process.env, MOXING_THREADS: "1" } : process.env;
  const fd = logFile ? openSync(logFile, "a") : null;
  if (fd !== null) writeFileSync(fd, `${line}\n`);
  const out = capture ? openSync(capture, "w") : (fd ?? "inherit");
  const p = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...args], {
    stdio: ["ignore", out, fd ?? "inherit"],
    cwd: root,
    env,
  });
  return new Promise((resolve, reject) =>
    p.on("exit", (code, signal) => {
      if (fd !== null) closeSync(fd);
      if (capture) closeSync(out as number);
      if (code === 0) resolve();
      else reject(new Error(`moxing ${args[0]} failed (exit ${code ?? signal})`));
    }),
  );
}

const readJSON = (p: string) => JSON.parse(readFileSync(p, "utf8"));

/** The last evaluation in a run's metrics.jsonl (for trainers without eval_results.json). */
function lastEval(dir: string): Record<string, number> {
  const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = JSON.parse(lines[i] as string) as Record<string, number>;
    const ev = Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith("eval_")));
    if (Object.keys(ev).length) return { step: m.step as number, ...ev };
  }
  return {};
}

/** Documents as JSONL for `moxing finetune`, and their text for masked-LM pretraining. */
function writeDocs(name: string, split: { train: LabeledText[]; test: LabeledText[] }): { train: string; test: string; text: string } {
  const dir = join(out, "data", name);
  mkdirSync(dir, { recursive: true });
  const files = { train: join(dir, "train.jsonl"), test: join(dir, "test.jsonl"), text: join(dir, "train.txt") };
  const jsonl = (rows: LabeledText[]) => `${rows.map((r) => JSON.stringify({ text: r.text, label: r.label })).join("\n")}\n`;
  writeFileSync(files.train, jsonl(split.train));
  writeFileSync(files.test, jsonl(split.test));
  writeFileSync(files.text, `${split.train.map((r) => r.text.trim()).join("\n\n")}\n`);
  return files;
}

type Job = { name: string; done: () => boolean; run: (logFile?: string) => Promise<void>; result: () => unknown };

function listopsJob(model: string): Job {
  const dir = join(out, `listops-${model}`);
  return {
    name: `listops-${model}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: (logFile) =>
      moxing(
        [
          "train-listops",
          "--model",
          model,
          "--out",
          dir,
          "--max-steps",
          String(stepsOf("listops", 3000)),
          "--eval-interval",
          String(Math.max(1, Math.floor(stepsOf("listops", 3000) / 6))),
          ...(existsSync(dir) ? ["--resume"] : []),
        ],
        logFile,
      ),
    result: () => readJSON(join(dir, "eval_results.json")),
  };
}

function hanJob(name: string, dataset: string, steps: number, batch: number, extra: string[] = []): Job {
  const dir = join(out, `han-${name}`);
  return {
    name: `han-${name}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: (logFile) =>
      moxing(
        [
          "train-han",
          "--dataset",
          dataset,
          "--out",
          dir,
          "--max-steps",
          String(steps),
          "--batch-size",
          String(batch),
          "--eval-interval",
          String(Math.max(1, Math.floor(steps / 4))),
          ...extra,
          ...(existsSync(dir) ? ["--resume"] : []),
        ],
        logFile,
      ),
    result: () => readJSON(join(dir, "eval_results.json")),
  };
}

function bertJob(
  name: string,
  split: () => { train: LabeledText[]; test: LabeledText[] },
  mlmSteps: number,
  epochs: number,
  maxSteps?: number,
): Job {
  const mlm = join(out, `bert-${name}-mlm`);
  const dir = join(out, `bert-${name}`);
  return {
    name: `bert-${name}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: async (logFile) => {
      const files = writeDocs(name, split());
      const state = join(mlm, "trainer_state.json");
      if (!existsSync(state) || readJSON(state).step < mlmSteps)
        await moxing(
          [
            "pretrain-mlm",
            "--data",
            files.text,
            "--out",
            mlm,
            "--size",
            "tiny",
            "--max-len",
            "512",
            "--max-steps",
            String(mlmSteps),
            "--eval-interval",
            String(Math.max(1, Math.floor(mlmSteps / 4))),
            ...(existsSync(state) ? ["--resume"] : []),
          ],
          logFile,
        );
      await moxing(
        [
          "finetune",
          "--task",
          "text-classification",
          "--model",
          mlm,
          "--train",
          files.train,
          "--eval",
          files.test,
          "--max-length",
          "512",
          "--epochs",
          String(epochs),
          ...(maxSteps ? ["--max-steps", String(maxSteps)] : []),
          "--out",
          dir,
          ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
        ],
        logFile,
      );
    },
    result: () => {
      const r = readJSON(join(dir, "eval_results.json"));
      return { step: r.step, accuracy: r.accuracy, macro_f1: r.macro_f1, examples: r.examples };
    },
  };
}

/** Two State of the Union sentences whose codes' line the interpolation prints. */
const INTERPOLATE = ["we must work together to build a stronger economy .", "the congress has passed a law to protect our people ."];

function autoencoderJob(plain: boolean): Job {
  const dir = join(out, plain ? "autoencoder" : "vae");
  const steps = stepsOf("autoencoder", 12000);
  const interpolation = join(dir, "interpolation.txt");
  return {
    name: plain ? "autoencoder" : "vae",
    done: () => existsSync(interpolation) && readJSON(join(dir, "trainer_state.json")).step >= steps,
    run: async (logFile) => {
      await moxing(
        [
          "train-autoencoder",
          "--dataset",
          "sotu",
          "--out",
          dir,
          "--max-steps",
          String(steps),
          ...(plain ? ["--plain", "--word-dropout", "0"] : []), // word dropout is the VAE's remedy
          ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
        ],
        logFile,
      );
      await moxing(
        ["interpolate", "--model", dir, "--from", INTERPOLATE[0] as string, "--to", INTERPOLATE[1] as string, "--steps", "5"],
        logFile,
        interpolation,
      );
    },
    result: () => ({
      ...lastEval(dir),
      interpolation: { from: INTERPOLATE[0], to: INTERPOLATE[1], lines: readFileSync(interpolation, "utf8").trim().split("\n") },
    }),
  };
}

/** Subject lines from mail bodies (summarisation): the model's greedy output on every held-out mail
 *  beside the body's first line. */
function subjectsJob(steps: number): Job {
  const dir = join(out, "subjects");
  return {
    name: "subjects",
    done: () => existsSync(join(dir, "eval_results.json")),
    run: (logFile) =>
      moxing(
        [
          "train-seq2seq",
          "--dataset",
          "spam-subjects",
          "--out",
          dir,
          "--max-steps",
          String(steps),
          "--eval-interval",
          String(steps),
          "--eval-samples",
          "100000",
          ...(subjectsSize
            ? ["--d-model", subjectsSize[0], "--layers", subjectsSize[1], "--heads", subjectsSize[2], "--ffn-dim", subjectsSize[3]].map(
                String,
              )
            : []),
          ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
        ],
        logFile,
      ),
    result: () => {
      const r = readJSON(join(dir, "eval_results.json"));
      const { test } = spamSubjects();
      const refs = test.map((p) => p.subject);
      const base = test.map((p) => firstLineBaseline(p.body));
      return {
        mails: test.length,
        model: { step: r.step, rougeL: r.rougeL, chrf: r.chrf, bleu: r.bleu, loss: r.loss },
        first_line: {
          rougeL: corpusRougeL(base, refs).fmeasure,
          chrf: corpusChrf(base, [refs]).score,
          bleu: corpusBleu(base, [refs]).score,
        },
      };
    },
  };
}

const jobs: Job[] = [
  listopsJob("tree-lstm"),
  listopsJob("lstm"),
  listopsJob("transformer"),
  // Batches small enough for a few GB: 4 addresses (150 sentences each), 16 mails (60 sentences).
  hanJob("sotu", "sotu-party", stepsOf("han-sotu", 350), 4),
  bertJob("sotu", () => sotuParty(), stepsOf("mlm", 1000), 10, stepsGiven.get("bert-sotu")),
  hanJob("spam", "spam-assassin", stepsOf("han-spam", 900), 16, ["--max-sentences", "60"]),
  bertJob("spam", () => spamDocuments(), stepsOf("mlm", 1000), 3, stepsGiven.get("bert-spam")),
  autoencoderJob(true),
  autoencoderJob(false),
  subjectsJob(stepsOf("subjects", 700)),
];

mkdirSync(out, { recursive: true });
const todo = jobs.filter((job) => {
  if (only && !only.includes(job.name)) return false;
  if (job.done()) log(`${job.name}: done before, skipped`);
  return !job.done();
});
const seconds: Record<string, number> = {};
// --lanes N: N jobs at a time, each job's output in OUT/NAME.log.
await Promise.all(
  Array.from({ length: Math.max(1, lanes) }, async () => {
    for (let job = todo.shift(); job; job = todo.shift()) {
      const t0 = performance.now();
      await job.run(lanes > 1 ? join(out, `${job.name}.log`) : undefined);
      seconds[job.name] = Math.round((performance.now() - t0) / 1000);
      log(`${job.name}: ${seconds[job.name]} s`);
    }
  }),
);
const summary = {
  cpu: cpus()[0]?.model ?? "unknown",
  note: "2 cores shared with other sessions; times are not comparable, accuracies are",
  lanes,
  steps: Object.fromEntries(stepsGiven),
  seconds,
  results: Object.fromEntries(jobs.filter((j) => j.done()).map((j) => [j.name, j.result()])),
};
writeFileSync(join(out, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
