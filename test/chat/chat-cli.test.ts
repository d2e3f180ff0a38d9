// `moxing chat` driven through standard input (a script of lines) and through a pseudo-terminal
// (Python's pty module): answers stream, every message, rating, retry and correction lands in the
// feedback store, /learn makes the model give the corrected answer, /save + --adapter bring the
// adapters back, and Ctrl-C stops an answer without ending the program.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import "../../src/index.js";
import { FeedbackStore, useChatML } from "../../src/chat/index.js";
import { saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";
import { assertOneLineError, moxing, repo } from "../cli-run.js";

const tmp = mkdtempSync(join(tmpdir(), "moxing-chat-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz \n");
useChatML(tok);
const small = join(tmp, "small");
saveModel(small, new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: 96 }, { seed: 3 }), tok);
// Greedy, it never ends its turn, and its context is long: an answer streams for seconds.
const long = join(tmp, "long");
saveModel(long, new GPT({ vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 64, block_size: 4096 }, { seed: 1 }), tok);
const plain = join(tmp, "plain"); // a language model without chat tokens
const plainTok = CharTokenizer.fromText("abc \n");
saveModel(plain, new GPT({ vocab_size: plainTok.vocabSize, n_layer: 1, n_head: 1, n_embd: 8, block_size: 16 }, { seed: 1 }), plainTok);

/** Run `moxing chat ...args` with `lines` on standard input. */
function chat(args: string[], lines: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "chat", ...args], {
      cwd: repo,
      env: { ...process.env, MOXING_QUIET: "1" },
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
    });
    p.stderr.on("data", (d) => {
      stderr += d;
    });
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(lines.map((l) => `${l}\n`).join(""));
  });
}

const greedy = ["--temperature", "0", "--max-new-tokens", "10", "--learn-steps", "40", "--learn-rate", "1e-2"];

describe("moxing chat through standard input", () => {
  const db = join(tmp, "feedback.db");
  const adapter = join(tmp, "adapter");

  test("answers, /good, /retry, /correct, /learn (it now gives the corrected answer), /save; all of it in the store", async () => {
    const r = await chat(
      ["--model", small, "--db", db, "--adapter", adapter, ...greedy],
      ["say cat", "/good", "say dog", "/retry", "/correct ok dog", "/learn", "/save", "/reset", "say cat", "say dog", "/help"],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /learned in [\d.]+ s \([\d.]+ s of CPU\): 40 steps/);
    assert.match(r.stderr, /saved the adapters to /);
    assert.match(r.stderr, /\/correct TEXT/, "/help lists the commands");
    const store = FeedbackStore.open(db);
    try {
      const first = store.conversation(1);
      assert.deepEqual(
        first.map((m) => [m.role, m.parentId]),
        [
          ["user", null],
          ["assistant", 1],
          ["user", 2],
          ["assistant", 3],
          ["assistant", 3], // the retry: a sibling of the first answer
        ],
      );
      assert.equal(first[1]?.model, small);
      assert.equal(first[1]?.sampling?.temperature, 0);
      assert.deepEqual(store.counts(), { conversations: 2, messages: 9, ratings: 1, choices: 0, corrections: 1 });
      const second = store.conversation(2);
      assert.notEqual(first[4]?.content, "ok dog", "the model did not know the answer before");
      assert.equal(second[3]?.content, "ok dog", "after /learn it gives the corrected answer");
      assert.equal(r.stdout.trimEnd().split("\n").pop(), "ok dog", "answers stream to stdout");
    } finally {
      store.close();
    }
    assert.ok(existsSync(join(adapter, "adapter_model.safetensors")));
  });

  test("--adapter brings the learned adapters back", async () => {
    const r = await chat(["--model", small, "--adapter", adapter, ...greedy], ["say cat", "say dog"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /adapters from /);
    assert.equal(r.stdout.trimEnd().split("\n").pop(), "ok dog");
  });

  test("mistakes in a line are reported and the chat goes on; bad flags are one-line errors", async () => {
    const r = await chat(["--model", small, ...greedy], ["/learn", "/good", "/bogus", "say X", "/save", "say cat"]);
    assert.equal(r.code, 1, "a script learns that some lines failed");
    assert.match(r.stderr, /\/learn: this conversation has no feedback yet/);
    assert.match(r.stderr, /\/good: there is no answer yet/);
    assert.match(r.stderr, /unknown command '\/bogus'/);
    assert.match(r.stderr, /character "X".* is not in the vocabulary|not in the vocabulary/);
    assert.match(r.stderr, /\/save: give a directory/);
    assert.ok(r.stdout.length > 0, "the last line was still answered");
    assertOneLineError(await moxing(["chat"]), /--model PATH is required/, 2);
    assertOneLineError(await moxing(["chat", "--model", plain]), /is not a chat model .* moxing sft/, 2);
    assertOneLineError(await moxing(["chat", "--model", small, "--top-p", "0"]), /--top-p must be in \(0, 1\]/, 2);
  });
});

describe("moxing chat with a pipe for standard input", () => {
  test("SIGINT stops the answer streaming and the chat takes the next line", async () => {
    const p = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "chat", "--model", long, "--temperature", "0", "--max-new-tokens", "4000"],
      {
        cwd: repo,
        env: { ...process.env, MOXING_QUIET: "1" },
      },
    );
    let stdout = "";
    let stderr = "";
    let signalled = false;
    p.stdout.on("data", (d) => {
      stdout += d;
      if (!signalled && stdout.length > 20) {
        signalled = true;
        p.kill("SIGINT");
      }
    });
    p.stderr.on("data", (d) => {
      stderr += d;
      if (stderr.includes("(stopped)") && p.stdin.writable) p.stdin.end("/good\n");
    });
    p.stdin.write("say cat\n");
    const code = await new Promise<number | null>((resolve) => p.on("close", resolve));
    assert.equal(code, 0, stderr);
    assert.match(stderr, /\(stopped\)[\s\S]*noted: a good answer/);
    assert.ok(stdout.length < 4000, "the answer stopped early");
  });
});

