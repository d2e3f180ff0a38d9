// Training the sentence autoencoder / VAE (src/models/sentence-vae.ts) on the shared loop, and its
// model directory (config.json with model_type "sentence-vae", model.safetensors, vocab.json).
//
// Sentences (one per line, or the State of the Union's) are split 95/5 into training and held-out
// sentences; a word vocabulary is built from the training ones. Each step reconstructs a random
// batch; the VAE's loss is reconstruction + β·KL with β on Bowman et al.'s logistic schedule, centred
// at a third of the run (klAnnealSteps sets the centre). Evaluation: held-out reconstruction loss, KL,
// the token and sentence accuracy of greedy reconstructions from the codes' means, and their BLEU.

import { join } from "node:path";
import { DataError, textDigest } from "../data/text.js";
import { checkModelDir, checkpointFile, readJSONFile } from "../io/checkpoint.js";
import { encodeSafetensors, readSafetensors } from "../io/safetensors.js";
import { corpusBleu } from "../metrics/bleu.js";
import { klWeight, SENTENCE_VAE_DEFAULTS, SentenceVAE, type SentenceVAEConfig, WordVocab } from "../models/sentence-vae.js";
import { AdamW } from "../optim/adamw.js";
import { tensor } from "../tensor/creation.js";
import { scoped } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { type LoopHooks, type Metrics, runLoop } from "./loop.js";
import { RunDirectory, type SavedState } from "./run.js";

const STATE_FORMAT = "moxing-autoencoder-state";

export function sentenceVAEFiles(
  model: SentenceVAE,
  vocab: WordVocab,
  notes: Record<string, unknown> = {},
): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  files.set("config.json", `${JSON.stringify({ model_type: "sentence-vae", ...model.config, moxing: notes }, null, 2)}\n`);
  const sd = new Map(
    [...model.stateDict()].map(([k, t]) => [
      k,
      { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.contiguousData() as Float32Array) },
    ]),
  );
  files.set("model.safetensors", encodeSafetensors(sd, { format: "pt" }));
  files.set("vocab.json", JSON.stringify(vocab.words));
  return files;
}

/** Load a sentence autoencoder directory (eval mode). */
export function loadSentenceVAE(dir: string): { model: SentenceVAE; vocab: WordVocab } {
  checkModelDir(dir);
  const file = (name: string) => checkpointFile(dir, name) ?? join(dir, name);
  const cfg = readJSONFile(file("config.json")) as Record<string, unknown>;
  if (cfg?.model_type !== "sentence-vae")
    throw new DataError(
      `${file("config.json")}: model_type is ${JSON.stringify(cfg?.model_type)}, not "sentence-vae"; make one with moxing train-autoencoder`,
    );
  const words = readJSONFile(file("vocab.json"));
  if (!Array.isArray(words) || !words.every((w) => typeof w === "string"))
    throw new DataError(`${file("vocab.json")}: expected a list of words`);
  const vocab = new WordVocab(words as string[]);
  const config = Object.fromEntries(Object.keys(SENTENCE_VAE_DEFAULTS).map((k) => [k, cfg[k]])) as unknown as SentenceVAEConfig;
  // Absent (false) in directories written before these options existed.
  for (const k of ["feed_latent", "bidirectional"] as const) {
    if (cfg[k] !== undefined && typeof cfg[k] !== "boolean")
      throw new DataError(`${file("config.json")}: ${k} must be true or false (got ${JSON.stringify(cfg[k])})`);
    config[k] = cfg[k] === true;
  }
  if (config.vocab_size !== vocab.size)
    throw new DataError(`${dir}: vocab.json has ${vocab.size} words but config.json's vocab_size is ${config.vocab_size}`);
  const model = new SentenceVAE(config, { seed: 0 });
  const st = readSafetensors(file("model.safetensors"));
  model.loadStateDict(new Map([...st.tensors].map(([k, t]) => [k, tensor(t.data as Float32Array, { shape: t.shape })])));
  model.eval();
  return { model, vocab };
}

export interface AutoencoderOptions {
  out: string;
  sentences: string[];
  notes?: Record<string, unknown>;
  model?: Partial<SentenceVAEConfig>;
  vocabSize?: number;
  batchSize?: number;
  maxSteps?: number;
  learningRate?: number;
  /** Step at which the KL weight reaches 0.5 (default: a third of maxSteps). */
  klAnnealSteps?: number;
  seed?: number;
  evalInterval?: number;
  resume?: boolean;
  overwrite?: boolean;
}

export const AUTOENCODER_DEFAULTS = { vocabSize: 5000, batchSize: 32, maxSteps: 2000, learningRate: 3e-3, seed: 42 };

interface State extends SavedState {
  rng: { model: ReturnType<Generator["getState"]>; batches: ReturnType<Generator["getState"]> };
}

