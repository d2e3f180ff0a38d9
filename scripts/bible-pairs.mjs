#!/usr/bin/env node
// Data setup for translation: English-Spanish verse pairs from Debian's sword-text-kjv and
// sword-text-sparv (read with Debian's diatheke), split by whole books, written as parallel text.
//
//   apt-get install diatheke sword-text-kjv sword-text-sparv     (once, as root)
//   node --import tsx scripts/bible-pairs.mjs [--out data/bible]
//
// Writes OUT/{train,valid,test}.{en,es} (one verse per line, the two files of a split line by line
// parallel) and OUT/README.txt (sources, counts, held-out books). Then, for example:
//   npx moxing train-seq2seq --source data/bible/train.en --target data/bible/train.es --out runs/en-es
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HELD_OUT_BOOKS, splitByBooks, versePairs } from "../src/data/bible.ts";

const { values } = parseArgs({ options: { out: { type: "string", default: "data/bible" } } });
const out = values.out;
const read = (module) => {
  try {
    return execFileSync("diatheke", ["-b", module, "-k", "Gen-Rev"], { encoding: "utf8", maxBuffer: 1 << 28 });
  } catch (e) {
    console.error(
      `bible-pairs: cannot run 'diatheke -b ${module}' (${e.code ?? e.message}); install Debian's diatheke, sword-text-kjv and sword-text-sparv`,
    );
    process.exit(1);
  }
};
const pairs = versePairs(read("engKJV2006eb"), read("spaRV1909eb"));
const split = splitByBooks(pairs);
mkdirSync(out, { recursive: true });
for (const [name, rows] of Object.entries(split)) {
  writeFileSync(join(out, `${name}.en`), rows.map((p) => `${p.en}\n`).join(""));
  writeFileSync(join(out, `${name}.es`), rows.map((p) => `${p.es}\n`).join(""));
}
const summary = [
  "English-Spanish verse pairs: King James Version (SWORD engKJV2006eb, Debian sword-text-kjv) and",
  "Reina-Valera 1909 (SWORD spaRV1909eb, Debian sword-text-sparv), both public domain, paired by reference.",
  `pairs: ${pairs.length} (train ${split.train.length}, valid ${split.valid.length}, test ${split.test.length})`,
  `test books: ${HELD_OUT_BOOKS.test.join(", ")}; valid books: ${HELD_OUT_BOOKS.valid.join(", ")}`,
  "",
].join("\n");
writeFileSync(join(out, "README.txt"), summary);
process.stdout.write(summary);
