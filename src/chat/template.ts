// Chat templates: a conversation rendered to the one string a model is trained on and prompted with.
//
// A template is a Jinja string kept in tokenizer_config.json's `chat_template`, as Hugging Face keeps
// it, rendered with @huggingface/jinja (what transformers.js uses). The variables are the ones
// transformers' apply_chat_template passes: `messages`, `tools` and `documents` (none here),
// `add_generation_prompt`, and the tokenizer's special-token strings (`bos_token`, `eos_token`, ...,
// `additional_special_tokens`), plus any extra keyword a template reads (Qwen3's `enable_thinking`).
// The engine, like transformers' environment, has trim_blocks and lstrip_blocks on, `raise_exception`,
// a `tojson` that does not escape HTML, and `strftime_now`. test/chat/template.test.ts checks the
// renders against jinja2 set up as transformers sets it up (tools/chat_templates.py).
//
// The default is ChatML (`<|im_start|>role\n...<|im_end|>\n`), the template transformers used as its
// default and that Qwen's models use; `useChatML` adds its two special tokens to a tokenizer.

import { Template } from "@huggingface/jinja";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { ChatError, type ChatMessage, validateMessages } from "./messages.js";

/** transformers' ChatML default template. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";

/** End-of-turn tokens of the common templates (ChatML, Llama 3, Phi-3, Gemma), then end-of-text ones. */
const KNOWN_END_OF_TURN = [IM_END, "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "</s>"];

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, so the model's continuation is the answer. */
  addGenerationPrompt?: boolean;
  /** A Jinja template; default: the tokenizer's chat template, else ChatML. */
  chatTemplate?: string;
  /** Supplies the chat template and the special-token variables (bos_token, eos_token, ...). */
  tokenizer?: Tokenizer;
  /** More template variables (e.g. { enable_thinking: false } for Qwen3); they override the tokenizer's. */
  templateKwargs?: Record<string, unknown>;
}

// Parsing a template costs far more than rendering it; chat renders the same few templates again and again.
const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (t === undefined) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new ChatError(`chat template: cannot parse it (${(e as Error).message}); check its Jinja syntax`);
    }
    if (compiled.size >= 16) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/** The template a render uses: the option, else the tokenizer's, else ChatML. */
export function chatTemplateOf(opts: Pick<ChatTemplateOptions, "chatTemplate" | "tokenizer"> = {}): string {
  return opts.chatTemplate ?? opts.tokenizer?.config?.chat_template ?? CHATML_TEMPLATE;
}

/** The special-token variables apply_chat_template passes (tokenizer.special_tokens_map). */
export function specialTokensMap(tokenizer: Tokenizer | undefined): Record<string, unknown> {
  if (!tokenizer) return {};
  const config = tokenizer.config ?? {};
  const out: Record<string, unknown> = {};
  const roles = new Set<string>();
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) {
    const v = config[k];
    if (v !== undefined) {
      out[k] = v;
      roles.add(v);
    }
  }
  const additional = [...tokenizer.specialTokens.keys()].filter((t) => !roles.has(t));
  if (additional.length) out.additional_special_tokens = additional;
  return out;
}

/**
 * Render a conversation with a chat template, as Hugging Face's `tokenizer.apply_chat_template(messages,
 * tokenize=False, add_generation_prompt=...)` renders it.
 */
export function applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  validateMessages(messages);
  return renderUnchecked(messages, opts);
}

/** applyChatTemplate without validating the messages (callers that already did). */
export function renderUnchecked(messages: readonly ChatMessage[], opts: ChatTemplateOptions): string {
  const template = compile(chatTemplateOf(opts));
  try {
    return template.render({
      ...specialTokensMap(opts.tokenizer),
      ...(opts.templateKwargs ?? {}),
      messages,
      tools: null,
      documents: null,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    });
  } catch (e) {
    // raise_exception(...) in a template ("Conversation roles must alternate ...") lands here too.
    throw new ChatError(`chat template: ${(e as Error).message}`);
  }
}

/**
 * Make `tokenizer` a ChatML tokenizer: add `<|im_start|>` and `<|im_end|>` as special tokens (new
 * ids after the vocabulary, as Hugging Face's add_special_tokens does), make `<|im_end|>` its EOS
 * (generation stops there) and ChatML its chat template, unless it has a template already. Returns
 * the two ids. A model whose vocabulary is smaller than the tokenizer's new size needs its embedding
 * resized (see resizeTokenEmbeddings in src/chat/model.ts).
 */
export function useChatML(tokenizer: Tokenizer): { imStart: number; imEnd: number } {
  const [imStart, imEnd] = tokenizer.addSpecialTokens([IM_START, IM_END]) as [number, number];
  const config = tokenizer.config ?? {};
  tokenizer.config = { ...config, chat_template: config.chat_template ?? CHATML_TEMPLATE, eos_token: IM_END };
  return { imStart, imEnd };
}

/**
 * The special tokens that end an assistant turn for this tokenizer: its EOS (from tokenizer_config.json)
 * first, then the end-of-turn and end-of-text tokens of the common templates that it has.
 */
export function endOfTurnTokens(tokenizer: Tokenizer): string[] {
  const eos = tokenizer.config?.eos_token;
  const out = eos !== undefined && tokenizer.specialTokens.has(eos) ? [eos] : [];
  for (const t of KNOWN_END_OF_TURN) if (tokenizer.specialTokens.has(t) && !out.includes(t)) out.push(t);
  return out;
}

/** The ids of endOfTurnTokens: generation stops at any of them. */
export function endOfTurnIds(tokenizer: Tokenizer): number[] {
  return endOfTurnTokens(tokenizer).map((t) => tokenizer.specialTokens.get(t) as number);
}
