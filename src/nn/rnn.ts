// Recurrent layers as torch.nn has them: LSTM (Hochreiter and Schmidhuber 1997, with the forget
// gate of Gers et al. 2000) and GRU (Cho et al. 2014), multi-layer and optionally bidirectional,
// with PyTorch's parameter names and shapes (weight_ih_l0 (G·H, I), weight_hh_l0 (G·H, H),
// bias_ih_l0, bias_hh_l0, and "_reverse" for the backward direction; gates stacked i, f, g, o for
// the LSTM and r, z, n for the GRU), so a state dict moves between the two unchanged.
//
//   LSTM:  i = σ(W_ii x + b_ii + W_hi h + b_hi)     GRU:  r = σ(W_ir x + b_ir + W_hr h + b_hr)
//          f = σ(W_if x + b_if + W_hf h + b_hf)           z = σ(W_iz x + b_iz + W_hz h + b_hz)
//          g = tanh(W_ig x + b_ig + W_hg h + b_hg)        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//          o = σ(W_io x + b_io + W_ho h + b_ho)           h' = (1 - z) ⊙ n + z ⊙ h
//          c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')
//
// Batches of different lengths are packed as PyTorch's pack_padded_sequence packs them: the batch
// is sorted by length, and at step t only the sequences longer than t are computed (the first rows),
// so padding costs nothing and does not leak into the state. Outputs at padded positions are zero
// and h_n holds each sequence's state after its own last token (for the reverse direction: after
// its first), exactly what PyTorch gives for a packed batch. The input-to-hidden products of all
// time steps are one matrix product before the recurrence; each step multiplies by W_hh only.

