// BERT's model inputs for one text or a pair of texts, as Hugging Face's BertTokenizer(textA, textB,
// ...) makes them: [CLS] A [SEP] (B [SEP]) with token type ids, attention mask and offsets; the
// truncation strategies (longest_first, only_first, only_second), overflowing windows a stride
// apart (SQuAD's document stride), and padding. The tokenizer supplies its pieces and special ids.

import type { EncodeOptions } from "./tokenizer.js";

/** Token ids of a text with their offsets. */
export interface Pieces {
  ids: number[];
  offsets: [number, number][];
}

/** What pair encoding needs of a tokenizer. */
export interface PairEncoder {
  /** The tokenizer's name, for errors. */
  name: string;
  /** A text's pieces and their offsets. */
  encode(text: string): Pieces;
  /** The id of [CLS], [SEP] or [PAD] (throws naming the token when the vocabulary lacks it). */
  specialId(which: "cls" | "sep" | "pad"): number;
}

export type TruncationStrategy = "longest_first" | "only_first" | "only_second" | "do_not_truncate";
const TRUNCATION_STRATEGIES: readonly TruncationStrategy[] = ["longest_first", "only_first", "only_second", "do_not_truncate"];

export interface EncodePairOptions extends EncodeOptions {
  /** Length limit of each output sequence, special tokens included. Default: no limit. */
  readonly maxLength?: number;
  /**
   * How to cut texts down to maxLength (as in Hugging Face): "longest_first" (default) takes tokens off
   * the longer text, "only_first" / "only_second" off that text alone, "do_not_truncate" never cuts.
   */
  readonly truncation?: TruncationStrategy;
  /** "max_length": fill every output up to maxLength with the pad token. Default: no padding. */
  readonly padding?: "max_length" | "do_not_pad";
  /** Add [CLS] / [SEP]. Default true. */
  readonly addSpecialTokens?: boolean;
  /** Tokens that consecutive overflowing windows share. Default 0. */
  readonly stride?: number;
  /** Also return the truncated-off tokens as further windows (`overflowing`). Default false. */
  readonly returnOverflowing?: boolean;
}

/** Model inputs for one sequence (or pair), as Hugging Face's BertTokenizer returns them. */
export interface BertEncoding {
  inputIds: number[];
  /** 0 for [CLS], text A and its [SEP]; 1 for text B and its [SEP]; 0 for padding. */
  tokenTypeIds: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
  /**
   * [start, end) UTF-16 offsets of each token in its own text (A or B, before any normalisation), so
   * `text.slice(start, end)` is the original spelling. [0, 0] for [CLS], [SEP] and [PAD].
   */
  offsets: [number, number][];
  /** Which text each token came from: 0 (A), 1 (B), or null for special and padding tokens. */
  sequenceIds: (0 | 1 | null)[];
  /** With returnOverflowing: the further windows over the truncated tokens (in Hugging Face's order). */
  overflowing?: BertEncoding[];
}

/**
 * BERT model inputs for one text or a pair: [CLS] A [SEP] (B [SEP]), with token type ids, attention
 * mask and offsets, truncated and padded like Hugging Face's BertTokenizer(textA, textB, ...).
 *
 * With `returnOverflowing`, the tokens that truncation cut off come back as further windows in
 * `overflowing`, each `stride` tokens overlapping the one before: e.g. SQuAD's
 * encodePair(question, context, { maxLength: 384, truncation: "only_second", stride: 128,
 * returnOverflowing: true, padding: "max_length" }) gives one window per 384-token view of the context.
 */
