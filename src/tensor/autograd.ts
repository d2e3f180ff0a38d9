// Reverse-mode automatic differentiation: ALL gradient rules in one table keyed by op name, and the
// backward pass over the tape that ops record (tape.ts). Rules are written with tensor ops run under
// noGrad, so they work on every backend. `satisfies Record<OpName, Rule>` makes a missing rule a
// compile error. Ops never import this module; Tensor.backward() calls runBackward.

import type { TypedArray } from "./backend.js";
import { getBackend } from "./backend.js";
import { empty, full, zeros } from "./creation.js";
import { currentArena, type MemoryArena, persistent } from "./memory.js";
import * as ops from "./ops.js";
import { fmtShape, sameShape } from "./shape.js";
import { type Node, noGrad, type OpName, versionOf } from "./tape.js";
import type { Tensor } from "./tensor.js";

export { enableGrad, isGradEnabled, type Node, noGrad, type OpName, record } from "./tape.js";

/** Returns one gradient per input (null where the input needs none). */
type Rule = (n: Node, g: Tensor) => (Tensor | null)[];

// Looked up at call time, not destructured at load: Tensor imports this module (for backward) and
// ops import Tensor, so ops may not have finished loading when this module does.
type Arg = Tensor | number;
const add = (a: Arg, b: Arg) => ops.add(a, b);
const sub = (a: Arg, b: Arg) => ops.sub(a, b);
const mul = (a: Arg, b: Arg) => ops.mul(a, b);
const div = (a: Arg, b: Arg) => ops.div(a, b);
const neg = (a: Tensor) => ops.neg(a);
const need = (n: Node, i: number) => (n.inputs[i] as Tensor).requiresGrad;
const inp = (n: Node, i: number) => n.inputs[i] as Tensor;
const fused = () => getBackend().fused;

/** Both operands of a broadcasting binary op get gradients summed back to their own shape. */
function binaryGrads(n: Node, ga: () => Tensor, gb: () => Tensor): (Tensor | null)[] {
  return [need(n, 0) ? ops.sumToShape(ga(), inp(n, 0).shape) : null, need(n, 1) ? ops.sumToShape(gb(), inp(n, 1).shape) : null];
}

/** Gradient of a reduction, broadcast back over the reduced axes. */
function unreduce(g: Tensor, x: Tensor, axes: readonly number[]): Tensor {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return ops.expand(ops.reshape(g, kept), x.shape);
}

/** Gradients of y = x·Wᵀ + b (shared by linear and linear_gelu). */
function linearGrads(n: Node, g: Tensor): (Tensor | null)[] {
  const [x, w] = [inp(n, 0), inp(n, 1)];
  const [N, K] = w.shape as [number, number];
  const g2 = ops.reshape(g, [-1, N]); // (rows, out)
  return [
    need(n, 0) ? ops.matmul(g, w) : null, // (..., out) @ (out, in)
    need(n, 1) ? ops.matmul(ops.transpose(g2, 0, 1), ops.reshape(x, [-1, K])) : null, // (out, rows) @ (rows, in)
    n.inputs.length > 2 && need(n, 2) ? ops.sum(g2, 0) : null,
  ];
}

