// The GPT workloads the benchmarks share, so bench/bench.ts (speed) and bench/memory.ts (peak
// memory) measure exactly the same thing: nanoGPT's CPU configuration and a 6-layer, 384-wide one.

import * as mx from "../src/index.js";
import { clipGradNorm, forwardBackward } from "../src/train/grad.js";

export const SMALL = { n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12, vocab_size: 65 };
export const MEDIUM = { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, batch_size: 64, vocab_size: 65 };
export type BenchConfig = typeof SMALL;

/** A model and one training step exactly as the trainer runs it: forward, backward, global-norm
 *  clipping at 1.0 and AdamW, the step's tensors in a MemoryArena. */
export function gptTrainStep(cfg: BenchConfig): { model: mx.GPT; arena: mx.MemoryArena; step(): void } {
  const model = new mx.GPT({ ...cfg }, { seed: 0 });
  const opt = new mx.AdamW(model.optimGroups(0.1), { lr: 1e-3, betas: [0.9, 0.99] });
  const g = new mx.Generator(0);
  const x = mx.randint(0, cfg.vocab_size, [cfg.batch_size, cfg.block_size], { generator: g });
  const y = mx.randint(0, cfg.vocab_size, [cfg.batch_size, cfg.block_size], { generator: g });
  const params = model.parameters();
  const arena = new mx.MemoryArena();
  const step = () => {
    arena.reset();
    arena.run(() => {
      opt.zeroGrad();
      forwardBackward(1, () => ({ loss: model.forward(x, { targets: y }).loss as mx.Tensor }));
      clipGradNorm(params, 1);
      opt.step();
    });
  };
  return { model, arena, step };
}
