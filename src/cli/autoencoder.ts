// `moxing train-autoencoder` and `moxing interpolate`: a sentence autoencoder / VAE (Bowman et al.
// 2016) trained on sentences, and the sentences it decodes along the line between two codes.

import { sentencesOf } from "../data/silver.js";
import { sotuCorpus } from "../data/sotu.js";
import { SENTENCE_VAE_DEFAULTS } from "../models/sentence-vae.js";
import { AUTOENCODER_DEFAULTS, loadSentenceVAE, trainAutoencoder } from "../train/autoencoder.js";
import { readLines } from "./train-seq2seq.js";
import type { Command } from "./util.js";
import { interruptExitStatus, num, parseFlags, runWithProgress, UsageError } from "./util.js";

const A = AUTOENCODER_DEFAULTS;
const S = SENTENCE_VAE_DEFAULTS;

const TRAIN_HELP = `moxing train-autoencoder: train a sentence autoencoder or VAE (Bowman et al. 2016)

Usage: moxing train-autoencoder (--data FILE | --dataset sotu) --out DIR [flags]

  --data FILE            one sentence per line (every 20th is held out)
  --dataset sotu         State of the Union sentences since 1900 (ship with moxing)
  --out DIR              config.json, model.safetensors, vocab.json, checkpoint, metrics.jsonl
  --plain                a plain autoencoder (deterministic bottleneck) instead of the VAE
  --resume / --overwrite
Model: --vocab-size ${A.vocabSize} (words)  --embed-dim ${S.embed_dim}  --hidden-size ${S.hidden_size}  --latent-size ${S.latent_size}
       --word-dropout ${S.word_dropout}  --max-length ${S.max_length} (words)
       --one-way-encoder     read the sentence left to right only (default: both ways)
       --code-as-first-state  give the decoder z only as its first state (Bowman et al.'s form;
                             default: also beside every input word)
Training: --batch-size ${A.batchSize}  --max-steps ${A.maxSteps}  --learning-rate ${A.learningRate}  --seed ${A.seed}
          --kl-anneal-steps N   step where the KL weight reaches 0.5 on its logistic curve (default max/3)
          --eval-interval N     held-out reconstruction loss, KL, token and sentence accuracy

Afterwards: moxing interpolate --model DIR --from "..." --to "..."`;

const INTERPOLATE_HELP = `moxing interpolate: the sentences on the line between two sentences' codes

Usage: moxing interpolate --model DIR --from "SENTENCE" --to "SENTENCE" [--steps 5]

Encodes both sentences, walks in --steps even steps from the first code to the second (both
included) and prints the greedy decoding of each point, one per line.`;

export const trainAutoencoderCommand: Command = {
  summary: "train a sentence autoencoder or VAE (Bowman et al. 2016)",
  help: TRAIN_HELP,
  async run(argv) {
    const c = "train-autoencoder";
    const { values: v, positionals } = parseFlags(c, argv, {
      data: { type: "string" },
      dataset: { type: "string" },
      out: { type: "string" },
      plain: { type: "boolean" },
      "one-way-encoder": { type: "boolean" },
      "code-as-first-state": { type: "boolean" },
      resume: { type: "boolean" },
      overwrite: { type: "boolean" },
      "vocab-size": { type: "string" },
      "embed-dim": { type: "string" },
      "hidden-size": { type: "string" },
      "latent-size": { type: "string" },
      "word-dropout": { type: "string" },
      "max-length": { type: "string" },
      "batch-size": { type: "string" },
      "max-steps": { type: "string" },
      "learning-rate": { type: "string" },
      seed: { type: "string" },
      "kl-anneal-steps": { type: "string" },
      "eval-interval": { type: "string" },
    });
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'`);
    if (!v.out) throw new UsageError(`${c}: --out DIR is required`);
    if (!!v.data === !!v.dataset) throw new UsageError(`${c}: give --data FILE or --dataset sotu (one of them)`);
    if (v.dataset !== undefined && v.dataset !== "sotu")
      throw new UsageError(`${c}: unknown --dataset '${v.dataset}'; the built-in one is sotu`);
    const sentences = v.data ? readLines(v.data) : sentencesOf(sotuCorpus(1900));
    const opt = (flag: string, o: { int?: boolean; min?: number } = {}) => {
      const value = (v as Record<string, string | undefined>)[flag];
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    const model = Object.fromEntries(
      Object.entries({
        embed_dim: opt("embed-dim", { int: true, min: 1 }),
        hidden_size: opt("hidden-size", { int: true, min: 1 }),
        latent_size: opt("latent-size", { int: true, min: 1 }),
        word_dropout: opt("word-dropout", { min: 0 }),
        max_length: opt("max-length", { int: true, min: 2 }),
        variational: v.plain ? false : undefined,
        bidirectional: v["one-way-encoder"] ? false : undefined,
        feed_latent: v["code-as-first-state"] ? false : undefined,
      }).filter(([, x]) => x !== undefined),
    );
    const r = await runWithProgress((hooks) =>
      trainAutoencoder(
        {
          out: v.out as string,
          sentences,
          notes: { name: v.data ?? "State of the Union sentences since 1900" },
          model,
          resume: v.resume,
          overwrite: v.overwrite,
          vocabSize: opt("vocab-size", { int: true, min: 5 }),
          batchSize: opt("batch-size", { int: true, min: 1 }),
          maxSteps: opt("max-steps", { int: true, min: 0 }),
          learningRate: opt("learning-rate", { min: 0 }),
          seed: opt("seed", { int: true, min: 0 }),
          klAnnealSteps: opt("kl-anneal-steps", { int: true, min: 1 }),
          evalInterval: opt("eval-interval", { int: true, min: 1 }),
        },
        hooks,
      ),
    );
    const ev = r.eval
      ? `; held-out reconstruction ${r.eval.reconstruction?.toFixed(3)}, KL ${r.eval.kl?.toFixed(3)}, token accuracy ${((r.eval.token_accuracy ?? 0) * 100).toFixed(1)}%, sentence accuracy ${((r.eval.sentence_accuracy ?? 0) * 100).toFixed(1)}%, BLEU ${r.eval.bleu?.toFixed(1)}`
      : "";
    console.log(`${r.status === "interrupted" ? "stopped" : "done"}: ${r.step} steps${ev}; model saved in ${v.out}`);
    return r.status === "interrupted" ? interruptExitStatus() : 0;
  },
};

export const interpolateCommand: Command = {
  summary: "print the sentences between two sentences' codes in a sentence autoencoder",
  help: INTERPOLATE_HELP,
  run(argv) {
    const c = "interpolate";
    const { values: v, positionals } = parseFlags(c, argv, {
      model: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      steps: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'; put the sentences after --from and --to`);
    if (!v.model || v.from === undefined || v.to === undefined)
      throw new UsageError(`${c}: --model DIR, --from TEXT and --to TEXT are required`);
    const steps = num(c, "steps", v.steps, 5, { int: true, min: 2 });
    const { model, vocab } = loadSentenceVAE(v.model);
    for (const ids of model.interpolate(vocab.encode(v.from), vocab.encode(v.to), steps)) console.log(vocab.decode(ids));
    return 0;
  },
};
