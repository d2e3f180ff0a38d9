// Generation: logits processors, the KV cache against full recomputation, streaming and stops.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { generate, generateIds, sampleNext } from "../../src/generate/index.js";
import { GPT } from "../../src/models/gpt.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertClose, mx } from "../helpers.js";

const tiny = (pos: "learned" | "sinusoidal" | "rope" = "learned") =>
  new GPT({ vocab_size: 11, n_layer: 2, n_head: 2, n_embd: 16, block_size: 12, pos_encoding: pos }, { seed: 3 });

describe("sampleNext", () => {
  const logits = new Float32Array([1, 3, 2, -1]);
  test("greedy, top-k 1 and a tiny top-p all pick the argmax", () => {
    const g = new mx.Generator(0);
    assert.equal(sampleNext(logits, [], { temperature: 0 }, g), 1);
    for (let i = 0; i < 20; i++) assert.equal(sampleNext(logits, [], { topK: 1 }, g), 1);
    for (let i = 0; i < 20; i++) assert.equal(sampleNext(logits, [], { topP: 0.01 }, g), 1);
  });
  test("top-k 2 never picks outside the two best; sampling follows the softmax", () => {
    const g = new mx.Generator(1);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleNext(logits, [], { topK: 2 }, g)]!++;
    assert.equal(counts[0], 0);
    assert.equal(counts[3], 0);
    const p1 = Math.exp(3) / (Math.exp(3) + Math.exp(2));
    assert.ok(Math.abs((counts[1] as number) / 4000 - p1) < 0.03, `frequency ${(counts[1] as number) / 4000} vs ${p1}`);
  });
  test("repetition penalty divides positive and multiplies negative logits of seen tokens", () => {
    const g = new mx.Generator(2);
    // Token 1 (logit 3) penalised by 2 -> 1.5 < 2: greedy now prefers token 2.
    assert.equal(sampleNext(logits, [1], { temperature: 0, repetitionPenalty: 2 }, g), 2);
  });
  test("bad options are rejected with the fix", () => {
    assert.throws(() => [...generateIds(tiny(), [1], { temperature: -1 })], /temperature must be >= 0/);
    assert.throws(() => [...generateIds(tiny(), [1], { topP: 0 })], /topP must be in \(0, 1\]/);
    assert.throws(() => [...generateIds(tiny(), [], {})], /prompt is empty/);
  });
});

describe(`generation with a KV cache (${mx.getBackend().name})`, () => {
  for (const pos of ["learned", "sinusoidal", "rope"] as const) {
    test(`cached logits equal recomputing the whole context (${pos})`, () => {
      const m = tiny(pos).eval();
      const ids = mx.tensor([[1, 5, 2, 7, 3, 3, 9, 0, 4, 6]], { dtype: "int32" });
      const full = mx.noGrad(() => m.forward(ids).logits);
      const caches = m.newCaches(1);
      const parts: number[] = [];
      mx.noGrad(() => {
        parts.push(...m.forward(ids.slice(1, 0, 4), { caches }).logits.toArray());
        for (let t = 4; t < 10; t++) parts.push(...m.forward(ids.slice(1, t, t + 1), { caches }).logits.toArray());
      });
      assertClose(`kv cache ${pos}`, parts, full.toArray(), 1e-4, 1e-5);
    });
  }
  test("greedy generation with and without the cache agree within block_size", () => {
    const m = tiny();
    const a = [...generateIds(m, [1, 2, 3], { temperature: 0, maxNewTokens: 9 })];
    const b = [...generateIds(m, [1, 2, 3], { temperature: 0, maxNewTokens: 9, useCache: false })];
    assert.deepEqual(a, b);
  });
  test("a context longer than block_size is cropped, not an error", () => {
    const m = tiny();
    const prompt = Array.from({ length: 30 }, (_, i) => i % 11);
    assert.equal([...generateIds(m, prompt, { maxNewTokens: 25, seed: 4 })].length, 25);
    assert.equal([...generateIds(m, prompt, { maxNewTokens: 5, useCache: false })].length, 5);
  });
  test("same seed, same sample; streaming pieces add up to the result; stop strings cut", () => {
    const tok = CharTokenizer.fromText("abcdefghij ");
    const m = new GPT({ vocab_size: tok.vocabSize, n_layer: 1, n_head: 2, n_embd: 8, block_size: 16 }, { seed: 5 });
    const s1 = generate(m, tok, "abc", { maxNewTokens: 30, seed: 9 });
    const s2 = generate(m, tok, "abc", { maxNewTokens: 30, seed: 9 });
    assert.equal(s1, s2);
    assert.equal(s1.length, 30);
    const pieces: string[] = [];
    const s3 = generate(m, tok, "abc", { maxNewTokens: 30, seed: 9, onText: (p) => pieces.push(p) });
    assert.equal(pieces.join(""), s3);
    const stop = s1.slice(10, 12);
    const cut = generate(m, tok, "abc", { maxNewTokens: 30, seed: 9, stop: [stop] });
    assert.equal(cut, s1.slice(0, s1.indexOf(stop)));
    const streamed: string[] = [];
    generate(m, tok, "abc", { maxNewTokens: 30, seed: 9, stop: [stop], onText: (p) => streamed.push(p) });
    assert.equal(streamed.join(""), cut, "no part of a stop string is streamed");
  });
});
