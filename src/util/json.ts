// Small helpers for reading parsed JSON, shared by every layer that reads files (io, tokenizers, train).

/** A plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
