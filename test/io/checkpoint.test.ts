// Model directories and checkpoints: a saved model gives the same logits after loading, damaged
// files give one-line errors naming the file, and an interrupted commit is never seen half-done.

import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { configFromJSON, configToJSON, loadModel, loadOptimizerState, saveCheckpoint, saveModel } from "../../src/io/gpt.js";
import { CheckpointError, readTrainerState, recoverCheckpoint } from "../../src/io/model-dir.js";
import { GPT, type GPTConfig } from "../../src/models/gpt.js";
import { AdamW } from "../../src/optim/adamw.js";
import { Generator, randint } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

const root = mkdtempSync(join(tmpdir(), "moxing-ckpt-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `m${n++}`);

const tokenizer = CharTokenizer.fromText("hello world, the quick brown fox!");
const tiny: Partial<GPTConfig> = { n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, vocab_size: tokenizer.vocabSize };

function logitsOf(model: GPT): Float32Array {
  const idx = randint(0, tokenizer.vocabSize, [2, 8], { generator: new Generator(7) }).int();
  model.eval();
  return model.forward(idx).logits.contiguousData() as Float32Array;
}

function oneLine(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    return true;
  });
}

describe("model directory round trip", () => {
  for (const variant of [
    {},
    { pos_encoding: "rope", bias: false, tie_weights: false },
    { pos_encoding: "sinusoidal", dropout: 0.1 },
  ] as Partial<GPTConfig>[]) {
    test(`same logits after save + load (${JSON.stringify(variant)})`, () => {
      const model = new GPT({ ...tiny, ...variant }, { seed: 3 });
      const dir = fresh();
      saveModel(dir, model, tokenizer);
      assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model.safetensors", "tokenizer.json"]);
      const loaded = loadModel(dir);
      assert.deepEqual(loaded.config, model.config);
      assert.equal(loaded.model.training, false);
      assert.deepEqual(loaded.tokenizer.toJSON(), tokenizer.toJSON());
      assert.deepEqual(logitsOf(loaded.model), logitsOf(model));
    });
  }

  test("config.json is GPT-2 style and round-trips", () => {
    const c = new GPT(tiny, { seed: 1 }).config;
    const json = configToJSON(c);
    assert.equal(json.model_type, "gpt2");
    assert.equal(json.n_positions, c.block_size);
    assert.deepEqual(json.moxing, { pos_encoding: "learned", tie_weights: true, bias: true, dropout: 0 });
    assert.deepEqual(configFromJSON(JSON.parse(JSON.stringify(json))), c);
    oneLine(() => configFromJSON({ ...json, model_type: "llama" }, "x/config.json"), /^x\/config\.json: model_type is "llama"/);
    oneLine(() => configFromJSON({ ...json, n_head: 0 }, "c.json"), /n_head must be a positive integer/);
    oneLine(() => configFromJSON({ ...json, n_head: 3 }, "c.json"), /divisible/);
  });

  test("optimizer state and trainer state round trip", () => {
    const model = new GPT(tiny, { seed: 4 });
    const opt = new AdamW(model.optimGroups(0.1), { lr: 1e-2 });
    const idx = randint(0, tokenizer.vocabSize, [2, 8], { generator: new Generator(1) }).int();
    model.forward(idx, { targets: idx }).loss?.backward();
    opt.step();
    const dir = fresh();
    saveCheckpoint(dir, { model, tokenizer, optimizer: opt, trainerState: { step: 1, hello: "world" } });
    assert.deepEqual(readTrainerState(dir), { step: 1, hello: "world" });
    const { model: m2 } = loadModel(dir);
    const opt2 = new AdamW(m2.optimGroups(0.1), { lr: 1e-2 });
    loadOptimizerState(dir, m2, opt2);
    const a = opt.stateDict();
    const b = opt2.stateDict();
    assert.equal(b.step, 1);
    assert.deepEqual(b.m, a.m);
    assert.deepEqual(b.v, a.v);
    // Saving only a model removes the now-stale training state.
    saveModel(dir, model, tokenizer);
    assert.equal(readTrainerState(dir), null);
    assert.ok(!existsSync(join(dir, "optimizer.safetensors")));
  });
});

