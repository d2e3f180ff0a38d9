// `moxing export / convert / info` end to end on the PyTorch-written GPT-2 fixture: GGUF out and back
// in generates the same text, info reads directories, .safetensors and .gguf files, and bad input is
// one line on stderr.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { assertOneLineError, moxing, type Run, repo } from "../cli-run.js";
import "../../src/index.js";
import { saveModel } from "../../src/io/gpt.js";
import { GPT } from "../../src/models/gpt.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

const fixture = join(repo, "tools", "fixtures", "hf-gpt2");
const expected = JSON.parse(readFileSync(join(fixture, "expected.json"), "utf8")) as { prompt: string; greedy: number[] };
const root = mkdtempSync(join(tmpdir(), "moxing-convert-"));
after(() => rmSync(root, { recursive: true, force: true }));

const greedyArgs = ["--prompt", expected.prompt, "--temperature", "0", "--max-new-tokens", String(expected.greedy.length)];

describe("moxing export / convert / info", () => {
  const gguf = join(root, "tiny.gguf");

  test("export to GGUF, info on it, convert it back to a directory: the same greedy text", async () => {
    const ex = await moxing(["export", "--model", fixture, "--format", "gguf", "--out", gguf]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(
      ex.stdout,
      /^wrote .*tiny\.gguf \(gguf, 0\.\d MB\) from .*hf-gpt2 \(dir\): 2 layers, n_embd 32, 4 heads, context 64, vocab 300/,
    );
    const info = await moxing(["info", "--model", gguf]);
    assert.equal(info.code, 0, info.stderr);
    const i = JSON.parse(info.stdout);
    assert.equal(i.format, "gguf");
    assert.equal(i.version, 3);
    assert.equal(i.architecture, "gpt2");
    assert.equal(i.config.n_layer, 2);
    assert.deepEqual(i.tensor_types, { F32: 28 });
    assert.equal(i.parameters.total, 37120);
    assert.deepEqual(i.tokenizer, { type: "BPE", vocab_size: 300, merges: 43, special_tokens: { "<|endoftext|>": 299 } });
    assert.equal(i.metadata["tokenizer.ggml.tokens"], "[300 string values]");

    const dir = join(root, "back");
    const conv = await moxing(["convert", "--model", gguf, "--out", dir]);
    assert.equal(conv.code, 0, conv.stderr);
    const [a, b] = await Promise.all([
      moxing(["generate", "--model", fixture, ...greedyArgs]),
      moxing(["generate", "--model", dir, ...greedyArgs]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.ok(a.stdout.startsWith(expected.prompt));
    assert.equal(b.stdout, a.stdout);
  });

  test("info on a model directory and on a bare .safetensors file", async () => {
    const [d, s] = await Promise.all([
      moxing(["info", "--model", fixture]),
      moxing(["info", "--model", join(fixture, "model.safetensors")]),
    ]);
    assert.equal(d.code, 0, d.stderr);
    const di = JSON.parse(d.stdout);
    assert.equal(di.format, "dir");
    assert.equal(di.config.architectures[0], "GPT2LMHeadModel");
    assert.deepEqual(di.parameters, { total: 37120, non_embedding: 37120 - 64 * 32, tensors: 28 });
    assert.deepEqual(di.weights.dtypes, { F32: 28 });
    assert.equal(s.code, 0, s.stderr);
    const si = JSON.parse(s.stdout);
    assert.equal(si.format, "safetensors");
    assert.deepEqual(si.metadata, { format: "pt" });
    assert.deepEqual(si.gpt2, { n_layer: 2, n_embd: 32, vocab_size: 300, n_positions: 64, tied_head: true });
  });

  test("convert to weights-only .safetensors and to a directory", async () => {
    const st = join(root, "w.safetensors");
    const r = await moxing(["convert", "--model", fixture, "--out", st]);
    assert.equal(r.code, 0, r.stderr);
    // Byte for byte what PyTorch's script wrote: same names, order, header, padding and data.
    assert.deepEqual(readFileSync(st), readFileSync(join(fixture, "model.safetensors")));
    const dir = join(root, "copy");
    const r2 = await moxing(["convert", "--model", fixture, "--out", dir, "--format", "dir"]);
    assert.equal(r2.code, 0, r2.stderr);
    const g = await moxing(["generate", "--model", dir, ...greedyArgs]);
    assert.equal(g.stdout, (await moxing(["generate", "--model", fixture, ...greedyArgs])).stdout);
  });

  test("--help for export and convert", async () => {
    const runs = await Promise.all(["export", "convert"].map((c) => moxing([c, "--help"])));
    for (const [k, c] of ["export", "convert"].entries()) {
      const r = runs[k] as Run;
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^moxing ${c}: `));
      assert.match(r.stdout, new RegExp(`Usage: moxing ${c}`));
    }
    assert.match(runs[0]?.stdout ?? "", /--tokenizer bpe/);
    const top = await moxing(["--help"]);
    for (const c of ["export", "convert", "info"]) assert.match(top.stdout, new RegExp(`^  ${c} `, "m"));
  });

  test("bad input: one line on stderr", async () => {
    const chars = CharTokenizer.fromText("hello world");
    const charDir = join(root, "char");
    saveModel(charDir, new GPT({ n_layer: 1, n_head: 1, n_embd: 8, block_size: 8, vocab_size: chars.vocabSize }, { seed: 1 }), chars);
    const badGguf = join(root, "bad.gguf");
    writeFileSync(badGguf, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), Buffer.alloc(16, 0xff)]));
    const badSt = join(root, "bad.safetensors");
    writeFileSync(badSt, Buffer.from("not a safetensors file"));
    const other = join(root, "notes.txt");
    writeFileSync(other, "hello");
    const cases: [string[], RegExp, number?][] = [
      [
        ["export", "--model", charDir, "--format", "gguf", "--out", join(root, "c.gguf")],
        /character-level; .*Train the model with --tokenizer bpe/,
        1,
      ],
      [["export", "--model", fixture, "--out", join(root, "x")], /give --format gguf/, 2],
      [["export", "--model", fixture, "--format", "dir", "--out", join(root, "x")], /--format must be gguf or safetensors/, 2],
      [["export", "--model", fixture], /--out FILE is required/, 2],
      [["export", "--model", join(root, "nope"), "--out", join(root, "x.gguf")], /'.*nope' does not exist/, 1],
      [["convert", "--model", gguf, "--out", gguf], /--out is the same path as --model/, 2],
      [["convert", "--model", fixture, "--out", join(root, "y"), "--format", "onnx"], /--format must be dir, safetensors or gguf/, 2],
      [["info", "--model", badGguf], /bad\.gguf: (impossibly large|tensor_count|claims)/, 1],
      [["info", "--model", badSt], /bad\.safetensors: header length .* larger than/, 1],
      [["info", "--model", other], /notes\.txt' is neither a model directory, a \.safetensors file nor a GGUF file/, 1],
      [["info", "--model", join(root, "nope")], /model directory '.*nope' does not exist/, 1],
    ];
    const runs = await Promise.all(cases.map(([args]) => moxing(args)));
    cases.forEach(([args, pattern, code], k) => {
      try {
        assertOneLineError(runs[k] as Run, pattern, code);
      } catch (e) {
        (e as Error).message = `moxing ${args.join(" ")}: ${(e as Error).message}`;
        throw e;
      }
    });
  });
});