export const GRAD_RULES = {
  neg: (_n, g) => [neg(g)],
  exp: (n, g) => [mul(g, n.out)],
  log: (n, g) => [div(g, inp(n, 0))],
  sqrt: (n, g) => [div(g, mul(n.out, 2))],
  tanh: (n, g) => [mul(g, sub(1, mul(n.out, n.out)))],
  sigmoid: (n, g) => [mul(g, mul(n.out, sub(1, n.out)))],
  relu: (n, g) => [mul(g, ops.gt(inp(n, 0), 0))],
  erf: (n, g) => [mul(g, mul(ops.exp(neg(mul(inp(n, 0), inp(n, 0)))), 2 / Math.sqrt(Math.PI)))],
  abs: (n, g) => [mul(g, sub(ops.gt(inp(n, 0), 0), ops.lt(inp(n, 0), 0)))],
  sin: (n, g) => [mul(g, ops.cos(inp(n, 0)))],
  cos: (n, g) => [neg(mul(g, ops.sin(inp(n, 0))))],

  add: (n, g) =>
    binaryGrads(
      n,
      () => g,
      () => g,
    ),
  sub: (n, g) =>
    binaryGrads(
      n,
      () => g,
      () => neg(g),
    ),
  mul: (n, g) =>
    binaryGrads(
      n,
      () => mul(g, inp(n, 1)),
      () => mul(g, inp(n, 0)),
    ),
  div: (n, g) =>
    binaryGrads(
      n,
      () => div(g, inp(n, 1)),
      () => neg(div(mul(g, n.out), inp(n, 1))),
    ),
  pow: (n, g) =>
    binaryGrads(
      n,
      () => mul(g, mul(inp(n, 1), ops.pow(inp(n, 0), sub(inp(n, 1), 1)))),
      // d/db a^b = a^b ln a; defined as 0 where a == 0 (as PyTorch does) instead of NaN.
      () => mul(g, ops.where(ops.eq(inp(n, 0), 0), 0, mul(n.out, ops.log(inp(n, 0))))),
    ),
  // Ties split the gradient evenly between both operands, as in PyTorch.
  maximum: (n, g) => {
    const w = add(ops.gt(inp(n, 0), inp(n, 1)), mul(ops.eq(inp(n, 0), inp(n, 1)), 0.5));
    return binaryGrads(
      n,
      () => mul(g, w),
      () => mul(g, sub(1, w)),
    );
  },
  minimum: (n, g) => {
    const w = add(ops.lt(inp(n, 0), inp(n, 1)), mul(ops.eq(inp(n, 0), inp(n, 1)), 0.5));
    return binaryGrads(
      n,
      () => mul(g, w),
      () => mul(g, sub(1, w)),
    );
  },
  where: (n, g) =>
    binaryGrads(
      n,
      () => ops.where(n.saved.cond, g, 0),
      () => ops.where(n.saved.cond, 0, g),
    ),

  sum: (n, g) => [unreduce(g, inp(n, 0), n.saved.axes)],
  max: (n, g) => {
    const x = inp(n, 0);
    const mask = ops.eq(x, unreduce(n.out, x, n.saved.axes));
    const count = ops.sum(mask, n.saved.axes, true);
    return [mul(unreduce(g, x, n.saved.axes), div(mask, ops.expand(count, x.shape)))];
  },
  matmul: (n, g) => {
    const [a, b] = [inp(n, 0), inp(n, 1)];
    if (b.ndim === 2 && a.ndim > 2 && need(n, 1)) {
      // A weight shared across the batch (x @ W): its gradient is one GEMM over all B·T rows,
      // not a batch of per-example products summed afterwards.
      const [k, m] = [a.shape[a.ndim - 1] as number, g.shape[g.ndim - 1] as number];
      const dB = ops.matmul(ops.transpose(ops.reshape(a, [-1, k]), 0, 1), ops.reshape(g, [-1, m]));
      return [need(n, 0) ? ops.matmul(g, ops.transpose(b, -2, -1)) : null, dB];
    }
    return [
      need(n, 0) ? ops.sumToShape(ops.matmul(g, ops.transpose(b, -2, -1)), a.shape) : null,
      need(n, 1) ? ops.sumToShape(ops.matmul(ops.transpose(a, -2, -1), g), b.shape) : null,
    ];
  },
  gather: (n, g) => {
    const w = inp(n, 0);
    const dw = zeros(w.shape);
    getBackend().indexAdd(dw.data as Float32Array, n.saved.ids, g.contiguousData() as Float32Array, w.shape[1] as number);
    return [dw];
  },
  copy: (_n, g) => [g],
  reshape: (n, g) => [ops.reshape(g, inp(n, 0).shape)],
  permute: (n, g) => {
    const dims: number[] = n.saved.dims;
    const inv = new Array<number>(dims.length);
    dims.forEach((d, i) => {
      inv[d] = i;
    });
    return [ops.permute(g, inv)];
  },
  expand: (n, g) => [ops.sumToShape(g, inp(n, 0).shape)],
  slice: (n, g) => {
    const x = inp(n, 0);
    const dx = zeros(x.shape);
    const { dim, start, step } = n.saved;
    ops.slice(dx, dim, start, start + ((g.shape[dim] as number) - 1) * step + 1, step).copy_(g);
    return [dx];
  },
  cat: (n, g) => ops.split(g, n.saved.sizes, n.saved.dim).map((part, i) => (need(n, i) ? part : null)),

  softmax: (n, g) => {
    const y = n.out;
    const f = fused();
    if (f?.softmaxBackward) {
      const dx = empty(y.shape);
      const cols = y.shape[y.ndim - 1] as number;
      f.softmaxBackward(y.data as Float32Array, g.contiguousData() as Float32Array, dx.data as Float32Array, y.size / cols, cols, false);
      return [dx];
    }
    return [mul(y, sub(g, ops.sum(mul(g, y), -1, true)))];
  },
  log_softmax: (n, g) => {
    const y = n.out;
    const f = fused();
    if (f?.softmaxBackward) {
      const dx = empty(y.shape);
      const cols = y.shape[y.ndim - 1] as number;
      f.softmaxBackward(y.data as Float32Array, g.contiguousData() as Float32Array, dx.data as Float32Array, y.size / cols, cols, true);
      return [dx];
    }
    return [sub(g, mul(ops.exp(y), ops.sum(g, -1, true)))];
  },
  layer_norm: (n, g) => {
    const f = fused();
    if (!f?.layerNormBackward) throw new Error("layer_norm backward: the backend lost its fused kernel mid-graph");
    const x = inp(n, 0);
    const { weight, bias, mean, rstd } = n.saved as { weight: Tensor | null; bias: Tensor | null; mean: Float32Array; rstd: Float32Array };
    const C = x.shape[x.ndim - 1] as number;
    const dx = empty(x.shape);
    const dw = weight ? zeros([C]) : null;
    const db = bias ? zeros([C]) : null;
    f.layerNormBackward(
      x.contiguousData() as Float32Array,
      weight ? (weight.contiguousData() as Float32Array) : null,
      mean,
      rstd,
      g.contiguousData() as Float32Array,
      dx.data as Float32Array,
      dw ? (dw.data as Float32Array) : null,
      db ? (db.data as Float32Array) : null,
      x.size / C,
      C,
    );
    return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
  },
  gelu: (n, g) => {
    const f = fused();
    if (!f?.geluBackward) throw new Error("gelu backward: the backend lost its fused kernel mid-graph");
    const x = inp(n, 0);
    const dx = empty(x.shape);
    f.geluBackward(x.contiguousData() as Float32Array, g.contiguousData() as Float32Array, dx.data as Float32Array, n.saved.approximate);
    return [dx];
  },
  rms_norm: (n, g) => {
    const f = fused();
    if (!f?.rmsNormBackward) throw new Error("rms_norm backward: the backend lost its fused kernel mid-graph");
    const x = inp(n, 0);
    const { weight, rstd } = n.saved as { weight: Tensor | null; rstd: Float32Array };
    const C = x.shape[x.ndim - 1] as number;
    const dx = empty(x.shape);
    const dw = weight && need(n, 1) ? zeros([C]) : null;
    f.rmsNormBackward(
      x.contiguousData() as Float32Array,
      weight ? (weight.contiguousData() as Float32Array) : null,
      rstd,
      g.contiguousData() as Float32Array,
      dx.data as Float32Array,
      dw ? (dw.data as Float32Array) : null,
      x.size / C,
      C,
    );
    return weight ? [dx, dw] : [dx];
  },
  silu: (n, g) => {
    const f = fused();
    if (!f?.siluBackward) throw new Error("silu backward: the backend lost its fused kernel mid-graph");
    const x = inp(n, 0);
    const dx = empty(x.shape);
    f.siluBackward(x.contiguousData() as Float32Array, g.contiguousData() as Float32Array, dx.data as Float32Array, x.size);
    return [dx];
  },
  swiglu: (n, g) => {
    const f = fused();
    if (!f?.swigluBackward) throw new Error("swiglu backward: the backend lost its fused kernel mid-graph");
    const [gate, up] = [inp(n, 0), inp(n, 1)];
    const [dg, du] = [empty(gate.shape), empty(up.shape)];
    const buf = (t: Tensor) => t.contiguousData() as Float32Array;
    f.swigluBackward(buf(gate), buf(up), buf(g), buf(dg), buf(du), gate.size);
    return [need(n, 0) ? dg : null, need(n, 1) ? du : null];
  },
  // The op is linear in x: its gradient is the transposed map (the rotation by minus the angle).
  rope: (n, g) => {
    const f = fused();
    if (!f?.rope) throw new Error("rope backward: the backend lost its fused kernel mid-graph");
    const { cos, sin, n: rows, T, H, hs } = n.saved;
    const dx = empty(g.shape);
    f.rope(g.contiguousData() as Float32Array, cos, sin, dx.data as Float32Array, rows, T, H, hs, true);
    return [dx];
  },
  cross_entropy: (n, g) => {
    const f = fused();
    if (!f?.crossEntropyBackward) throw new Error("cross_entropy backward: the backend lost its fused kernel mid-graph");
    const x = inp(n, 0);
    const [rows, cols] = x.shape as [number, number];
    const s = n.saved;
    // With the forward's softmax saved, the gradient is written over it: no exponentials, no new buffer.
    const probs: Tensor | undefined = s.probs;
    const dx = probs ?? empty(x.shape);
    f.crossEntropyBackward(
      (probs ?? x).contiguousData() as Float32Array,
      s.targets,
      s.lse,
      g.contiguousData() as Float32Array,
      dx.data as Float32Array,
      rows,
      cols,
      s.ignoreIndex,
      s.labelSmoothing,
      probs !== undefined,
    );
    return [dx];
  },
  linear_gelu: (n, g) => {
    const f = fused();
    if (!f?.geluBackward) throw new Error("linear_gelu backward: the backend lost its fused kernel mid-graph");
    const pre: Tensor = n.saved.pre;
    const dpre = empty(pre.shape);
    f.geluBackward(pre.data as Float32Array, g.contiguousData() as Float32Array, dpre.data as Float32Array, n.saved.approximate);
    return linearGrads(n, dpre);
  },
  linear: (n, g) => linearGrads(n, g),
  attention: (n, g) => {
    const f = fused();
    if (!f?.attentionBackward) throw new Error("attention backward: the backend lost its fused kernel mid-graph");
    const [q, k, v] = [inp(n, 0), inp(n, 1), inp(n, 2)];
    const { lse, bh, T, S, d, scale, causal } = n.saved;
    const [dq, dk, dv] = [empty(q.shape), empty(k.shape), empty(v.shape)];
    const buf = (t: Tensor) => t.contiguousData() as Float32Array;
    const lengths: Int32Array | undefined = n.saved.lengths;
    if (!lengths) {
      f.attentionBackward(buf(q), buf(k), buf(v), buf(n.out), lse, buf(g), buf(dq), buf(dk), buf(dv), bh, T, S, d, scale, causal);
      return [dq, dk, dv];
    }
    // Right-padded keys (ops.ts, attentionByLengths): per batch entry, its h heads over its first L
    // keys, read and written in place in (h, S, d) with the kernel's kv stride S·d; padded keys get
    // zero gradient.
    const h: number = n.saved.heads;
    const [nq, nk] = [h * T * d, h * S * d];
    const [qd, kd, vd, od, gd, dqd, dkd, dvd] = [buf(q), buf(k), buf(v), buf(n.out), buf(g), buf(dq), buf(dk), buf(dv)] as const;
    for (let b = 0; b < lengths.length; b++) {
      const L = lengths[b] as number;
      const rows = (x: Float32Array) => x.subarray(b * nq, (b + 1) * nq);
      const keys = (x: Float32Array) => x.subarray(b * nk, (b + 1) * nk);
      const lb = lse.subarray(b * h * T, (b + 1) * h * T);
      const [dkb, dvb] = [keys(dkd), keys(dvd)];
      f.attentionBackward(rows(qd), keys(kd), keys(vd), rows(od), lb, rows(gd), rows(dqd), dkb, dvb, h, T, L, d, scale, false, S * d);
      if (L === S) continue;
      for (let j = 0; j < h; j++) {
        dkb.fill(0, j * S * d + L * d, (j + 1) * S * d);
        dvb.fill(0, j * S * d + L * d, (j + 1) * S * d);
      }
    }
    return [dq, dk, dv];
  },
} satisfies Record<OpName, Rule>;

