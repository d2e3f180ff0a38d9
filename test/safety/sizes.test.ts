// Issue 11, absurd sizes: a config that cannot fit is refused before anything is allocated, with
// the field to blame and the estimate (n_layer 100000 in config.json, BERT num_hidden_layers 1e5,
// train --n-layer 100000 / --batch-size 1e9 / --grad-accum 1e8 / --n-embd 1e6, vocab_size 1e12,
// demo --hidden 1e8, a 97 KB GGUF claiming block_count 100000 used to end in bad_alloc, a V8 heap
// crash or "Invalid typed array length"). Safetensors headers naming a tensor twice are refused.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import "../../src/index.js";
import { readBertConfig } from "../../src/io/bert.js";
import { configToJSON, readConfig, saveModel } from "../../src/io/checkpoint.js";
import { encodeGGUF, type GGUFValue } from "../../src/io/gguf.js";
import { gpt2GGUF, loadGGUFModel } from "../../src/io/gguf-gpt2.js";
import { decodeSafetensors } from "../../src/io/safetensors.js";
import { BERT_DEFAULTS, Bert, bertConfig, estimateBertMemory } from "../../src/models/bert.js";
import { memoryBudget } from "../../src/models/budget.js";
import { checkGPTEvalMemory, estimateGPTMemory, GPT, GPT_DEFAULTS, type GPTConfig, gptParameterCount } from "../../src/models/gpt.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";
import { pretrainMlm } from "../../src/train/mlm.js";
import { train } from "../../src/train/trainer.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const root = mkdtempSync(join(tmpdir(), "moxing-sizes-"));
after(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.MOXING_MAX_MEMORY;
});

/** The error of fn, which must throw; also checks it is one line. */
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    assert.ok(!(e as Error).message.includes("\n"), (e as Error).message);
    return e as Error;
  }
  return assert.fail("expected an error");
}

const text = "the quick brown fox jumps over the lazy dog. ".repeat(20);

describe("estimates", () => {
  const configs: Partial<GPTConfig>[] = [
    {},
    { bias: false, tie_weights: false, pos_encoding: "rope" },
    { n_layer: 2, n_embd: 48, n_head: 3, vocab_size: 300, pos_encoding: "sinusoidal" },
  ];
  for (const c of configs) {
    test(`gptParameterCount is exact (${JSON.stringify(c)})`, () => {
      const m = new GPT({ ...c, n_layer: c.n_layer ?? 1 }, { seed: 0 });
      assert.equal(gptParameterCount(m.config), m.numParameters());
      const e = estimateGPTMemory(m.config);
      assert.equal(e.parts.weights, 4 * m.numParameters());
      assert.equal(
        e.bytes,
        Object.values(e.parts).reduce((a, b) => a + b, 0),
      );
    });
  }

  test("training needs more than inference: gradients, optimizer state, batches", () => {
    const c = { ...GPT_DEFAULTS };
    const inf = estimateGPTMemory(c);
    const tr = estimateGPTMemory(c, { batch_size: 12, grad_accum: 1 });
    assert.equal(tr.parts["gradients and optimizer state"], 3 * (inf.parts.weights as number));
    assert.ok(tr.bytes > inf.bytes);
    assert.equal(estimateGPTMemory(c, { batch_size: 12, grad_accum: 10 }).parts["batches of token ids"], 8 * 10 * 12 * 64);
  });

  test("the BERT estimate counts exactly the parameters of a fill-mask model with its pooler", () => {
    for (const size of ["tiny", "mini"] as const) {
      const c = bertConfig(size);
      assert.equal(estimateBertMemory(c).parameters, new Bert(c, { init: "none" }).numParameters());
    }
  });

  test("MOXING_MAX_MEMORY sets the budget; a model just over it is refused, just under accepted", () => {
    const c = { ...GPT_DEFAULTS, n_layer: 2 };
    const need = estimateGPTMemory(c).bytes;
    process.env.MOXING_MAX_MEMORY = String(need);
    assert.doesNotThrow(() => new GPT(c));
    process.env.MOXING_MAX_MEMORY = String(need - 1);
    const e = errorOf(() => new GPT(c));
    assert.match(
      e.message,
      /^GPT config: the model would need about [\d.]+ MiB \(.*\), more than the [\d.]+ MiB of MOXING_MAX_MEMORY; use smaller sizes$/,
    );
    process.env.MOXING_MAX_MEMORY = "8G";
    assert.equal(memoryBudget().bytes, 8 * 2 ** 30);
    process.env.MOXING_MAX_MEMORY = "lots";
    assert.throws(() => memoryBudget(), /MOXING_MAX_MEMORY must be a size such as 8G/);
  });
});

