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
//
// Buffers come in size classes (four per doubling: a request is rounded up by at most 25%, and a
// free buffer of up to twice the size serves it when its own class has none) and a tensor gets a
// view of exactly its length. Length-bucketed batches change (B, T) every step; with one pool per
// exact length almost every buffer of such a step would be new (zero-filled, page-faulted, and
// counted as external memory, which drives V8 into major GCs). With classes, nearby shapes share.

import { type DType, getBackend, type TypedArray } from "./backend.js";
import type { Tensor } from "./tensor.js";

let current: MemoryArena | null = null;

/** Steps whose needs the arena remembers when deciding which free buffers to keep. */
const KEEP_STEPS = 8;

export class MemoryArena {
  private readonly free = new Map<string, TypedArray[]>();
  /** Views handed out since the last reset -> the class-sized buffers they are views of. */
  private readonly used = new Map<TypedArray, TypedArray>();
  private tracker: TypedArray[] | null = null;
  private readonly poison = globalThis.process?.env?.MOXING_ARENA_CHECK === "1";
  // Buffers taken per size class since the last reset, and in each of the steps before (the last
  // KEEP_STEPS): what a step needs.
  private takenNow = new Map<string, number>();
  private takenBefore: Map<string, number>[] = [];
  /** Bytes of all buffers the arena owns (its high-water mark). */
  bytes = 0;
  /** Bytes of the buffers the arena owns now. */
  owned = 0;
  /** Bytes of all the new buffers the arena has allocated (a steady state adds nothing). */
  allocated = 0;

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

  /** Take back every buffer handed out since the last reset; tensors that use them become invalid.
   *  Free buffers beyond what any of the last KEEP_STEPS steps took of their size class are
   *  dropped, so a trainer whose shapes change from step to step (RNNs packed by length, trees
   *  batched by level, length-bucketed batches) keeps the buffers of its recent shapes, not every
   *  size it ever saw. (Keeping only the last step's or two let a length-bucketed trainer allocate
   *  tens of MB afresh every step, and that fresh external memory drove V8 into two major GCs a step.) */
  reset(): void {
    for (const buf of this.used.values()) this.recycle(buf);
    this.used.clear();
    this.takenBefore.unshift(this.takenNow);
    if (this.takenBefore.length > KEEP_STEPS) this.takenBefore.pop();
    for (const [key, list] of this.free) {
      let keep = 0;
      for (const m of this.takenBefore) keep = Math.max(keep, m.get(key) ?? 0);
      while (list.length > keep) this.owned -= (list.pop() as TypedArray).length * 4;
      if (list.length === 0) this.free.delete(key);
    }
    this.takenNow = new Map();
  }

  /** Hand one buffer back before the reset, when the caller knows no tensor uses it any more
   *  (autograd does this for gradient temporaries). Buffers the arena does not own are ignored. */
  release(buf: TypedArray): void {
    const whole = this.used.get(buf);
    if (whole) {
      this.used.delete(buf);
      this.recycle(whole);
    }
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
    this.owned = 0;
  }

  take(dtype: DType, n: number): TypedArray {
    // Its own size class first, then the next three (up to twice the size), then a new buffer.
    let cls = sizeClass(n);
    let whole: TypedArray | undefined;
    for (let c = cls, i = 0; i < 4 && !whole; i++, c = sizeClass(c + 1)) {
      whole = this.free.get(keyOf(dtype, c))?.pop();
      if (whole) cls = c;
    }
    whole ??= allocFresh(dtype, cls, this);
    const key = keyOf(dtype, cls);
    this.takenNow.set(key, (this.takenNow.get(key) ?? 0) + 1);
    const buf = whole.length === n ? whole : whole.subarray(0, n);
    this.used.set(buf, whole);
    this.tracker?.push(buf);
    return buf;
  }
}

function keyOf(dtype: DType, n: number): string {
  return dtype === "int32" ? `i${n}` : `f${n}`;
}

/** n rounded up to four steps per doubling: m·2^k with m in {4, 5, 6, 7} (exact up to 8). */
export function sizeClass(n: number): number {
  if (n <= 8) return n;
  const step = 2 ** (Math.floor(Math.log2(n)) - 2);
  return Math.ceil(n / step) * step;
}

/** V8's limit on a typed array's length. */
export const MAX_BUFFER_ELEMENTS = 2 ** 32;