// ---- the backward pass -----------------------------------------------------------------------------

/** Ops whose rule reads none of its inputs' values (only shapes, or what the op saved itself). */
const IGNORES_INPUT_VALUES = new Set<OpName>([
  "neg",
  "add",
  "sub",
  "sum",
  "reshape",
  "permute",
  "expand",
  "slice",
  "cat",
  "copy",
  "gather",
  "where",
  "rope",
]);
/** Ops whose rule reads the op's output. */
const READS_OUTPUT = new Set<OpName>(["exp", "sqrt", "tanh", "sigmoid", "div", "pow", "max", "softmax", "log_softmax", "attention"]);

/** Refuse to run a rule on values changed in place since the op saved them (PyTorch's version check). */
function checkVersions(node: Node): void {
  const stale = (what: string, now: number, then: number) =>
    new Error(
      `backward: ${what} of '${node.op}' was modified in place after '${node.op}' saved it for the gradient ` +
        `(it is at version ${now}, the graph saved version ${then}); recompute the forward pass after modifying it, or modify a clone()`,
    );
  if (READS_OUTPUT.has(node.op) && versionOf(node.out) !== node.outVersion) {
    throw stale(`the output ${fmtShape(node.out.shape)}`, versionOf(node.out), node.outVersion);
  }
  if (IGNORES_INPUT_VALUES.has(node.op)) return;
  node.inputs.forEach((x, i) => {
    const then = node.inputVersions[i] as number;
    if (versionOf(x) !== then) throw stale(`input ${i} ${fmtShape(x.shape)}`, versionOf(x), then);
  });
}

