// chatReply for interactive programs: the same answer, token for token, but the event loop runs between
// tokens, so a Ctrl-C (a keypress in a terminal, or SIGINT) can stop the answer while it streams.
// chatReply's loop is synchronous: no handler could run until it returned.

import { generateIds } from "../generate/index.js";
import type { LanguageModel } from "../models/causal.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { AnswerText, type ChatReply, type ChatReplyOptions, chatPrompt } from "./generate.js";
import type { ChatMessage } from "./messages.js";

/** chatReply (src/chat/generate.ts) that yields to the event loop after every token; opts.signal stops it. */
export async function streamChatReply(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: ChatReplyOptions = {},
): Promise<ChatReply> {
  const {
    prompt,
    stopIds,
    dropped,
    maxNewTokens: limit,
  } = chatPrompt(model, tokenizer, messages, { ...opts, maxNewTokens: opts.maxNewTokens ?? 200 });

  const answer = new AnswerText(tokenizer, opts.onText);
  let finishReason: ChatReply["finishReason"] = "length";
  for (const id of generateIds(model, prompt, { ...opts, maxNewTokens: limit })) {
    if (stopIds.has(id)) {
      finishReason = "stop";
      break;
    }
    answer.push(id);
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (opts.signal?.aborted) {
      finishReason = "abort";
      break;
    }
  }
  const text = answer.finish();
  return { text, finishReason, promptTokens: prompt.length, completionTokens: answer.ids.length, droppedMessages: dropped };
}
