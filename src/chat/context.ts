// Keeping a conversation inside the model's context: the system turn stays, the oldest turns go.
//
// A turn is a user message and the assistant messages that answer it. When the rendered conversation
// (with the generation prompt) has more tokens than the budget, whole turns are dropped from the
// oldest on, so the model never sees half a question or an answer without its question. The leading
// system message(s) and the newest turn are never dropped; if they alone do not fit, that is an error
// the caller must handle (a shorter system prompt or message, or a model with a longer context).

import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { ChatError, type ChatMessage } from "./messages.js";
import type { ChatTemplateOptions } from "./template.js";
import { encodeChat } from "./tokenize.js";

export interface FittedConversation {
  messages: ChatMessage[];
  /** How many messages were dropped from the start (after the system turn). */
  dropped: number;
  /** Tokens of the kept conversation, as counted. */
  tokens: number;
}

/**
 * The longest suffix of whole turns of `messages` that, with the leading system messages, counts at
 * most `maxTokens` by `countTokens`.
 */
export function fitConversation(
  messages: readonly ChatMessage[],
  maxTokens: number,
  countTokens: (messages: readonly ChatMessage[]) => number,
): FittedConversation {
  if (!Number.isInteger(maxTokens) || maxTokens < 1)
    throw new ChatError(`fitConversation: maxTokens must be a positive integer (got ${maxTokens})`);
  let nSystem = 0;
  while (nSystem < messages.length && messages[nSystem]?.role === "system") nSystem++;
  const system = messages.slice(0, nSystem);
  const rest = messages.slice(nSystem);
  // Turn starts: each user message (and the very first non-system message, whatever its role).
  const starts = rest.flatMap((m, i) => (i === 0 || m.role === "user" ? [i] : []));
  for (let t = 0; t < starts.length; t++) {
    const kept = [...system, ...rest.slice(starts[t] as number)];
    const tokens = countTokens(kept);
    if (tokens <= maxTokens) return { messages: kept, dropped: starts[t] as number, tokens };
  }
  const last = [...system, ...rest.slice(starts[starts.length - 1] ?? 0)];
  throw new ChatError(
    `the conversation does not fit the context: the system turn and the newest turn alone take ${countTokens(last)} tokens, ` +
      `and ${maxTokens} are available; shorten the system prompt or the message, or use a model with a longer context (block_size)`,
  );
}

/** fitConversation counting the tokens of the rendered conversation with the generation prompt. */
export function fitToContext(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  maxTokens: number,
  opts: Omit<ChatTemplateOptions, "tokenizer" | "addGenerationPrompt"> = {},
): FittedConversation {
  return fitConversation(messages, maxTokens, (m) => encodeChat(tokenizer, m, { ...opts, addGenerationPrompt: true }).ids.length);
}
