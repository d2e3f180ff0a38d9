// Neural-network building blocks shared by every model.
export { type AttentionCall, type AttentionOptions, KVCache, MultiHeadAttention } from "./attention.js";
export { Dropout, Embedding, LayerNorm, Linear, type LinearAdapter } from "./layers.js";
export { LoraAdapter, type LoraConfig, LoraModel, PEFT_PREFIX, validateLoraConfig } from "./lora.js";
export { Module, ModuleList } from "./module.js";
export { applyRope, ropeTables, sinusoidalTable } from "./positional.js";
export { GRU, LSTM, type RNNCall, type RNNOptions, type RNNOutput } from "./rnn.js";
export { type BlockConfig, FeedForward, TransformerBlock } from "./transformer.js";
