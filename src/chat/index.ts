// Chat: conversations, chat templates, token ids with an assistant mask, the context policy, replies.
export * from "./context.js";
export * from "./export.js";
export * from "./generate.js";
export * from "./messages.js";
export * from "./model.js";
export * from "./store.js";
export * from "./template.js";
export * from "./tokenize.js";
