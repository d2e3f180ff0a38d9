// CharTokenizer: vocabulary of code points, round trips, errors, special tokens, JSON.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CharTokenizer, loadTokenizer } from "../../src/tokenizers/index.js";
import { mulberry32, randomText } from "./corpus.js";

describe("CharTokenizer", () => {
  it("uses sorted unique code points, so an emoji is one character", () => {
    const tok = CharTokenizer.fromText("ba😀a😀c");
    assert.deepEqual(tok.chars, ["a", "b", "c", "😀"]);
    assert.equal(tok.vocabSize, 4);
    assert.deepEqual(tok.encode("😀a"), [3, 0]);
  });

  it("sorts by code point, not by UTF-16 unit", () => {
    // UTF-16 order would put U+1F600 (0xD83D 0xDE00) before U+FF01.
    const tok = CharTokenizer.fromText("😀！");
    assert.deepEqual(tok.chars, ["！", "😀"]);
  });

  it("builds from several texts", () => {
    assert.deepEqual(CharTokenizer.fromText(["ab", "ca"]).chars, ["a", "b", "c"]);
  });

  it("round-trips any text made of known characters, lone surrogates included", () => {
    const rng = mulberry32(7);
    const corpus = Array.from({ length: 200 }, () => randomText(rng, 50));
    corpus.push("x\ud800y\udc00");
    const tok = CharTokenizer.fromText(corpus);
    for (const text of corpus) assert.equal(tok.decode(tok.encode(text)), text);
  });

  it("names an unknown character, its code point, and why it is unknown", () => {
    const tok = CharTokenizer.fromText("hello world");
    assert.throws(
      () => tok.encode("hello ☃"),
      (err: Error) => /"☃"/.test(err.message) && /U\+2603/.test(err.message) && /built from its training text/.test(err.message),
    );
    assert.throws(() => tok.encode("🙂"), /U\+1F642/);
  });

  it("names a bad id and the vocabulary size in decode", () => {
    const tok = CharTokenizer.fromText("abc");
    assert.throws(() => tok.decode([0, 3]), /id 3 .*\[0, 2\].*3 ids/);
    assert.throws(() => tok.decode([-1]), /id -1/);
    assert.throws(() => tok.decode([1.5]), /id 1.5/);
  });

  it("gives special tokens the ids after the characters and encodes them only when allowed", () => {
    const tok = CharTokenizer.fromText("<|endoftext|> abc", { specialTokens: ["<|endoftext|>"] });
    const eot = tok.vocabSize - 1;
    assert.deepEqual([...tok.specialTokens], [["<|endoftext|>", eot]]);
    assert.deepEqual(tok.encode("a<|endoftext|>b", { allowedSpecial: "all" }), [tok.encode("a")[0], eot, tok.encode("b")[0]]);
    assert.throws(() => tok.encode("a<|endoftext|>"), /special token "<\|endoftext\|>".*allowedSpecial/);
    const plain = tok.encode("<|endoftext|>", { disallowedSpecial: [] });
    assert.equal(plain.length, "<|endoftext|>".length);
    assert.equal(tok.decode([eot]), "<|endoftext|>");
    assert.deepEqual(tok.addSpecialTokens(["<|endoftext|>", "<|pad|>"]), [eot, eot + 1]);
    assert.equal(tok.vocabSize, eot + 2);
  });

  it("saves and loads through loadTokenizer", () => {
    const tok = CharTokenizer.fromText("héllo 世界 😀\n", { specialTokens: ["<|endoftext|>", "<|pad|>"] });
    const json = tok.toJSON();
    assert.equal(json.type, "char");
    for (const source of [json, JSON.stringify(json), JSON.parse(JSON.stringify(json))]) {
      const loaded = loadTokenizer(source);
      assert.ok(loaded instanceof CharTokenizer);
      assert.equal(loaded.vocabSize, tok.vocabSize);
      assert.deepEqual(loaded.specialTokens, tok.specialTokens);
      const text = "世界 😀<|pad|>héllo";
      assert.deepEqual(loaded.encode(text, { allowedSpecial: "all" }), tok.encode(text, { allowedSpecial: "all" }));
    }
  });

  it("rejects a vocabulary entry that is not a single character", () => {
    assert.throws(() => new CharTokenizer(["a", "bc"]), /exactly one character/);
    assert.throws(() => new CharTokenizer(["a", "a"]), /appears twice/);
  });
});
