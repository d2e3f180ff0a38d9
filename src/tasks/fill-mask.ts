// Fill-mask: the most likely tokens at each [MASK] of a text, as transformers.js's fill-mask
// pipeline gives them.

import type { Bert } from "../models/bert.js";
import { noGrad } from "../tensor/autograd.js";
import { Tensor } from "../tensor/tensor.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";

export interface FillMaskOutput {
  score: number;
  token: number;
  token_str: string;
  sequence: string;
}

/** The topk fillings of each [MASK] in `text` (special tokens are never proposed); [] when there is no mask. */
export function fillMask(
  model: Bert,
  tokenizer: WordPieceTokenizer,
  text: string,
  o: { topk?: number; maxLength?: number } = {},
): FillMaskOutput[][] {
  const mask = tokenizer.maskToken;
  const maskId = tokenizer.tokenToId(mask) as number;
  const enc = tokenizer.encodePair(text, null, { allowedSpecial: [mask], maxLength: o.maxLength ?? model.config.max_position_embeddings });
  const positions = enc.inputIds.map((id, i) => (id === maskId ? i : -1)).filter((i) => i >= 0);
  if (positions.length === 0) return [];
  const k = o.topk ?? 5;
  const V = model.config.vocab_size;
  const probs = noGrad(() => {
    const ids = new Tensor(Int32Array.from(enc.inputIds), [1, enc.inputIds.length]);
    const pos = new Tensor(Int32Array.from(positions), [positions.length]);
    return model.forward({ inputIds: ids }, { positions: pos }).logits.softmax(-1).contiguousData() as Float32Array; // (masks, V)
  });
  const specials = new Set(tokenizer.specialTokens.values());
  return positions.map((pos, m) => {
    const row = probs.subarray(m * V, (m + 1) * V);
    const order = Array.from({ length: Math.min(V, tokenizer.vocabSize) }, (_, i) => i)
      .filter((i) => !specials.has(i))
      .sort((a, b) => (row[b] as number) - (row[a] as number))
      .slice(0, k);
    return order.map((id) => {
      const filled = [...enc.inputIds];
      filled[pos] = id;
      return { score: row[id] as number, token: id, token_str: tokenizer.decode([id]), sequence: tokenizer.decode(filled) };
    });
  });
}
