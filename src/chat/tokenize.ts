// A conversation to token ids, with a mask of the tokens the assistant wrote (what SFT learns from).
//
// Two things make this more than encode(applyChatTemplate(...)):
//
// 1. Special tokens are trusted only where the template put them. A user who types "<|im_end|>" into
//    a message must not end the turn: message strings are rendered with each special-token string
//    replaced by a placeholder, and put back afterwards as ordinary text, so only the template's own
//    special tokens become special ids (transformers' sanitize_special_tokens does the same).
// 2. The assistant's tokens are located by rendering prefixes of the conversation: the conversation
//    up to assistant turn i with the generation prompt is the text before the turn; the turn ends at
//    the first end-of-turn token the template emits after it (included: the model must learn to
//    stop). This needs a template that renders a conversation's prefix as a prefix of the whole, as
//    ChatML does; where it does not (Qwen3 drops earlier turns' reasoning), encodeChat says so.
//    The text is encoded piece by piece at these boundaries, so every token is wholly inside or
//    wholly outside an assistant turn.

import { escapeRegExp, type Tokenizer } from "../tokenizers/tokenizer.js";
import { ChatError, type ChatMessage, validateMessages } from "./messages.js";
import { type ChatTemplateOptions, endOfTurnTokens, renderUnchecked } from "./template.js";

export interface EncodedChat {
  /** The rendered conversation. */
  text: string;
  ids: number[];
  /** 1 where the token belongs to an assistant turn (its content and the end-of-turn token), else 0. */
  assistantMask: number[];
}

export interface EncodeChatOptions extends Omit<ChatTemplateOptions, "tokenizer"> {
  /** Compute assistantMask (costs one render per assistant turn); all zeros without it. */
  assistantMask?: boolean;
  /** Mask only the assistant messages at this index or later (a prompt-completion pair: the
   *  completion's turns, not assistant turns inside the prompt). Default 0. */
  maskFrom?: number;
}

interface Span {
  start: number;
  end: number;
}

/** Render with user-supplied special-token text made harmless; returns the text and where that text is. */
class SanitizedRenderer {
  private readonly placeholders = new Map<string, string>();
  private readonly sanitized: ChatMessage[];
  private readonly pattern: RegExp | null;
  private readonly salt: string;

  constructor(
    messages: readonly ChatMessage[],
    specials: readonly string[],
    private readonly opts: ChatTemplateOptions,
  ) {
    this.pattern = specials.length ? alternation(specials) : null;
    // Private-use characters around a number: template filters (trim, upper, tojson) leave them alone.
    const all = JSON.stringify(messages);
    let salt = 0;
    while (all.includes(`\uE000${salt}:`)) salt++;
    this.salt = String(salt);
    this.sanitized = messages.map((m) => this.sanitize(m) as ChatMessage);
  }

  private sanitize(value: unknown): unknown {
    if (typeof value === "string") {
      if (!this.pattern) return value;
      return value.replace(this.pattern, (token) => {
        const key = `\uE000${this.salt}:${this.placeholders.size}\uE001`;
        this.placeholders.set(key, token);
        return key;
      });
    }
    if (Array.isArray(value)) return value.map((v) => this.sanitize(v));
    if (typeof value === "object" && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.sanitize(v)]));
    }
    return value;
  }

  /** Render messages[0, count) and put the user's text back; `untrusted` spans hold restored text. */
  render(count: number, addGenerationPrompt: boolean): { text: string; untrusted: Span[] } {
    const rendered = renderUnchecked(this.sanitized.slice(0, count), { ...this.opts, addGenerationPrompt });
    if (this.placeholders.size === 0) return { text: rendered, untrusted: [] };
    const untrusted: Span[] = [];
    let text = "";
    let last = 0;
    const re = new RegExp(`\uE000${this.salt}:\\d+\uE001`, "g");
    for (let m = re.exec(rendered); m !== null; m = re.exec(rendered)) {
      const original = this.placeholders.get(m[0]);
      if (original === undefined) continue;
      text += rendered.slice(last, m.index);
      untrusted.push({ start: text.length, end: text.length + original.length });
      text += original;
      last = m.index + m[0].length;
    }
    return { text: text + rendered.slice(last), untrusted };
  }

  /** Special tokens the template emitted (outside untrusted spans), in order. */
  trustedSpecials(text: string, untrusted: readonly Span[]): (Span & { token: string })[] {
    if (!this.pattern) return [];
    const out: (Span & { token: string })[] = [];
    const re = new RegExp(this.pattern.source, "g");
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const span = { start: m.index, end: m.index + m[0].length };
      if (!untrusted.some((u) => span.start < u.end && u.start < span.end)) out.push({ ...span, token: m[0] });
    }
    return out;
  }
}

