// The batching scheduler: requests wait in a queue, join the running batch between decode steps while
// it has a free slot, and leave it the moment they end (a stop token, a stop string, max_tokens, or a
// cancel: the client went away, or the server is shutting down). One loop per model runs the steps,
// yielding to the event loop between them so streams flush and new requests arrive.
//
// Per token, in the order OpenAI and vLLM apply them: log-probabilities of the model's own
// distribution (for `logprobs`), logit_bias, frequency and presence penalties over the tokens
// generated so far, the JSON-schema mask, then temperature / top_p sampling (sampleNext).

import { CachePool, DecodeSequence, decodeStep } from "../generate/batch.js";
import { sampleNext } from "../generate/index.js";
import type { GPT } from "../models/gpt.js";
import { MemoryArena } from "../tensor/memory.js";
import { Generator } from "../tensor/random.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { queueFull } from "./errors.js";
import type { JsonConstraint } from "./json-schema.js";

export interface GenerationRequest {
  prompt: readonly number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** token id -> bias added to its logit */
  logitBias?: ReadonlyMap<number, number> | null;
  seed: number;
  /** Tokens that end the answer (end of turn / text); not part of the text. */
  stopIds: ReadonlySet<number>;
  /** Texts that end the answer; not part of the text. */
  stop?: readonly string[];
  /** Report each token's log-probability and those of the `logprobs` most likely tokens (null: none). */
  logprobs?: number | null;
  constraint?: JsonConstraint | null;
  signal?: AbortSignal;
  /** Streaming: each new piece of text (with the log-probabilities of the tokens since the last piece). */
  onDelta?: (text: string, logprobs: TokenLogprob[]) => void;
}

export interface TopLogprob {
  token: string;
  bytes: number[];
  logprob: number;
}
export interface TokenLogprob extends TopLogprob {
  top: TopLogprob[];
}

export type FinishReason = "stop" | "length" | "abort";

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  ids: number[];
  logprobs: TokenLogprob[];
}

export interface SchedulerOptions {
  /** Sequences decoded together at most (default 16). */
  maxBatch?: number;
  /** Sequences waiting for a slot at most; beyond it, 429 (default 64). */
  maxQueue?: number;
}

export interface SchedulerStats {
  steps: number;
  tokens: number;
  /** The largest batch a step has decoded. */
  maxBatchSeen: number;
  /** Batch size of each of the last 1000 steps. */
  recentBatches: number[];
}

/** One sequence in flight. */
class Job {
  readonly ids: number[] = [];
  readonly logprobs: TokenLogprob[] = [];
  private readonly pendingLogprobs: TokenLogprob[] = [];
  private emitted = "";
  private text = "";
  private stoppedByString = false;
  seq: DecodeSequence | null = null;
  readonly generator: Generator;
  readonly counts = new Map<number, number>();
  constructor(
    readonly req: GenerationRequest,
    readonly resolve: (r: GenerationResult) => void,
    readonly reject: (e: unknown) => void,
    private readonly tokenizer: Tokenizer,
  ) {
    this.generator = new Generator(req.seed);
  }

  /** Add a generated token; returns "stop" when a stop string appeared. */
  add(id: number, lp: TokenLogprob | null): FinishReason | null {
    this.ids.push(id);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
    if (lp) {
      this.logprobs.push(lp);
      this.pendingLogprobs.push(lp);
    }
    const text = this.tokenizer.decode(this.ids);
    // A byte-level token can end inside a multi-byte character: wait for the rest of it.
    if (text.endsWith("\uFFFD")) return null;
    const stops = this.req.stop ?? [];
    const cut = Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0), Number.POSITIVE_INFINITY);
    if (cut < Number.POSITIVE_INFINITY) {
      this.text = text.slice(0, cut);
      this.stoppedByString = true;
      return "stop";
    }
    this.text = text;
    // Characters at the end that could begin a stop string are held back until resolved.
    const held = Math.max(0, ...stops.map((s) => longestOverlap(text, s)));
    this.flush(text.slice(0, text.length - held));
    return null;
  }

  private flush(upTo: string): void {
    if (upTo.length > this.emitted.length && upTo.startsWith(this.emitted)) {
      const piece = upTo.slice(this.emitted.length);
      this.emitted = upTo;
      this.req.onDelta?.(piece, this.pendingLogprobs.splice(0));
    }
  }

  finish(reason: FinishReason): void {
    // Text held back (a possible stop string that never came, half a character) is the answer's too.
    if (!this.stoppedByString) this.text = this.tokenizer.decode(this.ids);
    this.flush(this.text);
    this.seq?.release();
    this.seq = null;
    this.resolve({
      text: this.text,
      finishReason: reason,
      promptTokens: this.req.prompt.length,
      completionTokens: this.ids.length,
      ids: this.ids,
      logprobs: this.logprobs,
    });
  }
}

