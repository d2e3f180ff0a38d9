// The figures of the other families (issue 15), and subject-line generation: ListOps accuracy of the Tree-LSTM beside an LSTM and a
// Transformer of about the same size trained the same; the hierarchical attention network beside the
// flat BERT classifier truncated at its maximum length (512 tokens) on State of the Union addresses by
// party and on spam; the sentence autoencoder's and VAE's reconstruction accuracy; a Marian model
// writing SpamAssassin subject lines from the bodies beside the body's first line (ROUGE-L, chrF). Every figure is a
// `moxing` command (printed as it runs), so each can be rerun alone.
//
//   nice node --import tsx bench/families.ts [--out runs/families] [--only listops-tree-lstm,han-sotu,...]
//
// Jobs whose results exist are skipped (run the same command again after a stop; the training
// commands themselves resume with --resume). At the end OUT/summary.json holds every job's result.
// BERT is pretrained with masked-LM on the training documents only (tiny size: 2 layers, 128 wide,
// 512 positions), then fine-tuned; the HAN starts from scratch on the same training documents.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

function moxing(args: string[]): void {
  log(`$ moxing ${args.join(" ")}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...args], { stdio: "inherit", cwd: root });
  if (r.status !== 0) throw new Error(`moxing ${args[0]} failed (exit ${r.status ?? r.signal})`);
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

type Job = { name: string; done: () => boolean; run: () => void; result: () => unknown };

function listopsJob(model: string): Job {
  const dir = join(out, `listops-${model}`);
  return {
    name: `listops-${model}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: () =>
      moxing([
        "train-listops",
        "--model",
        model,
        "--out",
        dir,
        "--max-steps",
        "3000",
        "--eval-interval",
        "500",
        ...(existsSync(dir) ? ["--resume"] : []),
      ]),
    result: () => readJSON(join(dir, "eval_results.json")),
  };
}

function hanJob(name: string, dataset: string, steps: number, batch: number, extra: string[] = []): Job {
  const dir = join(out, `han-${name}`);
  return {
    name: `han-${name}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: () =>
      moxing([
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
      ]),
    result: () => readJSON(join(dir, "eval_results.json")),
  };
}

function bertJob(name: string, split: () => { train: LabeledText[]; test: LabeledText[] }, mlmSteps: number, epochs: number): Job {
  const mlm = join(out, `bert-${name}-mlm`);
  const dir = join(out, `bert-${name}`);
  return {
    name: `bert-${name}`,
    done: () => existsSync(join(dir, "eval_results.json")),
    run: () => {
      const files = writeDocs(name, split());
      const state = join(mlm, "trainer_state.json");
      if (!existsSync(state) || readJSON(state).step < mlmSteps)
        moxing([
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
        ]);
      moxing([
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
        "--out",
        dir,
        ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
      ]);
    },
    result: () => {
      const r = readJSON(join(dir, "eval_results.json"));
      return { step: r.step, accuracy: r.accuracy, macro_f1: r.macro_f1, examples: r.examples };
    },
  };
}

function autoencoderJob(plain: boolean): Job {
  const dir = join(out, plain ? "autoencoder" : "vae");
  return {
    name: plain ? "autoencoder" : "vae",
    done: () => existsSync(join(dir, "trainer_state.json")) && readJSON(join(dir, "trainer_state.json")).step >= 2000,
    run: () =>
      moxing([
        "train-autoencoder",
        "--dataset",
        "sotu",
        "--out",
        dir,
        ...(plain ? ["--plain"] : []),
        ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
      ]),
    result: () => lastEval(dir),
  };
}

/** Subject lines from mail bodies (summarisation): the model's greedy output on every held-out mail
 *  beside the body's first line. */
function subjectsJob(steps: number): Job {
  const dir = join(out, "subjects");
  return {
    name: "subjects",
    done: () => existsSync(join(dir, "eval_results.json")),
    run: () =>
      moxing([
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
        ...(existsSync(join(dir, "trainer_state.json")) ? ["--resume"] : []),
      ]),
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
  hanJob("sotu", "sotu-party", 350, 4),
  bertJob("sotu", () => sotuParty(), 1000, 10),
  hanJob("spam", "spam-assassin", 900, 16, ["--max-sentences", "60"]),
  bertJob("spam", () => spamDocuments(), 1000, 3),
  autoencoderJob(true),
  autoencoderJob(false),
  subjectsJob(700),
];

mkdirSync(out, { recursive: true });
for (const job of jobs) {
  if (only && !only.includes(job.name)) continue;
  if (job.done()) {
    log(`${job.name}: done before, skipped`);
    continue;
  }
  const t0 = performance.now();
  job.run();
  log(`${job.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
const summary = {
  cpu: cpus()[0]?.model ?? "unknown",
  note: "2 cores shared with other sessions; times are not comparable, accuracies are",
  results: Object.fromEntries(jobs.filter((j) => j.done()).map((j) => [j.name, j.result()])),
};
writeFileSync(join(out, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
