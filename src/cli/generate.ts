// `moxing generate`: continue a prompt with a trained model, streaming tokens to stdout.

import { streamText } from "../generate/index.js";
import { loadModelFrom } from "../io/model-files.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing generate: continue a prompt with a trained model, streaming to stdout

Usage: moxing generate --model PATH --prompt TEXT [flags]

  --model PATH           a model directory (from 'moxing train', or Hugging Face's GPT-2 layout),
                         a .gguf file from 'moxing export', or a .safetensors file with config.json beside it
  --prompt TEXT          the text to continue ('-' reads it from standard input)
  --max-new-tokens N     how many tokens to generate (default 200)
  --temperature T        0 for greedy decoding; higher is more random (default 0.8)
  --top-k K              sample only among the K most likely tokens; 0 for all (default 200)
  --top-p P              nucleus sampling: the smallest set reaching probability P (default 1)
  --repetition-penalty R > 1 discourages repeating tokens (default 1)
  --stop TEXT            stop when this text appears (repeatable)
  --seed N               random seed (default 1)
  --no-cache             recompute the whole context each step instead of using the KV cache`;

export const generateCommand: Command = {
  summary: "continue a prompt with a trained model (streams tokens)",
  help: HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("generate", argv, {
      model: { type: "string" },
      prompt: { type: "string" },
      "max-new-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      "repetition-penalty": { type: "string" },
      stop: { type: "string", multiple: true },
      seed: { type: "string" },
      "no-cache": { type: "boolean" },
    });
    if (positionals.length) throw new UsageError(`generate: unexpected argument '${positionals[0]}'; put the text after --prompt`);
    if (!v.model) throw new UsageError("generate: --model PATH is required");
    if (v.prompt === undefined) throw new UsageError("generate: --prompt TEXT is required (use --prompt - to read standard input)");
    const prompt = v.prompt === "-" ? await readStdin() : v.prompt;
    const opts = {
      maxNewTokens: num("generate", "max-new-tokens", v["max-new-tokens"], 200, { int: true, min: 1 }),
      temperature: num("generate", "temperature", v.temperature, 0.8, { min: 0 }),
      topK: num("generate", "top-k", v["top-k"], 200, { int: true, min: 0 }),
      topP: num("generate", "top-p", v["top-p"], 1, { min: 0 }),
      repetitionPenalty: num("generate", "repetition-penalty", v["repetition-penalty"], 1, { min: 0 }),
      seed: num("generate", "seed", v.seed, 1, { int: true }),
      stop: v.stop,
      useCache: !v["no-cache"],
    };
    if (!(opts.topP > 0 && opts.topP <= 1)) throw new UsageError(`generate: --top-p must be in (0, 1] (got '${v["top-p"]}')`);
    if (!(opts.repetitionPenalty > 0))
      throw new UsageError(`generate: --repetition-penalty must be > 0 (got '${v["repetition-penalty"]}')`);
    const { model, tokenizer } = loadModelFrom(v.model);
    let ids: number[];
    try {
      ids = tokenizer.encode(prompt);
    } catch (e) {
      throw new UsageError(`generate: the prompt cannot be encoded: ${(e as Error).message}`);
    }
    if (ids.length === 0) throw new UsageError("generate: the prompt is empty; give at least one character");
    const context = model.config.block_size;
    if (opts.maxNewTokens > context && v["max-new-tokens"] !== undefined) {
      // Allowed (generation slides over the text in linear time), but worth knowing.
      process.stderr.write(
        `moxing: note: --max-new-tokens ${opts.maxNewTokens} is more than the model's context of ${context} tokens; ` +
          `past it each token is predicted from the last ${Math.ceil(context / 2)} to ${context} tokens only\n`,
      );
    }
    // A reader that goes away (| head) closes the pipe; the write error arrives as an event, so
    // the loop yields to the event loop after each piece to notice it and stop, instead of
    // generating the rest of --max-new-tokens for nobody.
    let closed = false;
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      closed = true;
    });
    process.stdout.write(prompt);
    // Each piece goes straight to stdout; nothing accumulates, however many tokens are asked for.
    for (const piece of streamText(model, tokenizer, prompt, opts)) {
      process.stdout.write(piece);
      await new Promise(setImmediate);
      if (closed) return 0;
    }
    process.stdout.write("\n");
    return 0;
  },
};

/** The most prompt read from standard input: far more than any model's context (the model sees
 *  only the last block_size tokens), and a bound when stdin never ends (< /dev/zero). */
const MAX_STDIN_PROMPT = 16 * 1024 * 1024;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of process.stdin) {
    bytes += (c as Buffer).length;
    if (bytes > MAX_STDIN_PROMPT) {
      throw new UsageError("generate: the prompt on standard input is over 16 MiB; give a shorter one (the model sees only its context)");
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
