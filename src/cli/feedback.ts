// `moxing feedback`: the feedback database (see src/chat/store.ts) as training data and as counts.

import { existsSync } from "node:fs";
import { EXPORT_FORMATS, type ExportFormat, exportFeedback } from "../chat/export.js";
import { FeedbackStore } from "../chat/store.js";
import type { Command } from "./util.js";
import { parseFlags, UsageError } from "./util.js";

const HELP = `moxing feedback: turn chat feedback into training data

Usage: moxing feedback export --format sft|preference --db FILE --out FILE.jsonl
       moxing feedback stats --db FILE

export writes TRL's conversational JSONL:
  sft         {"prompt": [...], "completion": [...]}: each thumbs-up answer, and each correction
              (the answer a person wrote) as the completion of its conversation so far
  preference  {"prompt": [...], "chosen": [...], "rejected": [...]}: a correction is chosen over the
              model's answer; pairwise choices as made; a thumbs-up over a thumbs-down answer to the
              same conversation
Feed them to \`moxing sft --data\` and \`moxing dpo --data\` (or to TRL).
stats prints the number of conversations, messages, ratings, choices and corrections as JSON.`;

export const feedbackCommand: Command = {
  summary: "export chat feedback (ratings, choices, corrections) as TRL JSONL",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("feedback", argv, {
      format: { type: "string" },
      db: { type: "string" },
      out: { type: "string" },
    });
    const [action, ...extra] = positionals;
    if (extra.length) throw new UsageError(`feedback: unexpected argument '${extra[0]}'`);
    if (action !== "export" && action !== "stats") {
      throw new UsageError(
        `feedback: say what to do: 'moxing feedback export ...' or 'moxing feedback stats ...'${action ? ` (got '${action}')` : ""}`,
      );
    }
    if (!v.db) throw new UsageError("feedback: --db FILE is required (the feedback database `moxing chat --db` writes)");
    if (!existsSync(v.db)) throw new UsageError(`feedback: the database '${v.db}' does not exist`);
    const store = FeedbackStore.open(v.db);
    try {
      if (action === "stats") {
        console.log(JSON.stringify(store.counts()));
        return 0;
      }
      if (!v.format || !(EXPORT_FORMATS as readonly string[]).includes(v.format)) {
        throw new UsageError(`feedback export: --format must be ${EXPORT_FORMATS.join(" or ")}${v.format ? ` (got '${v.format}')` : ""}`);
      }
      if (!v.out) throw new UsageError("feedback export: --out FILE.jsonl is required");
      const n = exportFeedback(store, v.format as ExportFormat, v.out);
      console.error(`wrote ${n} ${v.format} example${n === 1 ? "" : "s"} to ${v.out}`);
      return 0;
    } finally {
      store.close();
    }
  },
};
