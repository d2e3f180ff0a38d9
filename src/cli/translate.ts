// `moxing translate`: translate (or summarise) text with a Marian model directory, and score the
// output against references with BLEU and chrF as sacreBLEU computes them.

import { createInterface } from "node:readline";
import { generateTexts } from "../generate/seq2seq.js";
import { loadMarian } from "../io/marian.js";
import { corpusBleu } from "../metrics/bleu.js";
import { corpusChrf } from "../metrics/chrf.js";
import { corpusRougeL } from "../metrics/rouge.js";
import { readLines } from "./train-seq2seq.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing translate: generate target text from source text with an encoder-decoder (Marian) model

Usage: moxing translate --model DIR --text "TEXT" [flags]
       moxing translate --model DIR --input FILE [--reference FILE] [flags]
       echo "TEXT" | moxing translate --model DIR

  --model DIR            a Marian model directory with tokenizer.json (moxing train-seq2seq makes one)
  --text TEXT            one text (several --text flags: several texts)
  --input FILE           one text per line; without --text or --input, lines are read from stdin
  --reference FILE       one reference per line: print BLEU and chrF (sacreBLEU's defaults: 13a
                         tokenisation, exp smoothing; chrF2) and ROUGE-L on stderr
Decoding (Hugging Face's generate; defaults from config.json):
  --num-beams N          1: greedy; more: beam search (default: the model's num_beams)
  --max-new-tokens N     tokens per output (default: the model's max_length - 1)
  --length-penalty X     beam scores are logprob / length^X (default 1)
  --no-repeat-ngram-size N    no n-gram of this size twice in an output
  --do-sample            sample instead (with --temperature, --top-k 50, --top-p, --seed)
  --batch-size 16

One output per line on stdout, in the order of the inputs.`;

const FLAGS = {
  model: { type: "string" },
  text: { type: "string", multiple: true },
  input: { type: "string" },
  reference: { type: "string" },
  "num-beams": { type: "string" },
  "max-new-tokens": { type: "string" },
  "length-penalty": { type: "string" },
  "no-repeat-ngram-size": { type: "string" },
  "do-sample": { type: "boolean" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  seed: { type: "string" },
  "batch-size": { type: "string" },
} as const;

async function stdinLines(): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of createInterface({ input: process.stdin })) lines.push(line);
  return lines;
}

export const translateCommand: Command = {
  summary: "translate or summarise text with an encoder-decoder model; BLEU/chrF against references",
  help: HELP,
  async run(argv) {
    const c = "translate";
    const { values: v, positionals } = parseFlags(c, argv, FLAGS);
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'; put text after --text`);
    if (!v.model) throw new UsageError(`${c}: --model DIR is required`);
    if (v.text && v.input) throw new UsageError(`${c}: give --text or --input, not both`);
    const opt = (flag: keyof typeof FLAGS, o: { int?: boolean; min?: number } = {}) => {
      const value = v[flag] as string | undefined;
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    const genOpts = {
      numBeams: opt("num-beams", { int: true, min: 1 }),
      maxNewTokens: opt("max-new-tokens", { int: true, min: 1 }),
      lengthPenalty: opt("length-penalty"),
      noRepeatNgramSize: opt("no-repeat-ngram-size", { int: true, min: 0 }),
      doSample: v["do-sample"] ?? false,
      temperature: opt("temperature", { min: 0 }),
      topK: opt("top-k", { int: true, min: 0 }),
      topP: opt("top-p", { min: 0 }),
      seed: opt("seed", { int: true, min: 0 }),
      batchSize: opt("batch-size", { int: true, min: 1 }),
    };
    if (genOpts.doSample && genOpts.numBeams === undefined) genOpts.numBeams = 1;
    const { model, tokenizer } = loadMarian(v.model);
    if (!tokenizer)
      throw new UsageError(`${c}: '${v.model}' has no tokenizer.json; moxing reads Marian models with their tokenizer.json only`);
    const texts = v.text ?? (v.input ? readLines(v.input) : await stdinLines());
    if (texts.length === 0) throw new UsageError(`${c}: no input text; give --text, --input FILE or lines on stdin`);
    const refs = v.reference ? readLines(v.reference) : null;
    if (refs && refs.length !== texts.length) {
      throw new UsageError(
        `${c}: ${texts.length} inputs but ${refs.length} references in '${v.reference}'; give one reference per input line`,
      );
    }
    const outputs = generateTexts(model, tokenizer, texts, genOpts);
    for (const o of outputs) process.stdout.write(`${o}\n`);
    if (refs) {
      const bleu = corpusBleu(outputs, [refs]);
      const chrf = corpusChrf(outputs, [refs]);
      const rouge = corpusRougeL(outputs, refs);
      process.stderr.write(
        `${bleu.toString()}  [${bleu.signature}]\n${chrf.toString()}  [${chrf.signature}]\nROUGE-L F ${rouge.fmeasure.toFixed(4)}\n`,
      );
    }
    return 0;
  },
};
