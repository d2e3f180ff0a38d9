// The models a server holds: each --model path loaded once, with its id (what requests name in
// "model"), its tokenizer, and for a GPT the batching scheduler that decodes its requests.

import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { endOfTurnIds } from "../chat/template.js";
import { loadBert } from "../io/bert.js";
import { loadModelFrom } from "../io/model-files.js";
import type { Bert } from "../models/bert.js";
import type { GPT } from "../models/gpt.js";
import type { LoraModel } from "../nn/lora.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { TokenTrie, vocabBytes } from "./json-schema.js";
import { Scheduler, type SchedulerOptions } from "./scheduler.js";

interface Common {
  id: string;
  path: string;
  /** Unix seconds when it was loaded (the API's `created`). */
  created: number;
}
export interface ServedGPT extends Common {
  kind: "gpt";
  model: GPT;
  tokenizer: Tokenizer;
  scheduler: Scheduler;
  /** Has an end-of-turn token, so /v1/chat/completions can answer. */
  chat: boolean;
  /** The LoRA adapter "learn now" attached last, if any. */
  adapter: { lora: LoraModel; dir: string } | null;
  trie(): TokenTrie;
}
export interface ServedBert extends Common {
  kind: "bert";
  model: Bert;
  tokenizer: Tokenizer;
}
export type ServedModel = ServedGPT | ServedBert;

/** A BERT directory (config.json says model_type "bert"); everything else loads as a GPT. */
function isBertDir(path: string): boolean {
  const cfg = join(path, "config.json");
  if (!existsSync(cfg) || !statSync(path).isDirectory()) return false;
  try {
    return (JSON.parse(readFileSync(cfg, "utf8")) as { model_type?: unknown }).model_type === "bert";
  } catch {
    return false; // the GPT loader reports a damaged config.json with its own clear error
  }
}

export function loadServedModel(path: string, id: string, opts: SchedulerOptions = {}): ServedModel {
  const created = Math.floor(Date.now() / 1000);
  if (isBertDir(path)) {
    const { model, tokenizer } = loadBert(path, { task: "feature-extraction" });
    return { kind: "bert", id, path, created, model, tokenizer };
  }
  const { model, tokenizer } = loadModelFrom(path);
  model.eval();
  let trie: TokenTrie | null = null;
  return {
    kind: "gpt",
    id,
    path,
    created,
    model,
    tokenizer,
    scheduler: new Scheduler(model, tokenizer, opts),
    chat: endOfTurnIds(tokenizer).length > 0,
    adapter: null,
    trie() {
      trie ??= new TokenTrie(vocabBytes(tokenizer));
      return trie;
    },
  };
}

/** Ids for model paths: the directory or file name without its extension, made unique. */
export function modelIds(paths: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return paths.map((p) => {
    const name = basename(p.replace(/[/\\]+$/, ""));
    const ext = extname(name).toLowerCase();
    const base = (ext === ".gguf" || ext === ".safetensors" ? name.slice(0, -ext.length) : name) || "model";
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}-${n + 1}`;
  });
}
