// Conversations: a list of messages { role, content }, as in the OpenAI API, Hugging Face's chat
// templates and TRL's conversational datasets.

export type Role = "system" | "user" | "assistant";
export const ROLES: readonly Role[] = ["system", "user", "assistant"];

export interface ChatMessage {
  role: Role;
  content: string;
  /** Templates may read more fields (Qwen3's reasoning_content); they are passed through untouched. */
  [extra: string]: unknown;
}

/** Errors about a conversation or a chat template; the message says which message or template. */
export class ChatError extends Error {}

/** Check that `messages` is a conversation; `where` names its source in errors (a file and line). */
export function validateMessages(messages: unknown, where = "messages"): ChatMessage[] {
  if (!Array.isArray(messages)) throw new ChatError(`${where}: expected an array of { role, content } messages`);
  messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw new ChatError(`${where}[${i}]: expected a { role, content } object, got ${JSON.stringify(m)}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new ChatError(`${where}[${i}]: role is ${JSON.stringify(role)}; use one of ${ROLES.map((r) => `"${r}"`).join(", ")}`);
    }
    if (typeof content !== "string") {
      throw new ChatError(`${where}[${i}] (${role}): content must be a string, got ${content === null ? "null" : typeof content}`);
    }
  });
  return messages as ChatMessage[];
}
