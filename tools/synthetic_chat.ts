// Writes moxing's SYNTHETIC chat data set (src/data/chat.ts) as TRL JSONL:
//
//   node --import tsx tools/synthetic_chat.ts [--out DIR] [--sentences N] [--seed S] [--sample K]
//
// DIR (default runs/synthetic-chat) gets sft-train.jsonl, sft-test.jsonl (prompt-completion,
// conversational), preference-train.jsonl, preference-test.jsonl (prompt/chosen/rejected, the judge's
// choice) and README.md saying what the data is. Every record carries "provenance": "synthetic".
// --sample K also rewrites the first K records of each file into tools/fixtures/chat/synthetic/, the
// small samples committed with the repository (test/data/chat.test.ts checks they are reproduced).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chatFacts, chatRecords, SYNTHETIC_CHAT, syntheticChat } from "../src/data/chat.js";
import { sotuAddresses } from "../src/data/sotu.js";

const { values } = parseArgs({
  options: { out: { type: "string" }, sentences: { type: "string" }, seed: { type: "string" }, sample: { type: "string" } },
});
const out = values.out ?? "runs/synthetic-chat";
const seed = Number(values.seed ?? 1);
const sentences = Number(values.sentences ?? 400);
const addresses = sotuAddresses();
const splits = syntheticChat({ seed, sentences, addresses });
const facts = chatFacts(addresses);
const jsonl = (rows: readonly unknown[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join("");
mkdirSync(out, { recursive: true });
const files: Record<string, unknown[]> = {};
for (const split of ["train", "test"] as const) {
  const { sft, preference } = chatRecords(splits[split], facts);
  files[`sft-${split}.jsonl`] = sft;
  files[`preference-${split}.jsonl`] = preference;
}
for (const [name, rows] of Object.entries(files)) writeFileSync(join(out, name), jsonl(rows));
writeFileSync(
  join(out, "README.md"),
  `# ${SYNTHETIC_CHAT.name} (SYNTHETIC)\n\n${SYNTHETIC_CHAT.note}.\n\nMade by tools/synthetic_chat.ts (seed ${seed}, ${sentences} sentences): ` +
    `${splits.train.length} training and ${splits.test.length} held-out examples. No person wrote or judged any of it; ` +
    "the preference labels come from the program's judge (judgeAnswer in src/data/chat.ts).\n",
);
console.log(
  `wrote ${Object.keys(files).join(", ")} and README.md to ${out} (${splits.train.length} train, ${splits.test.length} test examples)`,
);
if (values.sample) {
  const k = Number(values.sample);
  const dir = new URL("fixtures/chat/synthetic/", import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  for (const [name, rows] of Object.entries(files))
    writeFileSync(join(dir, name.replace(".jsonl", ".sample.jsonl")), jsonl(rows.slice(0, k)));
  console.log(`wrote the first ${k} records of each file to tools/fixtures/chat/synthetic/`);
}
