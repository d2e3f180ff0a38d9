// Continuous batching: sequences of different lengths decoded together, joining and leaving the batch
// between steps, give the logits and tokens that each gives decoded alone (generateIds with its KV cache).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CachePool, DecodeSequence, decodeStep } from "../../src/generate/batch.js";
import { generateIds } from "../../src/generate/index.js";
import { GPT, type PositionalEncoding } from "../../src/models/gpt.js";
import { KVCache } from "../../src/nn/attention.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers.js";

const tiny = (pos: PositionalEncoding) =>
  new GPT({ vocab_size: 13, n_layer: 2, n_head: 2, n_embd: 16, block_size: 10, pos_encoding: pos }, { seed: 5 }).eval();

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

/** The logits a sequence gets alone at each step: its prompt, then each next token fed to its cache. */
function aloneLogits(model: GPT, prompt: number[], tokens: number[]): Float32Array[] {
  const caches = model.newCaches(1);
  const out: Float32Array[] = [];
  let input = prompt;
  for (const t of [...tokens, -1]) {
    const l = noGrad(() => model.forward(tensor([input], { dtype: "int32" }), { caches, lastOnly: true }).logits);
    out.push(Float32Array.from(l.contiguousData() as Float32Array));
    if (t < 0) break;
    input = [t];
  }
  return out;
}

describe("continuous batching", () => {
  for (const pos of ["learned", "sinusoidal", "rope"] as const) {
    test(`${pos} positions: each row of a batched step equals the sequence decoded alone`, () => {
      const model = tiny(pos);
      const pool = new CachePool(model);
      const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [2, 2]];
      // Sequence i joins at step i, so the batch holds rows at different lengths from the start.
      const seqs: DecodeSequence[] = [];
      const logits: Float32Array[][] = prompts.map(() => []);
      const tokens: number[][] = prompts.map(() => []);
      for (let step = 0; step < 6; step++) {
        if (step < prompts.length) seqs.push(new DecodeSequence(prompts[step] as number[], pool, model.config.block_size));
        const rows = decodeStep(model, seqs);
        rows.forEach((l, i) => {
          (logits[i] as Float32Array[]).push(Float32Array.from(l));
          const next = argmax(l);
          (tokens[i] as number[]).push(next);
          (seqs[i] as DecodeSequence).push(next);
        });
      }
      prompts.forEach((p, i) => {
        const got = logits[i] as Float32Array[];
        const want = aloneLogits(model, p, (tokens[i] as number[]).slice(0, got.length - 1));
        got.forEach((g, s) => {
          assertClose(`${pos} sequence ${i} step ${s}`, g, want[s] as Float32Array, 1e-4, 1e-5);
        });
      });
    });
  }

  test("greedy tokens equal generateIds', across the context filling up and restarting", () => {
    const model = tiny("learned");
    const pool = new CachePool(model);
    const prompts = [[1, 2, 3, 4, 5, 6, 7], [3], [8, 9]];
    const n = 14; // past block_size 10: every sequence restarts its cache at least once
    const seqs = prompts.map((p) => new DecodeSequence(p, pool, model.config.block_size));
    const got: number[][] = prompts.map(() => []);
    // The second sequence leaves after 5 tokens and a new one takes its place: rows come and go.
    const late = [4, 4, 4];
    let lateSeq: DecodeSequence | null = null;
    const lateGot: number[] = [];
    for (let step = 0; step < n; step++) {
      const active = seqs.filter((_, i) => i !== 1 || step < 5);
      if (step === 5) {
        (seqs[1] as DecodeSequence).release();
        lateSeq = new DecodeSequence(late, pool, model.config.block_size);
      }
      const all = lateSeq ? [...active, lateSeq] : active;
      decodeStep(model, all).forEach((l, j) => {
        const s = all[j] as DecodeSequence;
        const next = argmax(l);
        s.push(next);
        if (s === lateSeq) lateGot.push(next);
        else (got[seqs.indexOf(s)] as number[]).push(next);
      });
    }
    prompts.forEach((p, i) => {
      const want = [...generateIds(model, p, { temperature: 0, maxNewTokens: i === 1 ? 5 : n })];
      assert.deepEqual(got[i], want, `sequence ${i}`);
    });
    assert.deepEqual(lateGot, [...generateIds(model, late, { temperature: 0, maxNewTokens: n - 5 })], "the sequence that joined late");
    assert.ok(pool.allocated <= 3, `caches are reused: ${pool.allocated} allocated for at most 3 live sequences`);
  });

  test("row caches must match the batch", () => {
    const model = tiny("learned");
    const caches = [model.newCaches(1)];
    assert.throws(() => model.forward(tensor([[1], [2]], { dtype: "int32" }), { rowCaches: caches }), /1 row caches for a batch of 2/);
    const full = Array.from({ length: 2 }, () => new KVCache(1, 2, 10, 8));
    for (const c of full) c.length = 10;
    assert.throws(() => model.forward(tensor([[1]], { dtype: "int32" }), { rowCaches: [full] }), /block_size is only 10/);
  });
});
