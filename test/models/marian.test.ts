// Marian against Hugging Face's own modeling code (transformers v4.31's modeling_marian.py and
// generate(), run by tools/hf_marian.py on tiny checkpoints in tools/fixtures/hf-marian/): encoder
// states, logits, loss and the ids of greedy and beam-search generation; then the loader's checks,
// the KV cache, label smoothing and saving.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { generateSeq2Seq, type Seq2SeqGenerateOptions } from "../../src/generate/seq2seq.js";
import { loadMarian, loadMarianStateDict, MarianFileError, marianConfigFromJSON, saveMarian } from "../../src/io/marian.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { MarianMTModel, shiftTokensRight } from "../../src/models/marian.js";
import { CharTokenizer } from "../../src/tokenizers/char.js";
import { assertClose, mx } from "../helpers.js";

const FIX = new URL("../../tools/fixtures/hf-marian/", import.meta.url).pathname;

interface Expected {
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
  decoder_input_ids: number[][];
  encoder_last_hidden_state: number[];
  logits: { shape: number[]; data: number[] };
  loss: number;
  generate: { name: string; options: Record<string, unknown>; input_ids: number[][]; attention_mask: number[][]; sequences: number[][] }[];
}

const expected = (name: string) => JSON.parse(readFileSync(join(FIX, name, "expected.json"), "utf8")) as Expected;
const ints = (rows: number[][]) => mx.tensor(rows, { dtype: "int32" });

/** HF generate() keyword arguments in moxing's names. */
function options(o: Record<string, unknown>): Seq2SeqGenerateOptions {
  return {
    numBeams: o.num_beams as number,
    maxLength: o.max_length as number,
    minLength: o.min_length as number | undefined,
    lengthPenalty: o.length_penalty as number | undefined,
    earlyStopping: o.early_stopping as boolean | "never" | undefined,
    noRepeatNgramSize: o.no_repeat_ngram_size as number | undefined,
    repetitionPenalty: o.repetition_penalty as number | undefined,
    badWordsIds: o.bad_words_ids as number[][] | undefined,
  };
}

for (const name of ["shared", "separate"]) {
  describe(`Marian parity with transformers (${name} vocabulary)`, () => {
    const { model } = loadMarian(join(FIX, name));
    const e = expected(name);
    test("encoder states, logits and loss", () => {
      const labels = ints(e.labels);
      assert.deepEqual(
        shiftTokensRight(labels, model.config.pad_token_id, model.config.decoder_start_token_id).tolist(),
        e.decoder_input_ids,
      );
      const out = mx.noGrad(() => model.forward({ inputIds: ints(e.input_ids), attentionMask: ints(e.attention_mask), labels }));
      assertClose("encoder_last_hidden_state", out.encoderLastHiddenState.toArray(), e.encoder_last_hidden_state, 1e-4, 1e-4);
      assert.deepEqual(out.logits.shape, e.logits.shape);
      assertClose("logits", out.logits.toArray(), e.logits.data, 1e-4, 1e-4);
      assert.ok(Math.abs((out.loss as mx.Tensor).item() - e.loss) < 1e-4, `loss ${(out.loss as mx.Tensor).item()} vs ${e.loss}`);
    });
    for (const g of e.generate) {
      test(`generate: ${g.name}`, () => {
        const ids = generateSeq2Seq(model, ints(g.input_ids), ints(g.attention_mask), options(g.options));
        assert.deepEqual(ids, g.sequences);
      });
    }
  });
}