/** Length of the longest proper prefix of stop that text ends with. */
function longestOverlap(text: string, stop: string): number {
  for (let k = Math.min(stop.length - 1, text.length); k > 0; k--) if (text.endsWith(stop.slice(0, k))) return k;
  return 0;
}

export class Scheduler {
  readonly maxBatch: number;
  readonly maxQueue: number;
  private readonly waiting: Job[] = [];
  private readonly active: Job[] = [];
  private readonly pool: CachePool;
  private readonly arena = new MemoryArena();
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private mask: Uint8Array;
  readonly stats: SchedulerStats = { steps: 0, tokens: 0, maxBatchSeen: 0, recentBatches: [] };

  constructor(
    readonly model: GPT,
    readonly tokenizer: Tokenizer,
    opts: SchedulerOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
    this.pool = new CachePool(model);
    this.mask = new Uint8Array(model.config.vocab_size);
  }

  /** Sequences being decoded, and waiting for a slot. */
  get load(): { active: number; waiting: number; cachesAllocated: number } {
    return { active: this.active.length, waiting: this.waiting.length, cachesAllocated: this.pool.allocated };
  }

  /** Can `n` more sequences be taken now (decoding or queued)? */
  hasRoom(n: number): boolean {
    return this.active.length + this.waiting.length + n <= this.maxBatch + this.maxQueue;
  }

  /** Queue a generation; throws the 429 ApiError at once when there is no room. */
  submit(req: GenerationRequest): Promise<GenerationResult> {
    if (!this.hasRoom(1)) throw queueFull(1);
    return this.enqueue(req);
  }

  /** Queue several generations that must all be taken or none (the `n` choices of one request). */
  submitAll(reqs: readonly GenerationRequest[]): Promise<GenerationResult[]> {
    if (!this.hasRoom(reqs.length)) throw queueFull(1);
    return Promise.all(reqs.map((r) => this.enqueue(r)));
  }

  private enqueue(req: GenerationRequest): Promise<GenerationResult> {
    if (req.prompt.length === 0) return Promise.reject(new Error("Scheduler: the prompt is empty"));
    return new Promise((resolve, reject) => {
      this.waiting.push(new Job(req, resolve, reject, this.tokenizer));
      this.wake();
    });
  }

  /** Resolves when nothing is decoding or waiting. */
  idle(): Promise<void> {
    if (this.active.length === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** End every sequence now (finish reason "abort", the text so far kept). */
  cancelAll(): void {
    for (const j of this.waiting.splice(0)) j.finish("abort");
    for (const j of this.active.splice(0)) j.finish("abort");
    this.settle();
  }

  private wake(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.loop());
  }

  private settle(): void {
    if (this.active.length || this.waiting.length) return;
    this.arena.clear(); // give the step buffers back: an idle server holds only the model and caches
    for (const r of this.idleWaiters.splice(0)) r();
  }

  private loop(): void {
    try {
      this.step();
    } catch (e) {
      // A failure inside the model is every active request's failure; the server goes on.
      for (const j of this.active.splice(0)) {
        j.seq?.release();
        j.reject(e);
      }
      this.arena.clear();
    }
    if (this.active.length || this.waiting.length) setImmediate(() => this.loop());
    else {
      this.running = false;
      this.settle();
    }
  }

  /** One decode step: admit waiting requests, drop cancelled ones, take every sequence one token on. */
  private step(): void {
    const bs = this.model.config.block_size;
    while (this.waiting.length && this.active.length < this.maxBatch) {
      const j = this.waiting.shift() as Job;
      if (j.req.signal?.aborted) {
        j.finish("abort");
        continue;
      }
      j.seq = new DecodeSequence(j.req.prompt, this.pool, bs);
      this.active.push(j);
    }
    for (let i = this.active.length - 1; i >= 0; i--) {
      const j = this.active[i] as Job;
      if (j.req.signal?.aborted) {
        this.active.splice(i, 1);
        j.finish("abort");
      }
    }
    if (this.active.length === 0) return;
    const jobs = [...this.active];
    const logits = decodeStep(
      this.model,
      jobs.map((j) => j.seq as DecodeSequence),
      this.arena,
    );
    this.stats.steps++;
    this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, jobs.length);
    this.stats.recentBatches.push(jobs.length);
    if (this.stats.recentBatches.length > 1000) this.stats.recentBatches.shift();
    jobs.forEach((j, i) => {
      const reason = this.advance(j, logits[i] as Float32Array);
      if (reason) {
        this.active.splice(this.active.indexOf(j), 1);
        j.finish(reason);
      }
    });
  }

