// Helpers for the PyTorch parity tests: loading the golden fixtures written by
// tools/torch_fixtures.py, turning them into tensors, and comparing with readable diagnostics.
//
// This file imports no backend: the test file registers the reference one, and whichever
// backend is active (MOXING_BACKEND=native, for instance) is the one being checked.

import { readFileSync } from "node:fs";
import * as mx from "../../src/tensor/index.js";

/** A tensor as stored in a fixture: flat row-major data with its shape. */
export interface FxTensor {
  shape: number[];
  data: number[];
  dtype?: "int32";
  /** On an op input: the fixture holds d loss / d input for it. */
  grad?: boolean;
}

/** Load tools/fixtures/<file>, resolved relative to this file (never the working directory). */
export function loadFixture<T>(file: string): T {
  const url = new URL(`../../tools/fixtures/${file}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

/** A fresh tensor (its own buffer) from a fixture tensor; float32 unless the fixture says int32. */
export function fromFixture(t: FxTensor, requiresGrad = false): mx.Tensor {
  if (t.dtype === "int32") return mx.tensor(Int32Array.from(t.data), { shape: t.shape });
  return mx.tensor(Float32Array.from(t.data), { shape: t.shape, requiresGrad });
}

export interface Tolerance {
  /** Relative part, scaled by |expected| element by element. */
  rtol: number;
  /** Absolute part, for elements that are (close to) zero. */
  atol: number;
}

/**
 * The comparison: every element must satisfy |got - expected| <= atol + rtol * |expected|.
 *
 * Why elementwise rather than max|a-b| / max|b| per tensor: the per-tensor norm lets small
 * entries of a tensor with a wide dynamic range (exp, softmax probabilities, gradients of
 * masked attention) be wrong by 100% unnoticed, because the largest entry sets the scale. The
 * elementwise test checks each entry at its own scale; the small atol is there only for entries
 * that are legitimately near zero (a sum that cancels, a gradient through a saturated tanh),
 * whose float32 rounding error is absolute, not relative. The per-tensor normalised error is
 * still reported in the diagnostics.
 */
export function compare(name: string, got: mx.Tensor | number[] | number, expected: FxTensor | number, tol: Tolerance): CompareResult {
  const exp: FxTensor = typeof expected === "number" ? { shape: [], data: [expected] } : expected;
  let gotShape: number[];
  let gotData: number[];
  if (got instanceof mx.Tensor) {
    gotShape = [...got.shape];
    gotData = got.toArray();
  } else if (typeof got === "number") {
    gotShape = [];
    gotData = [got];
  } else {
    gotShape = exp.shape;
    gotData = got;
  }
  const r: CompareResult = {
    name,
    ok: true,
    shapeOk: true,
    maxdiff: 0,
    normErr: 0,
    worst: -1,
    worstExcess: 0,
    failures: 0,
    size: exp.data.length,
    gotShape,
    expShape: exp.shape,
    gotData,
    expData: exp.data,
    tol,
  };
  if (gotShape.length !== exp.shape.length || gotShape.some((d, i) => d !== exp.shape[i]) || gotData.length !== exp.data.length) {
    r.ok = false;
    r.shapeOk = false;
    return r;
  }
  let maxAbs = 0;
  for (let i = 0; i < gotData.length; i++) {
    const a = gotData[i] as number;
    const b = exp.data[i] as number;
    const diff = Math.abs(a - b);
    maxAbs = Math.max(maxAbs, Math.abs(b));
    // NaN fails every comparison, so the tests are written as !(diff <= bound); NaN sticks in maxdiff.
    if (Number.isNaN(diff) || diff > r.maxdiff) r.maxdiff = Number.isNaN(r.maxdiff) ? r.maxdiff : diff;
    const bound = tol.atol + tol.rtol * Math.abs(b);
    const excess = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff / bound;
    if (!(diff <= bound)) {
      r.failures++;
      r.ok = false;
    }
    if (r.worst < 0 || excess > r.worstExcess) {
      r.worst = i;
      r.worstExcess = excess;
    }
  }
  r.normErr = r.maxdiff / Math.max(maxAbs, 1e-30);
  return r;
}

export interface CompareResult {
  name: string;
  ok: boolean;
  shapeOk: boolean;
  /** max |got - expected| over the tensor. */
  maxdiff: number;
  /** maxdiff / max |expected|: the per-tensor normalised error. */
  normErr: number;
  /** Flat index of the element closest to (or furthest past) its bound. */
  worst: number;
  /** |got - expected| / (atol + rtol |expected|) at that element: <= 1 passes. */
  worstExcess: number;
  failures: number;
  size: number;
  gotShape: number[];
  expShape: number[];
  gotData: number[];
  expData: number[];
  tol: Tolerance;
}

function multiIndex(flat: number, shape: number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] as number;
    idx.unshift(flat % n);
    flat = Math.floor(flat / n);
  }
  return `[${idx.join(", ")}]`;
}

const g = (v: number) => (Number.isFinite(v) ? v.toPrecision(9) : String(v));

/** One line per tensor: `NAME OK, maxdiff = ...` or `NAME FAIL ...` with the worst element. */
export function describeResult(r: CompareResult): string {
  if (!r.shapeOk) {
    return `${r.name} FAIL: shape [${r.gotShape.join(", ")}] (${r.gotData.length} values), expected [${r.expShape.join(", ")}] (${r.expData.length} values)`;
  }
  const head = `${r.name} ${r.ok ? "OK" : "FAIL"}, maxdiff = ${r.maxdiff.toExponential(3)}, max|d|/max|expected| = ${r.normErr.toExponential(3)}`;
  if (r.worst < 0) return `${head} (empty)`;
  const at = `${multiIndex(r.worst, r.expShape)} (flat ${r.worst})`;
  const detail = `worst at ${at}: expected ${g(r.expData[r.worst] as number)}, got ${g(r.gotData[r.worst] as number)}, ${r.worstExcess.toFixed(2)}x the tolerance (rtol ${r.tol.rtol}, atol ${r.tol.atol})`;
  return r.ok ? `${head}; ${detail}` : `${head}; ${r.failures}/${r.size} elements out of tolerance; ${detail}`;
}

/** Collects comparisons and fails once at the end with every failing tensor listed. */
export class Checker {
  readonly results: CompareResult[] = [];
  constructor(
    readonly label: string,
    readonly tol: Tolerance,
  ) {}

  check(name: string, got: mx.Tensor | number[] | number | null | undefined, expected: FxTensor | number, tol: Tolerance = this.tol): void {
    if (got === null || got === undefined) {
      const shape = typeof expected === "number" ? [] : expected.shape;
      const data = typeof expected === "number" ? [expected] : expected.data;
      this.results.push({
        name: `${name} (missing: no value / no gradient was produced)`,
        ok: false,
        shapeOk: false,
        maxdiff: Number.NaN,
        normErr: Number.NaN,
        worst: -1,
        worstExcess: Number.NaN,
        failures: data.length,
        size: data.length,
        gotShape: [],
        expShape: shape,
        gotData: [],
        expData: data,
        tol,
      });
      return;
    }
    this.results.push(compare(name, got, expected, tol));
  }

  /** Throws an AssertionError-style Error listing the failing tensors; logs every line when MOXING_PARITY_VERBOSE is set. */
  done(): void {
    const verbose = !!process.env.MOXING_PARITY_VERBOSE;
    const lines = this.results.map(describeResult);
    if (verbose) for (const l of lines) console.log(`[${this.label}] ${l}`);
    const failed = this.results.filter((r) => !r.ok);
    if (failed.length) {
      const msg = [
        `${this.label}: ${failed.length} of ${this.results.length} tensors differ from PyTorch (backend ${mx.getBackend().name})`,
        ...failed.map((r) => `  ${describeResult(r)}`),
      ].join("\n");
      throw new Error(msg);
    }
  }

  /** Largest worstExcess over the recorded comparisons (how close to the tolerance the case came). */
  worstExcess(): number {
    return Math.max(0, ...this.results.map((r) => r.worstExcess));
  }
}
