// Shared fixtures of the BERT tests: a small made-up corpus and a tiny pretrained model directory.

import "../../src/index.js"; // registers the backends and loads the tensor modules in a working order
import { saveBert } from "../../src/io/bert.js";
import { Bert, bertConfig } from "../../src/models/bert.js";
import { WordPieceTokenizer } from "../../src/tokenizers/wordpiece.js";

const SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the teacher", "a child"];
const VERBS = ["sees", "likes", "finds", "follows", "helps", "calls"];
const OBJECTS = ["the ball", "a house", "the river", "some bread", "the garden", "a letter"];

/** Simple sentences with some regularity, deterministic. */
export function corpus(sentences = 400): string {
  const out: string[] = [];
  for (let i = 0; i < sentences; i++) {
    out.push(`${SUBJECTS[(i * 7) % 6]} ${VERBS[(i * 5 + (i >> 2)) % 6]} ${OBJECTS[(i * 11 + (i >> 1)) % 6]} .`);
  }
  return out.join(" ");
}

/** Sizes small enough that a test step takes milliseconds. */
export const TINY = {
  num_hidden_layers: 1,
  hidden_size: 32,
  num_attention_heads: 2,
  intermediate_size: 64,
  max_position_embeddings: 64,
} as const;

/** A randomly initialised fill-mask BERT with a WordPiece tokenizer trained on `text`, saved to dir. */
export function tinyModelDir(dir: string, text = corpus(), seed = 1, dropout = 0): { model: Bert; tokenizer: WordPieceTokenizer } {
  const extra = " good bad great awful is berlin paris france germany what does see ?".repeat(4);
  const tokenizer = WordPieceTokenizer.train(text + extra, { vocabSize: 160 });
  const model = new Bert(
    bertConfig("tiny", { ...TINY, vocab_size: tokenizer.vocabSize, hidden_dropout_prob: dropout, attention_probs_dropout_prob: dropout }),
    {
      task: "fill-mask",
      seed,
    },
  );
  saveBert(dir, { model, tokenizer });
  return { model, tokenizer };
}
