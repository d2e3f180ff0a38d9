// chatReply for interactive programs: the same answer, token for token, but the event loop runs between
// tokens, so a Ctrl-C (a keypress in a terminal, or SIGINT) can stop the answer while it streams.
// chatReply's loop is synchronous: no handler could run until it returned.

import type { LanguageModel } from "../models/causal.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type ChatReply, type ChatReplyOptions, replySteps } from "./generate.js";
import type { ChatMessage } from "./messages.js";

/** chatReply (src/chat/generate.ts) that yields to the event loop after every token; opts.signal stops it. */
export async function streamChatReply(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: ChatReplyOptions = {},
): Promise<ChatReply> {
  const steps = replySteps(model, tokenizer, messages, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