export function encodePair(tok: PairEncoder, textA: string, textB?: string | null, options: EncodePairOptions = {}): BertEncoding {
  const what = "encodePair";
  const addSpecial = options.addSpecialTokens ?? true;
  const hasB = textB !== undefined && textB !== null;
  const nAdded = addSpecial ? (hasB ? 3 : 2) : 0;
  const { maxLength, stride = 0 } = options;
  const truncation = options.truncation ?? "longest_first";
  if (!TRUNCATION_STRATEGIES.includes(truncation)) {
    throw new Error(
      `${tok.name}.${what}: truncation ${JSON.stringify(truncation)} is not a truncation strategy; use one of ` +
        `${TRUNCATION_STRATEGIES.map((s) => JSON.stringify(s)).join(", ")}.`,
    );
  }
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < nAdded)) {
    throw new Error(
      `${tok.name}.${what}: maxLength must be an integer of at least ${nAdded}, the number of special tokens ` +
        `${hasB ? "a pair" : "one text"} needs (${addSpecial ? (hasB ? "[CLS] A [SEP] B [SEP]" : "[CLS] A [SEP]") : "none"}), got ${maxLength}.`,
    );
  }
  if (!Number.isInteger(stride) || stride < 0) {
    throw new Error(`${tok.name}.${what}: stride must be a non-negative integer, got ${stride}.`);
  }
  const padding = options.padding ?? "do_not_pad";
  if (padding !== "max_length" && padding !== "do_not_pad") {
    throw new Error(`${tok.name}.${what}: padding must be "max_length" or "do_not_pad", got ${JSON.stringify(padding)}.`);
  }
  if (padding === "max_length" && maxLength === undefined) {
    throw new Error(`${tok.name}.${what}: padding "max_length" needs maxLength (the length to pad to).`);
  }
  if (hasB && typeof textB !== "string") {
    throw new TypeError(`${tok.name}.${what}: textB must be a string, null or undefined, got ${typeof textB}.`);
  }

  const a = tok.encode(textA);
  const b = hasB ? tok.encode(textB) : null;

  let aParts: Pieces[] = [a];
  let bParts: Pieces[] = b === null ? [] : [b];
  if (maxLength !== undefined && truncation !== "do_not_truncate") {
    const budget = maxLength - nAdded;
    const total = a.ids.length + (b?.ids.length ?? 0);
    if (total > budget) {
      const toRemove = total - budget;
      const cut = (seq: Pieces, keep: number, name: string): Pieces[] =>
        truncateSequence(tok.name, seq, keep, stride, name, maxLength, nAdded);
      if (truncation === "longest_first") {
        if (b === null) {
          aParts = cut(a, budget, "text A");
        } else {
          // Hugging Face's rule: the shorter text keeps what it can up to half the budget.
          let n1 = a.ids.length;
          let n2 = b.ids.length;
          const swap = n1 > n2;
          if (swap) [n1, n2] = [n2, n1];
          n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
          if (n1 + n2 > budget) {
            n1 = Math.floor(budget / 2);
            n2 = n1 + (budget % 2);
          }
          if (swap) [n1, n2] = [n2, n1];
          aParts = cut(a, n1, "text A");
          bParts = cut(b, n2, "text B");
        }
      } else {
        const second = truncation === "only_second";
        if (second && b === null) {
          throw new Error(
            `${tok.name}.${what}: truncation "only_second" cuts text B, but only one text was given. ` +
              'Pass the second text, or use "longest_first" or "only_first".',
          );
        }
        const target = second ? (b as Pieces) : a;
        if (target.ids.length <= toRemove) {
          throw new Error(
            `${tok.name}.${what}: truncation ${JSON.stringify(truncation)} must remove ${toRemove} tokens to fit maxLength ` +
              `${maxLength}, but text ${second ? "B" : "A"} has only ${target.ids.length} (and must keep at least one). ` +
              'Use "longest_first", the other only_* strategy, or a larger maxLength.',
          );
        }
        const parts = cut(target, target.ids.length - toRemove, second ? "text B" : "text A");
        if (second) bParts = parts;
        else aParts = parts;
      }
    }
  }

  // The main window, then Hugging Face's order of overflowing ones: each later A window with the
  // first B window and then with each later B window, then the first A window with each later B window.
  const combos: [Pieces, Pieces | null][] = [];
  const firstB = bParts[0] ?? null;
  combos.push([aParts[0] as Pieces, firstB]);
  for (const ai of aParts.slice(1)) {
    combos.push([ai, firstB]);
    for (const bj of bParts.slice(1)) combos.push([ai, bj]);
  }
  for (const bj of bParts.slice(1)) combos.push([aParts[0] as Pieces, bj]);

  const padTo = padding === "max_length" ? (maxLength as number) : 0;
  const encodings = combos.map(([x, y]) => assemble(tok, x, y, addSpecial, padTo));
  const main = encodings[0] as BertEncoding;
  if (options.returnOverflowing) main.overflowing = encodings.slice(1);
  return main;
}

/** The windows of one sequence cut to `keep` tokens: the kept one first, then the overflowing ones. */
function truncateSequence(
  tokName: string,
  seq: Pieces,
  keep: number,
  stride: number,
  name: string,
  maxLength: number,
  nAdded: number,
): Pieces[] {
  const n = seq.ids.length;
  if (keep >= n) return [seq];
  if (keep === 0) return [{ ids: [], offsets: [] }, seq];
  if (stride >= keep) {
    throw new Error(
      `${tokName}.encodePair: stride ${stride} must be smaller than the ${keep} tokens of ${name} that fit in maxLength ` +
        `${maxLength} (after ${nAdded} special tokens${name === "text B" ? " and text A" : ""}); lower the stride or raise maxLength.`,
    );
  }
  const parts: Pieces[] = [];
  const step = keep - stride;
  for (let start = 0; ; start += step) {
    const stop = Math.min(start + keep, n);
    parts.push({ ids: seq.ids.slice(start, stop), offsets: seq.offsets.slice(start, stop) });
    if (stop === n) break;
  }
  return parts;
}

function assemble(tok: PairEncoder, a: Pieces, b: Pieces | null, addSpecial: boolean, padTo: number): BertEncoding {
  const enc: BertEncoding = { inputIds: [], tokenTypeIds: [], attentionMask: [], offsets: [], sequenceIds: [] };
  const special = (id: number, type: number): void => {
    enc.inputIds.push(id);
    enc.tokenTypeIds.push(type);
    enc.attentionMask.push(1);
    enc.offsets.push([0, 0]);
    enc.sequenceIds.push(null);
  };
  const sequence = (seq: Pieces, type: 0 | 1): void => {
    for (let i = 0; i < seq.ids.length; i++) {
      enc.inputIds.push(seq.ids[i] as number);
      enc.tokenTypeIds.push(type);
      enc.attentionMask.push(1);
      const [s, e] = seq.offsets[i] as [number, number];
      enc.offsets.push([s, e]);
      enc.sequenceIds.push(type);
    }
  };
  const cls = addSpecial ? tok.specialId("cls") : -1;
  const sep = addSpecial ? tok.specialId("sep") : -1;
  if (addSpecial) special(cls, 0);
  sequence(a, 0);
  if (addSpecial) special(sep, 0);
  if (b !== null) {
    sequence(b, 1);
    if (addSpecial) special(sep, 1);
  }
  if (enc.inputIds.length < padTo) {
    const pad = tok.specialId("pad");
    while (enc.inputIds.length < padTo) {
      enc.inputIds.push(pad);
      enc.tokenTypeIds.push(0);
      enc.attentionMask.push(0);
      enc.offsets.push([0, 0]);
      enc.sequenceIds.push(null);
    }
  }
  return enc;
}
