// The seed's sentence, "if the model answers wrong, the user corrects it", measured: a chat model
// answers a held-out question of the SYNTHETIC chat set wrong; a script drives `moxing chat` through
// standard input: the question, `/correct <the right answer>`, `/learn`, `/save`, `/reset`, the
// question again. Reported: the answers before and after, how long /learn took (wall and CPU seconds,
// as the chat prints them) and the whole exchange, and how much the answers to 50 other held-out
// prompts moved: how many greedy answers changed, the judge's accuracy before and after, and the mean
// per-token KL(adapted || base) over the base's answers to them.
//
//   node --import tsx bench/chat-learn.ts --model runs/chat-bench/sft [--task who] [--others 50] [--learn-steps 30]
//
// Prints one JSON object.

import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import "../src/index.js";
import { chatReply } from "../src/chat/generate.js";
import { FeedbackStore } from "../src/chat/store.js";
import { encodeChat } from "../src/chat/tokenize.js";
import { CHAT_TASKS, type ChatExample, judgeAnswer, syntheticChat } from "../src/data/chat.js";
import { loadModel } from "../src/io/checkpoint.js";
import { loadAdapter } from "../src/io/lora.js";
import { tokenKL } from "../src/rlhf/rollout.js";
import { noGrad } from "../src/tensor/autograd.js";
import { tensor } from "../src/tensor/creation.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    task: { type: "string" },
    others: { type: "string" },
    "learn-steps": { type: "string" },
    "learn-rate": { type: "string" },
    "max-new-tokens": { type: "string" },
  },
});
if (!values.model) throw new Error("bench/chat-learn.ts: --model DIR (a chat model) is required");
const modelDir = values.model;
const maxNewTokens = Number(values["max-new-tokens"] ?? 80);
const task = values.task ?? "who";
if (!(CHAT_TASKS as readonly string[]).includes(task)) throw new Error(`--task must be one of ${CHAT_TASKS.join(", ")}`);
const { model, tokenizer } = loadModel(modelDir);
model.eval();
const test = syntheticChat({ seed: 1, sentences: 400 }).test;
const answer = (ex: ChatExample) =>
  chatReply(model, tokenizer, [{ role: "user", content: ex.prompt }], { temperature: 0, maxNewTokens }).text;

// The question: the first held-out one of the task that the model gets wrong.
const question = test.find((ex) => ex.task === task && !judgeAnswer(ex, answer(ex)).correct);
if (!question) throw new Error(`the model answers every held-out ${task} question right; try another --task`);
const questionBefore = answer(question);
const others = test.filter((ex) => ex !== question).slice(0, Number(values.others ?? 50));
const before = others.map(answer);

// The chat, driven through standard input.
const out = mkdtempSync(join(tmpdir(), "moxing-chat-learn-"));
const adapter = join(out, "adapter");
const args = [
  "--import",
  "tsx",
  "src/cli/main.ts",
  "chat",
  "--model",
  modelDir,
  "--temperature",
  "0",
  "--max-new-tokens",
  String(maxNewTokens),
];
args.push("--db", join(out, "feedback.db"), "--adapter", adapter);
if (values["learn-steps"]) args.push("--learn-steps", values["learn-steps"]);
if (values["learn-rate"]) args.push("--learn-rate", values["learn-rate"]);
const lines = [question.prompt, `/correct ${question.answer}`, "/learn", "/save", "/reset", question.prompt];
const t0 = performance.now();
const chat = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
  const p = spawn(process.execPath, args, { cwd: new URL("..", import.meta.url).pathname, env: { ...process.env, MOXING_QUIET: "1" } });
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
const chatSeconds = (performance.now() - t0) / 1000;
if (chat.code !== 0) throw new Error(`moxing chat failed (${chat.code}): ${chat.stderr}`);
const learned = /learned in ([\d.]+) s \(([\d.]+) s of CPU\)/.exec(chat.stderr);
// The answers as the store has them (an answer may hold a newline; the store knows where it ends).
const store = FeedbackStore.open(join(out, "feedback.db"));
const replies = [1, 2].map((c) => store.conversation(c).filter((m) => m.role === "assistant")[0]?.content ?? "");
store.close();

// The other prompts, with the adapters.
const lora = loadAdapter(adapter, model);
const after = others.map(answer);
let klSum = 0;
let klCount = 0;
others.forEach((ex, i) => {
  const full = encodeChat(
    tokenizer,
    [
      { role: "user", content: ex.prompt },
      { role: "assistant", content: before[i] as string },
    ],
    { assistantMask: true },
  );
  const ids = full.ids.slice(0, model.config.block_size);
  const x = tensor([ids], { dtype: "int32" });
  const kl = noGrad(() => {
    const adapted = model.forward(x).logits;
    const base = lora.withAdaptersDisabled(() => model.forward(x).logits);
    return (tokenKL(adapted, base).tolist() as number[][])[0] as number[];
  });
  for (let t = 0; t < ids.length - 1; t++) {
    if (!full.assistantMask[t + 1]) continue;
    klSum += kl[t] as number;
    klCount++;
  }
});
const accuracy = (answers: string[]) => answers.filter((a, i) => judgeAnswer(others[i] as ChatExample, a).correct).length / answers.length;

console.log(
  JSON.stringify({
    model: modelDir,
    question: question.prompt,
    right_answer: question.answer,
    answer_before: questionBefore === replies[0] ? replies[0] : { bench: questionBefore, chat: replies[0] },
    answer_after: replies[replies.length - 1],
    right_after: judgeAnswer(question, replies[replies.length - 1] ?? "").correct,
    learn_seconds: learned ? Number(learned[1]) : null,
    learn_cpu_seconds: learned ? Number(learned[2]) : null,
    chat_seconds: Number(chatSeconds.toFixed(1)),
    others: others.length,
    others_changed: after.filter((a, i) => a !== before[i]).length,
    others_accuracy_before: accuracy(before),
    others_accuracy_after: accuracy(after),
    others_kl_per_token: klCount ? klSum / klCount : 0,
    learn_log: chat.stderr.split("\n").filter((l) => /learn|step/.test(l)),
  }),
);
