// What every route of the server shares: the models, the limits, the feedback store, and whether the
// server is shutting down.

import type { FeedbackStore } from "../chat/store.js";
import { ApiError, invalidRequest, modelNotFound } from "./errors.js";
import type { ServedBert, ServedGPT, ServedModel } from "./models.js";

export interface ServeLimits {
  /** max_tokens when a request gives none. */
  defaultMaxTokens: number;
  /** The largest max_tokens a request may ask for. */
  maxTokensLimit: number;
  /** The most choices (`n`) one request may ask for. */
  maxChoices: number;
  /** The largest request body, in bytes. */
  bodyLimit: number;
}

export const DEFAULT_LIMITS: ServeLimits = { defaultMaxTokens: 256, maxTokensLimit: 4096, maxChoices: 8, bodyLimit: 1 << 20 };

export class ServerContext {
  draining = false;
  constructor(
    readonly models: Map<string, ServedModel>,
    readonly limits: ServeLimits,
    readonly store: FeedbackStore | null,
    readonly runsDir: string | null,
  ) {}

  model(id: unknown): ServedModel {
    const m = typeof id === "string" ? this.models.get(id) : undefined;
    if (!m) throw modelNotFound(String(id), [...this.models.keys()]);
    return m;
  }

  /** A model that generates text (a GPT). */
  generator(id: unknown, what: string): ServedGPT {
    const m = this.model(id);
    if (m.kind !== "gpt") {
      throw invalidRequest(`The model '${m.id}' is a BERT encoder: it serves /v1/embeddings, not ${what}`, "model", "model_not_supported");
    }
    return m;
  }

  /** A model that embeds text (any). */
  embedder(id: unknown): ServedGPT | ServedBert {
    return this.model(id);
  }

  gpts(): ServedGPT[] {
    return [...this.models.values()].filter((m): m is ServedGPT => m.kind === "gpt");
  }

  /** The max_tokens to use: the request's (checked against the limit) or the default. */
  maxTokens(requested: number | null | undefined, param: string): number {
    if (requested === null || requested === undefined) return this.limits.defaultMaxTokens;
    if (requested > this.limits.maxTokensLimit) {
      throw invalidRequest(
        `${param} is ${requested}, above this server's limit of ${this.limits.maxTokensLimit} tokens; ask for fewer (or start the server with a higher --max-tokens-limit)`,
        param,
        "max_tokens_too_large",
      );
    }
    return requested;
  }

  feedback(): FeedbackStore {
    if (!this.store) throw new ApiError(503, "This server has no feedback store", "server_error", null, "no_feedback_store");
    return this.store;
  }
}
