#!/usr/bin/env node
// Pretraining data for subject-line generation: PEGASUS's gap sentences (src/data/gap-sentences.ts).
// Writing the sentence that best sums up a text is the closest self-supervised task to writing a
// subject line, and it needs no labels, so it can use far more text than the 5,375 labelled mails.
//
//   node --import tsx scripts/gap-sentences.mjs [--out data/gap-sentences]
//
// Documents: the bodies of the training mails (never the held-out ones: src/data/subjects.ts fixes
// the split) and the State of the Union addresses since 1900 cut into windows of 6 sentences (every
// 3rd sentence starts one). Writes OUT/train.src and OUT/train.tgt (line i of one goes with line i
// of the other), then, for example:
//   npx moxing train-seq2seq --source data/gap-sentences/train.src --target data/gap-sentences/train.tgt \
//     --out runs/gap --vocab-size 2000 --d-model 128 --layers 2 --heads 4 --ffn-dim 512
//   npx moxing train-seq2seq --dataset spam-subjects --init runs/gap --out runs/subjects-gap
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gapSentence as gap } from "../src/data/gap-sentences.ts";
import { sentencesOf } from "../src/data/silver.ts";
import { sotuAddresses } from "../src/data/sotu.ts";
import { spamSubjects } from "../src/data/subjects.ts";

const { values } = parseArgs({ options: { out: { type: "string", default: "data/gap-sentences" } } });
const pairs = [];
let mails = 0;
for (const m of spamSubjects().train) {
  // A mail's lines, each split further into sentences: lines are often headings or list items.
  const parts = m.body
    .split("\n")
    .flatMap((l) => l.split(/(?<=[.!?])\s+(?=[A-Z"])/))
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length < 2) continue;
  const p = gap(parts);
  if (p) {
    pairs.push(p);
    mails++;
  }
}
let windows = 0;
for (const a of sotuAddresses().filter((x) => x.year >= 1900)) {
  const s = sentencesOf(a.text);
  for (let i = 0; i + 6 <= s.length; i += 3) {
    const p = gap(s.slice(i, i + 6));
    if (p) {
      pairs.push(p);
      windows++;
    }
  }
}
const oneLine = (s) => s.replace(/\s+/g, " ").trim();
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, "train.src"), `${pairs.map((p) => oneLine(p.source)).join("\n")}\n`);
writeFileSync(join(values.out, "train.tgt"), `${pairs.map((p) => oneLine(p.target)).join("\n")}\n`);
console.log(`gap-sentences: ${pairs.length} pairs (${mails} training mails, ${windows} State of the Union windows) in ${values.out}`);
