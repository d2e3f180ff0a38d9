// `moxing chat`: talk to a chat model in the terminal, tell it when it is wrong, and let it learn.
//
// Every message, answer, rating and correction goes to the feedback store (--db, else a store in
// memory). /learn trains LoRA adapters on this conversation's feedback (src/rlhf/learn.ts) and the chat
// carries on with them; /save writes them in PEFT's layout. Answers stream to stdout; notes (command
// results, learning progress) go to stderr, so a script driving the chat reads the answers alone.
// Ctrl-C stops an answer (or a /learn) and keeps the program; at the prompt it clears the line, twice
// in a row it leaves. Standard input may be a terminal or a pipe: one line is one message or command.

import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { preferenceExamples, sftExamples } from "../chat/export.js";
import type { ChatMessage } from "../chat/messages.js";
import { FeedbackStore, type SamplingSettings } from "../chat/store.js";
import { streamChatReply } from "../chat/stream.js";
import { endOfTurnIds } from "../chat/template.js";
import { loadCausalLM } from "../io/causal-lm.js";
import { loadAdapter, saveAdapter } from "../io/lora.js";
import type { GPT } from "../models/gpt.js";
import type { Llama } from "../models/llama.js";
import type { LoraModel } from "../nn/lora.js";
import { tokenizerFiles } from "../rlhf/common.js";
import { LEARN_DEFAULTS, type LearnSettings, learnFromFeedback } from "../rlhf/learn.js";
import { Generator } from "../tensor/random.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type Command, num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing chat: talk to a chat model; correct it and let it learn

