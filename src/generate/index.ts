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

/** Refuse logits that are NaN or infinite: sampling from them returns an arbitrary token (NaN
 *  probabilities used to pick the least likely one), which would print garbage with exit 0. */
function checkLogits(logits: Float32Array): void {
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i] as number;
    if (v - v !== 0) {
      throw new Error(
        `generate: the model's logits are not finite (${v} for token ${i}); its weights or activations overflowed or are damaged`,
      );
    }
  }
}

/** Pick the next token id from one row of logits, given the ids so far (or the set of them: only
 *  which ids were seen matters, for the repetition penalty). */
export function sampleNext(
  logits: Float32Array,
  context: readonly number[] | ReadonlySet<number>,
  o: SamplingOptions,
  g: Generator,
): number {
  const { temperature = 1, topK = 0, topP = 1, repetitionPenalty = 1 } = o;
  // Greedy: no copy needed, and the finiteness check rides along the argmax's one pass.
  if (temperature === 0 && repetitionPenalty === 1) return argmaxFinite(logits);
  checkLogits(logits);
  const x = Float64Array.from(logits);
  if (repetitionPenalty !== 1) {
    for (const id of context instanceof Set ? context : new Set(context as readonly number[])) {
      const v = x[id] as number;
      x[id] = v < 0 ? v * repetitionPenalty : v / repetitionPenalty;
    }
  }
  if (temperature === 0) return argmax(x);
  // Candidates sorted by logit, descending (temperature does not change the order); top-k and
  // top-p cut this list.
  let order = Array.from(x.keys()).sort((a, b) => (x[b] as number) - (x[a] as number));
  if (topK > 0 && topK < order.length) order = order.slice(0, topK);
  const maxLogit = x[order[0] as number] as number;
  // (logit - max) / T is <= 0, so a tiny T gives exp(-Inf) = 0 for every token below the best
  // and exp(0) = 1 for the best: greedy, as T -> 0 should be. Dividing first (logit / T) would
  // overflow to Inf - Inf = NaN for T = 1e-308.
  let probs = order.map((i) => Math.exp(((x[i] as number) - maxLogit) / temperature));
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
  // Rounding left r >= 0: the last token that had any probability (never one with none).
  let last = order.length - 1;
  while (last > 0 && !((probs[last] as number) > 0)) last--;
  return order[last] as number;
}

/** argmax of logits that are all finite (else checkLogits' error): one pass over the row where a
 *  separate check and argmax took two (a 150k-token vocabulary is 0.6 MB per token). */
function argmaxFinite(x: Float32Array): number {
  let best = 0;
  let bestValue = x[0] as number;
  let poison = 0; // v · 0 is NaN for a NaN or infinite v, 0 otherwise: no branch per value
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    poison += v * 0;
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  if (poison !== 0) checkLogits(x);
  return best;
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

/** Yield generated token ids one at a time. The prompt must be non-empty. Time and memory per
 *  token do not grow with the number of tokens generated: the model sees at most block_size
 *  tokens, and only the last of them are kept. */
export function* generateIds(model: CausalLM, prompt: readonly number[], opts: GenerateOptions = {}): IterableIterator<number> {
  checkSampling(opts);
  const { maxNewTokens = 200, useCache = true } = opts;
  if (prompt.length === 0) throw new Error("generate: the prompt is empty; give at least one token");
  const g = opts.generator ?? new Generator(opts.seed ?? 1);
  const bs = model.blockSize;
  const ctx = prompt.slice(-bs); // the context the model can still see
  const seen = new Set(prompt); // every id so far, for the repetition penalty
  // A cache only as long as this call can fill (a Llama's context may be 100k+ positions).
  let caches = useCache ? model.newCaches(1, Math.min(bs, ctx.length + maxNewTokens)) : null;
  let pending = ctx.slice(); // tokens not yet in the cache
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
      const next = arena.run(() => sampleNext(forward().contiguousData() as Float32Array, seen, opts, g));
      arena.reset();
      ctx.push(next);
      seen.add(next);
      // Drop what the model can no longer see, every bs tokens (amortised O(1) per token).
      if (ctx.length >= 2 * bs) ctx.splice(0, ctx.length - bs);
      pending = [next];
      yield next;
      if (next === opts.eosTokenId) return;
    }
  } finally {
    model.train(wasTraining);
  }
}