function allocFresh(dtype: DType, n: number, arena: MemoryArena | null): TypedArray {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot allocate a tensor of ${n} elements`);
  if (n > MAX_BUFFER_ELEMENTS) {
    throw new RangeError(
      `cannot allocate a tensor of ${n} elements (${fmtBytes(n * 4)}): one buffer holds at most 2^32 elements; use smaller sizes`,
    );
  }
  let buf: TypedArray;
  try {
    buf = dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
  } catch (e) {
    throw new RangeError(`out of memory allocating a tensor of ${n} elements (${fmtBytes(n * 4)}): ${(e as Error).message}`);
  }
  if (arena) {
    arena.allocated += n * 4;
    arena.owned += n * 4;
    arena.bytes = Math.max(arena.bytes, arena.owned);
  }
  return buf;
}

/** A byte count for people: "512 MiB", "2.3 TiB". */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** A buffer for a new tensor: from the active arena (contents undefined), else freshly zeroed.
 *  Tiny buffers (scalars) are not worth pooling. */
export function allocData(dtype: DType, n: number): TypedArray {
  if (current && n >= 64) return current.take(dtype, n);
  return n > SLAB_MIN_ELEMENTS && n <= SLAB_MAX_ELEMENTS ? slabAlloc(dtype, n) : allocFresh(dtype, n, null);
}

// Small buffers outside an arena are views on shared 64 KiB slabs, as Node's Buffer pool does for
// small Buffers: a view on an existing ArrayBuffer costs a quarter of a fresh zero-filled backing
// store (0.6 against 2.5 us for 768 floats on the AMD EPYC), and that allocation was most of an
// eager op's overhead. A slab is freed with its last view. Slabs are never reused, so every view
// starts zeroed; views start on 64-byte boundaries, as the kernels' vector loads prefer. At most
// 8 KiB per view bounds what one long-lived small tensor can pin (one slab, 8 times its size).
// Typed arrays up to 64 bytes live on V8's heap and are cheap already: they stay as they are.
const SLAB_BYTES = 64 * 1024;
const SLAB_MIN_ELEMENTS = 16;
const SLAB_MAX_ELEMENTS = 2048;
let slab: ArrayBuffer | null = null;
let slabUsed = 0;

function slabAlloc(dtype: DType, n: number): TypedArray {
  const bytes = (n * 4 + 63) & ~63;
  if (slab === null || slabUsed + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const view = dtype === "int32" ? new Int32Array(slab, slabUsed, n) : new Float32Array(slab, slabUsed, n);
  slabUsed += bytes;
  return view;
}

/** The arena supplying buffers right now, if any. */
export function currentArena(): MemoryArena | null {
  return current;
}

/**
 * Run fn and hand every buffer it took from the current arena straight back. For a loop of
 * batches whose results are plain numbers or copies (an evaluation): memory then stays that of
 * one batch however many run. fn must not return tensors it created. Without an arena, just fn().
 */
export function scoped<T>(fn: () => T): T {
  const arena = current;
  if (!arena) return fn();
  const { result, allocated } = arena.collect(fn);
  for (const buf of allocated) arena.release(buf);
  return result;
}

/**
 * Run fn, which returns a tensor, and hand every buffer it took from the current arena back at once
 * except the one the result lives in; also hand back `done` (a tensor's buffer the caller no longer
 * needs, such as the input fn consumed), when the arena owns it. For a stack of layers run without
 * gradients (generation, prompt processing): the arena then holds about one layer's temporaries,
 * not every layer's. Without an arena, just fn().
 */
export function scopedTensor(fn: () => Tensor, done: Tensor | null = null): Tensor {
  const arena = current;
  if (!arena) return fn();
  const { result, allocated } = arena.collect(fn);
  for (const buf of allocated) if (buf !== result.data) arena.release(buf);
  if (done && done.data !== result.data) arena.release(done.data);
  return result;
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

/** Below this many bytes packing is not worth the backend's page-sized rounding. */
const PACK_MIN_BYTES = 4 << 20;
/** Each packed tensor starts on a cache line, as a fresh allocation would. */
const PACK_ALIGN = 16;

/**
 * Move long-lived float32 tensors (a model's parameters) into one block of memory from the
 * backend's `allocate`, which on the native backend is backed by 2 MiB pages. Generation reads every
 * weight once per token, so fewer pages means fewer TLB misses (about 10% of a token's time for a
 * 30M-parameter model). Values are kept; only tensors that own their whole buffer move (views and
 * int tensors stay). Returns the bytes moved, 0 when the backend has no allocator or the tensors
 * are too small to be worth it. Call it before taking views of the tensors: a view made earlier
 * keeps the old buffer.
 */
export function packTensors(tensors: readonly Tensor[]): number {
  const movable = [...new Set(tensors)].filter((t) => t.dtype === "float32" && t.offset === 0 && t.data.length === t.size && t.size > 0);
  let floats = 0;
  for (const t of movable) floats += Math.ceil(t.size / PACK_ALIGN) * PACK_ALIGN;
  if (floats * 4 < PACK_MIN_BYTES) return 0;
  const buffer = getBackend().allocate?.(floats * 4) ?? null;
  if (!buffer) return 0;
  let at = 0;
  for (const t of movable) {
    const dst = new Float32Array(buffer, at * 4, t.size);
    dst.set(t.data as Float32Array);
    (t as { data: TypedArray }).data = dst;
    at += Math.ceil(t.size / PACK_ALIGN) * PACK_ALIGN;
  }
  return floats * 4;
}