  /** Pick the job's next token from its logits; returns why it ended, or null to go on. */
  private advance(j: Job, row: Float32Array): FinishReason | null {
    const r = j.req;
    const lp = r.logprobs !== null && r.logprobs !== undefined ? logprobsOf(row, r.logprobs, this.tokenizer) : null;
    let x = row;
    const copy = () => {
      if (x === row) x = Float32Array.from(row);
      return x;
    };
    if (r.logitBias) for (const [id, b] of r.logitBias) copy()[id] = (x[id] as number) + b;
    const fp = r.frequencyPenalty ?? 0;
    const pp = r.presencePenalty ?? 0;
    if (fp !== 0 || pp !== 0) {
      for (const [id, c] of j.counts) copy()[id] = (x[id] as number) - c * fp - pp;
    }
    if (r.constraint) {
      const c = r.constraint;
      const remaining = r.maxTokens - j.ids.length;
      const n = c.allowed(this.mask, remaining);
      const canEnd = c.canEnd();
      if (n === 0 || c.complete()) {
        if (!canEnd) return "length"; // the vocabulary cannot continue the JSON (it lacks a needed character)
        if (r.stopIds.size === 0) return "stop";
      }
      for (const id of r.stopIds) this.mask[id] = canEnd ? 1 : 0;
      const m = copy();
      for (let id = 0; id < m.length; id++) if (!this.mask[id]) m[id] = MASKED;
    }
    let id = sampleNext(x, j.ids, { temperature: r.temperature, topP: r.topP }, j.generator);
    if (r.constraint && !this.mask[id]) id = argmaxAllowed(x, this.mask); // rounding picked a masked token
    if (r.stopIds.has(id)) return "stop";
    r.constraint?.advance(id);
    this.stats.tokens++;
    const stopped = j.add(id, lp ? { ...tokenInfo(id, this.tokenizer, lp.logp[id] as number), top: lp.top } : null);
    if (stopped) return stopped;
    if (r.constraint?.complete()) return "stop"; // the JSON value is whole: nothing may follow it
    if (j.ids.length >= r.maxTokens) return "length";
    (j.seq as DecodeSequence).push(id);
    return null;
  }
}

/** The logit of a token the JSON schema does not allow: finite (sampleNext refuses infinities, which
 *  usually mean a broken model) but so low that its probability is exactly 0 after exp. */
const MASKED = -1e30;

function argmaxAllowed(x: Float32Array, mask: Uint8Array): number {
  let best = -1;
  for (let i = 0; i < x.length; i++) if (mask[i] && (best < 0 || (x[i] as number) > (x[best] as number))) best = i;
  return Math.max(best, 0);
}

const utf8 = new TextEncoder();

/** A token as the API shows it: its text, its bytes (a byte-level token may be part of a character). */
export function tokenInfo(id: number, tokenizer: Tokenizer, logprob: number): TopLogprob {
  const t = tokenizer as Tokenizer & { decodeBytes?: (ids: ArrayLike<number>) => Uint8Array };
  const bytes = t.decodeBytes ? t.decodeBytes([id]) : utf8.encode(tokenizer.decode([id]));
  return { token: tokenizer.decode([id]), bytes: [...bytes], logprob };
}

/** log-softmax of one row of logits, and its k most likely tokens. */
export function logprobsOf(row: Float32Array, k: number, tokenizer: Tokenizer): { logp: Float64Array; top: TopLogprob[] } {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const logp = Float64Array.from(row, (v) => v - lse);
  const top: number[] = [];
  if (k > 0) {
    // Keep the k best in a small sorted list: one pass, no sort of the whole vocabulary.
    for (let i = 0; i < logp.length; i++) {
      const v = logp[i] as number;
      if (top.length === k && v <= (logp[top[k - 1] as number] as number)) continue;
      let at = top.length;
      while (at > 0 && v > (logp[top[at - 1] as number] as number)) at--;
      top.splice(at, 0, i);
      if (top.length > k) top.pop();
    }
  }
  return { logp, top: top.map((i) => tokenInfo(i, tokenizer, logp[i] as number)) };
}
