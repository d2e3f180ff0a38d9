// moxing serve: the OpenAI-compatible server, its batching scheduler, constrained JSON decoding, and
// the studio's API.
export * from "./context.js";
export * from "./errors.js";
export * from "./inside.js";
export * from "./json-schema.js";
export * from "./models.js";
export * from "./scheduler.js";
export { createServer, type MoxingServer, type ServeOptions } from "./server.js";
export { LEARN_DEFAULTS, LearnJobs, type LearnMethod, type LearnSettings, type LearnStatus } from "./studio.js";