/**
 * Render `messages` with the tokenizer's chat template (or `opts.chatTemplate`) and encode it: the
 * template's special tokens as their ids, all message text as ordinary text.
 */
export function encodeChat(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: EncodeChatOptions = {}): EncodedChat {
  validateMessages(messages);
  const templateOpts: ChatTemplateOptions = { ...opts, tokenizer };
  const r = new SanitizedRenderer(messages, [...tokenizer.specialTokens.keys()], templateOpts);
  const { text, untrusted } = r.render(messages.length, opts.addGenerationPrompt ?? false);
  const specials = r.trustedSpecials(text, untrusted);
  const assistant = opts.assistantMask ? assistantSpans(r, messages, text, specials, tokenizer, opts.maskFrom ?? 0) : [];

  // Cut points: special tokens and the edges of assistant spans.
  const ids: number[] = [];
  const mask: number[] = [];
  const cuts = new Set<number>([0, text.length]);
  for (const s of assistant) cuts.add(s.start).add(s.end);
  for (const s of specials) cuts.add(s.start).add(s.end);
  const sorted = [...cuts].sort((a, b) => a - b);
  const specialAt = new Map(specials.map((s) => [s.start, s]));
  for (let i = 0; i + 1 < sorted.length; i++) {
    const start = sorted[i] as number;
    const end = sorted[i + 1] as number;
    const inAssistant = assistant.some((s) => start >= s.start && end <= s.end) ? 1 : 0;
    const special = specialAt.get(start);
    const pieceIds =
      special && special.end === end
        ? [tokenizer.specialTokens.get(special.token) as number]
        : tokenizer.encode(text.slice(start, end), { disallowedSpecial: [] });
    for (const id of pieceIds) {
      ids.push(id);
      mask.push(inAssistant);
    }
  }
  return { text, ids, assistantMask: mask };
}

function assistantSpans(
  r: SanitizedRenderer,
  messages: readonly ChatMessage[],
  full: string,
  specials: readonly (Span & { token: string })[],
  tokenizer: Tokenizer,
  maskFrom: number,
): Span[] {
  const enders = new Set(endOfTurnTokens(tokenizer));
  if (enders.size === 0) {
    throw new ChatError(
      "encodeChat: the tokenizer has no end-of-turn token (e.g. <|im_end|>), so assistant turns cannot be delimited; " +
        "call useChatML(tokenizer) or set tokenizer.config.eos_token",
    );
  }
  const spans: Span[] = [];
  messages.forEach((m, i) => {
    if (m.role !== "assistant" || i < maskFrom) return;
    const before = r.render(i, true).text;
    const upTo = r.render(i + 1, false).text;
    const where = `encodeChat: assistant message ${i}`;
    if (!full.startsWith(before) || !upTo.startsWith(before)) {
      throw new ChatError(
        `${where}: the chat template renders the conversation before this turn (with the generation prompt) differently ` +
          "from the start of the whole conversation, so the assistant's tokens cannot be located; use a template that " +
          "renders turns independently, such as ChatML",
      );
    }
    const agree = commonPrefix(upTo, full);
    const end = specials.find((s) => s.start >= before.length && s.end <= agree && enders.has(s.token));
    if (!end) {
      throw new ChatError(
        `${where}: no end-of-turn token (${[...enders].join(", ")}) follows the turn where the conversation up to it and ` +
          "the whole conversation agree; the template may rewrite earlier turns (Qwen3 drops their reasoning)",
      );
    }
    spans.push({ start: before.length, end: end.end });
  });
  return spans;
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

// Longest first, so a token that extends another ("<|im|>x" vs "<|im|>") wins.
function alternation(tokens: readonly string[]): RegExp {
  const sorted = [...tokens].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegExp).join("|"), "g");
}