/** The tensors the gradient flows through, inputs before the tensors computed from them. */
function topologicalOrder(root: Tensor): Tensor[] {
  // Iterative DFS post-order (deep graphs would overflow the stack with recursion).
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1] as [Tensor, number];
    const [t, i] = top;
    const inputs = t._node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i] as Tensor;
      if (c._released) {
        throw new Error(
          "backward: part of this graph was already used by an earlier backward() and released; recompute the forward pass for each backward",
        );
      }
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/**
 * The gradients of a backward pass so far, one per tensor, and the bookkeeping that keeps their
 * memory small. Inside a MemoryArena, gradient buffers go back to it as soon as they are dead: a
 * rule's temporaries right after the rule, and each gradient once its node is done. Only buffers
 * held by entries of the map can still be live, so a count per buffer says when one is free.
 */
class Gradients {
  private readonly grads = new Map<Tensor, Tensor>();
  private readonly refs = new Map<TypedArray, number>();
  constructor(private readonly arena: MemoryArena | null) {}

  private hold(t: Tensor): void {
    this.refs.set(t.data, (this.refs.get(t.data) ?? 0) + 1);
  }

  /** One holder fewer; the buffer goes back to the arena when it has none. */
  drop(t: Tensor): void {
    const n = (this.refs.get(t.data) ?? 1) - 1;
    if (n > 0) this.refs.set(t.data, n);
    else {
      this.refs.delete(t.data);
      this.arena?.release(t.data);
    }
  }

