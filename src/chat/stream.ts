// chatReply for interactive programs: the same answer, token for token, but the event loop runs between
// tokens, so a Ctrl-C (a keypress in a terminal, or SIGINT) can stop the answer while it streams.
// chatReply's loop is synchronous: no handler could run until it returned.

import { generateIds } from "../generate/index.js";
import type { LanguageModel } from "../models/causal.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { fitToContext } from "./context.js";
import type { ChatReply, ChatReplyOptions } from "./generate.js";
import { ChatError, type ChatMessage } from "./messages.js";
import { endOfTurnIds, IM_START } from "./template.js";
import { encodeChat } from "./tokenize.js";

/** chatReply (src/chat/generate.ts) that yields to the event loop after every token; opts.signal stops it. */
export async function streamChatReply(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: ChatReplyOptions = {},
): Promise<ChatReply> {
  const stopIds = new Set(endOfTurnIds(tokenizer));
  if (stopIds.size === 0) {
    throw new ChatError(
      "the model's tokenizer has no end-of-turn token, so it cannot hold a conversation; fine-tune it with `moxing sft` first",
    );
  }
  const imStart = tokenizer.specialTokens.get(IM_START);
  if (imStart !== undefined) stopIds.add(imStart);
  const maxNewTokens = opts.maxNewTokens ?? 200;
  const block = model.blockSize;
  // As chatReply: room for the answer (up to half the context), a long newest turn may use all of it.
  const budget = Math.max(block - maxNewTokens, Math.ceil(block / 2));
  const templateOpts = { chatTemplate: opts.chatTemplate, templateKwargs: opts.templateKwargs };
  let fitted: ReturnType<typeof fitToContext>;
  try {
    fitted = fitToContext(tokenizer, messages, budget, templateOpts);
  } catch (e) {
    if (!(e instanceof ChatError) || budget >= block - 1) throw e;
    fitted = fitToContext(tokenizer, messages, block - 1, templateOpts);
  }
  const prompt = encodeChat(tokenizer, fitted.messages, { ...templateOpts, addGenerationPrompt: true }).ids;
  const limit = Math.min(maxNewTokens, block - prompt.length);

  const out: number[] = [];
  let emitted = "";
  let finishReason: ChatReply["finishReason"] = "length";
  for (const id of generateIds(model, prompt, { ...opts, maxNewTokens: limit })) {
    if (stopIds.has(id)) {
      finishReason = "stop";
      break;
    }
    out.push(id);
    const text = tokenizer.decode(out);
    if (!text.endsWith("\uFFFD") && text.length > emitted.length) {
      opts.onText?.(text.slice(emitted.length));
      emitted = text;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (opts.signal?.aborted) {
      finishReason = "abort";
      break;
    }
  }
  const text = tokenizer.decode(out);
  if (text.length > emitted.length && text.startsWith(emitted)) opts.onText?.(text.slice(emitted.length));
  return { text, finishReason, promptTokens: prompt.length, completionTokens: out.length, droppedMessages: fitted.dropped };
}
