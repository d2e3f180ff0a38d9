// What PPO and GRPO share: prompts, rollouts and their scores.
//
//   prompts     TRL's prompt-only format {"prompt": "..."} or {"prompt": [...messages]}; SFT and
//               preference files work too (their prompt, or a conversation without its last answer).
//               Every field of the line stays with the prompt for the reward function.
//   rollouts    completions sampled from the policy with the KV cache, many at once: prompts of the
//               same token length share one batched cache and advance together, one token per row
//               and step, each row stopping at an end-of-turn token (the token is kept: the model must
//               learn to stop) or at maxNewTokens
//   scores      a reward function written in TypeScript, or a reward model directory (`moxing reward`)
//   log-probs   of each completion token under a model, from logits divided by the sampling
//               temperature (as TRL's PPO and GRPO trainers compute them), and the exact per-token KL
//               between two models' next-token distributions

import { readFileSync } from "node:fs";
import { type ChatMessage, validateMessages } from "../chat/messages.js";
import { endOfTurnIds, IM_START } from "../chat/template.js";
import { encodeChat } from "../chat/tokenize.js";
import { type SamplingOptions, sampleNext } from "../generate/index.js";
import type { LanguageModel } from "../models/causal.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { MemoryArena, scoped } from "../tensor/memory.js";
import { exp, logSoftmax, mul, sub, sum } from "../tensor/ops.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { padBatch } from "./common.js";
import { DatasetError, type EncodedExample, parseJsonl, preferenceRecord, sftRecord } from "./datasets.js";
import { type Rows, sequenceLogprobs } from "./losses.js";
import { loadRewardModel } from "./reward.js";

// ---- prompts ---------------------------------------------------------------------------------------

export interface PromptRecord {
  /** Text (plain prompt) or a conversation that ends before the assistant's answer. */
  prompt: string | ChatMessage[];
  /** Every field of the dataset line (e.g. a reference answer), for reward functions. */
  fields: Record<string, unknown>;
}

/** One prompt from a parsed line: prompt-only, prompt-completion, preference, or a conversation. */
export function promptRecord(o: Record<string, unknown>, where: string): PromptRecord {
  if (typeof o.prompt === "string") return { prompt: o.prompt, fields: o };
  if (Array.isArray(o.prompt)) {
    const m = validateMessages(o.prompt, `${where}: prompt`).map((x) => ({ role: x.role, content: x.content }));
    if (m.length === 0) throw new DatasetError(`${where}: prompt: the message list is empty`);
    return { prompt: m, fields: o };
  }
  if ("chosen" in o) return { prompt: preferenceRecord(o, where).prompt, fields: o };
  if ("messages" in o) {
    const rec = sftRecord(o, where);
    if (rec.format !== "messages") throw new DatasetError(`${where}: expected a conversation`);
    const last = rec.messages.map((m) => m.role).lastIndexOf("assistant");
    const prompt = last < 0 ? rec.messages : rec.messages.slice(0, last);
    if (prompt.length === 0) throw new DatasetError(`${where}: the conversation has no message before its answer`);
    return { prompt, fields: o };
  }
  throw new DatasetError(
    `${where}: not a prompt; expected {"prompt": "..."} or {"prompt": [...messages]} (TRL's prompt-only format), a preference pair or {"messages"} (keys here: ${Object.keys(o).join(", ") || "none"})`,
  );
}

/** Read a prompt dataset (JSONL). */
export function readPromptDataset(path: string): PromptRecord[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DatasetError(code === "ENOENT" ? `${path}: file not found` : `${path}: cannot read (${code ?? (e as Error).message})`);
  }
  return parseJsonl(text, path).map(({ line, value }) => {
    try {
      return promptRecord(value, `${path}:${line}`);
    } catch (e) {
      if (e instanceof DatasetError) throw e;
      throw new DatasetError((e as Error).message);
    }
  });
}

