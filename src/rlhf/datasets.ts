// TRL's dataset formats, read from JSONL (one JSON object per line), and turned into token ids with a
// loss mask. The formats (https://huggingface.co/docs/trl/dataset_formats):
//
//   language modelling   {"text": "..."}                      {"messages": [{role, content}, ...]}
//   prompt-completion    {"prompt": "...", "completion": "..."} {"prompt": [...], "completion": [...]}
//   preference           {"prompt", "chosen", "rejected"} with strings, or with message lists;
//                        conversational files may leave the prompt inside chosen and rejected (TRL's
//                        "implicit prompt"): it is their common leading messages
//
// Plain (string) examples are text: the completion is followed by the tokenizer's EOS so the model
// learns to stop. Conversational ones are rendered with the chat template; the loss covers the
// assistant turns (all of them for "messages", the completion's for prompt-completion and preference).
// Every bad line is an error naming the file and line; a file mixing formats is refused.

import { ChatError, type ChatMessage, validateMessages } from "../chat/messages.js";
import { endOfTurnIds } from "../chat/template.js";
import { encodeChat } from "../chat/tokenize.js";
import { FILE_LIMITS, jsonSyntaxError, readTextFileChecked } from "../io/files.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";

export type SFTRecord =
  | { format: "text"; text: string }
  | { format: "messages"; messages: ChatMessage[] }
  | { format: "prompt-completion"; prompt: string; completion: string }
  | { format: "prompt-completion-chat"; prompt: ChatMessage[]; completion: ChatMessage[] };

export type PreferenceRecord =
  | { format: "preference"; prompt: string; chosen: string; rejected: string }
  | { format: "preference-chat"; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

/** A dataset line that is not what the format needs; the message starts with "FILE:LINE:". */
export class DatasetError extends Error {}

/** The JSON objects of a JSONL text, each with its 1-based line number; blank lines are skipped. */
export function parseJsonl(text: string, source: string): { line: number; value: Record<string, unknown> }[] {
  const out: { line: number; value: Record<string, unknown> }[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // Where, not what: the message never quotes the line.
      const { offset, problem } = jsonSyntaxError(line);
      throw new DatasetError(`${source}:${i + 1}: not valid JSON: ${problem} at column ${offset + 1}; each line must be one JSON object`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new DatasetError(`${source}:${i + 1}: expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`);
    }
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  });
  if (out.length === 0) throw new DatasetError(`${source}: no examples (the file is empty)`);
  return out;
}

function readText(path: string): string {
  return readTextFileChecked(path, { maxBytes: FILE_LIMITS.text, Err: DatasetError });
}

function messagesAt(value: unknown, where: string): ChatMessage[] {
  try {
    const m = validateMessages(value, where);
    if (m.length === 0) throw new ChatError(`${where}: the message list is empty`);
    return m.map((x) => ({ role: x.role, content: x.content }));
  } catch (e) {
    if (e instanceof ChatError) throw new DatasetError(e.message);
    throw e;
  }
}

/** One SFT record from a parsed line. */
export function sftRecord(o: Record<string, unknown>, where: string): SFTRecord {
  if ("messages" in o) return { format: "messages", messages: messagesAt(o.messages, `${where}: messages`) };
  if ("prompt" in o || "completion" in o) {
    const { prompt, completion } = o;
    if (typeof prompt === "string" && typeof completion === "string") return { format: "prompt-completion", prompt, completion };
    if (Array.isArray(prompt) && Array.isArray(completion)) {
      const c = messagesAt(completion, `${where}: completion`);
      if (c.some((m) => m.role !== "assistant"))
        throw new DatasetError(`${where}: completion: every completion message must be the assistant's`);
      return { format: "prompt-completion-chat", prompt: messagesAt(prompt, `${where}: prompt`), completion: c };
    }
    throw new DatasetError(`${where}: "prompt" and "completion" must both be strings or both be message lists`);
  }
  if (typeof o.text === "string") return { format: "text", text: o.text };
  throw new DatasetError(
    `${where}: not a TRL SFT example; expected {"messages": [...]}, {"prompt", "completion"} or {"text"} (keys here: ${Object.keys(o).join(", ") || "none"})`,
  );
}

/** One preference record from a parsed line. */
export function preferenceRecord(o: Record<string, unknown>, where: string): PreferenceRecord {
  const { prompt, chosen, rejected } = o;
  if (chosen === undefined || rejected === undefined) {
    throw new DatasetError(
      `${where}: a preference example needs "chosen" and "rejected" (keys here: ${Object.keys(o).join(", ") || "none"})`,
    );
  }
  if (typeof chosen === "string" && typeof rejected === "string") {
    if (typeof prompt !== "string") throw new DatasetError(`${where}: "prompt" must be a string when "chosen" and "rejected" are strings`);
    return { format: "preference", prompt, chosen, rejected };
  }
  if (!Array.isArray(chosen) || !Array.isArray(rejected))
    throw new DatasetError(`${where}: "chosen" and "rejected" must both be strings or both be message lists`);
  let c = messagesAt(chosen, `${where}: chosen`);
  let r = messagesAt(rejected, `${where}: rejected`);
  let p: ChatMessage[];
  if (prompt === undefined) {
    // Implicit prompt: the leading messages chosen and rejected share.
    let n = 0;
    while (n < c.length - 1 && n < r.length - 1 && c[n]?.role === r[n]?.role && c[n]?.content === r[n]?.content) n++;
    if (n === 0) throw new DatasetError(`${where}: no "prompt", and "chosen" and "rejected" share no leading messages to take it from`);
    p = c.slice(0, n);
    c = c.slice(n);
    r = r.slice(n);
  } else {
    p = messagesAt(prompt, `${where}: prompt`);
  }
  for (const [name, list] of [
    ["chosen", c],
    ["rejected", r],
  ] as const) {
    if (list.some((m) => m.role !== "assistant"))
      throw new DatasetError(`${where}: ${name}: after the prompt, every message must be the assistant's`);
  }
  return { format: "preference-chat", prompt: p, chosen: c, rejected: r };
}