// Python's pty module runs the chat in a pseudo-terminal: Ctrl-C is a keypress there, as for a person.
const PTY_DRIVER = `
import json, os, pty, select, sys, time
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
def read_until(pred, timeout=120):
    global out
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
            if pred(out):
                return True
    return False
steps = []
steps.append(read_until(lambda o: b"> " in o))  # readline draws the prompt with cursor moves after it
os.write(fd, b"say cat\\r")
mark = len(out)
steps.append(read_until(lambda o: len(o) > mark + 40))  # the answer is streaming
os.write(fd, b"\\x03")                                   # Ctrl-C
steps.append(read_until(lambda o: b"(stopped)" in o and b"> " in o[o.index(b"(stopped)"):]))
os.write(fd, b"/good\\r")
steps.append(read_until(lambda o: b"noted: a good answer" in o))
os.write(fd, b"\\x03")
steps.append(read_until(lambda o: b"Ctrl-C again" in o))
os.write(fd, b"/quit\\r")
_, status = os.waitpid(pid, 0)
print(json.dumps({"steps": steps, "exit": os.waitstatus_to_exitcode(status), "out": out.decode("utf8", "replace")}))
`;

describe("moxing chat in a pseudo-terminal", () => {
  test("Ctrl-C stops the answer, not the program; Ctrl-C at the prompt clears it; /quit leaves", () => {
    const argv = [
      process.execPath,
      "--import",
      "tsx",
      "src/cli/main.ts",
      "chat",
      "--model",
      long,
      "--temperature",
      "0",
      "--max-new-tokens",
      "4000",
    ];
    const r = spawnSync("python3", ["-c", PTY_DRIVER, JSON.stringify(argv)], {
      cwd: repo,
      encoding: "utf8",
      env: { ...process.env, MOXING_QUIET: "1" },
      timeout: 240_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { steps: boolean[]; exit: number; out: string };
    assert.deepEqual(res.steps, [true, true, true, true, true], res.out.slice(-2000));
    assert.equal(res.exit, 0, res.out.slice(-2000));
  });
});