describe("absurd model configs are refused before allocation", () => {
  test("config.json with n_layer 100000 (read, not built)", () => {
    const dir = join(root, "deep");
    const tok = CharTokenizer.fromText(text);
    saveModel(dir, new GPT({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 8, vocab_size: tok.vocabSize }, { seed: 0 }), tok);
    const json = configToJSON({ ...GPT_DEFAULTS, n_layer: 100000, vocab_size: tok.vocabSize });
    writeFileSync(join(dir, "config.json"), JSON.stringify(json));
    const e = errorOf(() => readConfig(dir));
    assert.match(
      e.message,
      /config\.json: GPT config: n_layer 100000: the model would need about \d+ GiB \(1\.98e\+10 parameters; weights \d+ GiB/,
    );
    assert.match(e.message, /more than the .* of this machine's memory; lower n_layer$/);
  });

  const cases: [string, Partial<GPTConfig>, string][] = [
    ["vocab_size 1e12", { vocab_size: 1e12 }, "vocab_size 1000000000000"],
    ["n_embd 1e6", { n_embd: 1e6, n_head: 1 }, "n_embd 1000000"],
    ["block_size 1e9", { block_size: 1e9 }, "block_size 1000000000"],
  ];
  for (const [name, c, field] of cases) {
    test(`new GPT with ${name} names the field`, () => {
      const e = errorOf(() => new GPT(c));
      assert.ok(e instanceof RangeError);
      assert.ok(e.message.startsWith(`GPT config: ${field}: the model would need about `), e.message);
    });
  }

  test("BERT num_hidden_layers 1e5, in code and in a config.json", () => {
    const e = errorOf(() => new Bert({ ...bertConfig("tiny"), num_hidden_layers: 1e5 }));
    assert.match(
      e.message,
      /^BERT config: num_hidden_layers 100000: the model would need about [\d.]+ [GT]iB .*; lower num_hidden_layers$/,
    );
    const dir = join(root, "bert-deep");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...BERT_DEFAULTS, model_type: "bert", architectures: ["BertForMaskedLM"], num_hidden_layers: 1e5 }),
    );
    assert.throws(() => readBertConfig(dir), /config\.json: BERT config: num_hidden_layers 100000: .* lower num_hidden_layers/);
  });

  test("a small GGUF claiming block_count 100000 is refused by its tensor table, before any model is built", () => {
    const tok = ByteLevelBPE.train(text, { vocabSize: 270 });
    const model = new GPT({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, vocab_size: tok.vocabSize }, { seed: 0 });
    const { metadata, tensors } = gpt2GGUF(model, tok);
    const lie = (key: string, value: number, also: Record<string, number> = {}): [string, GGUFValue][] =>
      metadata.map(([k, v]) => {
        const lied = k === key ? value : also[k];
        return (lied === undefined ? [k, v] : [k, { type: "u32", value: lied }]) as [string, GGUFValue];
      });
    const write = (name: string, meta: [string, GGUFValue][]) => {
      const p = join(root, name);
      writeFileSync(p, Buffer.concat(encodeGGUF(meta, tensors)));
      return p;
    };
    const deep = write("deep.gguf", lie("gpt2.block_count", 100000));
    assert.ok(statSync(deep).size < 200_000);
    assert.throws(
      () => loadGGUFModel(deep),
      /deep\.gguf: metadata gpt2\.block_count is 100000 but the file has tensors for 2 block\(s\); the file is damaged or truncated/,
    );
    // A width that disagrees with the tensors is caught the same way, by shape.
    assert.throws(
      () => loadGGUFModel(write("wide.gguf", lie("gpt2.embedding_length", 1 << 20, { "gpt2.feed_forward_length": 4 << 20 }))),
      /tensor 'token_embd\.weight' has shape \[\d+, 16\] but the metadata implies \[\d+, 1048576\]/,
    );
    assert.throws(
      () => loadGGUFModel(write("long.gguf", lie("gpt2.context_length", 1e9))),
      /tensor 'position_embd\.weight' has shape \[16, 16\] but the metadata implies \[1000000000, 16\]/,
    );
    // The honest file still loads.
    assert.equal(loadGGUFModel(write("ok.gguf", metadata)).model.config.n_layer, 2);
  });
});

