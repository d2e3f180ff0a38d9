// Llama, Mistral, Qwen2 and Qwen3 against Hugging Face's own modeling code: small random checkpoints
// written by tools/hf_llama_fixtures.py (bfloat16 shards, float16 and float32 files) load from their
// directories and give the logits Hugging Face computed to 1e-4, the same loss and gradients, and
// the same greedy continuation through the KV cache.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { generateIds } from "../../src/generate/index.js";
import { loadLlamaDir } from "../../src/io/llama.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { noGrad, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "fixtures", "hf-llama");

const FIXTURES: [string, string][] = [
  ["llama3", "LlamaForCausalLM, GQA, Llama 3 rope scaling, bfloat16 in two shards"],
  ["mistral", "MistralForCausalLM, 8 heads over 2 kv heads, float16"],
  ["qwen2", "Qwen2ForCausalLM, q/k/v biases, tied head, float16"],
  ["qwen3", "Qwen3ForCausalLM, q/k norms, head_dim 16 with hidden 48, float32"],
];

describe("parity with Hugging Face's modeling code", () => {
  for (const [name, what] of FIXTURES) {
    test(`${name}: ${what}`, () => {
      const dir = join(root, name);
      const { model, config } = loadLlamaDir(dir);
      const expected = readSafetensors(join(dir, "expected.safetensors")).tensors;
      const get = (k: string) => {
        const t = expected.get(k);
        assert.ok(t, `expected.safetensors has ${k}`);
        return t;
      };
      const ids = get("ids");
      const [B, T] = ids.shape as [number, number];
      const idx = tensor(ids.data as Int32Array, { shape: [B, T], dtype: "int32" });

      const logits = noGrad(() => model.forward(idx).logits);
      assert.deepEqual([...logits.shape], [B, T, config.vocab_size]);
      assertClose(`${name} logits`, logits.toArray(), get("logits").data, 1e-4, 1e-4);

      // Hugging Face's loss shifts the labels: position t predicts token t + 1.
      model.train();
      const inputs = idx.slice(1, 0, T - 1).contiguous();
      const targets = idx.slice(1, 1, T).contiguous();
      const { loss } = model.forward(inputs, { targets });
      assertClose(`${name} loss`, [(loss as { item(): number }).item()], get("loss").data, 1e-5, 1e-5);
      model.zeroGrad();
      loss?.backward();
      const params = new Map(model.namedParameters());
      const gradNames = [...expected.keys()].filter((k) => k.startsWith("grad."));
      assert.ok(gradNames.length >= 2);
      for (const k of gradNames) {
        const p = params.get(k.slice(5));
        assert.ok(p?.grad, `${k.slice(5)} has a gradient`);
        assertClose(`${name} ${k}`, p.grad.toArray(), get(k).data, 1e-3, 1e-5);
      }
      model.eval();

      const greedy = get("greedy");
      const prompt = Array.from((ids.data as Int32Array).subarray(0, T));
      const got = [...generateIds(model, prompt, { maxNewTokens: greedy.data.length, temperature: 0 })];
      assert.deepEqual(got, Array.from(greedy.data), `${name}: greedy continuation through the KV cache`);
    });
  }
});
