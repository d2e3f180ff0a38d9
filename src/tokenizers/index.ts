// The tokenizers of moxing. Importing this module registers every built-in tokenizer type, so
// `loadTokenizer` can read any tokenizer.json that moxing writes.

export type { BPETrainOptions, HFAddedToken, HFByteLevelBPEJSON, MergeSpec } from "./bpe.js";
export { ByteLevelBPE, parseVocabBpe } from "./bpe.js";
export { BYTE_TO_CHAR, byteLevelToBytes, bytesToByteLevel, GPT2_SPLIT_PATTERN } from "./bytes.js";
export type { CharTokenizerJSON, CharTokenizerOptions } from "./char.js";
export { CharTokenizer } from "./char.js";
export { applyTokenizerConfig, CHAT_TEMPLATE_FILE, readTokenizerConfig, TOKENIZER_CONFIG_FILE, tokenizerConfigToJSON } from "./config.js";
export { HFTokenizer } from "./hf-tokenizer.js";
export type { MarianTokenizerJSON } from "./marian.js";
export { MARIAN_SPM_FILES, MarianTokenizer } from "./marian.js";
export type { SentencePieceModelProto } from "./sentencepiece.js";
export { parseSentencePieceModel, SentencePieceError, SentencePieceUnigram } from "./sentencepiece.js";
export type { EncodeOptions, Tokenizer, TokenizerClass, TokenizerConfig } from "./tokenizer.js";
export { BaseTokenizer, jsonTypeOf, loadTokenizer, registerTokenizer } from "./tokenizer.js";
export * from "./wordpiece.js";
