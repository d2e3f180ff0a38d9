// Shared by the server tests: tiny models built in the test (a chat GPT taught two exchanges in a few
// seconds, a random BERT), and starting a server on a free port of 127.0.0.1.

import "../../src/index.js"; // registers the backends
import { encodeChat, useChatML } from "../../src/chat/index.js";
import { saveModel } from "../../src/io/index.js";
import { GPT } from "../../src/models/gpt.js";
import { AdamW } from "../../src/optim/adamw.js";
import { createServer, type MoxingServer, type ServeOptions } from "../../src/serve/server.js";
import { tensor } from "../../src/tensor/index.js";
import { CharTokenizer } from "../../src/tokenizers/index.js";

/** Every printable ASCII character, and the seed's words in Chinese. */
export const ALPHABET = `${Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")}\n猫狗汉堡é`;

export const EXCHANGES: [string, string][] = [
  ["hi", "hello there"],
  ["bye", "ciao"],
];

/**
 * A 2-layer chat GPT over ALPHABET (ChatML tokens added) that answers EXCHANGES, saved to dir.
 * `steps` 0 leaves it random (answers then run to max_tokens).
 */
export function tinyChatModel(
  dir: string,
  opts: { steps?: number; blockSize?: number; seed?: number; pos?: "learned" | "sinusoidal" | "rope" } = {},
): void {
  const tok = CharTokenizer.fromText(ALPHABET);
  useChatML(tok);
  const model = new GPT(
    { vocab_size: tok.vocabSize, n_layer: 2, n_head: 2, n_embd: 32, block_size: opts.blockSize ?? 64, pos_encoding: opts.pos ?? "learned" },
    { seed: opts.seed ?? 3 },
  );
  const seqs = EXCHANGES.map(
    ([q, a]) =>
      encodeChat(tok, [
        { role: "user", content: q },
        { role: "assistant", content: a },
      ]).ids,
  );
  const T = Math.max(...seqs.map((s) => s.length)) - 1;
  const pad = (s: number[], v: number) => [...s, ...Array(T + 1 - s.length).fill(v)];
  const x = tensor(
    seqs.map((s) => pad(s, 0).slice(0, T)),
    { dtype: "int32" },
  );
  const y = tensor(
    seqs.map((s) => pad(s, -100).slice(1)),
    { dtype: "int32" },
  );
  const opt = new AdamW(model.optimGroups(0), { lr: 1e-2 });
  for (let step = 0; step < (opts.steps ?? 150); step++) {
    const { loss } = model.forward(x, { targets: y });
    opt.zeroGrad();
    loss?.backward();
    opt.step();
  }
  model.eval();
  saveModel(dir, model, tok);
}

export async function startServer(opts: Partial<ServeOptions> & { models: string[] }): Promise<MoxingServer> {
  return createServer({ host: "127.0.0.1", port: 0, ...opts });
}

/** Read a server-sent-event stream to its end: the data lines, parsed ([DONE] kept as a string). */
export async function readEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((b) => b.startsWith("data: "))
    .map((b) => {
      const d = b.slice(6);
      return d === "[DONE]" ? d : JSON.parse(d);
    });
}

/** "learn now" strong enough for the 2-layer, 32-wide test models to take a correction in a few
 *  seconds (the default, 15 steps at 3e-4, is tuned for the chat benchmark's bigger model). */
export const TINY_LEARN = { steps: 30, learningRate: 3e-3 };