import { rand, tensor, zeros } from "../tensor/creation.js";
import { add, cat, dropout, index, linear, mul, sigmoid, slice, squeeze, stack, sub, tanh, transpose } from "../tensor/ops.js";
import { defaultGenerator, type Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";

export interface RNNOptions {
  numLayers?: number;
  bias?: boolean;
  /** Inputs and outputs (B, T, C) instead of PyTorch's default (T, B, C). */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last (training only). */
  dropout?: number;
  bidirectional?: boolean;
  generator?: Generator;
}

export interface RNNCall {
  /** Initial hidden state (numLayers · D, B, H); zeros when omitted. */
  h0?: Tensor | null;
  /** LSTM only: initial cell state (numLayers · D, B, H). */
  c0?: Tensor | null;
  /** The real length of each sequence of the batch (B numbers, each 1..T): a packed batch. */
  lengths?: readonly number[] | null;
}

export interface RNNOutput {
  /** (B, T, D·H) with batchFirst, else (T, B, D·H); zero at padded positions. */
  output: Tensor;
  /** (numLayers · D, B, H): the last hidden state of every layer and direction. */
  h_n: Tensor;
  /** LSTM only: the last cell state, (numLayers · D, B, H). */
  c_n: Tensor | null;
}

type Mode = "LSTM" | "GRU";
const GATES: Record<Mode, number> = { LSTM: 4, GRU: 3 };

/** The shared body of LSTM and GRU (as torch.nn.RNNBase). */
export abstract class RNNBase extends Module {
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropoutP: number;
  readonly bidirectional: boolean;
  readonly generator: Generator;
  private readonly weights: { w_ih: Tensor; w_hh: Tensor; b_ih: Tensor | null; b_hh: Tensor | null }[][] = [];

  constructor(
    readonly mode: Mode,
    readonly inputSize: number,
    readonly hiddenSize: number,
    opts: RNNOptions = {},
  ) {
    super();
    this.numLayers = opts.numLayers ?? 1;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropoutP = opts.dropout ?? 0;
    this.bidirectional = opts.bidirectional ?? false;
    this.generator = opts.generator ?? defaultGenerator;
    for (const [k, v] of [
      ["inputSize", inputSize],
      ["hiddenSize", hiddenSize],
      ["numLayers", this.numLayers],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${mode}: ${k} must be a positive integer (got ${v})`);
    }
    if (!(this.dropoutP >= 0 && this.dropoutP < 1)) throw new Error(`${mode}: dropout must be in [0, 1) (got ${this.dropoutP})`);
    // PyTorch initialises every weight and bias U(-1/√H, 1/√H).
    const bound = 1 / Math.sqrt(hiddenSize);
    const init = (shape: number[]) => rand(shape, { low: -bound, high: bound, generator: this.generator });
    const G = GATES[mode] * hiddenSize;
    const D = this.bidirectional ? 2 : 1;
    for (let l = 0; l < this.numLayers; l++) {
      const layer = [];
      for (let d = 0; d < D; d++) {
        const sfx = `_l${l}${d === 1 ? "_reverse" : ""}`;
        const inSize = l === 0 ? inputSize : hiddenSize * D;
        layer.push({
          w_ih: this.param(`weight_ih${sfx}`, init([G, inSize])),
          w_hh: this.param(`weight_hh${sfx}`, init([G, hiddenSize])),
          b_ih: this.bias ? this.param(`bias_ih${sfx}`, init([G])) : null,
          b_hh: this.bias ? this.param(`bias_hh${sfx}`, init([G])) : null,
        });
      }
      this.weights.push(layer);
    }
  }

  get numDirections(): number {
    return this.bidirectional ? 2 : 1;
  }

  protected run(input: Tensor, call: RNNCall): RNNOutput {
    const name = this.mode;
    if (input.ndim !== 3 || input.shape[2] !== this.inputSize) {
      const layout = this.batchFirst ? "(B, T, C)" : "(T, B, C)";
      throw new Error(`${name}: expected input ${layout} with C = ${this.inputSize}, got shape [${input.shape.join(", ")}]`);
    }
    let x = this.batchFirst ? input : transpose(input, 0, 1); // (B, T, C)
    const [B, T] = x.shape as [number, number];
    const H = this.hiddenSize;
    const D = this.numDirections;
    const lengths = call.lengths ? [...call.lengths] : new Array<number>(B).fill(T);
    if (lengths.length !== B || lengths.some((n) => !Number.isInteger(n) || n < 1 || n > T)) {
      throw new Error(`${name}: lengths must be ${B} integers from 1 to ${T} (one per sequence), got [${lengths.join(", ")}]`);
    }
    const stateShape = [this.numLayers * D, B, H];
    for (const [k, s] of [
      ["h0", call.h0],
      ["c0", call.c0],
    ] as const) {
      if (s && (s.ndim !== 3 || s.shape.some((d, i) => d !== stateShape[i]))) {
        throw new Error(`${name}: ${k} must have shape [${stateShape.join(", ")}], got [${s.shape.join(", ")}]`);
      }
    }
    if (call.c0 && this.mode !== "LSTM") throw new Error(`${name}: c0 is an LSTM's cell state; a GRU has none`);
    // Sort by length, longest first (stable), so the sequences still running are always the first rows.
    const order = lengths.map((_, i) => i).sort((a, b) => (lengths[b] as number) - (lengths[a] as number));
    const sorted = order.some((o, i) => o !== i);
    const sortedLens = order.map((i) => lengths[i] as number);
    const perm = tensor(order, { dtype: "int32" });
    if (sorted) x = index(x, perm);
    const initial = (s: Tensor | null | undefined, k: number): Tensor => {
      if (!s) return zeros([B, H]);
      const layer = index(s, k);
      return sorted ? index(layer, perm) : layer;
    };
    // active[t]: how many sequences have a token at step t.
    const active = Array.from({ length: T }, (_, t) => sortedLens.filter((n) => n > t).length);
    const hN: Tensor[] = [];
    const cN: Tensor[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      const outs: Tensor[] = [];
      for (let d = 0; d < D; d++) {
        const w = this.weights[l]?.[d] as (typeof this.weights)[number][number];
        const k = l * D + d;
        const r = this.direction(x, w, d === 1, active, initial(call.h0, k), this.mode === "LSTM" ? initial(call.c0, k) : null);
        outs.push(r.out);
        hN.push(r.h);
        if (r.c) cN.push(r.c);
      }
      x = D === 1 ? (outs[0] as Tensor) : cat(outs, 2); // (B, T, D·H)
      if (l < this.numLayers - 1) x = dropout(x, this.dropoutP, this.training, this.generator);
    }
    let output = x;
    let h_n = stack(hN, 0); // (L·D, B, H) in sorted order
    let c_n = cN.length ? stack(cN, 0) : null;
    if (sorted) {
      const inverse = new Array<number>(B);
      order.forEach((o, i) => {
        inverse[o] = i;
      });
      const inv = tensor(inverse, { dtype: "int32" });
      output = index(output, inv);
      h_n = transpose(index(transpose(h_n, 0, 1), inv), 0, 1);
      if (c_n) c_n = transpose(index(transpose(c_n, 0, 1), inv), 0, 1);
    }
    return { output: this.batchFirst ? output : transpose(output, 0, 1), h_n, c_n };
  }

  /** One direction of one layer over a packed batch x (B, T, C). */
  private direction(
    x: Tensor,
    w: { w_ih: Tensor; w_hh: Tensor; b_ih: Tensor | null; b_hh: Tensor | null },
    reverse: boolean,
    active: readonly number[],
    h0: Tensor,
    c0: Tensor | null,
  ): { out: Tensor; h: Tensor; c: Tensor | null } {
    const [B, T] = x.shape as [number, number];
    const H = this.hiddenSize;
    const xg = linear(x, w.w_ih, w.b_ih); // (B, T, G·H): every step's input products at once
    const steps: Tensor[] = new Array(T);
    // Forward: rows drop out as their sequences end (their final state is kept). Reverse: rows join
    // as t reaches their last token, starting from their initial state.
    const finalH: Tensor[] = [];
    const finalC: Tensor[] = [];
    let h: Tensor | null = reverse ? null : h0;
    let c: Tensor | null = reverse ? null : c0;
    let rows = reverse ? 0 : B;
    for (let s = 0; s < T; s++) {
      const t = reverse ? T - 1 - s : s;
      const n = active[t] as number;
      if (reverse && n > rows) {
        const joinH = slice(h0, 0, rows, n);
        h = h ? cat([h, joinH], 0) : joinH;
        if (c0) {
          const joinC = slice(c0, 0, rows, n);
          c = c ? cat([c, joinC], 0) : joinC;
        }
      } else if (!reverse && n < rows) {
        finalH.unshift(slice(h as Tensor, 0, n, rows));
        if (c) finalC.unshift(slice(c, 0, n, rows));
        h = slice(h as Tensor, 0, 0, n);
        if (c) c = slice(c, 0, 0, n);
      }
      rows = n;
      if (n === 0) {
        steps[t] = zeros([B, H]); // no sequence reaches this step (lengths all shorter than T)
        continue;
      }
      const xt = slice(squeeze(slice(xg, 1, t, t + 1), 1), 0, 0, n); // (n, G·H)
      const hg = linear(h as Tensor, w.w_hh, w.b_hh); // (n, G·H)
      if (this.mode === "LSTM") {
        const gates = add(xt, hg);
        const gate = (k: number) => slice(gates, 1, k * H, (k + 1) * H);
        const i = sigmoid(gate(0));
        const f = sigmoid(gate(1));
        const g = tanh(gate(2));
        const o = sigmoid(gate(3));
        c = add(mul(f, c as Tensor), mul(i, g));
        h = mul(o, tanh(c));
      } else {
        const part = (t2: Tensor, k: number) => slice(t2, 1, k * H, (k + 1) * H);
        const r = sigmoid(add(part(xt, 0), part(hg, 0)));
        const z = sigmoid(add(part(xt, 1), part(hg, 1)));
        const nn = tanh(add(part(xt, 2), mul(r, part(hg, 2))));
        h = add(nn, mul(z, sub(h as Tensor, nn))); // (1 - z)·n + z·h
      }
      steps[t] = n < B ? cat([h, zeros([B - n, H])], 0) : h;
    }
    if (!reverse && rows > 0) {
      finalH.unshift(h as Tensor);
      if (c) finalC.unshift(c);
    }
    const hLast = reverse ? (h as Tensor) : cat(finalH, 0);
    const cLast = c ? (reverse ? c : cat(finalC, 0)) : null;
    return { out: stack(steps, 1), h: hLast, c: cLast }; // out (B, T, H)
  }
}

/** torch.nn.LSTM. forward returns { output, h_n, c_n }. */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super("LSTM", inputSize, hiddenSize, opts);
  }
  forward(input: Tensor, call: RNNCall = {}): RNNOutput {
    return this.run(input, call);
  }
}

/** torch.nn.GRU. forward returns { output, h_n } (c_n is null). */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super("GRU", inputSize, hiddenSize, opts);
  }
  forward(input: Tensor, call: Omit<RNNCall, "c0"> = {}): RNNOutput {
    return this.run(input, call);
  }
}
