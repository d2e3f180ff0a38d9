// Learning from a conversation's feedback now, in memory: what `moxing chat`'s /learn does (and what a
// server's "learn now" can call). LoRA adapters on the chat model train for a few steps on
//
//   SFT    the answers a person approved (thumbs-up) and the answers a person wrote (corrections):
//          cross-entropy on the answer's tokens (sftLoss)
//   DPO    the preference pairs the feedback makes (a correction over the answer it corrects, a
//          thumbs-up over a thumbs-down answer to the same context, a choice): dpoLoss with the same
//          weights, adapters off, as the reference, so no second copy of the model
//
// both in each step (loss = SFT + DPO, as TRL's DPO with rpo_alpha adds the chosen answer's NLL), then
// the model carries on with the adapters on. Adapters already attached (an earlier /learn, or --adapter)
// keep training, so feedback accumulates. Each step is the training loop's: forward, backward, global
// gradient-norm clipping, AdamW, every tensor of the step recycled by the next (a MemoryArena).

import type { PreferenceExample, SFTExample } from "../chat/export.js";
import type { LanguageModel } from "../models/causal.js";
import { type LoraConfig, LoraModel } from "../nn/lora.js";
import { AdamW } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { MemoryArena } from "../tensor/memory.js";
import { add } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { clipGradNorm, forwardBackward } from "../train/grad.js";
import { padBatch } from "./common.js";
import { type EncodedExample, encodePreference, encodeSFT } from "./datasets.js";
import { dpoLoss, sequenceLogprobs, sftLoss } from "./losses.js";

export interface LearnSettings {
  /** Optimizer steps. */
  steps: number;
  learningRate: number;
  /** LoRA rank of fresh adapters (alpha = 2·rank, no dropout). */
  rank: number;
  /** Layers fresh adapters go on; default: c_attn, c_proj (GPT-2) or q_proj, k_proj, v_proj, o_proj (Llama). */
  targets: string[] | null;
  /** DPO's beta. */
  beta: number;
  /** Examples per step of each kind (all of them when there are fewer). */
  batchSize: number;
  gradClip: number;
  seed: number;
}

// 15 steps at 3e-4: on the chat benchmark's model (BENCHMARKS.md §7) this makes a corrected answer stick
// while the answers to 50 other prompts move by 0.02 nats per token; 30 steps at 3e-3 (the first
// default) learnt the answer too but moved them by 1.7 and broke every other answer.
export const LEARN_DEFAULTS: LearnSettings = {
  steps: 15,
  learningRate: 3e-4,
  rank: 8,
  targets: null,
  beta: 0.1,
  batchSize: 8,
  gradClip: 1,
  seed: 0,
};

export interface LearnInput {
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** Adapters to keep training; null: fresh ones are attached to `model`. */
  lora?: LoraModel | null;
  sft: readonly SFTExample[];
  preference: readonly PreferenceExample[];
  settings?: Partial<LearnSettings>;
  /** After each step (e.g. a progress line); may abort through `signal`. */
  onStep?: (step: number, steps: number, loss: number) => void;
  /** Stops after the current step; the adapters keep what they learned. */
  signal?: AbortSignal;
}

export interface LearnResult {
  lora: LoraModel;
  steps: number;
  firstLoss: number;
  lastLoss: number;
  sftExamples: number;
  pairs: number;
  /** Wall-clock seconds, and the CPU seconds of the process meanwhile (all threads). */
  seconds: number;
  cpuSeconds: number;
}

/** The Linear layers to adapt by default: GPT-2's, else Llama's attention projections. */
export function defaultLoraTargets(model: LanguageModel): string[] {
  const names = new Set([...model.namedModules()].map(([p]) => p.split(".").pop()));
  return names.has("c_attn") ? ["c_attn", "c_proj"] : ["q_proj", "k_proj", "v_proj", "o_proj"].filter((n) => names.has(n));
}

/** Train LoRA adapters on feedback now; see the file comment. Throws when there is nothing to learn from.
 *  Yields to the event loop between steps, so a signal can stop it. */
