// Named-entity data in the CoNLL format, and entity-level scoring exactly as seqeval computes it.
//
// CoNLL-2003 files hold one token per line with its columns separated by spaces (word, part of
// speech, chunk, entity tag), a blank line between sentences, and "-DOCSTART-" lines between
// documents. The entity tag is the last column, so two-column "word tag" files read too. Tags are
// IOB: O, B-TYPE, I-TYPE (also E-/S- of IOBES).
//
// Scores follow seqeval's default (non-strict) mode: get_entities() reads (type, start, end)
// chunks from the tag sequences, with seqeval's rules for where a chunk starts and ends (an I-
// after O starts a chunk; a change of type ends one); precision, recall and F1 are micro-averaged
// over the entity sets of all sentences, and 0 where a denominator is 0.

import { DataError, readTextFile } from "./text.js";

export interface TaggedSentence {
  tokens: string[];
  tags: string[];
}

const TAG = /^(O|[BIES]-.+)$/;

/** Parse CoNLL text; `source` names the file in errors. */
export function parseConll(text: string, source = "conll"): TaggedSentence[] {
  const out: TaggedSentence[] = [];
  let cur: TaggedSentence = { tokens: [], tags: [] };
  const flush = () => {
    if (cur.tokens.length) out.push(cur);
    cur = { tokens: [], tags: [] };
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const cols = line.split(/\s+/);
    if (line === "" || cols[0] === "-DOCSTART-") {
      flush();
      return;
    }
    if (cols.length < 2) throw new DataError(`${source}:${i + 1}: expected a token and its tag (got '${line}')`);
    const tag = cols[cols.length - 1] as string;
    if (!TAG.test(tag)) throw new DataError(`${source}:${i + 1}: '${tag}' is not an IOB tag (O, B-TYPE or I-TYPE)`);
    cur.tokens.push(cols[0] as string);
    cur.tags.push(tag);
  });
  flush();
  return out;
}

export function readConllFile(path: string): TaggedSentence[] {
  const s = parseConll(readTextFile(path), path);
  if (s.length === 0) throw new DataError(`${path}: no tagged sentences in the file`);
  return s;
}

/** CoNLL text: "token tag" lines, or "token gold predicted" when predictions are given. */
export function formatConll(sentences: readonly TaggedSentence[], predictions?: readonly (readonly string[])[]): string {
  if (predictions && predictions.length !== sentences.length) {
    throw new Error(`formatConll: ${predictions.length} predicted sentences for ${sentences.length} sentences`);
  }
  return sentences
    .map((s, i) =>
      s.tokens
        .map((t, j) => {
          const gold = s.tags[j] ?? "O";
          return predictions ? `${t} ${gold} ${predictions[i]?.[j] ?? "O"}` : `${t} ${gold}`;
        })
        .join("\n"),
    )
    .join("\n\n")
    .concat("\n");
}

// ---- seqeval ----------------------------------------------------------------------------------------

function endOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (prevTag === "E" || prevTag === "S") return true;
  if (prevTag === "B" && (tag === "B" || tag === "S" || tag === "O")) return true;
  if (prevTag === "I" && (tag === "B" || tag === "S" || tag === "O")) return true;
  return prevTag !== "O" && prevTag !== "." && prevType !== type;
}

function startOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (tag === "B" || tag === "S") return true;
  if ((prevTag === "E" || prevTag === "S" || prevTag === "O") && (tag === "E" || tag === "I")) return true;
  return tag !== "O" && tag !== "." && prevType !== type;
}

/** seqeval's get_entities: (type, first, last) chunks of a tag sequence (or of sentences joined with O between them). */
export function getEntities(seq: readonly string[] | readonly (readonly string[])[]): [string, number, number][] {
  const flat: string[] = Array.isArray(seq[0]) ? (seq as string[][]).flatMap((s) => [...s, "O"]) : [...(seq as string[])];
  const chunks: [string, number, number][] = [];
  let prevTag = "O";
  let prevType = "";
  let begin = 0;
  [...flat, "O"].forEach((chunk, i) => {
    const tag = chunk[0] as string;
    const rest = chunk.slice(1);
    const dash = rest.indexOf("-");
    const type = (dash >= 0 ? rest.slice(dash + 1) : rest) || "_";
    if (endOfChunk(prevTag, tag, prevType, type)) chunks.push([prevType, begin, i - 1]);
    if (startOfChunk(prevTag, tag, prevType, type)) begin = i;
    prevTag = tag;
    prevType = type;
  });
  return chunks;
}

export interface EntityScores {
  precision: number;
  recall: number;
  f1: number;
  /** Number of gold entities. */
  support: number;
}

export interface SeqevalReport extends EntityScores {
  /** Token-level accuracy (seqeval's accuracy_score). */
  accuracy: number;
  perType: Record<string, EntityScores>;
}

function prf(nCorrect: number, nPred: number, nTrue: number): EntityScores {
  const precision = nPred === 0 ? 0 : nCorrect / nPred;
  const recall = nTrue === 0 ? 0 : nCorrect / nTrue;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, support: nTrue };
}

/** Entity-level micro precision / recall / F1 (seqeval's default mode), per type, and token accuracy. */
export function seqevalScores(gold: readonly (readonly string[])[], pred: readonly (readonly string[])[]): SeqevalReport {
  if (gold.length !== pred.length) throw new Error(`seqeval: ${gold.length} gold sentences but ${pred.length} predicted`);
  let tokens = 0;
  let same = 0;
  gold.forEach((g, i) => {
    const p = pred[i] as readonly string[];
    if (g.length !== p.length) throw new Error(`seqeval: sentence ${i + 1} has ${g.length} gold tags but ${p.length} predicted`);
    g.forEach((t, j) => {
      tokens++;
      if (t === p[j]) same++;
    });
  });
  const key = (e: [string, number, number]) => `${e[0]}\u0000${e[1]}\u0000${e[2]}`;
  const trueE = getEntities(gold as string[][]);
  const predE = getEntities(pred as string[][]);
  const predSet = new Set(predE.map(key));
  const types = [...new Set([...trueE, ...predE].map((e) => e[0]))].sort();
  const perType: Record<string, EntityScores> = {};
  for (const type of types) {
    const t = trueE.filter((e) => e[0] === type);
    const p = predE.filter((e) => e[0] === type);
    const ps = new Set(p.map(key));
    perType[type] = prf(t.filter((e) => ps.has(key(e))).length, p.length, t.length);
  }
  const correct = trueE.filter((e) => predSet.has(key(e))).length;
  return { ...prf(correct, predE.length, trueE.length), accuracy: tokens ? same / tokens : 0, perType };
}
