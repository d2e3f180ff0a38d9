// Autoregressive generation: feed the context, pick the next token from the logits, append it,
// repeat. Logits processors (repetition penalty, temperature, top-k, top-p) run in the order
// Hugging Face applies them; a KV cache makes each new token cost one position's forward pass.

import type { KVCache } from "../nn/attention.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { MemoryArena } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";

/** What generation needs of a model (GPT and Llama have it): a causal forward over token ids
 *  with per-layer KV caches. */
export interface CausalLM {
  training: boolean;
  train(mode?: boolean): unknown;
  eval(): unknown;
  /** Longest context the model attends over. */
  readonly blockSize: number;
  /** One cache per layer with room for maxLen positions (default: blockSize). */
  newCaches(batch: number, maxLen?: number): KVCache[];
  forward(idx: Tensor, opts: { caches?: KVCache[] | null; lastOnly?: boolean }): { logits: Tensor };
}

export interface SamplingOptions {
  /** 0 means greedy (always the most likely token). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches p (1: all). */
  topP?: number;
  /** > 1 discourages tokens already in the context (Keskar et al. 2019, as in HF). */
  repetitionPenalty?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  seed?: number;
  generator?: Generator;
  /** Stop as soon as the generated text contains one of these; it is not included in the output. */
  stop?: string[];
  /** Stop after emitting this token id (e.g. <|endoftext|>). */
  eosTokenId?: number;
  /** Use the KV cache (default). Without it every step recomputes the cropped context. */
  useCache?: boolean;
}

function checkSampling(o: SamplingOptions): void {
  const { temperature = 1, topK = 0, topP = 1, repetitionPenalty = 1 } = o;
  if (!(temperature >= 0)) throw new Error(`generate: temperature must be >= 0 (got ${temperature}); use 0 for greedy decoding`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`generate: topK must be a non-negative integer (got ${topK})`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1] (got ${topP})`);
  if (!(repetitionPenalty > 0)) throw new Error(`generate: repetitionPenalty must be > 0 (got ${repetitionPenalty})`);
}

/** Pick the next token id from one row of logits, given the ids so far. */
export function sampleNext(logits: Float32Array, context: readonly number[], o: SamplingOptions, g: Generator): number {
  const { temperature = 1, topK = 0, topP = 1, repetitionPenalty = 1 } = o;
  if (temperature === 0 && repetitionPenalty === 1) return argmax(logits); // greedy: no copy needed
  const x = Float64Array.from(logits);
  if (repetitionPenalty !== 1) {
    for (const id of new Set(context)) {
      const v = x[id] as number;
      x[id] = v < 0 ? v * repetitionPenalty : v / repetitionPenalty;
    }
  }
  if (temperature === 0) return argmax(x);
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) / temperature;
  // Candidates sorted by logit, descending; top-k and top-p cut this list.
  let order = Array.from(x.keys()).sort((a, b) => (x[b] as number) - (x[a] as number));
  if (topK > 0 && topK < order.length) order = order.slice(0, topK);
  const maxLogit = x[order[0] as number] as number;
  let probs = order.map((i) => Math.exp((x[i] as number) - maxLogit));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += (probs[keep] as number) / total;
      keep++;
      if (cum >= topP) break;
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = g.random() * total;
  for (let i = 0; i < order.length; i++) {
    r -= probs[i] as number;
    if (r < 0) return order[i] as number;
  }
  return order[order.length - 1] as number;
}

/** Index of the first largest value. */
function argmax(x: Float32Array | Float64Array): number {
  let best = 0;
  let bestValue = x[0] as number;
  for (let i = 1; i < x.length; i++) {
    const v = x[i] as number;
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}

/** Yield generated token ids one at a time. The prompt must be non-empty. */
export function* generateIds(model: CausalLM, prompt: readonly number[], opts: GenerateOptions = {}): IterableIterator<number> {
  checkSampling(opts);
  const { maxNewTokens = 200, useCache = true } = opts;
  if (prompt.length === 0) throw new Error("generate: the prompt is empty; give at least one token");
  const g = opts.generator ?? new Generator(opts.seed ?? 1);
  const bs = model.blockSize;
  const ctx = [...prompt];
  // A cache only as long as this call can fill (a model's context may be 100k+ positions).
  let caches = useCache ? model.newCaches(1, Math.min(bs, Math.min(prompt.length, bs) + maxNewTokens)) : null;
  let pending = ctx.slice(-bs); // tokens not yet in the cache
  const wasTraining = model.training;
  const arena = new MemoryArena();
  model.eval();
  try {
    for (let step = 0; step < maxNewTokens; step++) {
      let input: number[];
      if (caches) {
        if ((caches[0]?.length ?? 0) + pending.length > bs) {
          // The cache is full: start again from the last half-window of context (positions
          // restart at 0), so the next bs/2 tokens are cheap again.
          caches = model.newCaches(1, bs);
          pending = ctx.slice(-Math.max(1, Math.ceil(bs / 2)));
        }
        input = pending;
      } else {
        input = ctx.slice(-bs); // nanoGPT: crop the context to the last block_size tokens
      }
      // Each step's activations come from an arena and go back to it once the next token is
      // picked, so a step allocates (and zero-fills) nothing; the KV caches are persistent.
      const forward = () => noGrad(() => model.forward(tensor([input], { dtype: "int32" }), { caches, lastOnly: true }).logits);
      const next = arena.run(() => sampleNext(forward().contiguousData() as Float32Array, ctx, opts, g));
      arena.reset();
      ctx.push(next);
      pending = [next];
      yield next;
      if (next === opts.eosTokenId) return;
    }
  } finally {
    model.train(wasTraining);
  }
}

/** Generate text after a prompt; onText receives each new piece as soon as it is complete text. */
export function generate(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateOptions & { onText?: (piece: string) => void } = {},
): string {
  const ids = tokenizer.encodePrompt ? tokenizer.encodePrompt(prompt) : tokenizer.encode(prompt);
  const out: number[] = [];
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  let emitted = "";
  const emit = (text: string) => {
    if (text.length > emitted.length && text.startsWith(emitted)) {
      opts.onText?.(text.slice(emitted.length));
      emitted = text;
    }
  };
  const firstStop = (text: string) => Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0), Number.POSITIVE_INFINITY);
  // Characters at the end that could be the start of a stop string are held back until resolved.
  const heldBack = (text: string) => Math.max(0, ...stops.map((s) => longestOverlap(text, s)));
  for (const id of generateIds(model, ids, opts)) {
    if (id === opts.eosTokenId) break;
    out.push(id);
    const text = tokenizer.decode(out);
    // A byte-level token can end inside a multi-byte character: wait for the rest of it.
    if (text.endsWith("\uFFFD")) continue;
    const cut = firstStop(text);
    if (cut < Number.POSITIVE_INFINITY) {
      emit(text.slice(0, cut));
      return emitted;
    }
    emit(text.slice(0, text.length - heldBack(text)));
  }
  const final = tokenizer.decode(out);
  const cut = firstStop(final);
  emit(cut < Number.POSITIVE_INFINITY ? final.slice(0, cut) : final);
  return emitted;
}

/** Length of the longest proper prefix of stop that text ends with. */
function longestOverlap(text: string, stop: string): number {
  for (let k = Math.min(stop.length - 1, text.length); k > 0; k--) {
    if (text.endsWith(stop.slice(0, k))) return k;
  }
  return 0;
}
