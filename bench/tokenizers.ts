// Encode throughput of moxing's GPT-2 tokenizer against js-tiktoken's r50k_base on the same text.
// A benchmark, not a test (timings are machine-dependent); run with
//   node --import tsx bench/tokenizers.ts [megabytes]

import path from "node:path";
import { getEncoding } from "js-tiktoken";
import { ByteLevelBPE } from "../src/tokenizers/index.js";
import { buildLargeText, gpt2FilesDir, mulberry32, PROSE_SNIPPETS } from "../test/tokenizers/corpus.js";

const megabytes = Number(process.argv[2] ?? 2);
const dir = gpt2FilesDir();

function time<T>(run: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const result = run();
  return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

const [, loadSeconds] = time(() => ByteLevelBPE.fromGPT2Files(path.join(dir, "encoder.json"), path.join(dir, "vocab.bpe")));
const [tiktoken, tiktokenLoadSeconds] = time(() => getEncoding("r50k_base"));

/** Encodes `text` with both tokenizers and prints MB/s. Uses a fresh moxing instance so its cache starts cold. */
function measure(label: string, text: string): void {
  const mb = Buffer.byteLength(text) / 1e6;
  const ours = ByteLevelBPE.fromGPT2Files(path.join(dir, "encoder.json"), path.join(dir, "vocab.bpe"));
  // First pass: our per-word cache starts empty. Later passes: the best of three, cache warm.
  const [idsOurs, oursCold] = time(() => ours.encode(text));
  let oursWarm = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) oursWarm = Math.min(oursWarm, time(() => ours.encode(text))[1]);
  const [idsTiktoken, tiktokenFirst] = time(() => tiktoken.encode(text));
  let tiktokenBest = tiktokenFirst;
  for (let i = 0; i < 2; i++) tiktokenBest = Math.min(tiktokenBest, time(() => tiktoken.encode(text))[1]);
  const [, decodeSeconds] = time(() => ours.decode(idsOurs));

  const same = idsOurs.length === idsTiktoken.length && idsOurs.every((id, i) => id === idsTiktoken[i]);
  const rate = (seconds: number): string => `${(mb / seconds).toFixed(2)} MB/s`;
  console.log(`${label}: ${mb.toFixed(2)} MB, ${idsOurs.length} tokens; identical ids: ${same}`);
  console.log(`moxing ByteLevelBPE encode: ${rate(oursCold)} (cold cache), ${rate(oursWarm)} (warm cache)`);
  console.log(`js-tiktoken r50k_base encode: ${rate(tiktokenFirst)} (first), ${rate(tiktokenBest)} (best)`);
  console.log(`moxing decode: ${rate(decodeSeconds)}`);
}

console.log(`load: moxing ${(loadSeconds * 1e3).toFixed(0)} ms, js-tiktoken ${(tiktokenLoadSeconds * 1e3).toFixed(0)} ms`);
// The full test text includes runs of thousands of identical characters, on which js-tiktoken's
// quadratic merge loop is slow; the prose-only text shows the ordinary case.
measure("docs + prose snippets", buildLargeText(megabytes * 1e6, PROSE_SNIPPETS));
measure("docs + all snippets (long runs included)", buildLargeText(megabytes * 1e6));

// Training speed. Package docs repeat themselves a lot (few distinct words), so also train on a
// synthetic 10 MB corpus of Zipf-distributed pseudo-words, which supports a full 32k vocabulary.
function zipfCorpus(bytes: number): string {
  const rng = mulberry32(1);
  const syllables = ["ka", "to", "ri", "mu", "sen", "lo", "pra", "que", "zi", "ne", "ba", "dor", "fi", "gu", "hel", "ing", "the", "str"];
  const words = Array.from({ length: 60_000 }, () => {
    let w = "";
    for (let n = 1 + Math.floor(rng() * 4); n > 0; n--) w += syllables[Math.floor(rng() * syllables.length)];
    return rng() < 0.1 ? w[0]?.toUpperCase() + w.slice(1) : w;
  });
  const parts: string[] = [];
  for (let length = 0; length < bytes; ) {
    const word = words[Math.floor(words.length * rng() ** 3)] as string;
    const sep = rng() < 0.08 ? ".\n" : rng() < 0.1 ? ", " : " ";
    parts.push(word + sep);
    length += word.length + sep.length;
  }
  return parts.join("");
}

for (const [label, corpus, vocabSize] of [
  ["docs", buildLargeText(megabytes * 1e6), 8000],
  ["synthetic", zipfCorpus(10e6), 8000],
  ["synthetic", zipfCorpus(10e6), 32000],
] as const) {
  const [tok, seconds] = time(() => ByteLevelBPE.train(corpus, { vocabSize, specialTokens: ["<|endoftext|>"] }));
  const mb = Buffer.byteLength(corpus) / 1e6;
  console.log(`train on ${label} ${mb.toFixed(1)} MB, vocabSize ${vocabSize} -> ${tok.vocabSize}: ${seconds.toFixed(2)} s`);
}
