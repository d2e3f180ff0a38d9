// The feedback store: every conversation, and what people said about its answers, in one SQLite file.
//
// What is kept (each table's rows are only ever added, never rewritten):
//   conversations  a chat session: when it started, an optional title
//   messages       one message each, linked to the message it answers (parent_id), so a retried answer
//                  is a sibling of the first one and a conversation is a tree, as in ChatGPT; assistant
//                  messages record the model and the sampling settings (JSON) that produced them
//   ratings        +1 / -1 on an assistant message (the newest rating of a message is the one that counts)
//   choices        a pairwise preference between two answers to the same context
//   corrections    a better answer a person wrote for an assistant message
//
// Nothing committed is lost: the database runs in WAL mode with synchronous=FULL, so a transaction
// is on disk when its call returns, and a writer killed at any moment (test/chat/store.test.ts kills
// one with SIGKILL again and again) leaves every committed row and a database that opens. The schema
// has a version (PRAGMA user_version) and a list of migrations; opening a file migrates it forward
// inside one transaction, and a file from a newer moxing is refused rather than misread.

import Database from "better-sqlite3";
import { ChatError, type ChatMessage, ROLES, type Role } from "./messages.js";

/** The settings that produced an answer (generate's options), stored as JSON. */
export type SamplingSettings = Record<string, number | string | boolean | null>;

export interface StoredMessage extends ChatMessage {
  id: number;
  conversationId: number;
  parentId: number | null;
  model: string | null;
  sampling: SamplingSettings | null;
  createdAt: string;
}

export interface NewMessage {
  role: Role;
  content: string;
  /** The message this one follows; default: the newest message of the conversation (null: the first). */
  parentId?: number | null;
  /** For assistant messages: the model (its directory or name) and the sampling settings used. */
  model?: string;
  sampling?: SamplingSettings;
}

/** One migration: SQL run inside the transaction that moves the schema to its version. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** The schema's history; a new version appends a migration, never edits an old one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "conversations, messages, ratings, choices, corrections",
    sql: `
      CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
      );
      CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        parent_id INTEGER REFERENCES messages(id),
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        model TEXT,
        sampling TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
      );
      CREATE INDEX messages_conversation ON messages(conversation_id, id);
      CREATE INDEX messages_parent ON messages(parent_id);
      CREATE TABLE ratings (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
      );
      CREATE INDEX ratings_message ON ratings(message_id, id);
      CREATE TABLE choices (
        id INTEGER PRIMARY KEY,
        chosen_id INTEGER NOT NULL REFERENCES messages(id),
        rejected_id INTEGER NOT NULL REFERENCES messages(id),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        CHECK (chosen_id != rejected_id)
      );
      CREATE TABLE corrections (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        content TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
      );
      CREATE INDEX corrections_message ON corrections(message_id, id);
    `,
  },
];

export const SCHEMA_VERSION = (MIGRATIONS[MIGRATIONS.length - 1] as Migration).version;

/** Errors about the store's file or its contents. */
export class FeedbackStoreError extends Error {}

/**
 * Bring `db` to the newest version of `migrations`, each step in its own transaction (a failed step
 * leaves the file at the previous version). Returns the versions applied.
 */
export function migrateFeedbackStore(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  where = "feedback store",
): number[] {
  const current = db.pragma("user_version", { simple: true }) as number;
  const newest = migrations.length ? (migrations[migrations.length - 1] as Migration).version : 0;
  if (current > newest) {
    throw new FeedbackStoreError(
      `${where}: the database has schema version ${current}, newer than this moxing knows (${newest}); upgrade moxing to open it`,
    );
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
    applied.push(m.version);
  }
  return applied;
}

interface MessageRow {
  id: number;
  conversation_id: number;
  parent_id: number | null;
  role: Role;
  content: string;
  model: string | null;
  sampling: string | null;
  created_at: string;
}

export class FeedbackStore {
  readonly db: Database.Database;