describe("damaged model directories give one-line errors naming the file", () => {
  const good = fresh();
  saveModel(good, new GPT(tiny, { seed: 5 }), tokenizer);
  const copy = () => {
    const d = fresh();
    cpSync(good, d, { recursive: true });
    return d;
  };

  test("missing directory and files", () => {
    oneLine(() => loadModel(join(root, "nope")), /model directory '.*nope' does not exist/);
    const d = copy();
    rmSync(join(d, "tokenizer.json"));
    oneLine(() => loadModel(d), /tokenizer\.json: file not found/);
    const e = copy();
    rmSync(join(e, "model.safetensors"));
    oneLine(() => loadModel(e), /model\.safetensors: file not found/);
  });

  test("corrupt files", () => {
    const d = copy();
    writeFileSync(join(d, "config.json"), "{ not json");
    oneLine(() => loadModel(d), /config\.json: not valid JSON/);
    const e = copy();
    const bytes = readFileSync(join(e, "model.safetensors"));
    writeFileSync(join(e, "model.safetensors"), bytes.subarray(0, bytes.length - 10));
    oneLine(() => loadModel(e), /model\.safetensors: .*truncated/);
    const f = copy();
    writeFileSync(join(f, "tokenizer.json"), JSON.stringify({ type: "mystery" }));
    oneLine(() => loadModel(f), /tokenizer\.json: loadTokenizer: no tokenizer is registered for type "mystery"/);
  });

  test("weights that do not match the config", () => {
    const d = copy();
    const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    cfg.n_embd = 32;
    writeFileSync(join(d, "config.json"), JSON.stringify(cfg));
    oneLine(() => loadModel(d), /model\.safetensors: tensor 'transformer\.\S+' has shape \[[\d, ]+\] but this model needs \[[\d, ]+\]/);
    const e = copy();
    saveModel(e, new GPT({ ...tiny, n_layer: 1 }, { seed: 1 }), tokenizer);
    writeFileSync(join(e, "config.json"), readFileSync(join(good, "config.json")));
    oneLine(() => loadModel(e), /model\.safetensors: missing tensor 'transformer\.h\.1\./);
    try {
      loadModel(e);
    } catch (err) {
      assert.ok(err instanceof CheckpointError);
    }
  });
});

describe("atomic checkpoints", () => {
  test("an interrupted commit is read whole, then rolled forward", () => {
    const dir = fresh();
    const oldModel = new GPT(tiny, { seed: 10 });
    const newModel = new GPT(tiny, { seed: 11 });
    saveCheckpoint(dir, { model: oldModel, tokenizer, trainerState: { step: 1 } });
    // Simulate a writer killed after the commit rename, having moved only config.json into place.
    const staging = fresh();
    saveCheckpoint(staging, { model: newModel, tokenizer, trainerState: { step: 2 } });
    const commit = join(dir, ".checkpoint-commit");
    mkdirSync(commit);
    for (const f of ["model.safetensors", "tokenizer.json", "trainer_state.json"]) renameSync(join(staging, f), join(commit, f));
    writeFileSync(
      join(commit, "MANIFEST.json"),
      JSON.stringify({ files: ["config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"], remove: [] }),
    );
    mkdirSync(join(dir, ".checkpoint-tmp-999999999")); // garbage of a dead writer
    assert.deepEqual(readTrainerState(dir), { step: 2 });
    assert.deepEqual(logitsOf(loadModel(dir).model), logitsOf(newModel));
    assert.equal(recoverCheckpoint(dir), true);
    assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"]);
    assert.deepEqual(readTrainerState(dir), { step: 2 });
    assert.deepEqual(logitsOf(loadModel(dir).model), logitsOf(newModel));
  });

  test("a commit that never happened leaves the previous checkpoint", () => {
    const dir = fresh();
    const model = new GPT(tiny, { seed: 12 });
    saveCheckpoint(dir, { model, tokenizer, trainerState: { step: 5 } });
    const tmp = join(dir, ".checkpoint-tmp-999999998");
    mkdirSync(tmp);
    writeFileSync(join(tmp, "model.safetensors"), "half-writ");
    assert.deepEqual(readTrainerState(dir), { step: 5 });
    assert.deepEqual(logitsOf(loadModel(dir).model), logitsOf(model));
    saveCheckpoint(dir, { model, tokenizer, trainerState: { step: 6 } });
    assert.ok(!existsSync(tmp), "stale temp dir removed");
    assert.deepEqual(readTrainerState(dir), { step: 6 });
  });
});
