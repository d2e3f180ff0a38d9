// A binary Tree-LSTM (Tai, Socher and Manning 2015, the N-ary Tree-LSTM with N = 2) over given
// binary trees, and a classifier on its root, all of it in this file. A leaf reads its token's
// embedding; an internal node reads its two children's states, with one forget gate per child:
//
//   i   = σ(W_i x + U_i^L h_L + U_i^R h_R + b_i)          u = tanh(W_u x + U_u^L h_L + U_u^R h_R + b_u)
//   f_k = σ(W_f x + U_fk^L h_L + U_fk^R h_R + b_f)  (k = L, R)   o = σ(W_o x + U_o^L h_L + U_o^R h_R + b_o)
//   c   = i ⊙ u + f_L ⊙ c_L + f_R ⊙ c_R                   h = o ⊙ tanh(c)
//
// (x is the token embedding at leaves and absent at internal nodes, as in the paper's constituency
// Tree-LSTM; a leaf has no children.) Batched by tree level, not one op per node: every node of
// the whole batch at the same height (leaves 0, a parent 1 + its higher child) is computed with one
// matrix product, its children's states gathered from the levels below.

import type { BinaryTree } from "../data/listops.js";
import { Embedding, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { zeros } from "../tensor/creation.js";
import { add, cat, crossEntropy, index, mul, sigmoid, slice, tanh } from "../tensor/ops.js";
import { defaultGenerator, Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

export interface TreeLSTMConfig {
  vocab_size: number;
  embed_dim: number;
  hidden_size: number;
  num_labels: number;
}

/** Nodes of a batch of trees in a flat table, grouped by height, children given as node indices. */
export interface TreeBatch {
  /** Token id of each leaf (by node index; -1 for internal nodes). */
  tokens: number[];
  /** [left, right] node indices of each internal node ([-1, -1] for leaves). */
  children: [number, number][];
  /** Node indices by height: levels[0] the leaves, levels[k] the nodes whose higher child is at k - 1. */
  levels: number[][];
  /** The root node of each tree. */
  roots: number[];
}

/** Flatten trees into a TreeBatch; `vocab` maps a leaf's token to its id. */
export function treeBatch(trees: readonly BinaryTree[], vocab: (token: string) => number): TreeBatch {
  const b: TreeBatch = { tokens: [], children: [], levels: [], roots: [] };
  const height: number[] = [];
  const visit = (t: BinaryTree): number => {
    let h: number;
    let kids: [number, number];
    let tok = -1;
    if (typeof t === "string") {
      tok = vocab(t);
      kids = [-1, -1];
      h = 0;
    } else {
      kids = [visit(t[0]), visit(t[1])];
      h = 1 + Math.max(height[kids[0]] as number, height[kids[1]] as number);
    }
    const id = b.tokens.length;
    b.tokens.push(tok);
    b.children.push(kids);
    height.push(h);
    for (let k = b.levels.length; k <= h; k++) b.levels.push([]);
    (b.levels[h] as number[]).push(id);
    return id;
  };
  for (const t of trees) b.roots.push(visit(t));
  return b;
}

export class BinaryTreeLSTM extends Module {
  /** Leaf input: W x + b for the gates i, o, u (a leaf has no forget gates). */
  readonly W: Linear;
  /** Children: [h_L, h_R] (2H) -> i, f_L, f_R, o, u (5H). */
  readonly U: Linear;
  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    opts: { generator?: Generator } = {},
  ) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.W = this.module("W", new Linear(inputSize, 3 * hiddenSize, { generator: g }));
    this.U = this.module("U", new Linear(2 * hiddenSize, 5 * hiddenSize, { generator: g }));
  }

  /** h and c (N, H) of every node of the batch, in node order; x (L, C) the leaves' inputs in the order of levels[0]. */
  forward(batch: TreeBatch, x: Tensor): { h: Tensor; c: Tensor } {
    const H = this.hiddenSize;
    const N = batch.tokens.length;
    const part = (t: Tensor, k: number) => slice(t, 1, k * H, (k + 1) * H);
    // Level 0: the leaves.
    const leaf = this.W.forward(x); // (L, 3H)
    let c = mul(sigmoid(part(leaf, 0)), tanh(part(leaf, 2)));
    let h = mul(sigmoid(part(leaf, 1)), tanh(c));
    // States of the nodes computed so far, stacked in the order they were computed; row[node] says where.
    const row = new Int32Array(N).fill(-1);
    (batch.levels[0] as number[]).forEach((n, i) => {
      row[n] = i;
    });
    let done = (batch.levels[0] as number[]).length;
    for (let k = 1; k < batch.levels.length; k++) {
      const nodes = batch.levels[k] as number[];
      const left = new Tensor(
        Int32Array.from(nodes, (n) => row[(batch.children[n] as [number, number])[0]] as number),
        [nodes.length],
      );
      const right = new Tensor(
        Int32Array.from(nodes, (n) => row[(batch.children[n] as [number, number])[1]] as number),
        [nodes.length],
      );
      const g = this.U.forward(cat([index(h, left), index(h, right)], 1)); // (n, 5H)
      const cNew = add(
        mul(sigmoid(part(g, 0)), tanh(part(g, 4))),
        add(mul(sigmoid(part(g, 1)), index(c, left)), mul(sigmoid(part(g, 2)), index(c, right))),
      );
      const hNew = mul(sigmoid(part(g, 3)), tanh(cNew));
      h = cat([h, hNew], 0);
      c = cat([c, cNew], 0);
      nodes.forEach((n, i) => {
        row[n] = done + i;
      });
      done += nodes.length;
    }
    // Back to node order.
    const order = new Tensor(Int32Array.from(row), [N]);
    return { h: index(h, order), c: index(c, order) };
  }
}

