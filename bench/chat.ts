// Chat quality on the SYNTHETIC chat set's held-out prompts (src/data/chat.ts): for each model, the
// share of answers that end with the end-of-turn token (the model answered in the template and
// stopped) and the share the programmatic judge accepts, overall and per task. Greedy decoding.
//
//   node --import tsx bench/chat.ts --models runs/base,runs/sft[,runs/dpo] [--per-task 20] [--max-new-tokens 80]
//
// A model without chat tokens (a base language model) is prompted in ChatML after its tokenizer gets
// ChatML's tokens (new embedding rows: the mean of the old ones), exactly as SFT starts from it.
// Prints one JSON object per model, then a table.

import { parseArgs } from "node:util";
import "../src/index.js";
import { chatReply } from "../src/chat/generate.js";
import { prepareChatModel } from "../src/chat/model.js";
import { CHAT_TASKS, judgeAnswer, syntheticChat } from "../src/data/chat.js";
import { loadModel } from "../src/io/checkpoint.js";

const { values } = parseArgs({
  options: { models: { type: "string" }, "per-task": { type: "string" }, "max-new-tokens": { type: "string" }, seed: { type: "string" } },
});
if (!values.models) throw new Error("bench/chat.ts: --models DIR[,DIR...] is required");
const perTask = Number(values["per-task"] ?? 20);
const maxNewTokens = Number(values["max-new-tokens"] ?? 80);
const test = syntheticChat({ seed: Number(values.seed ?? 1), sentences: 400 }).test;
const prompts = CHAT_TASKS.flatMap((task) => test.filter((e) => e.task === task).slice(0, perTask));

const rows: string[] = [];
for (const dir of values.models.split(",")) {
  const loaded = loadModel(dir);
  const { model } = prepareChatModel(loaded.model, loaded.tokenizer);
  model.eval();
  const t0 = performance.now();
  let stopped = 0;
  let correct = 0;
  let tokens = 0;
  const byTask: Record<string, { n: number; correct: number; stopped: number }> = {};
  for (const ex of prompts) {
    const r = chatReply(model, loaded.tokenizer, [{ role: "user", content: ex.prompt }], { temperature: 0, maxNewTokens });
    const ok = judgeAnswer(ex, r.text).correct && r.finishReason === "stop";
    const t = byTask[ex.task] ?? { n: 0, correct: 0, stopped: 0 };
    byTask[ex.task] = t;
    t.n++;
    if (r.finishReason === "stop") {
      stopped++;
      t.stopped++;
    }
    if (ok) {
      correct++;
      t.correct++;
    }
    tokens += r.completionTokens;
  }
  const s = (performance.now() - t0) / 1000;
  const result = {
    model: dir,
    prompts: prompts.length,
    stopped_at_end_of_turn: stopped / prompts.length,
    judge_accuracy: correct / prompts.length,
    by_task: Object.fromEntries(Object.entries(byTask).map(([k, v]) => [k, { accuracy: v.correct / v.n, stopped: v.stopped / v.n }])),
    generated_tokens_per_s: Math.round(tokens / s),
  };
  console.log(JSON.stringify(result));
  rows.push(
    `| ${dir} | ${(100 * result.stopped_at_end_of_turn).toFixed(1)}% | ${(100 * result.judge_accuracy).toFixed(1)}% | ` +
      CHAT_TASKS.map((k) => `${(100 * (result.by_task[k]?.accuracy ?? 0)).toFixed(0)}%`).join(" | ") +
      " |",
  );
}
console.log(`\n| model | stopped at <|im_end|> | judge accuracy | ${CHAT_TASKS.join(" | ")} |`);
console.log(`|---|---|---|${CHAT_TASKS.map(() => "---").join("|")}|`);
for (const r of rows) console.log(r);