/**
 * Token ids to text, incrementally: push() returns the text the new token completes. Each call
 * decodes only the tokens since the last complete piece plus the piece before it (the offsets
 * Hugging Face's TextStreamer and text-generation-inference use), so streaming n tokens costs
 * O(n), not the O(n^2) of decoding everything each time; the pieces add up to decode(all ids).
 * A token that ends inside a multi-byte character waits for the rest of it.
 */
export class TextStreamer {
  private ids: number[] = [];
  private prefix = 0; // start of the piece before the unread tokens (context for the decoder)
  private read = 0; // first token whose text has not been returned

  constructor(private readonly tokenizer: Pick<Tokenizer, "decode">) {}

  push(id: number): string {
    this.ids.push(id);
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const now = this.tokenizer.decode(this.ids.slice(this.prefix));
    // A UTF-8 character is at most 4 bytes, so waiting longer than this for one cannot end well:
    // give out what there is, replacement characters included.
    const stuck = this.ids.length - this.read > 16;
    if (now.length <= before.length || (now.endsWith("\uFFFD") && !stuck)) return "";
    this.prefix = this.read;
    this.read = this.ids.length;
    if (this.prefix > 64) {
      this.ids = this.ids.slice(this.prefix);
      this.read -= this.prefix;
      this.prefix = 0;
    }
    return now.slice(before.length);
  }

  /** The text of tokens still waiting (an incomplete character at the end of the output). */
  flush(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const now = this.tokenizer.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return now.length > before.length ? now.slice(before.length) : "";
  }
}

/**
 * Generate text after a prompt, yielding each new piece as soon as it is complete text. Stop
 * strings end the stream and are not yielded (text that might begin one is held back until it is
 * clear). Linear in the number of tokens, and holds only the pieces not yet yielded: what the
 * command line streams to stdout, however long.
 */
export function* streamText(model: CausalLM, tokenizer: Tokenizer, prompt: string, opts: GenerateOptions = {}): IterableIterator<string> {
  // With what the model expects around a prompt (Llama's <s>), when the tokenizer says.
  const ids = tokenizer.encodePrompt ? tokenizer.encodePrompt(prompt) : tokenizer.encode(prompt);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  const firstStop = (text: string) => Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0), Number.POSITIVE_INFINITY);
  // Characters at the end that could be the start of a stop string are held back until resolved.
  const heldBack = (text: string) => Math.max(0, ...stops.map((s) => longestOverlap(text, s)));
  const streamer = new TextStreamer(tokenizer);
  // Decoded but not yet yielded: a stop string can only begin here (see heldBack), so this stays
  // shorter than the longest stop string plus one token's text.
  let pending = "";
  for (const id of generateIds(model, ids, opts)) {
    if (id === opts.eosTokenId) break;
    pending += streamer.push(id);
    const cut = firstStop(pending);
    if (cut < Number.POSITIVE_INFINITY) {
      if (cut > 0) yield pending.slice(0, cut);
      return;
    }
    const keep = heldBack(pending);
    if (pending.length > keep) {
      yield pending.slice(0, pending.length - keep);
      pending = pending.slice(pending.length - keep);
    }
  }
  pending += streamer.flush();
  const cut = firstStop(pending);
  const rest = cut < Number.POSITIVE_INFINITY ? pending.slice(0, cut) : pending;
  if (rest) yield rest;
}

/** Generate text after a prompt; onText receives each new piece as soon as it is complete text. */
export function generate(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateOptions & { onText?: (piece: string) => void } = {},
): string {
  const pieces: string[] = [];
  for (const piece of streamText(model, tokenizer, prompt, opts)) {
    opts.onText?.(piece);
    pieces.push(piece);
  }
  return pieces.join("");
}

/** Length of the longest proper prefix of stop that text ends with. */
function longestOverlap(text: string, stop: string): number {
  for (let k = Math.min(stop.length - 1, text.length); k > 0; k--) {
    if (text.endsWith(stop.slice(0, k))) return k;
  }
  return 0;
}