describe("absurd training sizes are refused before the model is built", () => {
  const cases: [string, Record<string, number>, RegExp][] = [
    [
      "--n-layer 100000",
      { nLayer: 100000 },
      /^GPT training: --n-layer 100000: the model would need about [\d.]+ TiB to train .*; lower --n-layer$/,
    ],
    ["--batch-size 1e9", { batchSize: 1e9 }, /^GPT training: --batch-size 1000000000: .* lower --batch-size$/],
    [
      "--grad-accum 1e8",
      { gradAccum: 1e8 },
      /^GPT training: --grad-accum 100000000: .*batches of token ids [\d.]+ GiB\), more than .*; lower --grad-accum$/,
    ],
    ["--n-embd 1e6", { nEmbd: 1e6, nHead: 1 }, /^GPT training: --n-embd 1000000: .* lower --n-embd$/],
  ];
  for (const [name, opts, message] of cases) {
    test(name, async () => {
      const out = join(root, `run-${name.replace(/\W/g, "")}`);
      await assert.rejects(train({ out, text, maxSteps: 1, ...opts }), (e: Error) => {
        assert.match(e.message, message);
        return true;
      });
      assert.ok(!existsSync(out), "nothing is written for a refused run");
    });
  }

  test("eval --batch-size 1e9: the batch is bounded by the data's windows, and refused if those cannot fit", () => {
    const c = { ...GPT_DEFAULTS, n_layer: 1 };
    const label = (f: string) => (f === "batch_size" ? "--batch-size" : f);
    assert.doesNotThrow(() => checkGPTEvalMemory(c, 1e9, 1000, label), "1000 windows of a small model fit");
    process.env.MOXING_MAX_MEMORY = "64M";
    assert.doesNotThrow(() => checkGPTEvalMemory(c, 1e9, 10, label));
    assert.throws(
      () => checkGPTEvalMemory(c, 1e9, 1e6, label),
      /^RangeError: GPT evaluation: --batch-size 1000000000: the model would need about [\d.]+ GiB to evaluate .* more than the 64 MiB of MOXING_MAX_MEMORY; lower --batch-size$/,
    );
  });

  test("pretrain-mlm --batch-size 1e9 (a V8 heap crash before) and --max-len 1e9", async () => {
    const mlmText = "the quick brown fox jumps over the lazy dog and runs far away. ".repeat(60);
    await assert.rejects(pretrainMlm({ out: join(root, "mlm-batch"), text: mlmText, maxSteps: 1, batchSize: 1e9 }), (e: Error) => {
      assert.match(
        e.message,
        /^BERT training: --batch-size 1000000000: the model would need about [\d.]+ PiB to train .*; lower --batch-size$/,
      );
      return true;
    });
    await assert.rejects(
      pretrainMlm({ out: join(root, "mlm-len"), text: mlmText, maxSteps: 1, maxLen: 1e9 }),
      /BERT config: max_position_embeddings 1000000000: .* lower max_position_embeddings$/,
    );
  });

  test("moxing train --n-layer 100000 and moxing demo --hidden 1e8 exit with one line", async () => {
    const data = join(root, "data.txt");
    writeFileSync(data, text);
    assertOneLineError(
      await moxing(["train", "--data", data, "--out", join(root, "cli-deep"), "--n-layer", "100000"]),
      /GPT training: --n-layer 100000: the model would need about .* lower --n-layer$/,
      1,
    );
    assertOneLineError(
      await moxing(["demo", "--hidden", "1e8"]),
      /demo: --hidden 100000000: the model would need about .* lower --hidden$/,
      1,
    );
  });
});

describe("safetensors: a header naming a tensor twice is refused", () => {
  const body = (header: string, data: Uint8Array) => {
    const h = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + h.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(data, 8 + h.length);
    return out;
  };
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);

  test("the same tensor name twice (JSON.parse would keep the last silently)", () => {
    const buf = body(
      '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}',
      data,
    );
    assert.throws(
      () => decodeSafetensors(buf, "dup.safetensors"),
      /dup\.safetensors: header names tensor 'w' twice; a file must name each tensor once/,
    );
  });

  test("a key twice inside one tensor's entry", () => {
    const buf = body('{"w": {"dtype": "F32", "dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}', data.subarray(0, 8));
    assert.throws(() => decodeSafetensors(buf, "x"), /header names key 'dtype' twice in the entry of 'w'/);
  });

  test("a header that is not JSON is located, not quoted", () => {
    const buf = body('{"w": secret}', data);
    assert.throws(
      () => decodeSafetensors(buf, "x"),
      (e: Error) => /header is not valid JSON: expected a value at byte 14$/.test(e.message) && !e.message.includes("secret"),
    );
  });

  test("distinct names still load", () => {
    const buf = body(
      '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}',
      data,
    );
    assert.deepEqual([...decodeSafetensors(buf, "x").tensors.keys()], ["a", "b"]);
  });
});
