// A writer for the crash test in store.test.ts: commits feedback in a loop until killed, and after
// each commit prints "committed <index> <conversation id> <answer id>" (synchronously, so a line on
// stdout always means the transaction had returned).
//   node --import tsx test/chat/store-writer.ts DB START

import { writeSync } from "node:fs";
import { FeedbackStore } from "../../src/chat/store.js";

const [db, startArg] = process.argv.slice(2);
const store = FeedbackStore.open(db as string);
/** The content of example i; the checker recomputes it. Sizes vary so commits cross page boundaries. */
const answerOf = (i: number) => `answer ${i} ${"x".repeat((i * 97) % 3000)}`;
for (let i = Number(startArg); ; i++) {
  const ids = store.transaction(() => {
    const conv = store.startConversation({ title: `run ${i}`, system: "be brief" });
    store.addMessage(conv, { role: "user", content: `question ${i}` });
    const answer = store.addMessage(conv, {
      role: "assistant",
      content: answerOf(i),
      model: "runs/test",
      sampling: { temperature: 0.7, seed: i },
    });
    store.rate(answer, i % 2 === 0 ? 1 : -1);
    store.correct(answer, `correction ${i}`);
    return { conv, answer };
  });
  writeSync(1, `committed ${i} ${ids.conv} ${ids.answer}\n`);
}