/** The token ids a model continues from: a conversation with the generation prompt, or the text. */
export function encodePromptRecord(tokenizer: Tokenizer, rec: PromptRecord): number[] {
  if (typeof rec.prompt === "string") return tokenizer.encode(rec.prompt, { disallowedSpecial: [] });
  return encodeChat(tokenizer, rec.prompt, { addGenerationPrompt: true }).ids;
}

/** Where a completion ends: the tokenizer's end-of-turn tokens, and <|im_start|> (a new turn). */
export function stopTokenIds(tokenizer: Tokenizer): Set<number> {
  const ids = new Set(endOfTurnIds(tokenizer));
  const imStart = tokenizer.specialTokens.get(IM_START);
  if (imStart !== undefined) ids.add(imStart);
  return ids;
}

// ---- rollouts ----------------------------------------------------------------------------------------

export interface RolloutOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Tokens that end a completion (kept as its last token). */
  stopIds: ReadonlySet<number>;
  generator: Generator;
  /** Most rows decoded together (default 32). */
  maxBatch?: number;
}

export interface Completion {
  prompt: number[];
  /** The sampled tokens, the stop token included when there was one. */
  completion: number[];
  /** The completion ended with a stop token (not cut at maxNewTokens or the context). */
  stopped: boolean;
}

/**
 * Sample one completion for each prompt with the KV cache. Prompts of the same length are decoded
 * together in one batched cache: a (B, L) prefill, then (B, 1) steps, every row at the same
 * position; a row that has stopped is fed its stop token again until the batch is done, and what it
 * samples then is dropped. The random stream is consumed row by row, in prompt order within each
 * group, so a result depends only on the prompts, the options and the generator's state.
 */
