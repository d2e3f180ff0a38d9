// LSTM and GRU: outputs, final states and every gradient against torch.nn.LSTM / GRU on packed
// batches (tools/fixtures/rnn.json, written by tools/torch_rnn.py), finite-difference gradients,
// and the errors for malformed calls.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { GRU, LSTM } from "../../src/nn/index.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { assertClose, gradcheck, mx, rnd } from "../helpers.js";

interface Case {
  name: string;
  mode: "LSTM" | "GRU";
  inputSize: number;
  hiddenSize: number;
  numLayers: number;
  bidirectional: boolean;
  bias: boolean;
  batchFirst: boolean;
  lengths: number[] | null;
  input: { shape: number[]; data: number[] };
  state_dict: Record<string, { shape: number[]; data: number[] }>;
  h0: number[] | null;
  c0: number[] | null;
  output: { shape: number[]; data: number[] };
  h_n: number[];
  c_n: number[] | null;
  w_out: number[];
  w_h: number[];
  w_c: number[] | null;
  grad: Record<string, number[]>;
}

const fixture = JSON.parse(readFileSync(new URL("../../tools/fixtures/rnn.json", import.meta.url), "utf8")) as { cases: Case[] };

describe("LSTM / GRU parity with PyTorch", () => {
  for (const c of fixture.cases) {
    test(c.name, () => {
      const opts = { numLayers: c.numLayers, bidirectional: c.bidirectional, bias: c.bias, batchFirst: c.batchFirst };
      const m = c.mode === "LSTM" ? new LSTM(c.inputSize, c.hiddenSize, opts) : new GRU(c.inputSize, c.hiddenSize, opts);
      assert.deepEqual(
        m
          .namedParameters()
          .map(([n]) => n)
          .sort(),
        Object.keys(c.state_dict).sort(),
        "PyTorch's parameter names",
      );
      m.loadStateDict(Object.fromEntries(Object.entries(c.state_dict).map(([k, v]) => [k, mx.tensor(v.data, { shape: v.shape })])));
      const D = c.bidirectional ? 2 : 1;
      const B = c.input.shape[c.batchFirst ? 0 : 1] as number;
      const stateShape = [c.numLayers * D, B, c.hiddenSize];
      const x = mx.tensor(c.input.data, { shape: c.input.shape, requiresGrad: true });
      const h0 = c.h0 ? mx.tensor(c.h0, { shape: stateShape, requiresGrad: true }) : null;
      const c0 = c.c0 ? mx.tensor(c.c0, { shape: stateShape, requiresGrad: true }) : null;
      const r = m.forward(x, { h0, c0, lengths: c.lengths });
      assert.deepEqual(r.output.shape, c.output.shape);
      assertClose("output", r.output.toArray(), c.output.data, 1e-4, 1e-5);
      assertClose("h_n", r.h_n.toArray(), c.h_n, 1e-4, 1e-5);
      if (c.c_n) assertClose("c_n", (r.c_n as Tensor).toArray(), c.c_n, 1e-4, 1e-5);
      else assert.equal(r.c_n, null);
      let loss = r.output.mul(mx.tensor(c.w_out, { shape: r.output.shape })).sum();
      loss = loss.add(r.h_n.mul(mx.tensor(c.w_h, { shape: r.h_n.shape })).sum());
      if (c.w_c && r.c_n) loss = loss.add(r.c_n.mul(mx.tensor(c.w_c, { shape: r.c_n.shape })).sum());
      loss.backward();
      assertClose("grad input", (x.grad as Tensor).toArray(), c.grad.input as number[], 1e-3, 1e-5);
      if (h0) assertClose("grad h0", (h0.grad as Tensor).toArray(), c.grad.h0 as number[], 1e-3, 1e-5);
      if (c0) assertClose("grad c0", (c0.grad as Tensor).toArray(), c.grad.c0 as number[], 1e-3, 1e-5);
      for (const [name, p] of m.namedParameters()) {
        assertClose(`grad ${name}`, (p.grad as Tensor).toArray(), c.grad[name] as number[], 1e-3, 1e-5);
      }
    });
  }
});

describe("LSTM / GRU", () => {
  test("gradcheck through packed bidirectional LSTM and GRU (input and initial states)", () => {
    for (const Cls of [LSTM, GRU]) {
      const m = new Cls(3, 2, { bidirectional: true, batchFirst: true, generator: new mx.Generator(3) });
      const states = Cls === LSTM ? [rnd([2, 2, 2], 4), rnd([2, 2, 2], 5)] : [rnd([2, 2, 2], 4)];
      gradcheck(
        Cls.name,
        (x, h0, c0) => {
          const r = m.forward(x, { lengths: [3, 1], h0, c0: c0 ?? null });
          const parts = [r.output.reshape([-1]), r.h_n.reshape([-1])];
          if (r.c_n) parts.push(r.c_n.reshape([-1]));
          return mx.cat(parts);
        },
        [rnd([2, 3, 3], 1), ...states],
      );
    }
  });

  test("a packed batch equals each sequence run alone", () => {
    const m = new LSTM(3, 4, { numLayers: 2, bidirectional: true, batchFirst: true, generator: new mx.Generator(5) });
    const x = rnd([3, 4, 3], 2);
    const lengths = [2, 4, 3];
    const packed = m.forward(x, { lengths });
    lengths.forEach((n, b) => {
      const alone = m.forward(x.slice(0, b, b + 1).slice(1, 0, n));
      const row = packed.output.slice(0, b, b + 1);
      assertClose(`seq ${b} output`, row.slice(1, 0, n).toArray(), alone.output.toArray(), 1e-5, 1e-6);
      assert.ok(
        row
          .slice(1, n)
          .toArray()
          .every((v) => v === 0),
        "zeros after the end",
      );
      assertClose(`seq ${b} h_n`, packed.h_n.slice(1, b, b + 1).toArray(), alone.h_n.toArray(), 1e-5, 1e-6);
    });
  });

  test("errors name the problem", () => {
    const m = new GRU(3, 2, { batchFirst: true });
    assert.throws(() => m.forward(rnd([2, 4, 5], 1)), /expected input \(B, T, C\) with C = 3, got shape \[2, 4, 5\]/);
    assert.throws(() => m.forward(rnd([2, 4, 3], 1), { lengths: [4, 5] }), /lengths must be 2 integers from 1 to 4/);
    assert.throws(() => m.forward(rnd([2, 4, 3], 1), { h0: rnd([2, 2, 2], 1) }), /h0 must have shape \[1, 2, 2\]/);
    assert.throws(() => new LSTM(3, 0), /hiddenSize must be a positive integer/);
  });
});
