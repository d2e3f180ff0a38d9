// Continuous batching's engine: several sequences, each with its own KV caches filled to its own
// length, decoded together one token per step (Yu et al. 2022, "Orca"; vLLM's scheduler).
//
// A step takes every sequence one token further. A sequence whose next input is one token (the one
// sampled last step) joins the batched forward: its row of the (B, 1) input goes through the shared
// projections and feed-forward layers with the other rows, and attends over its own cache
// (GPT.forward's rowCaches). A sequence with more than one token to feed (a new prompt, or one whose
// cache filled up and restarted) is prefilled on its own first. So a request joins the running batch
// between two steps, and leaves it the moment it ends, without waiting for the others.
//
// The results are those of generateIds run on each sequence alone (test/generate/batch.test.ts):
// the same positions, the same cache policy when the context fills up, the same logits.

import type { GPT } from "../models/gpt.js";
import { KVCache } from "../nn/attention.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { MemoryArena } from "../tensor/memory.js";

/** KV caches (one per layer, batch 1) handed out to sequences and taken back when they end, so a
 *  server that answers many requests allocates caches only up to its largest batch. */
export class CachePool {
  private readonly free: KVCache[][] = [];
  /** Caches allocated so far (in use or free). */
  allocated = 0;
  constructor(private readonly model: GPT) {}

  take(): KVCache[] {
    const caches = this.free.pop();
    if (caches) return caches;
    this.allocated++;
    const { n_layer, n_head, n_embd, block_size } = this.model.config;
    return Array.from({ length: n_layer }, () => new KVCache(1, n_head, block_size, n_embd / n_head));
  }

  give(caches: KVCache[]): void {
    for (const c of caches) c.length = 0;
    this.free.push(caches);
  }

  /** Caches waiting in the pool. */
  get idle(): number {
    return this.free.length;
  }
}

/** One sequence being decoded: its ids so far and its caches. */
export class DecodeSequence {
  /** Prompt and generated ids. */
  readonly ids: number[];
  /** Ids not yet in the cache: the prompt at first, then the token sampled last. */
  private pending: number[];
  private caches: KVCache[] | null = null;

  constructor(
    prompt: readonly number[],
    private readonly pool: CachePool,
    readonly blockSize: number,
  ) {
    if (prompt.length === 0) throw new Error("DecodeSequence: the prompt is empty; give at least one token");
    this.ids = [...prompt];
    this.pending = this.ids.slice(-blockSize);
  }

  /** Append the token sampled for this sequence; it is fed to the model at the next step. */
  push(id: number): void {
    this.ids.push(id);
    this.pending = [id];
  }

  /** Give the caches back to the pool (the sequence ended or was cancelled). */
  release(): void {
    if (this.caches) this.pool.give(this.caches);
    this.caches = null;
  }

  /** What the next step feeds: the pending ids and this sequence's caches (taken from the pool on
   *  the first step; emptied when the context is full). */
  nextInput(): { caches: KVCache[]; pending: readonly number[] } {
    this.caches ??= this.pool.take();
    const cached = this.caches[0]?.length ?? 0;
    if (cached + this.pending.length > this.blockSize) {
      // As generateIds does: the cache is full, so start again from the last half-window of the
      // context (positions restart at 0) and the next blockSize/2 tokens are cheap again.
      for (const c of this.caches) c.length = 0;
      this.pending = this.ids.slice(-Math.max(1, Math.ceil(this.blockSize / 2)));
    }
    return { caches: this.caches, pending: this.pending };
  }
}

/**
 * Feed every sequence its pending tokens and return each one's next-token logits (vocab_size floats,
 * copied out of the step's memory), in the order given. Sequences with one pending token run as one
 * batch; the others are prefilled one at a time.
 */
export function decodeStep(model: GPT, seqs: readonly DecodeSequence[], arena = new MemoryArena()): Float32Array[] {
  const out: Float32Array[] = new Array(seqs.length);
  const V = model.config.vocab_size;
  // Setting the mode walks every module: only when it has to change (a server's model is in eval mode).
  const wasTraining = model.training;
  if (wasTraining) model.eval();
  try {
    const inputs = seqs.map((s) => s.nextInput());
    const batch: number[] = [];
    inputs.forEach((inp, i) => {
      if (inp.pending.length === 1) {
        batch.push(i);
        return;
      }
      // A prefill: (1, T) through the model with this sequence's caches.
      out[i] = arena.run(() => {
        const logits = noGrad(
          () => model.forward(tensor([[...inp.pending]], { dtype: "int32" }), { caches: inp.caches, lastOnly: true }).logits,
        );
        return Float32Array.from(logits.contiguousData() as Float32Array);
      });
      arena.reset();
    });
    if (batch.length > 0) {
      const rows = batch.map((i) => inputs[i] as { caches: KVCache[]; pending: readonly number[] });
      const logits = arena.run(() => {
        const x = tensor(
          rows.map((r) => [...r.pending]),
          { dtype: "int32" },
        ); // (B, 1)
        const l = noGrad(() => model.forward(x, { rowCaches: rows.map((r) => r.caches) }).logits); // (B, 1, V)
        return Float32Array.from(l.contiguousData() as Float32Array);
      });
      arena.reset();
      batch.forEach((i, b) => {
        out[i] = logits.subarray(b * V, (b + 1) * V);
      });
    }
  } finally {
    if (wasTraining) model.train(true);
  }
  return out;
}
