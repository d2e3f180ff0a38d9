// Labelled long documents for document classification (the hierarchical attention network beside a
// flat BERT that sees only the first tokens): State of the Union addresses labelled with the
// speaker's party, and SpamAssassin mails labelled spam or ham. Both labels are gold (the addresses'
// metadata, the corpus's human labels).

import type { LabeledText } from "./labeled.js";
import { stratifiedSplit } from "./labeled.js";
import { sotuAddresses } from "./sotu.js";
import { spamAssassin } from "./spam.js";
import { DataError } from "./text.js";

export interface DocumentSplit {
  train: LabeledText[];
  test: LabeledText[];
  /** How the split was made, for metrics and model notes. */
  note: string;
}

/**
 * The Democratic and Republican presidents' addresses, split by year: those before `testFrom` train,
 * the rest test. The year must fall between two presidencies (no president on both sides), so the
 * test measures party, not a president's own words; 1978 (Carter's first address) gives 138 training
 * addresses (69 / 69) and 44 test addresses (21 Democratic, 23 Republican).
 */
export function sotuParty(testFrom = 1978): DocumentSplit {
  const two = sotuAddresses().filter((a) => a.party === "Democratic" || a.party === "Republican");
  const train = two.filter((a) => a.year < testFrom);
  const test = two.filter((a) => a.year >= testFrom);
  const both = [...new Set(train.map((a) => a.name))].filter((n) => test.some((a) => a.name === n));
  if (both.length) {
    throw new DataError(
      `sotu-party: splitting at ${testFrom} puts ${both.join(", ")} on both sides; choose a year in which a new president gave the first address`,
    );
  }
  if (!train.length || !test.length)
    throw new DataError(`sotu-party: splitting at ${testFrom} leaves one side empty (the addresses run 1790-2021)`);
  const doc = (a: (typeof two)[number]) => ({ text: a.text, label: a.party });
  return {
    train: train.map(doc),
    test: test.map(doc),
    note: `State of the Union addresses of Democratic and Republican presidents; train before ${testFrom}, test from ${testFrom} (no president on both sides)`,
  };
}

/** SpamAssassin mails (subject and body, up to maxChars) split 80 / 20 with each label's share kept. */
export function spamDocuments(maxChars = 20000, seed = 42): DocumentSplit {
  const all = spamAssassin({ maxChars }).map(({ text, label }) => ({ text, label }));
  const { train, eval: test } = stratifiedSplit(all, 0.2, seed, (m) => m.label);
  return { train, test, note: `SpamAssassin mails (up to ${maxChars} characters), stratified 80/20 split, seed ${seed}` };
}
