// Buffer reuse for training loops. A training step allocates the same set of buffers every time
// (activations, gradients, temporaries); allocating them afresh costs a zero-fill and page faults
// per op and keeps the garbage collector busy. Inside `arena.run(fn)` every new tensor buffer is
// taken from the arena's free lists, and `arena.reset()` hands them all back at once, so a
// steady-state step allocates nothing.
//
// The contract: a tensor created inside an arena is valid only until the next reset(). Whatever
// must outlive the step (parameters, their .grad, optimizer state, caches) is created outside any
// arena or inside `persistent(...)`. With MOXING_ARENA_CHECK=1, reset() fills recycled buffers
// with NaN so a use after reset shows up as NaN instead of silently wrong numbers.

import type { DType, TypedArray } from "./backend.js";

let current: MemoryArena | null = null;

export class MemoryArena {
  private readonly free = new Map<string, TypedArray[]>();
  private readonly used = new Set<TypedArray>();
  private tracker: TypedArray[] | null = null;
  private readonly poison = globalThis.process?.env?.MOXING_ARENA_CHECK === "1";
  /** Bytes of all buffers the arena owns (its high-water mark). */
  bytes = 0;

  /** Run fn with this arena supplying new tensor buffers. Nested runs restore the outer arena. */
  run<T>(fn: () => T): T {
    const prev = current;
    current = this;
    try {
      return fn();
    } finally {
      current = prev;
    }
  }

  /** Take back every buffer handed out since the last reset; tensors that use them become invalid. */
  reset(): void {
    for (const buf of this.used) this.recycle(buf);
    this.used.clear();
  }

  /** Hand one buffer back before the reset, when the caller knows no tensor uses it any more
   *  (autograd does this for gradient temporaries). Buffers the arena does not own are ignored. */
  release(buf: TypedArray): void {
    if (this.used.delete(buf)) this.recycle(buf);
  }

  /** Run fn and also return the buffers it took from the arena. */
  collect<T>(fn: () => T): { result: T; allocated: TypedArray[] } {
    const prev = this.tracker;
    const allocated: TypedArray[] = [];
    this.tracker = allocated;
    try {
      return { result: fn(), allocated };
    } finally {
      this.tracker = prev;
      prev?.push(...allocated);
    }
  }

  private recycle(buf: TypedArray): void {
    if (this.poison && buf instanceof Float32Array) buf.fill(Number.NaN);
    const key = keyOf(buf instanceof Int32Array ? "int32" : "float32", buf.length);
    const list = this.free.get(key);
    if (list) list.push(buf);
    else this.free.set(key, [buf]);
  }

  /** Drop every buffer (for when the shapes of a step change for good). */
  clear(): void {
    this.free.clear();
    this.used.clear();
    this.bytes = 0;
  }

  take(dtype: DType, n: number): TypedArray {
    const buf = this.free.get(keyOf(dtype, n))?.pop() ?? allocFresh(dtype, n, this);
    this.used.add(buf);
    this.tracker?.push(buf);
    return buf;
  }
}

function keyOf(dtype: DType, n: number): string {
  return dtype === "int32" ? `i${n}` : `f${n}`;
}

function allocFresh(dtype: DType, n: number, arena: MemoryArena | null): TypedArray {
  if (arena) arena.bytes += n * 4;
  return dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
}

/** A buffer for a new tensor: from the active arena (contents undefined), else freshly zeroed.
 *  Tiny buffers (scalars) are not worth pooling. */
export function allocData(dtype: DType, n: number): TypedArray {
  return current && n >= 64 ? current.take(dtype, n) : allocFresh(dtype, n, null);
}

/** The arena supplying buffers right now, if any. */
export function currentArena(): MemoryArena | null {
  return current;
}

/** Run fn with no arena: what it creates survives resets (optimizer state, parameter grads). */
export function persistent<T>(fn: () => T): T {
  const prev = current;
  current = null;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