/** Token embeddings -> binary Tree-LSTM -> a linear classifier on each tree's root. */
export class TreeLSTMClassifier extends Module {
  readonly config: TreeLSTMConfig;
  readonly embedding: Embedding;
  readonly tree: BinaryTreeLSTM;
  readonly classifier: Linear;
  constructor(config: TreeLSTMConfig, opts: { seed?: number; generator?: Generator } = {}) {
    super();
    for (const k of ["vocab_size", "embed_dim", "hidden_size", "num_labels"] as const) {
      if (!Number.isInteger(config[k]) || config[k] < 1)
        throw new Error(`TreeLSTM config: ${k} must be a positive integer (got ${config[k]})`);
    }
    this.config = config;
    const g = opts.generator ?? new Generator(opts.seed ?? 0);
    this.embedding = this.module("embedding", new Embedding(config.vocab_size, config.embed_dim, { generator: g }));
    this.tree = this.module("tree", new BinaryTreeLSTM(config.embed_dim, config.hidden_size, { generator: g }));
    this.classifier = this.module("classifier", new Linear(config.hidden_size, config.num_labels, { generator: g }));
  }

  /** Logits (B, num_labels) for a batch of trees; with labels (B), the cross-entropy too. */
  forward(batch: TreeBatch, labels: Tensor | null = null): { logits: Tensor; loss: Tensor | null } {
    const leaves = batch.levels[0] ?? [];
    for (const n of leaves) {
      const t = batch.tokens[n] as number;
      if (t < 0 || t >= this.config.vocab_size)
        throw new Error(`TreeLSTM: token id ${t} is outside the vocabulary of ${this.config.vocab_size}`);
    }
    const x = leaves.length
      ? this.embedding.forward(
          new Tensor(
            Int32Array.from(leaves, (n) => batch.tokens[n] as number),
            [leaves.length],
          ),
        )
      : zeros([0, this.config.embed_dim]);
    const { h } = this.tree.forward(batch, x);
    const roots = index(h, new Tensor(Int32Array.from(batch.roots), [batch.roots.length])); // (B, H)
    const logits = this.classifier.forward(roots);
    return { logits, loss: labels ? crossEntropy(logits, labels) : null };
  }
}