describe("Marian", () => {
  const dir = join(FIX, "shared");
  const { model } = loadMarian(dir);
  const e = expected("shared");

  test("the KV cache gives the logits of the full decoder pass, one token at a time", () => {
    mx.noGrad(() => {
      const src = ints(e.input_ids);
      const mask = ints(e.attention_mask);
      const dec = ints(e.decoder_input_ids);
      const enc = model.encode(src, mask);
      const full = model.decode(dec, enc, mask).toArray();
      const cache = model.newCache(enc, mask, 16);
      const T = dec.shape[1] as number;
      const V = model.config.decoder_vocab_size;
      for (let t = 0; t < T; t++) {
        const step = model.decode(dec.slice(1, t, t + 1).contiguous(), enc, mask, { cache }).toArray();
        for (let b = 0; b < 2; b++) {
          const want = full.slice((b * T + t) * V, (b * T + t + 1) * V);
          assertClose(`row ${b} step ${t}`, step.slice(b * V, (b + 1) * V), want, 1e-4, 1e-5);
        }
      }
    });
  });

  test("label smoothing mixes the target with the uniform distribution, ignoring -100", () => {
    const inputs = { inputIds: ints(e.input_ids), attentionMask: ints(e.attention_mask), labels: ints(e.labels) };
    const out = mx.noGrad(() => model.forward(inputs, { labelSmoothing: 0.1 }));
    const logp = out.logits.logSoftmax(-1).toArray();
    const V = model.config.decoder_vocab_size;
    let total = 0;
    let n = 0;
    e.labels.flat().forEach((y, i) => {
      if (y === -100) return;
      const row = logp.slice(i * V, (i + 1) * V);
      total += -0.9 * (row[y] as number) - (0.1 * row.reduce((a, b) => a + b, 0)) / V;
      n++;
    });
    assert.ok(Math.abs((out.loss as mx.Tensor).item() - total / n) < 1e-4);
  });

  test("labelledOnly: the head at labelled positions only gives the same loss, logits and gradients", () => {
    const m = new MarianMTModel({ ...model.config, dropout: 0 }, { seed: 3 });
    mx.noGrad(() => m.final_logits_bias.normal_({ generator: new mx.Generator(4) }));
    // The fixture's padding is on the right (the source is packed); left padding takes the unpacked path.
    const left = e.attention_mask.map((r) => [...r].reverse());
    for (const mask of [e.attention_mask, left])
      sameAsFull(m, { inputIds: ints(e.input_ids), attentionMask: ints(mask), labels: ints(e.labels) });
  });

  function sameAsFull(m: MarianMTModel, inputs: { inputIds: mx.Tensor; attentionMask: mx.Tensor; labels: mx.Tensor }): void {
    const run = (labelledOnly: boolean) => {
      for (const p of m.parameters()) p.grad = null;
      const out = m.forward(inputs, { labelSmoothing: 0.1, labelledOnly });
      (out.loss as mx.Tensor).backward();
      return {
        loss: (out.loss as mx.Tensor).item(),
        logits: out.logits.toArray(),
        grads: m.parameters().map((p) => p.grad?.toArray() ?? []),
      };
    };
    const full = run(false);
    const only = run(true);
    assert.ok(Math.abs(only.loss - full.loss) < 1e-6, `${only.loss} vs ${full.loss}`);
    const V = m.config.decoder_vocab_size;
    const kept = e.labels.flat().flatMap((y, i) => (y === -100 ? [] : [i]));
    assert.ok(kept.length < e.labels.flat().length, "the fixture's labels include padding");
    assert.equal(only.logits.length, kept.length * V);
    kept.forEach((i, j) => {
      assertClose(`logits row ${i}`, only.logits.slice(j * V, (j + 1) * V), full.logits.slice(i * V, (i + 1) * V), 1e-5, 1e-6);
    });
    full.grads.forEach((g, k) => {
      assertClose(`grad ${k}`, only.grads[k] as number[], g, 1e-4, 1e-6);
    });
  }

  test("loads every tied name and checks them", () => {
    const file = readSafetensors(join(dir, "model.safetensors"));
    const shared = file.tensors.get("model.shared.weight") as { shape: number[]; data: Float32Array };
    const all = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>(file.tensors);
    for (const n of ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"]) all.set(n, shared);
    const m = new MarianMTModel(model.config, { seed: 5 });
    loadMarianStateDict(m, all);
    assertClose("shared", m.model.shared?.weight.toArray() ?? [], Array.from(shared.data));
    const other = { shape: shared.shape, data: shared.data.map((v) => v + 1) };
    all.set("lm_head.weight", other);
    assert.throws(() => loadMarianStateDict(m, all), /differ, but config.json ties them/);
    const missing = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>(file.tensors);
    missing.delete("model.decoder.layers.1.fc2.weight");
    assert.throws(() => loadMarianStateDict(m, missing), MarianFileError);
    assert.throws(() => loadMarianStateDict(m, missing), /missing tensor 'model.decoder.layers.1.fc2.weight'/);
    const wrong = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>(file.tensors);
    wrong.set("model.encoder.layers.0.fc1.weight", { shape: [3, 3], data: new Float32Array(9) });
    assert.throws(() => loadMarianStateDict(m, wrong), /has shape \[3, 3\] but this model needs \[48, 32\]/);
    const extra = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>(file.tensors);
    extra.set("model.encoder.layers.5.fc1.weight", { shape: [1], data: new Float32Array(1) });
    assert.throws(() => loadMarianStateDict(m, extra), /unexpected tensor 'model.encoder.layers.5.fc1.weight'/);
  });

  test("config.json errors name the key", () => {
    assert.throws(() => marianConfigFromJSON({ model_type: "bert" }), /not a Marian config/);
    assert.throws(() => marianConfigFromJSON({ model_type: "marian", d_model: 30, encoder_attention_heads: 4 }), /divisible/);
    assert.throws(() => marianConfigFromJSON({ model_type: "marian", activation_function: "tanh" }), /activation_function/);
    assert.throws(() => marianConfigFromJSON({ model_type: "marian", d_model: "big" }), /d_model must be a number/);
  });

  test("saves a directory that loads to the same logits", () => {
    const out = mkdtempSync(join(tmpdir(), "marian-"));
    try {
      const tok = CharTokenizer.fromText("a b c");
      saveMarian(out, { model, tokenizer: tok, notes: { data: "test" } });
      const back = loadMarian(out);
      assert.equal(back.notes.data, "test");
      assert.ok(back.tokenizer);
      const x = { inputIds: ints(e.input_ids), attentionMask: ints(e.attention_mask), decoderInputIds: ints(e.decoder_input_ids) };
      const a = mx.noGrad(() => model.forward(x).logits.toArray());
      const b = mx.noGrad(() => back.model.forward(x).logits.toArray());
      assert.deepEqual(b, a);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test("generation options are checked", () => {
    const src = ints([[1, 2, 0]]);
    assert.throws(() => generateSeq2Seq(model, src, null, { maxLength: 1 }), /maxLength must be an integer >= 2/);
    assert.throws(() => generateSeq2Seq(model, src, null, { maxLength: 100 }), /exceeds the model's max_position_embeddings 64/);
    assert.throws(() => generateSeq2Seq(model, src, null, { numBeams: 2, doSample: true }), /beam sampling/);
  });

  test("sampling is seeded and top-k 1 is greedy", () => {
    const src = ints([e.input_ids[0] as number[]]);
    const a = generateSeq2Seq(model, src, null, { numBeams: 1, doSample: true, seed: 3, maxLength: 12 });
    const b = generateSeq2Seq(model, src, null, { numBeams: 1, doSample: true, seed: 3, maxLength: 12 });
    assert.deepEqual(a, b);
    const greedy = generateSeq2Seq(model, src, null, { numBeams: 1, maxLength: 12 });
    assert.deepEqual(generateSeq2Seq(model, src, null, { numBeams: 1, doSample: true, topK: 1, seed: 9, maxLength: 12 }), greedy);
  });

  test("a training step lowers the loss", () => {
    const m = new MarianMTModel({ ...model.config, dropout: 0 }, { seed: 1 });
    m.loadStateDict(model.stateDict());
    const opt = new mx.AdamW(m.optimGroups(0), { lr: 1e-2 });
    const inputs = { inputIds: ints(e.input_ids), attentionMask: ints(e.attention_mask), labels: ints(e.labels) };
    const first = m.forward(inputs).loss as mx.Tensor;
    const l0 = first.item();
    first.backward();
    opt.step();
    opt.zeroGrad();
    const l1 = mx.noGrad(() => (m.forward(inputs).loss as mx.Tensor).item());
    assert.ok(l1 < l0, `${l1} < ${l0}`);
  });
});
