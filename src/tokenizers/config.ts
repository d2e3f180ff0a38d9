// tokenizer_config.json: what Hugging Face keeps beside tokenizer.json. The vocabulary and the special
// tokens themselves live in tokenizer.json (added_tokens); this file says which special token is BOS,
// EOS and padding, and carries the chat template (a Jinja string, see src/chat/template.ts).
//
// moxing writes it only for tokenizers that have such settings (a chat model's tokenizer), in the
// layout transformers writes: added_tokens_decoder (id -> AddedToken), additional_special_tokens, the
// role tokens as strings, chat_template. Reading takes transformers' variants too: role tokens as
// AddedToken objects ({ content, ... }), chat_template as a list of named templates (the "default" one
// is used), and a separate chat_template.jinja file (which newer transformers versions write instead).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { FILE_LIMITS, readJSONFile, readTextFileChecked } from "../io/files.js";
import { isRecord, type Tokenizer, type TokenizerConfig } from "./tokenizer.js";

export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

const ROLE_KEYS = ["bos_token", "eos_token", "pad_token", "unk_token"] as const;

/** The tokenizer_config.json object for `tokenizer`, or null when it has nothing to say beyond tokenizer.json. */
export function tokenizerConfigToJSON(tokenizer: Tokenizer): Record<string, unknown> | null {
  const config = tokenizer.config ?? {};
  if (config.chat_template === undefined && ROLE_KEYS.every((k) => config[k] === undefined)) return null;
  const roles = new Set(ROLE_KEYS.map((k) => config[k]).filter((t) => t !== undefined));
  const out: Record<string, unknown> = {
    added_tokens_decoder: Object.fromEntries(
      [...tokenizer.specialTokens].map(([content, id]) => [
        String(id),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
    additional_special_tokens: [...tokenizer.specialTokens.keys()].filter((t) => !roles.has(t)),
  };
  for (const k of ROLE_KEYS) out[k] = config[k] ?? null;
  if (config.chat_template !== undefined) out.chat_template = config.chat_template;
  out.clean_up_tokenization_spaces = false;
  // transformers picks the Python class by this name; moxing's byte-level BPE is GPT-2's. The char
  // tokenizer has no transformers counterpart, so it names none.
  if (tokenizer.type === "BPE") out.tokenizer_class = "GPT2Tokenizer";
  return out;
}

/**
 * Apply parsed tokenizer_config.json to `tokenizer`. Role tokens that are not special tokens of this
 * tokenizer are ignored (they could never be emitted); `where` names the file in errors.
 */
export function applyTokenizerConfig(tokenizer: Tokenizer, json: unknown, where = TOKENIZER_CONFIG_FILE): void {
  if (!isRecord(json)) throw new Error(`${where}: expected a JSON object`);
  const config: TokenizerConfig = { ...(tokenizer.config ?? {}) };
  for (const k of ROLE_KEYS) {
    const v = json[k];
    const content = typeof v === "string" ? v : isRecord(v) && typeof v.content === "string" ? v.content : undefined;
    if (content !== undefined && tokenizer.specialTokens.has(content)) config[k] = content;
  }
  const template = chatTemplateOf(json.chat_template, where);
  if (template !== undefined) config.chat_template = template;
  tokenizer.config = config;
}

function chatTemplateOf(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    // transformers' named templates: [{ name: "default", template }, { name: "tool_use", template }]
    const named = value.find((t) => isRecord(t) && t.name === "default");
    if (isRecord(named) && typeof named.template === "string") return named.template;
    throw new Error(`${where}: chat_template is a list without a { "name": "default", "template": "..." } entry`);
  }
  throw new Error(`${where}: chat_template must be a string (a Jinja template), got ${typeof value}`);
}

/**
 * Read `dir`'s tokenizer_config.json and chat_template.jinja, when present, into `tokenizer`.
 * `fileOf(name)` finds a file of the directory (null: absent); checkpoint readers pass theirs, which
 * also looks into an interrupted commit.
 */
export function readTokenizerConfig(
  dir: string,
  tokenizer: Tokenizer,
  fileOf: (name: string) => string | null = (name) => (existsSync(join(dir, name)) ? join(dir, name) : null),
): void {
  const path = fileOf(TOKENIZER_CONFIG_FILE);
  if (path) {
    const json = readJSONFile(path, { maxBytes: FILE_LIMITS.tokenizer });
    applyTokenizerConfig(tokenizer, json, path);
  }
  const jinja = fileOf(CHAT_TEMPLATE_FILE);
  if (jinja)
    tokenizer.config = { ...(tokenizer.config ?? {}), chat_template: readTextFileChecked(jinja, { maxBytes: FILE_LIMITS.tokenizer }) };
}
