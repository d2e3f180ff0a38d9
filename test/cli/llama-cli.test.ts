// The command line on Llama-family models: `moxing quantize` writes a GGUF that `moxing generate`
// and `moxing info` read; generation from a Hugging Face directory and from its float32 GGUF is the
// same text; bad flags and files that are not Llama-family models are one-line errors.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { assertOneLineError, moxing, repo } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-llama-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const qwen2 = join(repo, "tools", "fixtures", "hf-llama", "qwen2");
const mistral = join(repo, "tools", "fixtures", "hf-llama", "mistral");

describe("moxing quantize, generate and info on Llama-family models", () => {
  test("quantize to q8_0 and f32; generate reads the directory and the files", async () => {
    const q8 = join(tmp, "qwen2-q8_0.gguf");
    const r = await moxing(["quantize", "--model", qwen2, "--type", "q8_0", "--out", q8]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.architecture, "qwen2");
    assert.ok(report.tensor_types.Q8_0 > 0, JSON.stringify(report.tensor_types));
    assert.equal(report.bytes.out, statSync(q8).size);
    const info = JSON.parse((await moxing(["info", "--model", q8])).stdout);
    assert.equal(info.config.model_type, "qwen2");
    assert.equal(info.tokenizer.pre, "qwen2");

    const f32 = join(tmp, "mistral-f32.gguf");
    assert.equal((await moxing(["quantize", "--model", mistral, "--type", "f32", "--out", f32])).code, 0);
    const args = ["--prompt", "The people will build", "--max-new-tokens", "12", "--temperature", "0"];
    const fromDir = await moxing(["generate", "--model", mistral, ...args]);
    const fromGGUF = await moxing(["generate", "--model", f32, ...args]);
    assert.equal(fromDir.code, 0, fromDir.stderr);
    assert.ok(
      fromDir.stdout.startsWith("The people will build") && fromDir.stdout.length > "The people will build".length + 3,
      fromDir.stdout,
    );
    assert.equal(fromGGUF.stdout, fromDir.stdout);
    const fromQ8 = await moxing(["generate", "--model", q8, ...args]);
    assert.equal(fromQ8.code, 0, fromQ8.stderr);
  });

  test("moxing eval: a Hugging Face directory and its GGUF files give the same loss", async () => {
    const data = join(tmp, "eval.txt");
    writeFileSync(data, "The people will build a nation of hope, and the union is strong. We will work.\n".repeat(6));
    const ev = async (model: string, ...flags: string[]) => {
      const r = await moxing(["eval", "--model", model, "--data", data, ...flags]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { loss: number; perplexity: number; tokens: number };
    };
    const [dir, f32] = await Promise.all([ev(mistral), ev(join(tmp, "mistral-f32.gguf"))]);
    assert.ok(dir.tokens > 50 && Number.isFinite(dir.loss) && dir.loss > 0, JSON.stringify(dir));
    assert.equal(f32.tokens, dir.tokens);
    assert.ok(Math.abs(f32.loss - dir.loss) < 1e-4, `directory ${dir.loss}, f32 GGUF ${f32.loss}`);
    const [q2dir, q8] = await Promise.all([ev(qwen2, "--block-size", "16"), ev(join(tmp, "qwen2-q8_0.gguf"), "--block-size", "16")]);
    assert.equal(q8.tokens, q2dir.tokens);
    assert.ok(Math.abs(q8.loss - q2dir.loss) < 0.05 * q2dir.loss, `directory ${q2dir.loss}, q8_0 GGUF ${q8.loss}`);
  });

  test("bad input is a one-line error", async () => {
    assertOneLineError(
      await moxing(["quantize", "--model", qwen2, "--type", "q3_k", "--out", join(tmp, "x.gguf")]),
      /--type must be one of q8_0, q5_0, q4_0, q4_k/,
      2,
    );
    assertOneLineError(
      await moxing(["quantize", "--model", qwen2, "--type", "q8_0", "--out", join(tmp, "x.bin")]),
      /--out must be a \.gguf file/,
      2,
    );
    const gpt2 = join(repo, "tools", "fixtures", "hf-gpt2");
    assertOneLineError(
      await moxing(["quantize", "--model", gpt2, "--type", "q8_0", "--out", join(tmp, "x.gguf")]),
      /not a Llama-family model/,
      1,
    );
  });
});
