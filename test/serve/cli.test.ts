// `moxing serve` as a process: usage errors are one line; it binds 127.0.0.1; SIGTERM stops taking
// requests, lets a running answer finish within the grace period (or ends it when the period is
// over), and exits 0.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadModel } from "../../src/io/index.js";
import { assertOneLineError, moxing, repo } from "../cli-run.js";
import { readEvents, tinyChatModel } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-serve-cli-"));
const dir = join(tmp, "random");
// A context long enough that an answer cannot end by itself within the grace period, however fast
// the machine (at 64 positions a fast kernel set finished the answer before SIGTERM's grace ran out).
const longDir = join(tmp, "long", "random"); // served under the same name
let noEnd: Record<string, number> = {};

before(() => {
  tinyChatModel(dir, { steps: 0 });
  tinyChatModel(longDir, { steps: 0, blockSize: 8192 });
  noEnd = Object.fromEntries([...loadModel(dir).tokenizer.specialTokens.values()].map((id) => [String(id), -100]));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Start `moxing serve` on a free port; resolves with the process and its URL once it listens. */
function serve(args: string[]): Promise<{ p: ChildProcess; url: string; out: () => string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MOXING_QUIET: "1" };
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", "--db", join(tmp, "fb.db"), ...args], {
      cwd: repo,
      env,
    });
    let out = "";
    p.stdout?.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/[^ ]+)\/v1/.exec(out);
      if (m) resolve({ p, url: m[1] as string, out: () => out });
    });
    p.stderr?.on("data", (d) => {
      out += d;
    });
    p.on("close", (code) => reject(new Error(`moxing serve exited (${code}) before listening: ${out}`)));
  });
}

const exited = (p: ChildProcess) => new Promise<number | null>((r) => p.on("close", (code) => r(code)));

function chat(url: string, maxTokens: number): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "random",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: maxTokens,
      stream: true,
      logit_bias: noEnd,
    }),
  });
}

describe("moxing serve", () => {
  test("usage errors are one line", async () => {
    assertOneLineError(await moxing(["serve"]), /--model DIR\|FILE is required/, 2);
    assertOneLineError(await moxing(["serve", "--model", dir, "--port", "70000"]), /--port must be at most 65535/, 2);
    assertOneLineError(await moxing(["serve", "--model", dir, "--api-key", "short"]), /at least 8 characters/, 2);
    assertOneLineError(await moxing(["serve", "--model", join(tmp, "missing")]), /does not exist/, 1);
    const help = await moxing(["serve", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /POST \/v1\/chat\/completions/);
  });

  test("SIGTERM: the running answer finishes, new requests are refused, exit 0", async () => {
    const { p, url, out } = await serve(["--model", dir, "--shutdown-timeout", "30"]);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, "binds 127.0.0.1 by default");
    const res = await chat(url, 400);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const code = exited(p);
    p.kill("SIGTERM");
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
    assert.match(text, /"finish_reason":"length"/, "the answer ran to its max_tokens");
    assert.ok(text.trimEnd().endsWith("data: [DONE]"));
    assert.equal(await code, 0);
    assert.match(out(), /SIGTERM: taking no new requests/);
    assert.match(out(), /stopped/);
    await assert.rejects(fetch(`${url}/health`), "the port is closed");
  });

  test("SIGTERM past the grace period ends the running answer, with [DONE]", async () => {
    const { p, url } = await serve(["--model", longDir, "--shutdown-timeout", "0.2", "--max-tokens-limit", "100000"]);
    const res = await chat(url, 100000);
    const code = exited(p);
    setTimeout(() => p.kill("SIGTERM"), 100);
    const events = (await readEvents(res)) as ({ choices: { finish_reason: string | null }[] } | string)[];
    assert.equal(events[events.length - 1], "[DONE]");
    const finish = events.flatMap((e) => (typeof e === "string" ? [] : e.choices.map((c) => c.finish_reason))).filter(Boolean);
    assert.deepEqual(finish, ["abort"]);
    assert.equal(await code, 0);
  });
});
