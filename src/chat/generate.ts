// One assistant reply: render the conversation with the generation prompt, keep it inside the context,
// sample tokens until an end-of-turn token (ChatML's <|im_end|>) or the token limit, and stream the
// text as it comes.

import { type GenerateOptions, generateIds } from "../generate/index.js";
import type { LanguageModel } from "../models/causal.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { fitToContext } from "./context.js";
import { ChatError, type ChatMessage } from "./messages.js";
import { type ChatTemplateOptions, endOfTurnIds, IM_START } from "./template.js";
import { encodeChat } from "./tokenize.js";

export interface ChatReplyOptions
  extends Omit<GenerateOptions, "stop" | "eosTokenId">,
    Omit<ChatTemplateOptions, "tokenizer" | "addGenerationPrompt"> {
  /** Receives each new piece of the answer as soon as it is whole text. */
  onText?: (piece: string) => void;
  /** Stops the answer after the current token (Ctrl-C in `moxing chat`); finishReason "abort". */
  signal?: AbortSignal;
}

export interface ChatReply {
  text: string;
  /** "stop": the model ended its turn; "length": maxNewTokens ran out; "abort": the signal fired. */
  finishReason: "stop" | "length" | "abort";
  promptTokens: number;
  completionTokens: number;
  /** Messages dropped from the start of the conversation to fit the context. */
  droppedMessages: number;
}

/** What generating an answer to `messages` starts from: the prompt's ids (the conversation cut to fit
 *  the context with room for the answer, rendered with the generation prompt), the ids that end the
 *  turn, how many messages were dropped, and how long the answer may be (maxNewTokens, or less so that
 *  it never pushes the conversation out of the context). Shared by chatReply and the server. */
export function chatPrompt(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: Omit<ChatTemplateOptions, "tokenizer" | "addGenerationPrompt"> & { maxNewTokens: number },
): { prompt: number[]; stopIds: Set<number>; dropped: number; maxNewTokens: number } {
  const stopIds = new Set(endOfTurnIds(tokenizer));
  if (stopIds.size === 0) {
    throw new ChatError(
      "the model's tokenizer has no end-of-turn token, so an answer could never end; use a chat model (one trained by " +
        "`moxing sft`) or call useChatML(tokenizer) before training",
    );
  }
  // A model that opens a new turn has finished its own.
  const imStart = tokenizer.specialTokens.get(IM_START);
  if (imStart !== undefined) stopIds.add(imStart);
  const maxNewTokens = opts.maxNewTokens;
  const block = model.blockSize;
  // Leave room for the answer (up to half the context), dropping old turns for it; a newest turn
  // too long for that may still use the whole context, the answer then limited to what is left.
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
  // The answer never pushes the conversation out of the context (generateIds would slide it).
  const limit = Math.min(maxNewTokens, block - prompt.length);
  return { prompt, stopIds, dropped: fitted.dropped, maxNewTokens: limit };
}

/** The answer's ids as text: each piece goes to onText as soon as it is whole text (a byte-level
 *  token can end inside a multi-byte character: the rest of it is waited for). */
class AnswerText {
  readonly ids: number[] = [];
  private emitted = "";

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly onText?: (piece: string) => void,
  ) {}

  push(id: number): void {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids);
    if (!text.endsWith("\uFFFD") && text.length > this.emitted.length) {
      this.onText?.(text.slice(this.emitted.length));
      this.emitted = text;
    }
  }

  /** The whole answer; what was held back (a cut character) is emitted now. */
  finish(): string {
    const text = this.tokenizer.decode(this.ids);
    if (text.length > this.emitted.length && text.startsWith(this.emitted)) this.onText?.(text.slice(this.emitted.length));
    return text;
  }
}

/** The reply token by token: yields after each token of the answer (before checking opts.signal)
 *  and returns the reply. chatReply runs it straight through; streamChatReply (stream.ts) lets the
 *  event loop run at each yield, so a Ctrl-C can stop the answer. */
export function* replySteps(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: ChatReplyOptions = {},
): Generator<void, ChatReply, void> {
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
    yield;
    if (opts.signal?.aborted) {
      finishReason = "abort";
      break;
    }
  }
  const text = answer.finish();
  return { text, finishReason, promptTokens: prompt.length, completionTokens: answer.ids.length, droppedMessages: dropped };
}

/** Generate the assistant's next message for `messages`. */
export function chatReply(
  model: LanguageModel,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  opts: ChatReplyOptions = {},
): ChatReply {
  const steps = replySteps(model, tokenizer, messages, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}
