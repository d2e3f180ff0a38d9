// LoRA: adapters on chosen Linear layers with PEFT's names; the base frozen (gradients only on adapter
// weights); merged model == base + adapter; disabling gives the base back; PEFT's file layout read and
// written; parity with PyTorch (PEFT's arithmetic, GPT-2's Conv1D orientation) from tools/torch_lora.py.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadAdapter, loadModel, readWeights, saveAdapter, saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { LoraModel } from "../../src/nn/lora.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing } from "../cli-run.js";
import { assertClose } from "../helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-lora-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const fixtures = new URL("../../tools/fixtures/", import.meta.url).pathname;

const small = () => new GPT({ vocab_size: 20, n_layer: 2, n_head: 2, n_embd: 16, block_size: 8 }, { seed: 4 });
const ids = tensor([[1, 5, 2, 7, 3, 9]], { dtype: "int32" });
const logitsOf = (m: GPT) => Float32Array.from(noGrad(() => m.forward(ids).logits.contiguousData() as Float32Array));
/** Make every lora_B non-zero, so the adapters change the outputs. */
function perturb(lora: LoraModel, seed = 1) {
  let s = seed;
  noGrad(() => {
    for (const [name, p] of lora.namedParameters()) {
      if (!name.endsWith("lora_B.weight")) continue;
      const d = new Float32Array(p.size).map(() => {
        s = (s * 16807) % 2147483647;
        return (s / 2147483647 - 0.5) * 0.4;
      });
      p.copy_(tensor(d, { shape: [...p.shape] }));
    }
  });
}

describe("LoraModel", () => {
  test("adapters sit on the targeted Linear layers under PEFT's names, and start as a no-op", () => {
    const base = small();
    const before = logitsOf(base);
    const lora = new LoraModel(base, { r: 4, alpha: 8, dropout: 0, targetModules: ["c_attn", "c_proj"] });
    assert.deepEqual(
      [...lora.adapters.keys()],
      [
        "transformer.h.0.attn.c_attn",
        "transformer.h.0.attn.c_proj",
        "transformer.h.0.mlp.c_proj",
        "transformer.h.1.attn.c_attn",
        "transformer.h.1.attn.c_proj",
        "transformer.h.1.mlp.c_proj",
      ],
    );
    const names = lora.namedParameters().map(([n, p]) => `${n} ${p.shape.join("x")}`);
    assert.equal(names[0], "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight 4x16");
    assert.equal(names[1], "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight 48x4");
    assert.equal(lora.scaling, 2);
    const { trainable, total } = lora.trainableParameters();
    // Per block: c_attn 4x16 + 48x4, attn.c_proj 4x16 + 16x4, mlp.c_proj 4x64 + 16x4.
    assert.equal(trainable, 2 * (4 * 16 + 48 * 4 + (4 * 16 + 16 * 4) + (4 * 64 + 16 * 4)));
    assert.equal(total, base.numParameters() + trainable);
    assertClose("initial logits", logitsOf(base), before, 0, 0);
  });

  test("gradients reach only the adapter weights", () => {
    const base = small();
    const lora = new LoraModel(base, { r: 2, alpha: 4, dropout: 0.1, targetModules: ["c_attn", "c_fc"] });
    perturb(lora);
    lora.train();
    const { loss } = base.forward(ids, { targets: tensor([[5, 2, 7, 3, 9, 1]], { dtype: "int32" }) });
    loss!.backward();
    for (const [name, p] of base.namedParameters()) assert.equal(p.grad, null, `${name} is frozen and must get no gradient`);
    for (const [name, p] of lora.namedParameters()) {
      const g = p.grad?.contiguousData() as Float32Array | undefined;
      assert.ok(
        g?.some((v) => v !== 0),
        `${name} needs a gradient`,
      );
    }
  });

  test("merged model == base + adapters; disabled adapters == base; unload restores the base", () => {
    const base = small();
    const plain = logitsOf(base);
    const lora = new LoraModel(base, { r: 4, alpha: 16, dropout: 0, targetModules: ["c_attn", "c_proj", "c_fc"] });
    perturb(lora);
    base.eval();
    const adapted = logitsOf(base);
    assert.ok(
      adapted.some((v, i) => Math.abs(v - (plain[i] as number)) > 1e-3),
      "the adapters change the outputs",
    );
    assertClose(
      "adapters disabled",
      lora.withAdaptersDisabled(() => logitsOf(base)),
      plain,
      0,
      0,
    );
    assertClose("re-enabled", logitsOf(base), adapted, 0, 0);
    lora.merge();
    assertClose("merged", logitsOf(base), adapted, 1e-4, 1e-5);
    assert.ok(
      base.parameters().every((p) => p.requiresGrad),
      "merging makes the base trainable again",
    );
    assert.throws(() => lora.merge(), /already merged/);
  });

  test("bad configs and targets get errors naming the problem", () => {
    assert.throws(() => new LoraModel(small(), { r: 0, alpha: 8, dropout: 0, targetModules: ["c_attn"] }), /r must be a positive integer/);
    assert.throws(
      () => new LoraModel(small(), { r: 2, alpha: 8, dropout: 0, targetModules: ["q_proj"] }),
      /'q_proj' is not in the model; its Linear layers are named c_attn, c_proj, c_fc/,
    );
    assert.throws(
      () => new LoraModel(small(), { r: 2, alpha: 8, dropout: 0, targetModules: ["ln_1"] }),
      /is a LayerNorm; LoRA adapts Linear layers only/,
    );
  });
});

