// Training data: text files, token splits, batch sampling, and the built-in corpus.

export type { SotuAddress } from "./sotu.js";
export { sotuAddresses, sotuCorpus } from "./sotu.js";
export type { Batch, TokenSplits } from "./text.js";
export { BatchSampler, checkBlockSize, DataError, encodeText, readTextFile, sequentialWindows, splitTokens, textDigest } from "./text.js";
