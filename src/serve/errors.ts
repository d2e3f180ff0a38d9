// Errors as the OpenAI API reports them: an HTTP status and the body
// {"error": {"message", "type", "param", "code"}}, which the official clients turn into their
// BadRequestError, NotFoundError, RateLimitError, ... classes.

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: something in the request is wrong; `param` names the field. */
export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);

export const modelNotFound = (model: string, known: readonly string[]) =>
  new ApiError(
    404,
    `The model '${model}' does not exist; this server serves ${known.map((k) => `'${k}'`).join(", ")} (GET /v1/models lists them)`,
    "invalid_request_error",
    "model",
    "model_not_found",
  );

/** 429 with Retry-After: every batch slot is busy and the queue is full. */
export const queueFull = (retryAfterS: number) =>
  new ApiError(
    429,
    `The server is at capacity (every batch slot busy and the queue full); retry after ${retryAfterS} s`,
    "rate_limit_error",
    null,
    "rate_limit_exceeded",
    { "retry-after": String(retryAfterS) },
  );

export const shuttingDown = () =>
  new ApiError(503, "The server is shutting down and takes no new requests", "service_unavailable", null, "shutting_down", {
    connection: "close",
  });
