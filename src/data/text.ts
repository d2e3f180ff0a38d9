// Text data for language-model training: read a UTF-8 file, encode it to token ids, split it into
// train (first 90% of the tokens) and validation (last 10%), and sample (B, T) windows at random
// offsets as nanoGPT's get_batch does.

import { createHash } from "node:crypto";
import { FILE_LIMITS, readTextFileChecked } from "../io/files.js";
import type { Generator as RNG } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/index.js";

/** Bad input data (missing, empty, too short, unencodable): the message says what and how to fix it. */
export class DataError extends Error {}

/** Read a UTF-8 text file, with one-line errors for a missing, empty, non-text or not regular
 *  file (a FIFO or /dev/zero is refused before reading), or one too large for a JS string. */
export function readTextFile(path: string): string {
  const text = readTextFileChecked(path, { what: "data file", maxBytes: FILE_LIMITS.text, Err: DataError });
  if (text.length === 0) throw new DataError(`data file '${path}' is empty`);
  return text;
}

/** SHA-256 of a text (hex), to recognise the same data when a run is resumed. */
export function textDigest(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Encode a text to an Int32Array of ids; `source` names the data in errors. */
export function encodeText(tokenizer: Tokenizer, text: string, source: string): Int32Array {
  let ids: number[];
  try {
    ids = tokenizer.encode(text, { disallowedSpecial: [] });
  } catch (e) {
    throw new DataError(`${source}: ${(e as Error).message}`);
  }
  return Int32Array.from(ids);
}

export interface TokenSplits {
  train: Int32Array;
  val: Int32Array;
}

/** train = the first (1 - valFraction) of the tokens, val = the rest (nanoGPT: 90% / 10%). */
export function splitTokens(tokens: Int32Array, valFraction = 0.1): TokenSplits {
  const n = Math.floor(tokens.length * (1 - valFraction));
  return { train: tokens.subarray(0, n), val: tokens.subarray(n) };
}

/** A (B, T) window needs block_size + 1 tokens (inputs and the next-token targets). */
export function checkBlockSize(splits: TokenSplits, blockSize: number): void {
  for (const [name, data] of [
    ["training", splits.train],
    ["validation", splits.val],
  ] as const) {
    if (data.length < blockSize + 1) {
      throw new DataError(
        `block_size ${blockSize} is longer than the ${name} split (${data.length} tokens; a window needs ${blockSize + 1}); ` +
          "use a smaller --block-size or more data",
      );
    }
  }
}

export interface Batch {
  /** (B, T) int32 inputs. */
  x: Tensor;
  /** (B, T) int32 targets: x shifted left by one. */
  y: Tensor;
}

/**
 * Random (B, T) windows of one token stream, like nanoGPT's get_batch: B offsets drawn uniformly
 * from [0, n - T) with the given generator. The sampler's whole state is its generator's state.
 */
export class BatchSampler {
  constructor(
    readonly tokens: Int32Array,
    readonly blockSize: number,
    readonly batchSize: number,
    readonly generator: RNG,
  ) {
    if (tokens.length < blockSize + 1) {
      throw new DataError(`BatchSampler: ${tokens.length} tokens are too few for block_size ${blockSize} (need ${blockSize + 1})`);
    }
  }

  next(): Batch {
    const { tokens, blockSize: T, batchSize: B, generator } = this;
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    const range = tokens.length - T;
    for (let b = 0; b < B; b++) {
      const i = generator.randint(range);
      x.set(tokens.subarray(i, i + T), b * T);
      y.set(tokens.subarray(i + 1, i + 1 + T), b * T);
    }
    return { x: new Tensor(x, [B, T]), y: new Tensor(y, [B, T]) };
  }
}

/**
 * Consecutive non-overlapping windows covering a whole token stream (for evaluation): window k
 * predicts tokens kT+1 .. kT+T from tokens kT .. kT+T-1; the last one may be shorter. Every token
 * but the first is predicted exactly once. Yields batches of up to `batchSize` equal-length windows.
 */
export function* sequentialWindows(tokens: Int32Array, blockSize: number, batchSize: number): Generator<Batch> {
  const predicted = tokens.length - 1;
  const full = Math.floor(predicted / blockSize);
  for (let w = 0; w < full; w += batchSize) {
    const B = Math.min(batchSize, full - w);
    const x = new Int32Array(B * blockSize);
    const y = new Int32Array(B * blockSize);
    for (let b = 0; b < B; b++) {
      const i = (w + b) * blockSize;
      x.set(tokens.subarray(i, i + blockSize), b * blockSize);
      y.set(tokens.subarray(i + 1, i + 1 + blockSize), b * blockSize);
    }
    yield { x: new Tensor(x, [B, blockSize]), y: new Tensor(y, [B, blockSize]) };
  }
  const rest = predicted - full * blockSize;
  if (rest > 0) {
    const i = full * blockSize;
    yield { x: new Tensor(tokens.slice(i, i + rest), [1, rest]), y: new Tensor(tokens.slice(i + 1, i + 1 + rest), [1, rest]) };
  }
}