export async function trainAutoencoder(opts: AutoencoderOptions, hooks: LoopHooks = {}) {
  const run = RunDirectory.open({
    out: opts.out,
    resume: opts.resume,
    overwrite: opts.overwrite,
    format: STATE_FORMAT,
    kind: "autoencoder run",
  });
  const saved = run.saved as State | null;
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<AutoencoderOptions>;
  const o = {
    ...AUTOENCODER_DEFAULTS,
    ...given,
    ...(saved ? { ...(saved.args as object), maxSteps: opts.maxSteps ?? (saved.args.maxSteps as number) } : {}),
  } as typeof AUTOENCODER_DEFAULTS & AutoencoderOptions;
  const sentences = opts.sentences.filter((s) => s.trim().length > 0);
  if (sentences.length < 2) throw new DataError("train-autoencoder: give at least two sentences");
  run.checkData(textDigest(sentences.join("\n")), "the sentences", "data");
  // Every 20th sentence is held out.
  const train = sentences.filter((_, i) => i % 20 !== 19);
  const held = sentences.filter((_, i) => i % 20 === 19);
  let model: SentenceVAE;
  let vocab: WordVocab;
  const modelRng = new Generator(o.seed);
  if (saved) ({ model, vocab } = loadSentenceVAE(o.out));
  else {
    vocab = WordVocab.build(train, o.vocabSize);
    model = new SentenceVAE({ ...o.model, vocab_size: vocab.size }, { generator: modelRng });
  }
  const gen = saved ? model.generator : modelRng;
  const trainIds = train.map((s) => vocab.encode(s));
  const heldIds = held.slice(0, 200).map((s) => vocab.encode(s));
  const anneal = o.klAnnealSteps ?? Math.max(1, Math.round(o.maxSteps / 3));
  const k = 8 / Math.max(1, 2 * anneal); // β goes from ~0.02 at step 0 to ~0.98 at twice the centre
  const rng = new Generator(o.seed + 1);
  if (saved) {
    gen.setState(saved.rng.model);
    rng.setState(saved.rng.batches);
  }
  const args = {
    ...o,
    sentences: undefined,
    out: undefined,
    notes: undefined,
    resume: undefined,
    overwrite: undefined,
    klAnnealSteps: anneal,
  };
  let step = saved?.step ?? 0;
  const optimizer = new AdamW([{ params: model.parameters(), weightDecay: 0 }], { lr: o.learningRate });
  const notes = { data: opts.notes ?? {}, variational: model.config.variational };
  let lastEval: Metrics | null = null;
  const result = await runLoop(
    {
      run,
      model,
      optimizer,
      schedule: {
        lr: o.learningRate,
        minLr: o.learningRate / 10,
        warmupSteps: Math.min(100, Math.floor(o.maxSteps / 10)),
        decaySteps: o.maxSteps,
      },
      maxSteps: o.maxSteps,
      gradClip: 5,
      evalInterval: o.evalInterval ?? Math.max(1, Math.min(500, o.maxSteps)),
      checkpointInterval: o.evalInterval ?? Math.max(1, Math.min(500, o.maxSteps)),
      title: `training a sentence ${model.config.variational ? "VAE" : "autoencoder"}: ${(model.numParameters() / 1e6).toFixed(2)}M parameters, ${train.length} sentences, ${vocab.size} words; ${o.maxSteps} steps of ${o.batchSize}`,
      trainStep: () => {
        const batch = Array.from({ length: o.batchSize }, () => trainIds[rng.randint(trainIds.length)] as number[]);
        const out = model.forward(batch);
        const beta = model.config.variational ? klWeight(step, k, anneal) : 0;
        step++;
        return { loss: out.reconstruction.add(out.kl.mul(beta)), tokens: batch.reduce((n, s) => n + s.length + 1, 0) };
      },
      evaluate: heldIds.length
        ? () => {
            let rec = 0;
            let kl = 0;
            for (let i = 0; i < heldIds.length; i += o.batchSize) {
              const [r, q] = scoped(() => {
                const out = model.forward(heldIds.slice(i, i + o.batchSize));
                return [(out.reconstruction as Tensor).item(), out.kl.item()] as const;
              });
              const n = Math.min(o.batchSize, heldIds.length - i);
              rec += r * n;
              kl += q * n;
            }
            const got = model.reconstruct(heldIds);
            const acc = model.reconstructionAccuracy(heldIds, got);
            // Word-position accuracy counts every word after a dropped or added one as wrong; BLEU
            // against the sentence (as far as max_length keeps it) credits the words written back.
            const want = heldIds.map((s) => vocab.decode(s.slice(0, model.config.max_length - 1)));
            const bleu = corpusBleu(
              got.map((g) => vocab.decode(g)),
              [want],
              { tokenize: "none" },
            ).score;
            lastEval = { reconstruction: rec / heldIds.length, kl: kl / heldIds.length, ...acc, bleu };
            return lastEval;
          }
        : undefined,
      modelFiles: () => sentenceVAEFiles(model, vocab, notes),
      state: () => ({
        format: STATE_FORMAT,
        args,
        data: { sha256: textDigest(sentences.join("\n")) },
        rng: { model: gen.getState(), batches: rng.getState() },
      }),
    },
    hooks,
  );
  return { ...result, model, vocab, eval: lastEval as Metrics | null };
}