Usage: moxing chat --model PATH [--adapter DIR] [--system TEXT] [--db FILE] [flags]

  --model PATH          a chat model (from \`moxing sft\`): a directory, .safetensors or .gguf file
  --adapter DIR         LoRA adapters to start with (PEFT layout), if DIR holds them; /save writes there
  --system TEXT         the system message of every conversation
  --db FILE             the feedback store (SQLite); default: kept in memory and lost at exit
  --temperature 0.7  --top-k 0  --top-p 1  --max-new-tokens 200  --seed 1
/learn:
  --learn-steps ${LEARN_DEFAULTS.steps}  --learn-rate ${LEARN_DEFAULTS.learningRate}  --lora-r ${LEARN_DEFAULTS.rank}  --lora-targets c_attn,c_proj  --beta ${LEARN_DEFAULTS.beta}

Type a message and press Enter; the answer streams. Commands:
${commandHelp()}

Ctrl-C stops an answer (or /learn) without leaving; Ctrl-C twice at the prompt, Ctrl-D or /quit leaves.
Answers go to stdout, notes to stderr. With standard input not a terminal (a script), the exit
status is 1 when any line failed.`;

function commandHelp(): string {
  return [
    "  /good              thumbs-up for the last answer",
    "  /bad               thumbs-down for the last answer",
    "  /correct TEXT      the answer it should have given (the conversation continues from it)",
    "  /retry             answer the last message again (both answers are kept)",
    "  /learn             train the adapters on this conversation's feedback now (SFT on good and",
    "                     corrected answers, DPO on corrected-vs-given pairs), then carry on with them",
    "  /save [DIR]        write the adapters (PEFT layout) to DIR (default: --adapter)",
    "  /reset             start a new conversation",
    "  /help              this list",
    "  /quit              leave",
  ].join("\n");
}

interface Turn extends ChatMessage {
  /** The message's id in the store. */
  id: number;
}

/** One chat: the model, its adapters, the conversation so far and the store it is written to. */
class ChatSession {
  private thread: Turn[] = [];
  private conversation: number;
  private readonly generator: Generator;
  lora: LoraModel | null = null;
  /** The abort of what is running now (an answer, a /learn), for Ctrl-C. */
  running: AbortController | null = null;

  constructor(
    readonly model: GPT | Llama,
    readonly tokenizer: Tokenizer,
    readonly store: FeedbackStore,
    readonly o: {
      modelName: string;
      system: string | undefined;
      adapterDir: string | undefined;
      sampling: { temperature: number; topK: number; topP: number; maxNewTokens: number; seed: number };
      learn: Partial<LearnSettings>;
      out: (s: string) => void;
      note: (s: string) => void;
    },
  ) {
    this.generator = new Generator(o.sampling.seed);
    this.conversation = this.start();
  }

  private start(): number {
    const id = this.store.startConversation({ system: this.o.system });
    this.thread = this.store.conversation(id).map((m) => ({ role: m.role, content: m.content, id: m.id }));
    return id;
  }

  private lastAnswer(): Turn | null {
    const last = this.thread[this.thread.length - 1];
    return last?.role === "assistant" ? last : null;
  }

  /** Answer the thread as it stands (its last message is the user's); store and append the answer. */
  private async answer(parentId: number): Promise<void> {
    const abort = new AbortController();
    this.running = abort;
    const s = this.o.sampling;
    try {
      const reply = await streamChatReply(
        this.model,
        this.tokenizer,
        this.thread.map(({ role, content }) => ({ role, content })),
        {
          temperature: s.temperature,
          topK: s.topK,
          topP: s.topP,
          maxNewTokens: s.maxNewTokens,
          generator: this.generator,
          signal: abort.signal,
          onText: (piece) => this.o.out(piece),
        },
      );
      this.o.out("\n");
      if (reply.finishReason === "abort") this.o.note("(stopped)");
      else if (reply.finishReason === "length") this.o.note(`(cut at ${reply.completionTokens} tokens)`);
      if (reply.droppedMessages) this.o.note(`(the ${reply.droppedMessages} oldest messages no longer fit the context)`);
      const sampling: SamplingSettings = {
        temperature: s.temperature,
        top_k: s.topK,
        top_p: s.topP,
        max_new_tokens: s.maxNewTokens,
        finish_reason: reply.finishReason,
        adapter: this.lora ? (this.o.adapterDir ?? "learned") : null,
      };
      const id = this.store.addMessage(this.conversation, {
        role: "assistant",
        content: reply.text,
        parentId,
        model: this.o.modelName,
        sampling,
      });
      this.thread.push({ role: "assistant", content: reply.text, id });
    } finally {
      this.running = null;
    }
  }

  async say(text: string): Promise<void> {
    // A character the tokenizer lacks is an error before anything is stored; special-token text is
    // ordinary text in a message (encodeChat keeps it so).
    this.tokenizer.encode(text, { disallowedSpecial: [] });
    const id = this.store.addMessage(this.conversation, { role: "user", content: text });
    this.thread.push({ role: "user", content: text, id });
    try {
      await this.answer(id);
    } catch (e) {
      this.thread.pop(); // the question stays in the store, unanswered; the conversation goes on without it
      throw e;
    }
  }

  async command(line: string): Promise<boolean> {
    const cmd = line.trim().split(/\s+/)[0] ?? "";
    const arg = line.trim().slice(cmd.length).trim();
    const needAnswer = (what: string): Turn => {
      const a = this.lastAnswer();
      if (!a) throw new UsageError(`${what}: there is no answer yet; say something first`);
      return a;
    };
    switch (cmd) {
      case "/help":
        this.o.note(commandHelp());
        return true;
      case "/quit":
      case "/exit":
        return false;
      case "/good":
      case "/bad": {
        const a = needAnswer(cmd);
        this.store.rate(a.id, cmd === "/good" ? 1 : -1);
        this.o.note(cmd === "/good" ? "noted: a good answer" : "noted: a bad answer (/correct TEXT says what it should be)");
        return true;
      }
      case "/correct": {
        const a = needAnswer(cmd);
        if (!arg) throw new UsageError("/correct: give the answer it should have given, e.g. /correct John F Kennedy.");
        this.tokenizer.encode(arg, { disallowedSpecial: [] });
        this.store.correct(a.id, arg);
        a.content = arg; // the conversation continues from the right answer
        this.o.note("noted: the correction is stored; /learn to learn from it now");
        return true;
      }
      case "/retry": {
        const a = needAnswer(cmd);
        this.thread.pop();
        const user = this.thread[this.thread.length - 1] as Turn;
        try {
          await this.answer(user.id);
        } catch (e) {
          this.thread.push(a);
          throw e;
        }
        return true;
      }
      case "/learn":
        await this.learn();
        return true;
      case "/save": {
        const dir = arg || this.o.adapterDir;
        if (!dir) throw new UsageError("/save: give a directory (/save DIR) or start with --adapter DIR");
        if (!this.lora) throw new UsageError("/save: nothing learned yet (/learn first)");
        saveAdapter(dir, this.lora, { baseModel: this.o.modelName, extra: tokenizerFiles(this.tokenizer) });
        this.o.note(
          `saved the adapters to ${dir} (load them with --adapter ${dir}, or merge: moxing merge --model ${this.o.modelName} --adapter ${dir} --out DIR)`,
        );
        return true;
      }
      case "/reset":
        this.conversation = this.start();
        this.o.note("a new conversation");
        return true;
      default:
        throw new UsageError(`unknown command '${cmd}'; /help lists them`);
    }
  }

  private async learn(): Promise<void> {
    const filter = { conversationId: this.conversation };
    const sft = sftExamples(this.store, filter);
    const preference = preferenceExamples(this.store, filter);
    if (sft.length === 0 && preference.length === 0) {
      throw new UsageError("/learn: this conversation has no feedback yet: /good, /bad or /correct TEXT an answer first");
    }
    const abort = new AbortController();
    this.running = abort;
    this.o.note(`learning from ${sft.length} good or corrected answer(s) and ${preference.length} preference pair(s)...`);
    try {
      const r = await learnFromFeedback({
        model: this.model,
        tokenizer: this.tokenizer,
        lora: this.lora,
        sft,
        preference,
        settings: this.o.learn,
        signal: abort.signal,
        onStep: (step, steps, loss) => {
          if (step === 1 || step === steps || step % 10 === 0) this.o.note(`  step ${step}/${steps}  loss ${loss.toFixed(4)}`);
        },
      });
      this.lora = r.lora;
      const stopped = abort.signal.aborted ? " (stopped early)" : "";
      this.o.note(
        `learned in ${r.seconds.toFixed(1)} s (${r.cpuSeconds.toFixed(1)} s of CPU)${stopped}: ${r.steps} steps, loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)}; ` +
          `the chat goes on with the adapters (${r.lora.trainableParameters().trainable} parameters); /save keeps them`,
      );
    } finally {
      this.running = null;
    }
  }
}

export const chatCommand: Command = {
  summary: "chat with a model in the terminal; /good /bad /correct /retry, and /learn from the feedback",
  help: HELP,
  async run(argv) {
    const { values: v, positionals } = parseFlags("chat", argv, {
      model: { type: "string" },
      adapter: { type: "string" },
      system: { type: "string" },
      db: { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      "max-new-tokens": { type: "string" },
      seed: { type: "string" },
      "learn-steps": { type: "string" },
      "learn-rate": { type: "string" },
      "lora-r": { type: "string" },
      "lora-targets": { type: "string" },
      beta: { type: "string" },
    });
    if (positionals.length) throw new UsageError(`chat: unexpected argument '${positionals[0]}'`);
    if (!v.model) throw new UsageError("chat: --model PATH is required (a chat model, e.g. one from `moxing sft`)");
    const sampling = {
      temperature: num("chat", "temperature", v.temperature, 0.7, { min: 0 }),
      topK: num("chat", "top-k", v["top-k"], 0, { int: true, min: 0 }),
      topP: num("chat", "top-p", v["top-p"], 1, { min: 0 }),
      maxNewTokens: num("chat", "max-new-tokens", v["max-new-tokens"], 200, { int: true, min: 1 }),
      seed: num("chat", "seed", v.seed, 1, { int: true, min: 0 }),
    };
    if (sampling.topP <= 0 || sampling.topP > 1) throw new UsageError(`chat: --top-p must be in (0, 1] (got '${v["top-p"]}')`);
    const learn: Partial<LearnSettings> = {
      steps: num("chat", "learn-steps", v["learn-steps"], LEARN_DEFAULTS.steps, { int: true, min: 1 }),
      learningRate: num("chat", "learn-rate", v["learn-rate"], LEARN_DEFAULTS.learningRate, { min: 0 }),
      rank: num("chat", "lora-r", v["lora-r"], LEARN_DEFAULTS.rank, { int: true, min: 1 }),
      beta: num("chat", "beta", v.beta, LEARN_DEFAULTS.beta, { min: 0 }),
      targets: v["lora-targets"]
        ? v["lora-targets"]
            .split(",")
            .map((t) => t.trim())
            .filter(Boolean)
        : null,
    };
    if (learn.beta === 0) throw new UsageError("chat: --beta must be above 0");

    // A GPT (directory, .safetensors, GGUF) or a Llama-family model (Hugging Face directory, GGUF in
    // any of its types: /learn then trains LoRA adapters on the frozen quantised weights).
    const { model, tokenizer } = loadCausalLM(v.model);
    if (endOfTurnIds(tokenizer).length === 0) {
      throw new UsageError(
        `chat: ${v.model} is not a chat model (its tokenizer has no end-of-turn token such as <|im_end|>); fine-tune it first: moxing sft --model ${v.model} --data chat.jsonl --out DIR`,
      );
    }
    model.eval();
    const store = FeedbackStore.open(v.db ?? ":memory:");
    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    const session = new ChatSession(model, tokenizer, store, {
      modelName: v.model,
      system: v.system,
      adapterDir: v.adapter,
      sampling,
      learn,
      out: (s) => process.stdout.write(s),
      note: (s) => process.stderr.write(`${s}\n`),
    });
    if (v.adapter && existsSync(v.adapter)) {
      session.lora = loadAdapter(v.adapter, model);
      process.stderr.write(`adapters from ${v.adapter} (${session.lora.trainableParameters().trainable} parameters)\n`);
    } else if (v.adapter) {
      process.stderr.write(`no adapters in ${v.adapter} yet: /learn trains some and /save writes them there\n`);
    }
    process.stderr.write(`chatting with ${v.model}${v.db ? `; feedback goes to ${v.db}` : ""}. /help lists the commands.\n`);

    const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
    let interrupts = 0;
    const onInterrupt = () => {
      if (session.running) {
        session.running.abort();
        return;
      }
      interrupts++;
      if (interrupts >= 2) {
        rl.close();
        return;
      }
      if (tty) {
        rl.write(null, { ctrl: true, name: "u" }); // clear the line
        process.stderr.write("\n(Ctrl-C again, Ctrl-D or /quit to leave)\n");
        rl.prompt();
      }
    };
    rl.on("SIGINT", onInterrupt); // a terminal: Ctrl-C is a keypress readline reports
    process.on("SIGINT", onInterrupt); // a pipe: Ctrl-C is the signal
    const prompt = () => tty && rl.prompt();
    rl.setPrompt("> ");
    prompt();
    let code = 0;
    try {
      for await (const raw of rl) {
        const line = raw.trim();
        interrupts = 0;
        if (line === "") {
          prompt();
          continue;
        }
        try {
          if (line.startsWith("/")) {
            if (!(await session.command(line))) break;
          } else {
            await session.say(line);
          }
        } catch (e) {
          // A mistake in one line (an unknown command, a character the tokenizer lacks, a conversation
          // too long) is reported and the chat goes on.
          process.stderr.write(`${(e as Error).message}\n`);
          if (!tty) code = 1;
        }
        prompt();
      }
    } finally {
      process.off("SIGINT", onInterrupt);
      rl.close();
      store.close();
    }
    if (tty) process.stdout.write("\n");
    return code;
  },
};
