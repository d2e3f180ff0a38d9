// The autograd tape: whether ops are being recorded (grad mode), the node an op leaves on its
// output (which op, its inputs, what it saved), and the version counter that catches a tensor
// modified in place after an op saved it for backward. Ops (ops.ts) record onto the tape; the
// backward pass and the gradient rules (autograd.ts) read it. This module imports neither.
//
// Version counter (as PyTorch's): every buffer has a version, bumped by each in-place write
// (copy_, fill_, zero_, normal_, an optimizer step). A node remembers the versions of its inputs
// and output when it is recorded; backward refuses to use a tensor whose version has moved since,
// naming the op, instead of computing a wrong gradient from the new values.

import type { UnaryOp } from "./backend.js";
import type { Tensor } from "./tensor.js";

export type OpName =
  | UnaryOp
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "maximum"
  | "minimum"
  | "where"
  | "sum"
  | "max"
  | "matmul"
  | "gather"
  | "copy"
  | "reshape"
  | "permute"
  | "expand"
  | "slice"
  | "cat"
  | "softmax"
  | "log_softmax"
  | "layer_norm"
  | "gelu"
  | "rms_norm"
  | "silu"
  | "swiglu"
  | "rope"
  | "cross_entropy"
  | "attention"
  | "linear"
  | "linear_gelu";

export interface Node {
  op: OpName;
  inputs: Tensor[];
  out: Tensor;
  // biome-ignore lint/suspicious/noExplicitAny: each rule knows the shape of what its op saved
  saved: any;
  /** The versions of inputs[i] and of out when the op ran. */
  inputVersions: number[];
  outVersion: number;
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn without recording: for inference, optimizer updates and gradient rules. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// Versions live with the buffer, so every view of it (reshape, slice, transpose) shares one.
const versions = new WeakMap<object, number>();

/** How many in-place writes this tensor's memory has had. */
export function versionOf(t: Tensor): number {
  return versions.get(t.data) ?? 0;
}

/** Count an in-place write to this tensor's memory (every in-place op calls it). */
export function bumpVersion(t: Tensor): void {
  versions.set(t.data, (versions.get(t.data) ?? 0) + 1);
}

/** Attach a node to out when any input needs a gradient. */
export function record(op: OpName, inputs: Tensor[], out: Tensor, saved?: unknown): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out._node = { op, inputs, out, saved, inputVersions: inputs.map(versionOf), outVersion: versionOf(out) };
  }
  return out;
}