  private constructor(
    db: Database.Database,
    readonly path: string,
  ) {
    this.db = db;
  }

  /** Open (creating it if needed) the store at `path` and migrate it to the current schema. */
  static open(path: string, opts: { readonly?: boolean; migrations?: readonly Migration[] } = {}): FeedbackStore {
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    } catch (e) {
      throw new FeedbackStoreError(`${path}: cannot open the feedback database (${(e as Error).message})`);
    }
    try {
      if (!opts.readonly) {
        // WAL: readers never block the writer, and a commit is one append to the log. FULL: the log is
        // fsynced at every commit, so a committed transaction survives a crash of the process or the OS.
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = FULL");
      }
      db.pragma("foreign_keys = ON");
      db.pragma("busy_timeout = 5000"); // the chat and the server may write at once
      const check = db.pragma("quick_check", { simple: true });
      if (check !== "ok") throw new FeedbackStoreError(`${path}: the database is damaged (quick_check: ${String(check)})`);
      if (opts.readonly) {
        const v = db.pragma("user_version", { simple: true }) as number;
        if (v !== SCHEMA_VERSION)
          throw new FeedbackStoreError(`${path}: schema version ${v}, expected ${SCHEMA_VERSION}; open it once read-write to migrate it`);
      } else {
        migrateFeedbackStore(db, opts.migrations ?? MIGRATIONS, path);
      }
    } catch (e) {
      db.close();
      if (e instanceof FeedbackStoreError) throw e;
      throw new FeedbackStoreError(`${path}: not a moxing feedback database (${(e as Error).message})`);
    }
    return new FeedbackStore(db, path);
  }

  close(): void {
    this.db.close();
  }

  /** Run `fn` as one transaction: all of its rows are committed, or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  get schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  startConversation(opts: { title?: string; system?: string } = {}): number {
    return this.transaction(() => {
      const id = Number(this.db.prepare("INSERT INTO conversations (title) VALUES (?)").run(opts.title ?? null).lastInsertRowid);
      if (opts.system !== undefined) this.addMessage(id, { role: "system", content: opts.system, parentId: null });
      return id;
    });
  }

  /** Append a message; returns its id. */
  addMessage(conversationId: number, m: NewMessage): number {
    if (!(ROLES as readonly string[]).includes(m.role))
      throw new FeedbackStoreError(`addMessage: role must be one of ${ROLES.join(", ")} (got ${m.role})`);
    if (typeof m.content !== "string") throw new FeedbackStoreError("addMessage: content must be a string");
    return this.transaction(() => {
      if (!this.db.prepare("SELECT 1 FROM conversations WHERE id = ?").get(conversationId)) {
        throw new FeedbackStoreError(`addMessage: no conversation ${conversationId}`);
      }
      let parent = m.parentId;
      if (parent === undefined) {
        const last = this.db.prepare("SELECT id FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1").get(conversationId) as
          | { id: number }
          | undefined;
        parent = last?.id ?? null;
      } else if (parent !== null) {
        const row = this.db.prepare("SELECT conversation_id FROM messages WHERE id = ?").get(parent) as
          | { conversation_id: number }
          | undefined;
        if (!row || row.conversation_id !== conversationId) {
          throw new FeedbackStoreError(`addMessage: parent message ${parent} is not in conversation ${conversationId}`);
        }
      }
      const info = this.db
        .prepare("INSERT INTO messages (conversation_id, parent_id, role, content, model, sampling) VALUES (?, ?, ?, ?, ?, ?)")
        .run(conversationId, parent, m.role, m.content, m.model ?? null, m.sampling ? JSON.stringify(m.sampling) : null);
      return Number(info.lastInsertRowid);
    });
  }

  /** A thumbs-up (+1) or thumbs-down (-1) on an assistant message. */
  rate(messageId: number, rating: 1 | -1): number {
    if (rating !== 1 && rating !== -1) throw new FeedbackStoreError(`rate: a rating is +1 or -1 (got ${String(rating)})`);
    this.assistantMessage(messageId, "rate");
    return Number(this.db.prepare("INSERT INTO ratings (message_id, rating) VALUES (?, ?)").run(messageId, rating).lastInsertRowid);
  }

  /** A person preferred `chosenId` over `rejectedId`: two answers to the same context. */
  choose(chosenId: number, rejectedId: number): number {
    const a = this.assistantMessage(chosenId, "choose");
    const b = this.assistantMessage(rejectedId, "choose");
    if (chosenId === rejectedId) throw new FeedbackStoreError("choose: the chosen and the rejected answer are the same message");
    if (a.parentId !== b.parentId) {
      throw new FeedbackStoreError(
        `choose: messages ${chosenId} and ${rejectedId} answer different contexts; a choice compares two answers to the same one`,
      );
    }
    return Number(this.db.prepare("INSERT INTO choices (chosen_id, rejected_id) VALUES (?, ?)").run(chosenId, rejectedId).lastInsertRowid);
  }

  /** A better answer a person wrote for an assistant message. */
  correct(messageId: number, content: string): number {
    if (typeof content !== "string" || content.length === 0) throw new FeedbackStoreError("correct: the correction is empty");
    this.assistantMessage(messageId, "correct");
    return Number(this.db.prepare("INSERT INTO corrections (message_id, content) VALUES (?, ?)").run(messageId, content).lastInsertRowid);
  }

  message(id: number): StoredMessage | null {
    const row = this.db.prepare("SELECT * FROM messages WHERE id = ?").get(id) as MessageRow | undefined;
    return row ? toMessage(row) : null;
  }

  /** The messages from the start of the conversation to `messageId`, following parents. */
  thread(messageId: number): StoredMessage[] {
    const rows = this.db
      .prepare(
        `WITH RECURSIVE chain(id, depth) AS (SELECT ?, 0 UNION ALL SELECT m.parent_id, c.depth + 1 FROM messages m JOIN chain c ON m.id = c.id WHERE m.parent_id IS NOT NULL)
         SELECT m.* FROM chain c JOIN messages m ON m.id = c.id ORDER BY c.depth DESC`,
      )
      .all(messageId) as MessageRow[];
    if (rows.length === 0) throw new FeedbackStoreError(`thread: no message ${messageId}`);
    return rows.map(toMessage);
  }

  /** Every message of a conversation, in the order written. */
  conversation(id: number): StoredMessage[] {
    return (this.db.prepare("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id").all(id) as MessageRow[]).map(toMessage);
  }

  /** Row counts of each table. */
  counts(): Record<"conversations" | "messages" | "ratings" | "choices" | "corrections", number> {
    const n = (t: string) => (this.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return {
      conversations: n("conversations"),
      messages: n("messages"),
      ratings: n("ratings"),
      choices: n("choices"),
      corrections: n("corrections"),
    };
  }

  private assistantMessage(id: number, what: string): StoredMessage {
    const m = this.message(id);
    if (!m) throw new FeedbackStoreError(`${what}: no message ${id}`);
    if (m.role !== "assistant")
      throw new FeedbackStoreError(`${what}: message ${id} is a ${m.role} message; feedback is given on assistant answers`);
    return m;
  }
}

function toMessage(r: MessageRow): StoredMessage {
  let sampling: SamplingSettings | null = null;
  if (r.sampling !== null) {
    try {
      sampling = JSON.parse(r.sampling) as SamplingSettings;
    } catch {
      throw new ChatError(`feedback store: message ${r.id} has sampling settings that are not JSON`);
    }
  }
  return {
    id: r.id,
    conversationId: r.conversation_id,
    parentId: r.parent_id,
    role: r.role,
    content: r.content,
    model: r.model,
    sampling,
    createdAt: r.created_at,
  };
}