  /** A gradient buffer may be updated in place when one map entry holds it and it is a plain
   *  contiguous buffer (an expanded view repeats elements, so writing through it would not do). */
  private exclusive(t: Tensor): boolean {
    return this.refs.get(t.data) === 1 && t.isContiguous();
  }

  /** Start at the root; a gradient the caller passed is never recycled. */
  seed(root: Tensor, g: Tensor, callers: boolean): void {
    this.grads.set(root, g);
    this.hold(g);
    if (callers) this.hold(g);
  }

  /** The gradient of t, taken out of the map (its node is about to be processed). */
  take(t: Tensor): Tensor | undefined {
    const g = this.grads.get(t);
    this.grads.delete(t);
    return g;
  }

  /** A leaf gets a contiguous gradient of its own (no two leaves share one buffer), outside the
   *  arena: parameter gradients outlive a step (accumulation, clipping, the optimizer). A leaf
   *  whose last gradient was handed back by recycleGrad gets that buffer again. */
  intoLeaf(t: Tensor, g: Tensor): void {
    const prev = t.grad;
    const spare = prev ? undefined : spareGrads.get(t);
    if (spare) {
      spareGrads.delete(t);
      if (sameShape(spare.shape, t.shape)) {
        (spare.data as Float32Array).set(g.contiguousData() as Float32Array);
        t.grad = spare;
        this.drop(g);
        return;
      }
    }
    t.grad = persistent(() => (prev ? add(prev, g) : ops.clone(g)));
    this.drop(g);
  }

  /** Add d to x's gradient. */
  add(x: Tensor, d: Tensor, op: OpName): void {
    if (!sameShape(d.shape, x.shape)) {
      throw new Error(
        `backward: rule for '${op}' gave a gradient of shape ${fmtShape(d.shape)} for an input of shape ${fmtShape(x.shape)}`,
      );
    }
    const prev = this.grads.get(x);
    if (prev && this.exclusive(prev) && prev.data !== d.data) {
      // Nothing else holds prev's buffer: accumulate into it instead of allocating a sum.
      getBackend().binary("add", prev, d, prev.contiguousData()); // a view of prev's own elements
      return;
    }
    const next = prev ? add(prev, d) : d;
    this.grads.set(x, next);
    this.hold(next);
    if (prev) this.drop(prev);
  }