export function sampleCompletions(model: LanguageModel, prompts: readonly (readonly number[])[], opts: RolloutOptions): Completion[] {
  const block = model.blockSize;
  const maxBatch = opts.maxBatch ?? 32;
  const out: Completion[] = new Array(prompts.length);
  const groups = new Map<number, number[]>();
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`sampleCompletions: prompt ${i} is empty`);
    if (p.length >= block) {
      throw new Error(`sampleCompletions: prompt ${i} has ${p.length} tokens, leaving no room in the context (the context holds ${block})`);
    }
    groups.set(p.length, [...(groups.get(p.length) ?? []), i]);
  });
  const wasTraining = model.training;
  model.eval();
  const arena = new MemoryArena();
  try {
    for (const [length, members] of groups) {
      for (let g0 = 0; g0 < members.length; g0 += maxBatch) {
        const rows = members.slice(g0, g0 + maxBatch);
        const B = rows.length;
        const limit = Math.min(opts.maxNewTokens, block - length);
        const caches = model.newCaches(B);
        const ctx = rows.map((i) => [...(prompts[i] as number[])]);
        const done = rows.map(() => false);
        const stopped = rows.map(() => false);
        let input: number[][] = ctx.map((c) => [...c]); // (B, L) prefill, then (B, 1)
        for (let t = 0; t < limit && done.includes(false); t++) {
          const logits = arena.run(() =>
            noGrad(() => {
              const l = model.forward(tensor(input, { dtype: "int32" }), { caches, lastOnly: true }).logits; // (B, 1, V)
              return Float32Array.from(l.contiguousData() as Float32Array);
            }),
          );
          arena.reset();
          const V = logits.length / B;
          input = ctx.map((c, b) => {
            if (!done[b]) {
              const next = sampleNext(logits.subarray(b * V, (b + 1) * V), c, opts, opts.generator);
              c.push(next);
              if (opts.stopIds.has(next)) {
                done[b] = true;
                stopped[b] = true;
              }
            }
            return [c[c.length - 1] as number];
          });
        }
        rows.forEach((i, b) => {
          const c = ctx[b] as number[];
          out[i] = { prompt: c.slice(0, length), completion: c.slice(length), stopped: stopped[b] as boolean };
        });
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** A completion as a training sequence: prompt + completion ids, the completion's tokens masked in. */
export function completionExample(c: Completion): EncodedExample {
  return { ids: [...c.prompt, ...c.completion], mask: [...c.prompt.map(() => 0), ...c.completion.map(() => 1)] };
}

/** The text of a completion without its stop token. */
export function completionText(tokenizer: Tokenizer, c: Completion): string {
  return tokenizer.decode(c.stopped ? c.completion.slice(0, -1) : c.completion);
}

// ---- rewards -------------------------------------------------------------------------------------------

/** What a reward function sees of one completion. */
export interface RewardSample {
  prompt: string | ChatMessage[];
  /** The completion's text (without its end-of-turn token). */
  completion: string;
  /** The completion ended its turn (rather than running into the token limit). */
  stopped: boolean;
  /** The dataset line's fields (a reference answer, a task name, ...). */
  fields: Record<string, unknown>;
}

/** A score for a completion: higher is better (TRL's reward functions). */
export type RewardFunction = (sample: RewardSample) => number;

/**
 * Score completions with a reward model directory (GPT2ForSequenceClassification, `moxing reward`):
 * the prompt and completion rendered with the reward model's own tokenizer and chat template, scored
 * at the last token. A sequence longer than the reward model's context loses prompt tokens from the left.
 */
export function rewardModelFunction(dir: string, opts: { batchSize?: number } = {}): (samples: readonly RewardSample[]) => number[] {
  const { model, tokenizer, fresh } = loadRewardModel(dir);
  if (fresh) {
    throw new DatasetError(
      `${dir}: a language model, not a reward model (no score head); train one with \`moxing reward --model ${dir} ...\``,
    );
  }
  const block = model.lm.blockSize;
  const bs = opts.batchSize ?? 8;
  return (samples) => {
    const seqs = samples.map((s) => {
      const ids =
        typeof s.prompt === "string"
          ? tokenizer.encode(s.prompt + s.completion, { disallowedSpecial: [] })
          : encodeChat(tokenizer, [...s.prompt, { role: "assistant", content: s.completion }]).ids;
      return ids.length > block ? ids.slice(ids.length - block) : ids;
    });
    const out: number[] = [];
    for (let i = 0; i < seqs.length; i += bs) {
      const chunk = seqs.slice(i, i + bs);
      const r = scoped(() =>
        noGrad(() => {
          const b = padBatch(chunk.map((ids) => ({ ids, mask: ids.map(() => 1) })));
          return model.rewards(b.x, b.lengths).tolist() as number[];
        }),
      );
      out.push(...r);
    }
    return out;
  };
}

// ---- log-probabilities and KL --------------------------------------------------------------------------

/**
 * Per-token log-probs (B, T-1) of `ids` under `logits` (B, T, V) divided by `temperature`, where
 * lossMask[b][t+1] is 1 (0 elsewhere): the quantity PPO's ratios and KL penalties compare.
 */
export function tokenLogprobs(logits: Tensor, ids: Rows, lossMask: Rows, temperature = 1): Tensor {
  return sequenceLogprobs(temperature === 1 ? logits : mul(logits, 1 / temperature), ids, lossMask).perToken;
}

/**
 * The exact KL(p ‖ q) of two models' next-token distributions at each position, (B, T-1) from logits
 * (B, T, V) with the last position dropped: Σ_v p(v)·(log p(v) − log q(v)).
 */
export function tokenKL(logitsP: Tensor, logitsQ: Tensor): Tensor {
  const T = logitsP.shape[1] as number;
  const lp = logSoftmax(logitsP.slice(1, 0, T - 1), -1);
  const lq = logSoftmax(logitsQ.slice(1, 0, T - 1), -1);
  return sum(mul(exp(lp), sub(lp, lq)), -1);
}

/** Rows of a (B, T) tensor, each cut to `lengths[b]` values. */
export function rowsOf(t: Tensor, lengths: readonly number[]): number[][] {
  const all = t.tolist() as number[][];
  return all.map((row, b) => row.slice(0, lengths[b]));
}

/** Right-pad rows of numbers to one length with zeros. */
export function padRows(rows: readonly (readonly number[])[], length: number): number[][] {
  return rows.map((r) => [...r, ...new Array<number>(length - r.length).fill(0)]);
}
