// Making a language model a chat model: its tokenizer gets ChatML's special tokens, and its embedding
// grows to hold them (Hugging Face's model.resize_token_embeddings).

import { GPT } from "../models/gpt.js";
import { Llama } from "../models/llama.js";
import { noGrad } from "../tensor/autograd.js";
import { mean, slice } from "../tensor/ops.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { endOfTurnIds, useChatML } from "./template.js";

/**
 * A copy of `model` with a vocabulary of `vocabSize` rows: every weight kept, each new embedding row
 * (and head row, if untied) set to the mean of the old rows, as transformers' mean_resizing starts
 * them, so new tokens begin as an average token rather than as noise. The model is returned in the
 * training mode of `model`.
 */
export function resizeTokenEmbeddings<M extends GPT | Llama>(model: M, vocabSize: number): M {
  const old = model.config.vocab_size;
  if (!Number.isInteger(vocabSize) || vocabSize < old) {
    throw new Error(`resizeTokenEmbeddings: the new vocabulary (${vocabSize}) must be an integer >= the old one (${old})`);
  }
  if (vocabSize === old) return model;
  let resized: GPT | Llama;
  if (model instanceof Llama) {
    if (model.quantized) throw new Error("resizeTokenEmbeddings: the model's weights are quantised; grow the float32 model instead");
    resized = new Llama({ ...model.config, vocab_size: vocabSize }, { seed: 0 });
  } else {
    resized = new GPT({ ...(model as GPT).config, vocab_size: vocabSize }, { seed: 0 });
  }
  const resizedRows = new Set(["transformer.wte.weight", "model.embed_tokens.weight", "lm_head.weight"]);
  const sd = new Map([...model.stateDict()].filter(([name]) => !resizedRows.has(name)));
  resized.loadStateDict(sd, false);
  noGrad(() => {
    for (const name of resizedRows) {
      const src = model.stateDict().get(name);
      const dst = resized.stateDict().get(name);
      if (!src || !dst) continue;
      slice(dst, 0, 0, old).copy_(src);
      slice(dst, 0, old, vocabSize).copy_(mean(src, 0, true)); // (1, C) broadcast over the new rows
    }
  });
  return resized.train(model.training) as M;
}

/**
 * Make (model, tokenizer) ready for chat: when the tokenizer has no end-of-turn token, add ChatML's
 * tokens and template (useChatML) and grow the model's vocabulary to match. Returns the model to use
 * (the same one when nothing had to change) and how many tokens were added.
 */
export function prepareChatModel<M extends GPT | Llama>(model: M, tokenizer: Tokenizer): { model: M; added: number } {
  if (endOfTurnIds(tokenizer).length > 0 && tokenizer.config?.chat_template !== undefined) return { model, added: 0 };
  const before = tokenizer.vocabSize;
  useChatML(tokenizer);
  const grown = tokenizer.vocabSize > model.config.vocab_size ? resizeTokenEmbeddings(model, tokenizer.vocabSize) : model;
  return { model: grown, added: tokenizer.vocabSize - before };
}