  /** A slice's gradient goes straight into its part of the input's gradient buffer, so several
   *  slices of one tensor (q, k and v of a fused projection) share one buffer instead of each
   *  zero-padding a full-size copy to be added up. */
  addSlice(node: Node, g: Tensor): void {
    const x = inp(node, 0);
    const { dim, start, step } = node.saved;
    const prev = this.grads.get(x);
    let target = prev && this.exclusive(prev) ? prev : null;
    const fresh = !target;
    if (!target) {
      target = prev ? ops.clone(prev) : zeros(x.shape);
      this.grads.set(x, target);
      this.hold(target);
      if (prev) this.drop(prev);
    }
    const part = ops.slice(target, dim, start, start + ((g.shape[dim] as number) - 1) * step + 1, step);
    if (fresh && !prev) part.copy_(g);
    else {
      const sum = add(part, g);
      part.copy_(sum);
      this.arena?.release(sum.data);
    }
    this.drop(g);
  }

  /** Run the node's rule; its temporaries (buffers it took but did not return) go straight back. */
  applyRule(node: Node, g: Tensor): (Tensor | null)[] {
    const arena = this.arena;
    if (!arena) return GRAD_RULES[node.op](node, g);
    const { result, allocated } = arena.collect(() => GRAD_RULES[node.op](node, g));
    const kept = new Set(result.map((d) => d?.data));
    for (const buf of allocated) if (!kept.has(buf)) arena.release(buf);
    return result;
  }

  /** The node is done: its gradient and any result no input kept (for an input that needs no gradient) are dead. */
  done(g: Tensor, results: readonly (Tensor | null)[]): void {
    this.drop(g);
    for (const d of results) if (d && !this.refs.has(d.data)) this.arena?.release(d.data);
  }
}

/** The backward pass: order the graph, then apply the rules from the root back to the leaves,
 *  accumulating each leaf's gradient into .grad; then release the graph so memory does not grow
 *  from step to step. */
// Gradient buffers handed back by recycleGrad, for the leaf's next gradient.
const spareGrads = new WeakMap<Tensor, Tensor>();

/**
 * Set a leaf's .grad to null (as zero_grad(set_to_none=True)) and keep its buffer for the leaf's
 * next backward, which writes the new gradient into it instead of allocating one: a training loop
 * then allocates no gradient memory after its first step (a fresh buffer per parameter per step is
 * a zero-fill, page faults, and external memory that drives V8 into major GCs). The old gradient
 * tensor must not be used after the next backward.
 */
export function recycleGrad(t: Tensor): void {
  const g = t.grad;
  t.grad = null;
  if (g && g.dtype === "float32" && g.offset === 0 && g.isContiguous() && g.data.length === g.size && !g.requiresGrad) spareGrads.set(t, g);
}

export function runBackward(root: Tensor, grad?: Tensor): void {
  if (root._released) {
    throw new Error("backward: this graph was already released by an earlier backward(); recompute the forward pass");
  }
  if (!root.requiresGrad) {
    throw new Error("backward: this tensor does not require grad (no input had requiresGrad, or it was computed under noGrad)");
  }
  if (!grad && root.size !== 1) {
    throw new Error(
      `backward: called on a tensor of shape ${fmtShape(root.shape)}; pass a gradient of that shape, or reduce it first (e.g. loss.sum() or loss.mean())`,
    );
  }
  if (grad && !sameShape(grad.shape, root.shape)) {
    throw new Error(`backward: gradient shape ${fmtShape(grad.shape)} does not match the tensor's shape ${fmtShape(root.shape)}`);
  }
  const order = topologicalOrder(root);
  const grads = new Gradients(currentArena());
  grads.seed(root, grad ?? full(root.shape, 1), grad !== undefined);
  noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k] as Tensor;
      const g = grads.take(t);
      if (!g) continue;
      const node = t._node;
      if (!node) {
        grads.intoLeaf(t, g);
        continue;
      }
      checkVersions(node);
      if (node.op === "slice" && inp(node, 0).requiresGrad) {
        grads.addSlice(node, g);
        continue;
      }
      const gi = grads.applyRule(node, g);
      node.inputs.forEach((x, j) => {
        const d = gi[j];
        if (d && x.requiresGrad) grads.add(x, d, node.op);
      });
      grads.done(g, gi);
    }
  });
  for (const t of order) {
    if (t._node) {
      t._node = null;
      t._released = true;
    }
  }
}