function readAll<R extends { format: string }>(path: string, parse: (o: Record<string, unknown>, where: string) => R): R[] {
  const out: R[] = [];
  for (const { line, value } of parseJsonl(readText(path), path)) {
    const rec = parse(value, `${path}:${line}`);
    const first = out[0];
    if (first && first.format !== rec.format) {
      throw new DatasetError(
        `${path}:${line}: a ${rec.format} example in a file whose first example is ${first.format}; use one format per file`,
      );
    }
    out.push(rec);
  }
  return out;
}

/** Read an SFT dataset (TRL JSONL). */
export function readSFTDataset(path: string): SFTRecord[] {
  return readAll(path, sftRecord);
}

/** Read a preference dataset (TRL JSONL). */
export function readPreferenceDataset(path: string): PreferenceRecord[] {
  return readAll(path, preferenceRecord);
}

// ---- to token ids --------------------------------------------------------------------------------------

export interface EncodedExample {
  ids: number[];
  /** 1 for tokens that count in the loss (the completion), 0 for context. */
  mask: number[];
}

/** The token appended to plain completions: the chat EOS, else <|endoftext|>; none when the tokenizer has neither. */
function eosId(tokenizer: Tokenizer): number | undefined {
  return endOfTurnIds(tokenizer)[0];
}

function plainPair(tokenizer: Tokenizer, prompt: string, completion: string): EncodedExample {
  const p = tokenizer.encode(prompt, { disallowedSpecial: [] });
  const c = tokenizer.encode(completion, { disallowedSpecial: [] });
  const eos = eosId(tokenizer);
  if (eos !== undefined) c.push(eos);
  return { ids: [...p, ...c], mask: [...p.map(() => 0), ...c.map(() => 1)] };
}

function chatPair(tokenizer: Tokenizer, prompt: readonly ChatMessage[], completion: readonly ChatMessage[]): EncodedExample {
  const e = encodeChat(tokenizer, [...prompt, ...completion], { assistantMask: true, maskFrom: prompt.length });
  return { ids: e.ids, mask: e.assistantMask };
}

/** Truncate to maxLength keeping the start (TRL's SFT default, truncation_mode "keep_start"). */
function keepStart(e: EncodedExample, maxLength: number): EncodedExample {
  return e.ids.length <= maxLength ? e : { ids: e.ids.slice(0, maxLength), mask: e.mask.slice(0, maxLength) };
}

/** Token ids and loss mask of an SFT record, at most maxLength tokens. */
export function encodeSFT(tokenizer: Tokenizer, rec: SFTRecord, maxLength = Number.POSITIVE_INFINITY): EncodedExample {
  switch (rec.format) {
    case "text": {
      const ids = tokenizer.encode(rec.text, { disallowedSpecial: [] });
      const eos = eosId(tokenizer);
      if (eos !== undefined) ids.push(eos);
      return keepStart({ ids, mask: ids.map(() => 1) }, maxLength);
    }
    case "messages": {
      const e = encodeChat(tokenizer, rec.messages, { assistantMask: true });
      return keepStart({ ids: e.ids, mask: e.assistantMask }, maxLength);
    }
    case "prompt-completion":
      return keepStart(plainPair(tokenizer, rec.prompt, rec.completion), maxLength);
    case "prompt-completion-chat":
      return keepStart(chatPair(tokenizer, rec.prompt, rec.completion), maxLength);
  }
}

/**
 * A prompt + completion that is too long loses prompt tokens from the left (the completion is what
 * is compared), then completion tokens from the end if it alone is too long.
 */
function keepCompletion(e: EncodedExample, maxLength: number): EncodedExample {
  if (e.ids.length <= maxLength) return e;
  const first = e.mask.indexOf(1);
  const cut = Math.min(e.ids.length - maxLength, Math.max(first, 0));
  const ids = e.ids.slice(cut, cut + maxLength);
  return { ids, mask: e.mask.slice(cut, cut + maxLength) };
}

/** Chosen and rejected sequences of a preference record, each with its completion mask. */
export function encodePreference(
  tokenizer: Tokenizer,
  rec: PreferenceRecord,
  maxLength = Number.POSITIVE_INFINITY,
): { chosen: EncodedExample; rejected: EncodedExample } {
  const pair = (completion: string | ChatMessage[]) =>
    keepCompletion(
      rec.format === "preference"
        ? plainPair(tokenizer, rec.prompt, completion as string)
        : chatPair(tokenizer, rec.prompt, completion as ChatMessage[]),
      maxLength,
    );
  return { chosen: pair(rec.chosen), rejected: pair(rec.rejected) };
}