export async function learnFromFeedback(input: LearnInput): Promise<LearnResult> {
  const s = { ...LEARN_DEFAULTS, ...(input.settings ?? {}) };
  const { model, tokenizer } = input;
  if (input.sft.length === 0 && input.preference.length === 0) {
    throw new Error("learn: no feedback to learn from yet: rate an answer (/good) or correct one (/correct TEXT)");
  }
  if (!Number.isInteger(s.steps) || s.steps < 1) throw new Error(`learn: steps must be a positive integer (got ${s.steps})`);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const block = model.blockSize;
  const sft: EncodedExample[] = input.sft
    .map((e) => encodeSFT(tokenizer, { format: "prompt-completion-chat", prompt: e.prompt, completion: e.completion }, block))
    .filter((e) => e.mask.slice(1).includes(1));
  const pairs = input.preference
    .map((e) => encodePreference(tokenizer, { format: "preference-chat", prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }, block))
    .filter((p) => p.chosen.mask.slice(1).includes(1) && p.rejected.mask.slice(1).includes(1));
  if (sft.length === 0 && pairs.length === 0) throw new Error(`learn: every example is longer than the model's context (${block} tokens)`);

  const g = new Generator(s.seed);
  const config: LoraConfig = { r: s.rank, alpha: 2 * s.rank, dropout: 0, targetModules: s.targets ?? defaultLoraTargets(model) };
  const lora = input.lora ?? new LoraModel(model, config, { generator: g });
  const optimizer = new AdamW([{ params: lora.parameters(), weightDecay: 0 }], { lr: s.learningRate });
  const params = lora.parameters();
  const wasTraining = model.training;
  lora.eval(); // no dropout: a handful of examples, learned exactly
  model.eval();
  const arena = new MemoryArena();
  const pick = <T>(xs: readonly T[]): T[] =>
    xs.length <= s.batchSize ? [...xs] : Array.from({ length: s.batchSize }, () => xs[g.randint(xs.length)] as T);
  let first = Number.NaN;
  let lastLoss = Number.NaN;
  let step = 0;
  try {
    for (; step < s.steps && !input.signal?.aborted; step++) {
      optimizer.zeroGrad();
      arena.reset();
      const loss = arena.run(() => {
        const r = forwardBackward(1, () => {
          const parts: Tensor[] = [];
          if (sft.length) {
            const b = padBatch(pick(sft));
            parts.push(sftLoss(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask));
          }
          if (pairs.length) {
            const batch = pick(pairs);
            const b = padBatch([...batch.map((p) => p.chosen), ...batch.map((p) => p.rejected)]);
            const n = batch.length;
            const pol = sequenceLogprobs(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask).sum;
            const ref = noGrad(() =>
              lora.withAdaptersDisabled(() => sequenceLogprobs(model.forward(b.x, { lengths: b.lengths }).logits, b.ids, b.mask).sum),
            );
            const d = dpoLoss(
              {
                policyChosen: pol.slice(0, 0, n),
                policyRejected: pol.slice(0, n, 2 * n),
                refChosen: ref.slice(0, 0, n),
                refRejected: ref.slice(0, n, 2 * n),
              },
              { beta: s.beta },
            );
            parts.push(d.loss);
          }
          return { loss: parts.length === 2 ? add(parts[0] as Tensor, parts[1] as Tensor) : (parts[0] as Tensor) };
        });
        const norm = clipGradNorm(params, s.gradClip);
        if (Number.isFinite(r.loss) && Number.isFinite(norm)) optimizer.step();
        return r.loss;
      });
      if (!Number.isFinite(loss)) throw new Error(`learn: the loss became ${loss} at step ${step + 1}; lower the learning rate`);
      if (step === 0) first = loss;
      lastLoss = loss;
      input.onStep?.(step + 1, s.steps, loss);
      // Let Ctrl-C (the signal's abort) and other events through between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    optimizer.zeroGrad();
    model.train(wasTraining);
  }
  return {
    lora,
    steps: step,
    firstLoss: first,
    lastLoss,
    sftExamples: sft.length,
    pairs: pairs.length,
    seconds: (performance.now() - t0) / 1000,
    cpuSeconds: ((c) => (c.user + c.system) / 1e6)(process.cpuUsage(cpu0)),
  };
}
