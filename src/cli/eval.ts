// `moxing eval`: the loss and perplexity of a trained model on a text file.

import { encodeText, readTextFile, sequentialWindows } from "../data/text.js";
import { loadCausalLM } from "../io/causal-lm.js";
import type { LanguageModel } from "../models/causal.js";
import { checkGPTEvalMemory } from "../models/gpt.js";
import { checkLlamaEvalMemory, Llama } from "../models/llama.js";
import { QEmbedding, QLinear } from "../nn/quantized.js";
import { QuantizedTensor } from "../quant/ggml.js";
import { noGrad } from "../tensor/autograd.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing eval: mean next-token loss and perplexity of a model on a text file

Usage: moxing eval --model DIR|FILE --data FILE [--batch-size 16] [--block-size N]

--model is a GPT (a model directory, .safetensors or gpt2 GGUF file) or a Llama-family model (a
Hugging Face directory of Llama, Mistral, Qwen2 or Qwen3, or a llama / qwen2 / qwen3 GGUF file).
The file is encoded with the model's tokenizer and cut into consecutive non-overlapping windows of
--block-size tokens (default and at most the model's context; the last window shorter); every
token but the first is predicted once, from the tokens before it in its window. Prints one JSON line:
  {"loss": mean cross-entropy in nats, "perplexity": exp(loss), "tokens": tokens predicted}`;

/** Mean loss of `model` over the whole token stream, in non-overlapping block_size windows. */
export function evaluateTokens(
  model: LanguageModel,
  tokens: Int32Array,
  batchSize = 16,
  onProgress?: (predicted: number, total: number) => void,
  blockSize = model.blockSize,
): { loss: number; perplexity: number; tokens: number } {
  let sum = 0;
  let count = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (const { x, y } of sequentialWindows(tokens, blockSize, batchSize)) {
        const loss = model.forward(x, { targets: y }).loss;
        if (!loss) throw new Error("eval: the model returned no loss");
        sum += loss.item() * y.size;
        count += y.size;
        onProgress?.(count, tokens.length - 1);
      }
    });
  } finally {
    model.train(wasTraining);
  }
  const loss = sum / count;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}

export const evalCommand: Command = {
  summary: "loss and perplexity of a trained model on a text file",
  help: HELP,
  run(argv) {
    const { values: v, positionals } = parseFlags("eval", argv, {
      model: { type: "string" },
      data: { type: "string" },
      "batch-size": { type: "string" },
      "block-size": { type: "string" },
    });
    if (positionals.length) throw new UsageError(`eval: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("eval: --model DIR|FILE is required");
    if (!v.data) throw new UsageError("eval: --data FILE is required");
    const batchSize = num("eval", "batch-size", v["batch-size"], 16, { int: true, min: 1 });
    const { model, tokenizer } = loadCausalLM(v.model);
    const context = model.blockSize;
    const blockSize = num("eval", "block-size", v["block-size"], context, { int: true, min: 1 });
    if (blockSize > context)
      throw new UsageError(`eval: --block-size ${blockSize} is longer than the model's context of ${context} tokens`);
    const tokens = encodeText(tokenizer, readTextFile(v.data), v.data);
    if (tokens.length < 2) throw new Error(`data file '${v.data}' has ${tokens.length} token; evaluation needs at least 2`);
    // A batch holds at most every window of the data; refuse one whose logits cannot fit.
    const windows = Math.ceil((tokens.length - 1) / blockSize);
    const flag = (f: string) => (f === "batch_size" ? "--batch-size" : f === "block_size" ? "--block-size" : f);
    if (model instanceof Llama) {
      const weightBytes = model.parameters().reduce((n, p) => n + p.size * 4, 0) + quantizedBytes(model);
      checkLlamaEvalMemory(model.config, { batch_size: batchSize, block_size: blockSize }, windows, weightBytes, flag);
    } else {
      checkGPTEvalMemory({ ...model.config, block_size: blockSize }, batchSize, windows, flag);
    }
    // On a terminal, show how far a long evaluation has got (stdout keeps just the JSON).
    const tty = process.stderr.isTTY === true;
    let last = 0;
    const progress = (done: number, total: number) => {
      const now = performance.now();
      if (!tty || now - last < 200) return;
      last = now;
      process.stderr.write(`\r\x1b[Keval: ${done}/${total} tokens (${((100 * done) / total).toFixed(0)}%)`);
    };
    const result = evaluateTokens(model, tokens, batchSize, progress, blockSize);
    if (tty && last > 0) process.stderr.write("\r\x1b[K");
    // JSON has no NaN: it would print {"loss": null} and exit 0, a failure that looks like a result.
    if (!Number.isFinite(result.loss)) {
      throw new Error(`eval: the loss on '${v.data}' is ${result.loss}; the model's activations overflow on this data`);
    }
    console.log(JSON.stringify(result));
    return 0;
  },
};

/** Bytes of a Llama's quantised weights (a tied weight counted once). */
function quantizedBytes(model: Llama): number {
  let n = 0;
  const seen = new Set<QuantizedTensor>();
  for (const [, m] of model.namedModules()) {
    if ((m instanceof QLinear || m instanceof QEmbedding) && m.weight instanceof QuantizedTensor && !seen.has(m.weight)) {
      seen.add(m.weight);
      n += m.weight.data.byteLength;
    }
  }
  return n;
}
