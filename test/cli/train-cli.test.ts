// `moxing train / eval / info` end to end on a tiny model, the one-line errors for bad input, and
// Ctrl-C (SIGINT) saving a checkpoint that --resume continues.

import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { assertOneLineError, moxing, type Run } from "../cli-run.js";

const root = mkdtempSync(join(tmpdir(), "moxing-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

const words = ["we", "the", "people", "of", "the", "united", "states", "in", "order", "to", "form", "a", "more", "perfect", "union"];
let text = "";
for (let i = 0; text.length < 4000; i++) text += `${words[(i * 5 + (i >> 3)) % words.length]}${i % 9 === 8 ? ".\n" : " "}`;
const data = join(root, "data.txt");
const model = join(root, "model");
const tiny = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-iters", "1"];

describe("moxing train / eval / info", () => {
  before(() => writeFileSync(data, text));

  test("train a few steps, then eval and info on the result", async () => {
    const r = await moxing(["train", "--data", data, "--out", model, ...tiny, "--max-steps", "6", "--eval-interval", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 6 steps, train loss \d\.\d{4}, val loss \d\.\d{4}/);
    assert.match(r.stderr, /step 6\/6 +loss \d\.\d+ .*tok\/s +ETA/);
    assert.match(r.stderr, /step 3: train loss \d\.\d{4}, val loss \d\.\d{4}/);
    const lines = readFileSync(join(model, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.step),
      [1, 2, 3, 4, 5, 6],
    );
    for (const l of lines) for (const k of ["train_loss", "lr", "tokens_per_s", "ms_per_step"]) assert.equal(typeof l[k], "number", k);
    assert.equal(typeof lines[2].val_loss, "number");

    const [ev, info] = await Promise.all([moxing(["eval", "--model", model, "--data", data]), moxing(["info", "--model", model])]);
    assert.equal(ev.code, 0, ev.stderr);
    const e = JSON.parse(ev.stdout);
    assert.deepEqual(Object.keys(e).sort(), ["loss", "perplexity", "tokens"]);
    assert.equal(e.tokens, text.length - 1);
    assert.ok(e.loss > 0 && e.loss < 5, `loss ${e.loss}`);
    assert.ok(Math.abs(e.perplexity - Math.exp(e.loss)) < 1e-9);
    assert.equal(info.code, 0, info.stderr);
    const i = JSON.parse(info.stdout);
    assert.equal(i.config.model_type, "gpt2");
    assert.equal(i.config.n_layer, 1);
    assert.equal(i.config.n_positions, 16);
    assert.equal(i.tokenizer.type, "char");
    assert.equal(i.config.vocab_size, i.tokenizer.vocab_size);
    const { n_embd: C, vocab_size: V, n_positions: T } = i.config;
    const perLayer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
    assert.equal(i.parameters.total, V * C + T * C + perLayer + 2 * C);
    assert.equal(i.parameters.non_embedding, i.parameters.total - T * C);
    assert.equal(i.training.step, 6);
  });

  test("generate streams a continuation of the prompt; bad prompts and flags are one-line errors", async () => {
    const prompt = text.slice(0, 10);
    const r = await moxing(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "20", "--seed", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(prompt), r.stdout);
    assert.equal([...r.stdout.trimEnd()].length <= prompt.length + 20, true);
    const again = await moxing(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "20", "--seed", "3"]);
    assert.equal(again.stdout, r.stdout, "same seed, same text");
    const greedy = await moxing(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "12", "--temperature", "0"]);
    const greedyNoCache = await moxing([
      "generate",
      "--model",
      model,
      "--prompt",
      prompt,
      "--max-new-tokens",
      "12",
      "--temperature",
      "0",
      "--no-cache",
    ]);
    assert.equal(greedy.stdout, greedyNoCache.stdout, "the KV cache does not change greedy output");
    const bad = await Promise.all([
      moxing(["generate", "--model", model, "--prompt", "☃"]),
      moxing(["generate", "--model", model, "--prompt", "a", "--top-p", "2"]),
      moxing(["generate", "--model", model]),
    ]);
    assertOneLineError(bad[0] as Run, /the prompt cannot be encoded: .*"☃" \(U\+2603\)/, 2);
    assertOneLineError(bad[1] as Run, /--top-p must be in \(0, 1\]/, 2);
    assertOneLineError(bad[2] as Run, /--prompt TEXT is required/, 2);
  });

  test("one flag vocabulary: --n-embd and --max-steps in demo too, the old names still work", async () => {
    const [now, old] = await Promise.all([
      moxing(["demo", "--max-steps", "2", "--n-embd", "4"]),
      moxing(["demo", "--steps", "2", "--hidden", "4"]),
    ]);
    for (const r of [now, old]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /MLP 2-4-4-2/);
      assert.match(r.stdout, /step +2 +loss/);
    }
  });

  test("--help for each command", async () => {
    const runs = await Promise.all(["train", "eval", "info", "start", "generate"].map((c) => moxing([c, "--help"])));
    for (const [k, c] of ["train", "eval", "info", "start", "generate"].entries()) {
      const r = runs[k] as Run;
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^moxing ${c}: `));
      assert.match(r.stdout, new RegExp(`Usage: moxing ${c}`));
    }
    const top = await moxing(["--help"]);
    for (const c of ["train", "eval", "info", "start", "generate"]) assert.match(top.stdout, new RegExp(`^  ${c} `, "m"));
  });

  test("bad input: one line on stderr, non-zero exit, no stack trace", async () => {
    const empty = join(root, "empty.txt");
    writeFileSync(empty, "");
    const snow = join(root, "snow.txt");
    writeFileSync(snow, `${text.slice(0, 100)}☃ snow`);
    const corrupt = join(root, "corrupt");
    cpSync(model, corrupt, { recursive: true });
    const weights = readFileSync(join(corrupt, "model.safetensors"));
    writeFileSync(join(corrupt, "model.safetensors"), weights.subarray(0, 100));
    const badConfig = join(root, "bad-config");
    cpSync(model, badConfig, { recursive: true });
    writeFileSync(join(badConfig, "config.json"), "{");
    mkdirSync(join(root, "empty-dir"));
    const out = join(root, "never");
    const cases: [string[], RegExp, number?][] = [
      [["train", "--data", join(root, "missing.txt"), "--out", out], /data file '.*missing\.txt' does not exist/, 1],
      [["train", "--data", empty, "--out", out], /data file '.*empty\.txt' is empty/, 1],
      [
        ["train", "--data", data, "--out", out, "--block-size", "1000"],
        /block_size 1000 is longer than the validation split \(\d+ tokens; .*use a smaller --block-size or more data/,
        1,
      ],
      [["train", "--data", data, "--out", out, "--frobnicate"], /train: Unknown option '--frobnicate'/, 2],
      [["train", "--data", data], /--out DIR is required/, 2],
      [["train", "--data", data, "--out", out, "--max-steps", "ten"], /--max-steps must be an integer >= 0 \(got 'ten'\)/, 2],
      [["train", "--data", data, "--out", out, "--tokenizer", "word"], /--tokenizer must be char or bpe/, 2],
      [
        ["train", "--data", data, "--out", out, "--n-embd", "30", "--n-head", "4"],
        /--n-embd \(30\) must be divisible by --n-head \(4\)/,
        1,
      ],
      [["train", "--data", data, "--out", model], /already holds a training run; pass --resume/, 1],
      [["train", "--out", join(root, "empty-dir"), "--resume"], /nothing to resume/, 1],
      [["train", "--data", data, "--out", model, "--resume", "--n-layer", "3"], /--n-layer 3 differs from the run being resumed \(1/, 1],
      [["eval", "--model", corrupt, "--data", data], /corrupt[/\\]model\.safetensors: .*truncated/, 1],
      [["eval", "--model", badConfig, "--data", data], /bad-config[/\\]config\.json: not valid JSON/, 1],
      [["eval", "--model", join(root, "nope"), "--data", data], /'.*nope' does not exist/, 1],
      [["eval", "--model", model, "--data", snow], /snow\.txt: CharTokenizer\.encode: the character "☃" \(U\+2603\)/, 1],
      [["eval", "--model", model], /--data FILE is required/, 2],
      [["info", "--model", join(root, "empty-dir")], /config\.json: file not found/, 1],
      [["nosuchcommand"], /unknown command 'nosuchcommand'/, 2],
    ];
    // The cases run at once, except those writing to the same --out: a run locks its directory, so
    // two of them at once would meet each other's lock instead of the error under test.
    const locks = (args: string[]) => args.includes("--out") && args[args.indexOf("--out") + 1] === model;
    const runs: Run[] = await Promise.all(cases.map(([args]) => (locks(args) ? null : moxing(args)))).then(async (done) => {
      for (const [k, [args]] of cases.entries()) if (locks(args)) done[k] = await moxing(args);
      return done as Run[];
    });
    cases.forEach(([args, pattern, code], k) => {
      try {
        assertOneLineError(runs[k] as Run, pattern, code);
      } catch (e) {
        (e as Error).message = `moxing ${args.join(" ")}: ${(e as Error).message}`;
        throw e;
      }
    });
    assert.ok(!existsSync(out), "a failed run leaves no output directory");
  });

  test("Ctrl-C saves a checkpoint and says how to resume; --resume finishes the run", async () => {
    const out = join(root, "interrupted");
    let sent = false;
    const r = await moxing(
      ["train", "--data", data, "--out", out, ...tiny, "--max-steps", "100000", "--eval-interval", "1000"],
      (err, kill) => {
        if (!sent && /step \d+\/100000/.test(err)) {
          sent = true;
          kill("SIGINT");
        }
      },
    );
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted: saving a checkpoint/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    assert.match(
      r.stdout,
      /stopped at step \d+; checkpoint saved in .*interrupted\. Resume with: moxing train --out .*interrupted --resume/,
    );
    const state = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8"));
    assert.ok(state.step >= 1 && state.step < 100000);
    const resumed = await moxing(["train", "--out", out, "--resume", "--max-steps", String(state.step + 3)]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming at step ${state.step}`));
    assert.match(resumed.stdout, new RegExp(`done: ${state.step + 3} steps`));
  });

  test("SIGTERM and SIGHUP save a checkpoint like Ctrl-C; a second run on the same --out is refused while one runs", async () => {
    const out = join(root, "signals");
    const long = ["train", "--data", data, "--out", out, ...tiny, "--max-steps", "100000", "--eval-interval", "1000"];
    let second: Promise<Run> | null = null;
    let sent = false;
    const first = await moxing(long, (err, kill) => {
      if (!second && /step \d+\/100000/.test(err)) {
        second = moxing(long);
        void second.then(() => {
          sent = true;
          kill("SIGTERM");
        });
      }
    });
    assert.ok(sent && second);
    assertOneLineError(await (second as Promise<Run>), /'.*signals' is in use by process \d+ \(training run/, 1);
    assert.equal(first.code, 143, first.stderr);
    assert.match(first.stderr, /SIGTERM received: saving a checkpoint after this step/);
    assert.match(first.stdout, /stopped at step \d+; checkpoint saved/);
    const step = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8")).step;
    assert.ok(step >= 1);
    assert.ok(!existsSync(join(out, ".moxing.lock")), "the lock is released");

    let hup = false;
    const resumed = await moxing(["train", "--out", out, "--resume"], (err, kill) => {
      if (!hup && new RegExp(`step ${step + 1}/100000`).test(err)) {
        hup = true;
        kill("SIGHUP");
      }
    });
    assert.equal(resumed.code, 129, resumed.stderr);
    assert.ok(JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8")).step > step);
  });
});
