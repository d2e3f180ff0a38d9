// Feedback -> training data, in TRL's JSONL dataset formats (conversational):
//
//   sft         {"prompt": [...context], "completion": [{"role": "assistant", "content": answer}]}
//               one per answer whose newest rating is a thumbs-up, and one per correction (the
//               person's answer). Prompt-completion rather than "messages", so that only the good
//               answer is learned and not the earlier answers in its context.
//   preference  {"prompt": [...context], "chosen": [{assistant}], "rejected": [{assistant}]}
//               a correction is chosen over the model's answer it corrects; a pairwise choice as
//               made; and a thumbs-up answer over a thumbs-down answer to the same context.
//
// The context is the thread of messages (system turn included) before the answer.

import { writeFileAtomic } from "../io/atomic.js";
import type { ChatMessage } from "./messages.js";
import type { FeedbackStore, StoredMessage } from "./store.js";

export type ExportFormat = "sft" | "preference";
export const EXPORT_FORMATS: readonly ExportFormat[] = ["sft", "preference"];

export interface SFTExample {
  prompt: ChatMessage[];
  completion: ChatMessage[];
}

export interface PreferenceExample {
  prompt: ChatMessage[];
  chosen: ChatMessage[];
  rejected: ChatMessage[];
}

const plain = (m: StoredMessage): ChatMessage => ({ role: m.role, content: m.content });
const answer = (content: string): ChatMessage[] => [{ role: "assistant", content }];

/** The context of an answer: the messages before it. */
function context(store: FeedbackStore, messageId: number): ChatMessage[] {
  return store.thread(messageId).slice(0, -1).map(plain);
}

/** Answers by their newest rating. */
function newestRatings(store: FeedbackStore): Map<number, 1 | -1> {
  const rows = store.db
    .prepare(
      "SELECT message_id, rating FROM ratings r WHERE id = (SELECT max(id) FROM ratings WHERE message_id = r.message_id) ORDER BY message_id",
    )
    .all() as { message_id: number; rating: 1 | -1 }[];
  return new Map(rows.map((r) => [r.message_id, r.rating]));
}

/** The newest correction of each corrected answer. */
function newestCorrections(store: FeedbackStore): { message_id: number; content: string }[] {
  return store.db
    .prepare(
      "SELECT message_id, content FROM corrections c WHERE id = (SELECT max(id) FROM corrections WHERE message_id = c.message_id) ORDER BY message_id",
    )
    .all() as { message_id: number; content: string }[];
}

/** Which feedback to export: all of it, or one conversation's (the studio's "learn now"). */
export interface ExportFilter {
  conversationId?: number;
}

const inScope = (store: FeedbackStore, messageId: number, f: ExportFilter) =>
  f.conversationId === undefined || store.message(messageId)?.conversationId === f.conversationId;

export function sftExamples(store: FeedbackStore, filter: ExportFilter = {}): SFTExample[] {
  const out: SFTExample[] = [];
  for (const [id, rating] of newestRatings(store)) {
    const m = store.message(id);
    if (rating === 1 && m && inScope(store, id, filter)) out.push({ prompt: context(store, id), completion: answer(m.content) });
  }
  for (const c of newestCorrections(store)) {
    if (inScope(store, c.message_id, filter)) out.push({ prompt: context(store, c.message_id), completion: answer(c.content) });
  }
  return out;
}

export function preferenceExamples(store: FeedbackStore, filter: ExportFilter = {}): PreferenceExample[] {
  const out: PreferenceExample[] = [];
  const seen = new Set<string>();
  const push = (prompt: ChatMessage[], chosen: string, rejected: string, messageId: number) => {
    if (!inScope(store, messageId, filter)) return;
    const key = JSON.stringify([prompt, chosen, rejected]);
    if (chosen === rejected || seen.has(key)) return;
    seen.add(key);
    out.push({ prompt, chosen: answer(chosen), rejected: answer(rejected) });
  };
  for (const c of newestCorrections(store)) {
    const m = store.message(c.message_id) as StoredMessage;
    push(context(store, c.message_id), c.content, m.content, c.message_id);
  }
  const choices = store.db.prepare("SELECT chosen_id, rejected_id FROM choices ORDER BY id").all() as {
    chosen_id: number;
    rejected_id: number;
  }[];
  for (const ch of choices) {
    const chosen = store.message(ch.chosen_id) as StoredMessage;
    const rejected = store.message(ch.rejected_id) as StoredMessage;
    push(context(store, ch.chosen_id), chosen.content, rejected.content, ch.chosen_id);
  }
  // A thumbs-up and a thumbs-down answer to the same context make a pair.
  const byParent = new Map<number | null, { good: StoredMessage[]; bad: StoredMessage[] }>();
  for (const [id, rating] of newestRatings(store)) {
    const m = store.message(id) as StoredMessage;
    const group = byParent.get(m.parentId) ?? { good: [], bad: [] };
    (rating === 1 ? group.good : group.bad).push(m);
    byParent.set(m.parentId, group);
  }
  for (const { good, bad } of byParent.values()) {
    for (const g of good) for (const b of bad) push(context(store, g.id), g.content, b.content, g.id);
  }
  return out;
}

/** Write the store's feedback as TRL JSONL to `out` (atomically); returns the number of examples. */
export function exportFeedback(store: FeedbackStore, format: ExportFormat, out: string): number {
  const examples = format === "sft" ? sftExamples(store) : preferenceExamples(store);
  writeFileAtomic(out, examples.map((e) => `${JSON.stringify(e)}\n`).join(""));
  return examples.length;
}
