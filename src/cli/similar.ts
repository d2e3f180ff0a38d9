// `moxing similar`: nearest words, analogies and sentence similarity from a BERT's embeddings.

import { loadBert } from "../io/bert.js";
import { cosineSimilarity, sentenceEmbeddings, WordVectors } from "../tasks/embeddings.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing similar: nearest words, analogies and sentence similarity from a BERT model

Usage: moxing similar --model DIR WORD            the words closest to WORD (cosine)
       moxing similar --model DIR --analogy A B C  the words closest to A - B + C (king man woman -> queen)
       moxing similar --model DIR --sentences "TEXT 1" "TEXT 2" ...
                                                 cosine similarity of mean-pooled sentence embeddings

  --model DIR         any BERT model directory (its encoder is used)
  --top N             how many words to list (default 10)
  --source input|contextual
                      word vectors from the word-embedding table (default) or from the encoder's
                      output for the word alone
  --json              print JSON instead of a table`;

export const similarCommand: Command = {
  summary: "nearest words, analogies (a - b + c) and sentence similarity from a BERT's embeddings",
  help: HELP,
  run(argv) {
    const c = "similar";
    const { values: v, positionals } = parseFlags(c, argv, {
      model: { type: "string" },
      top: { type: "string" },
      source: { type: "string" },
      analogy: { type: "boolean" },
      sentences: { type: "boolean" },
      json: { type: "boolean" },
    });
    if (!v.model) throw new UsageError(`${c}: --model DIR is required`);
    const top = num(c, "top", v.top, 10, { int: true, min: 1 });
    const source = v.source ?? "input";
    if (source !== "input" && source !== "contextual") throw new UsageError(`${c}: --source must be input or contextual (got '${source}')`);
    const { model, tokenizer } = loadBert(v.model, { task: "feature-extraction" });
    const print = (rows: { word: string; score: number }[]) => {
      if (v.json) console.log(JSON.stringify(rows));
      else for (const r of rows) console.log(`${r.score.toFixed(4)}  ${r.word}`);
    };
    if (v.sentences) {
      if (positionals.length < 2) throw new UsageError(`${c}: --sentences needs at least two texts`);
      const emb = sentenceEmbeddings(model, tokenizer, positionals);
      const rows = positionals
        .slice(1)
        .map((t, i) => ({ word: t, score: cosineSimilarity(emb[0] as Float32Array, emb[i + 1] as Float32Array) }));
      if (!v.json) console.log(`similarity to: ${positionals[0]}`);
      print(rows);
      return 0;
    }
    const wv = new WordVectors(model, tokenizer, source);
    if (v.analogy) {
      if (positionals.length !== 3) throw new UsageError(`${c}: --analogy needs three words, A B C (for A - B + C)`);
      const [a, b, cc] = positionals as [string, string, string];
      if (!v.json) console.log(`${a} - ${b} + ${cc}:`);
      print(wv.analogy(a, b, cc, top));
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(`${c}: give one WORD (or --analogy A B C, or --sentences TEXT...)`);
    print(wv.nearest(positionals[0] as string, top));
    return 0;
  },
};
