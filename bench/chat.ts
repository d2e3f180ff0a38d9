// Chat quality on the SYNTHETIC chat set's held-out prompts (src/data/chat.ts): for each model, the
// share of answers that end with the end-of-turn token (the model answered in the template and
// stopped) and the share the programmatic judge accepts, overall and per task. Greedy decoding.
// With --reference (the SFT model), each model is also compared with it: the judge's win rate (a
// prompt is won when the judge scores the model's answer above the reference's, half won on a tie)
// and the mean per-token KL(model || reference) over the model's answers (exact, from both models'
// next-token distributions).
//
//   node --import tsx bench/chat.ts --models runs/base,runs/sft[,runs/dpo] [--reference runs/sft] [--per-task 20] [--max-new-tokens 80]
//
// A model without chat tokens (a base language model) is prompted in ChatML after its tokenizer gets
// ChatML's tokens (new embedding rows: the mean of the old ones), exactly as SFT starts from it.
// Prints one JSON object per model, then a table.

import { parseArgs } from "node:util";
import "../src/index.js";
import { chatReply } from "../src/chat/generate.js";
import { prepareChatModel } from "../src/chat/model.js";
import { encodeChat } from "../src/chat/tokenize.js";
import { CHAT_TASKS, judgeAnswer, syntheticChat } from "../src/data/chat.js";
import { loadModel } from "../src/io/checkpoint.js";
import type { GPT } from "../src/models/gpt.js";
import { tokenKL } from "../src/rlhf/rollout.js";
import { noGrad } from "../src/tensor/autograd.js";
import { tensor } from "../src/tensor/creation.js";
import { scoped } from "../src/tensor/memory.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";

const { values } = parseArgs({
  options: {
    models: { type: "string" },
    reference: { type: "string" },
    "per-task": { type: "string" },
    "max-new-tokens": { type: "string" },
    seed: { type: "string" },
  },
});
if (!values.models) throw new Error("bench/chat.ts: --models DIR[,DIR...] is required");
const perTask = Number(values["per-task"] ?? 20);
const maxNewTokens = Number(values["max-new-tokens"] ?? 80);
const test = syntheticChat({ seed: Number(values.seed ?? 1), sentences: 400 }).test;
const prompts = CHAT_TASKS.flatMap((task) => test.filter((e) => e.task === task).slice(0, perTask));

/** A chat model: a base language model gets ChatML's tokens, as SFT starts from it. */
function chatModel(dir: string): { model: GPT; tokenizer: Tokenizer } {
  const loaded = loadModel(dir);
  const { model } = prepareChatModel(loaded.model, loaded.tokenizer);
  model.eval();
  return { model, tokenizer: loaded.tokenizer };
}

/** Greedy answers of the reference to the prompts, and its judge scores. */
const reference = values.reference ? chatModel(values.reference) : null;
const refAnswers = reference
  ? prompts.map((ex) => {
      const r = chatReply(reference.model, reference.tokenizer, [{ role: "user", content: ex.prompt }], { temperature: 0, maxNewTokens });
      return judgeAnswer(ex, r.text).score * (r.finishReason === "stop" ? 1 : 0.5);
    })
  : [];

/** Mean per-token KL(model || reference) over the answer tokens of `answers` (the model's own). */
function meanKL(model: GPT, tokenizer: Tokenizer, ref: GPT, answers: { prompt: string; text: string }[]): number {
  let sum = 0;
  let count = 0;
  for (const a of answers) {
    const messages = [{ role: "user" as const, content: a.prompt }];
    const full = encodeChat(tokenizer, [...messages, { role: "assistant" as const, content: a.text }], { assistantMask: true });
    const ids = full.ids.slice(0, model.config.block_size);
    const kl = scoped(() =>
      noGrad(() => {
        const x = tensor([ids], { dtype: "int32" });
        return (tokenKL(model.forward(x).logits, ref.forward(x).logits).tolist() as number[][])[0] as number[];
      }),
    );
    // Position t predicts token t + 1: count the positions that predict the answer and its end of turn.
    for (let t = 0; t < ids.length - 1; t++) {
      if (!full.assistantMask[t + 1]) continue;
      sum += kl[t] as number;
      count++;
    }
  }
  return count ? sum / count : 0;
}

const rows: string[] = [];
for (const dir of values.models.split(",")) {
  const { model, tokenizer } = chatModel(dir);
  const t0 = performance.now();
  let stopped = 0;
  let correct = 0;
  let tokens = 0;
  const byTask: Record<string, { n: number; correct: number; stopped: number }> = {};
  let wins = 0;
  const answers: { prompt: string; text: string }[] = [];
  for (const [i, ex] of prompts.entries()) {
    const r = chatReply(model, tokenizer, [{ role: "user", content: ex.prompt }], { temperature: 0, maxNewTokens });
    const judged = judgeAnswer(ex, r.text);
    const ok = judged.correct && r.finishReason === "stop";
    answers.push({ prompt: ex.prompt, text: r.text });
    if (reference) {
      // An answer that never ends its turn counts half: the judge reads its text, the chat never ends.
      const score = judged.score * (r.finishReason === "stop" ? 1 : 0.5);
      const ref = refAnswers[i] as number;
      wins += score > ref ? 1 : score === ref ? 0.5 : 0;
    }
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
  const vsReference =
    reference && values.reference !== dir
      ? { win_rate_vs_reference: wins / prompts.length, kl_per_token_to_reference: meanKL(model, tokenizer, reference.model, answers) }
      : {};
  const result = {
    model: dir,
    prompts: prompts.length,
    stopped_at_end_of_turn: stopped / prompts.length,
    judge_accuracy: correct / prompts.length,
    by_task: Object.fromEntries(Object.entries(byTask).map(([k, v]) => [k, { accuracy: v.correct / v.n, stopped: v.stopped / v.n }])),
    generated_tokens_per_s: Math.round(tokens / s),
    ...vsReference,
  };
  console.log(JSON.stringify(result));
  const cmp =
    "win_rate_vs_reference" in vsReference
      ? ` ${(100 * (vsReference.win_rate_vs_reference as number)).toFixed(1)}% | ${(vsReference.kl_per_token_to_reference as number).toFixed(4)} |`
      : reference
        ? " - | - |"
        : "";
  rows.push(
    `| ${dir} | ${(100 * result.stopped_at_end_of_turn).toFixed(1)}% | ${(100 * result.judge_accuracy).toFixed(1)}% | ` +
      CHAT_TASKS.map((k) => `${(100 * (result.by_task[k]?.accuracy ?? 0)).toFixed(0)}%`).join(" | ") +
      ` |${cmp}`,
  );
}
const cmpHead = reference ? " win rate vs reference | KL/token to reference |" : "";
console.log(`\n| model | stopped at <|im_end|> | judge accuracy | ${CHAT_TASKS.join(" | ")} |${cmpHead}`);
console.log(`|---|---|---|${CHAT_TASKS.map(() => "---").join("|")}|${reference ? "---|---|" : ""}`);
for (const r of rows) console.log(r);
