// The one named-weight loader (src/nn/state-dict.ts) on a small module: names mapped both ways,
// transposed weights, tied weights stored once, and one-line errors for missing, unexpected,
// duplicated, misshapen and integer tensors.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import "../../src/index.js";
import { Linear, Module } from "../../src/nn/index.js";
import { exportNamedWeights, loadNamedWeights, transpose2d, type WeightNames, type WeightTensor } from "../../src/nn/state-dict.js";
import type { Tensor } from "../../src/tensor/tensor.js";

class Tiny extends Module {
  readonly proj: Linear;
  readonly head: Linear;
  readonly tied: Tensor;
  constructor() {
    super();
    this.proj = this.module("proj", new Linear(3, 2));
    this.head = this.module("head", new Linear(2, 4, { bias: false }));
    this.tied = this.head.weight; // a second name for one tensor: registered once
  }
}

// The file's layout: "model." prefix, proj.weight stored (in, out), a buffer to skip.
const names: WeightNames = {
  fromFile: (n) => (n === "model.mask" ? null : n.replace(/^model\./, "")),
  toFile: (n) => `model.${n}`,
  transposed: (n) => n === "proj.weight",
  transposeNote: "stored (in, out)",
  describe: "a Tiny",
};

const f32 = (shape: number[], start = 0): WeightTensor => ({
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i),
});

function file(): Map<string, WeightTensor> {
  return new Map([
    ["model.proj.weight", f32([3, 2])],
    ["model.proj.bias", f32([2], 100)],
    ["model.head.weight", f32([4, 2], 200)],
    ["model.mask", { shape: [1], data: Int32Array.from([1]) }],
  ]);
}

describe("loadNamedWeights", () => {
  test("maps names, transposes, skips what is not a weight, and round-trips through exportNamedWeights", () => {
    const m = new Tiny();
    const r = loadNamedWeights(m, file(), names);
    assert.deepEqual(r, { missing: [], ignored: ["model.mask"] });
    assert.deepEqual(m.proj.weight.toArray(), Array.from(transpose2d(Float32Array.from([0, 1, 2, 3, 4, 5]), 3, 2)));
    assert.deepEqual(m.proj.weight.shape, [2, 3]);
    assert.deepEqual(m.tied.toArray(), Array.from(f32([4, 2], 200).data));
    const out = exportNamedWeights(m, names);
    assert.deepEqual([...out.keys()].sort(), ["model.head.weight", "model.proj.bias", "model.proj.weight"]);
    for (const [k, t] of out) assert.deepEqual(Array.from(t.data), Array.from(file().get(k)?.data ?? []), k);
    assert.deepEqual(out.get("model.proj.weight")?.shape, [3, 2]);
  });

  test("one-line errors name the tensor as the file does", () => {
    const err = (f: Map<string, WeightTensor>, re: RegExp, opts = {}) =>
      assert.throws(
        () => loadNamedWeights(new Tiny(), f, names, opts),
        (e: Error) => re.test(e.message) && !e.message.includes("\n"),
      );
    const missing = file();
    missing.delete("model.proj.bias");
    err(missing, /^missing tensor 'model\.proj\.bias'; do config\.json and the weights belong to the same model\?$/);
    err(new Map([...file(), ["model.extra.weight", f32([1])]]), /^unexpected tensor 'model\.extra\.weight': not a weight of a Tiny$/);
    err(
      new Map([...file(), ["proj.bias", f32([2])]]),
      /^tensors 'model\.proj\.bias' and 'proj\.bias' are the same weight \(proj\.bias\); keep one$/,
    );
    err(
      new Map([...file(), ["model.proj.weight", f32([2, 3])]]),
      /^tensor 'model\.proj\.weight' has shape \[2, 3\] but this model needs \[3, 2\] \(stored \(in, out\)\)$/,
    );
    err(
      new Map([...file(), ["model.proj.bias", { shape: [2], data: Int32Array.from([1, 2]) }]]),
      /holds integers; weights must be floating point/,
    );
  });

  test("a caller may allow missing parameters (a new head) and unused tensors (another head)", () => {
    const f = file();
    f.delete("model.head.weight");
    f.set("model.other.weight", f32([1]));
    const m = new Tiny();
    const before = m.head.weight.toArray();
    const r = loadNamedWeights(m, f, names, { mayBeMissing: (n) => n.startsWith("head."), mayBeUnused: (n) => n.startsWith("other.") });
    assert.deepEqual(r.missing, ["head.weight"]);
    assert.deepEqual(r.ignored.sort(), ["model.mask", "model.other.weight"]);
    assert.deepEqual(m.head.weight.toArray(), before, "a missing parameter keeps its values");
  });
});
