// `moxing demo`: the engine at work in a few seconds. A two-layer MLP learns to classify points
// of two interleaved spirals by backpropagation and AdamW; the loss falls as you watch.

import { checkFits, estimate } from "../models/budget.js";
import { AdamW } from "../optim/adamw.js";
import { getBackend } from "../tensor/backend.js";
import { crossEntropy, Generator, randn, tensor, zeros } from "../tensor/index.js";
import type { Command } from "./util.js";
import { num, parseFlags } from "./util.js";

const HELP = `moxing demo: train a small MLP on two spirals and print the loss falling

Usage: moxing demo [--steps 300] [--hidden 64] [--seed 1]`;

function spirals(n: number, g: Generator): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const r = (i / n) * 3 + 0.2;
    const a = r * 2.2 + cls * Math.PI + g.normal() * 0.12;
    x.push(r * Math.cos(a), r * Math.sin(a));
    y.push(cls);
  }
  return { x, y };
}

export const demoCommand: Command = {
  summary: "train a tiny MLP on two spirals (the engine's smoke test)",
  help: HELP,
  run(argv) {
    const { values } = parseFlags("demo", argv, { steps: { type: "string" }, hidden: { type: "string" }, seed: { type: "string" } });
    const steps = num("demo", "steps", values.steps, 300, { int: true, min: 1 });
    const hidden = num("demo", "hidden", values.hidden, 64, { int: true, min: 1 });
    // Weights 2-h-h-2 with their gradients and AdamW moments (4x), and 400 points' activations.
    const mlp = (h: number) =>
      estimate(
        h * h + 6 * h + 2,
        { "weights, gradients and optimizer state": 16 * (h * h + 6 * h + 2), activations: 4 * 400 * 8 * h },
        4 * h * h,
      );
    checkFits("demo", { hidden }, { hidden: 64 }, (c) => mlp(c.hidden), { label: () => "--hidden", purpose: " to train" });
    const g = new Generator(num("demo", "seed", values.seed, 1, { int: true }));
    const data = spirals(400, g);
    const X = tensor(data.x, { shape: [400, 2] });
    const Y = tensor(data.y, { dtype: "int32" });
    const w1 = randn([2, hidden], { generator: g, std: 1, requiresGrad: true });
    const b1 = zeros([hidden], { requiresGrad: true });
    const w2 = randn([hidden, hidden], { generator: g, std: 1 / Math.sqrt(hidden), requiresGrad: true });
    const b2 = zeros([hidden], { requiresGrad: true });
    const w3 = randn([hidden, 2], { generator: g, std: 1 / Math.sqrt(hidden), requiresGrad: true });
    const opt = new AdamW([w1, b1, w2, b2, w3], { lr: 0.01, weightDecay: 0 });
    console.log(`moxing demo: MLP 2-${hidden}-${hidden}-2 on 400 spiral points, backend ${getBackend().name}`);
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const logits = X.matmul(w1).add(b1).tanh().matmul(w2).add(b2).tanh().matmul(w3);
      const loss = crossEntropy(logits, Y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      if (step === 1 || step % Math.max(1, Math.floor(steps / 10)) === 0 || step === steps) {
        const pred = logits.argmax(-1).toArray();
        const acc = pred.filter((p, i) => p === data.y[i]).length / pred.length;
        console.log(`step ${String(step).padStart(5)}  loss ${loss.item().toFixed(4)}  accuracy ${(acc * 100).toFixed(1)}%`);
      }
    }
    console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return 0;
  },
};