describe("PEFT's layout", () => {
  test("saveAdapter writes adapter_config.json and adapter_model.safetensors that loadAdapter reads back", () => {
    const base = small();
    const lora = new LoraModel(base, { r: 4, alpha: 8, dropout: 0.05, targetModules: ["c_attn", "c_proj"] });
    perturb(lora, 3);
    base.eval();
    const adapted = logitsOf(base);
    const dir = join(tmp, "adapter");
    saveAdapter(dir, lora, { baseModel: "runs/base" });
    const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    assert.equal(config.peft_type, "LORA");
    assert.equal(config.fan_in_fan_out, true, "GPT-2's projections are Conv1D");
    assert.deepEqual([config.r, config.lora_alpha, config.lora_dropout, config.target_modules], [4, 8, 0.05, ["c_attn", "c_proj"]]);
    lora.unload();
    const fresh = small();
    const loaded = loadAdapter(dir, fresh);
    fresh.eval();
    assertClose("reloaded adapter", logitsOf(fresh), adapted, 0, 0);
    assert.equal(loaded.adapters.size, 6);
  });

  test("an adapter written by PyTorch in PEFT's layout gives PyTorch's logits, adapted and merged", () => {
    const expected = JSON.parse(readFileSync(join(fixtures, "lora", "expected.json"), "utf8"));
    const { model } = loadModel(join(fixtures, "hf-gpt2"));
    const lora = loadAdapter(join(fixtures, "lora"), model);
    model.eval();
    const x = tensor([expected.ids], { dtype: "int32" });
    const logits = () => noGrad(() => model.forward(x).logits.contiguousData() as Float32Array);
    assertClose("adapted logits vs PyTorch", logits(), expected.logits.data, 1e-4, 1e-4);
    lora.merge();
    assertClose("merged logits vs PyTorch", logits(), expected.logits.data, 1e-4, 1e-4);
    // Saved in Hugging Face's layout, the merged weight is Conv1D (in, out): W + ((B A)ᵀ) * scaling.
    const dir = join(tmp, "merged");
    saveModel(dir, model, CharTokenizer.fromText("ab"));
    const w = readWeights(dir).tensors.get("transformer.h.0.attn.c_attn.weight");
    const want = expected.merged["transformer.h.0.attn.c_attn.weight"];
    assert.deepEqual(w?.shape, want.shape);
    assertClose("merged Conv1D weight", w?.data as Float32Array, want.data, 1e-5, 1e-6);
  });

  test("adapters PEFT features moxing lacks are refused by name; mismatched files are errors", () => {
    const dir = join(tmp, "dora");
    const base = small();
    const lora = new LoraModel(base, { r: 2, alpha: 4, dropout: 0, targetModules: ["c_attn"] });
    saveAdapter(dir, lora);
    lora.unload();
    const cfgPath = join(dir, "adapter_config.json");
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    const write = (c: object) => writeFileSync(cfgPath, JSON.stringify(c));
    write({ ...cfg, use_dora: true });
    assert.throws(() => loadAdapter(dir, small()), /use_dora is true; DoRA/);
    write({ ...cfg, modules_to_save: ["lm_head"] });
    assert.throws(() => loadAdapter(dir, small()), /modules_to_save/);
    write({ ...cfg, r: 3 });
    const other = small();
    assert.throws(() => loadAdapter(dir, other), /has shape \[2, 16\] but the adapter needs \[3, 16\]/);
    assert.ok(
      other.parameters().every((p) => p.requiresGrad),
      "a failed load leaves the base as it was",
    );
  });

  test("an adapter holding NaN is refused at load, naming the tensor, and the base is left as it was", () => {
    const dir = join(tmp, "nan-adapter");
    const base = small();
    const lora = new LoraModel(base, { r: 2, alpha: 4, dropout: 0, targetModules: ["c_attn"] });
    noGrad(() => {
      const [name, p] = lora.namedParameters().find(([n]) => n.endsWith("lora_B.weight")) as [string, ReturnType<typeof tensor>];
      const d = new Float32Array(p.size);
      d[1] = Number.NaN;
      p.copy_(tensor(d, { shape: [...p.shape] }));
      assert.ok(name.includes("lora_B"));
    });
    saveAdapter(dir, lora);
    lora.unload();
    const other = small();
    assert.throws(() => loadAdapter(dir, other), /lora_B\.weight' are NaN or infinite/);
    assert.ok(
      other.parameters().every((p) => p.requiresGrad),
      "the failed load took its adapters off again",
    );
  });
});

describe("moxing merge", () => {
  test("merges an adapter into a model directory; the result computes base + adapter", async () => {
    const base = small();
    const tok = CharTokenizer.fromText("abcdefghijklmnopqrs");
    const baseDir = join(tmp, "cli-base");
    saveModel(baseDir, base, tok);
    const lora = new LoraModel(base, { r: 4, alpha: 8, dropout: 0, targetModules: ["c_attn", "c_proj"] });
    perturb(lora, 5);
    base.eval();
    const adapted = logitsOf(base);
    const adapterDir = join(tmp, "cli-adapter");
    saveAdapter(adapterDir, lora);
    const out = join(tmp, "cli-merged");
    const r = await moxing(["merge", "--model", baseDir, "--adapter", adapterDir, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assertClose("merged by the CLI", logitsOf(loadModel(out).model), adapted, 1e-4, 1e-5);
    assertOneLineError(
      await moxing(["merge", "--model", baseDir, "--adapter", join(tmp, "nope"), "--out", out]),
      /adapter directory .* does not exist/,
    );
  });
});
