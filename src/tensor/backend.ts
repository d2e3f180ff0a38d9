// The backend contract: the small set of primitive kernels every backend implements, plus
// optional fused kernels a backend may add where one pass over memory beats a composition.
//
// Core (src/tensor) calls only this interface and never imports a backend; backends register
// themselves through `registerBackend`. Buffers are plain typed arrays, so a CPU backend works
// on the tensors' own memory with no copies. Every kernel writes into an output the caller
// allocated: kernels never allocate tensors, which keeps memory ownership in one place (core).

export type DType = "float32" | "int32";
export type TypedArray = Float32Array | Int32Array;

/** A strided view of a flat buffer: element [i0, i1, ...] is data[offset + Σ ik * strides[k]].
 *  A stride of 0 repeats an element (that is how broadcasting reaches a kernel). */
export interface View {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** One operand of a batched matrix product: A_b[i, j] = data[offset + b*batchStride + i*rowStride + j*colStride]. */
export interface MatView {
  readonly data: Float32Array;
  readonly offset: number;
  readonly batchStride: number;
  readonly rowStride: number;
  readonly colStride: number;
}

export const UNARY_OPS = ["neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "erf", "abs", "sin", "cos"] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Comparisons produce 1 or 0 in the output's dtype (float32 for float inputs). */
export const BINARY_OPS = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export type ReduceOp = "sum" | "max";

export interface Backend {
  readonly name: string;

  /** out[i] = op(x[i]); out is contiguous with x.shape. */
  unary(op: UnaryOp, x: View, out: Float32Array): void;
  /** out[i] = op(a[i], b[i]); a and b already share out's shape (broadcast dims have stride 0); out contiguous. */
  binary(op: BinaryOp, a: View, b: View, out: TypedArray): void;
  /** out[i] = cond[i] != 0 ? a[i] : b[i]; all three share out's shape. */
  where(cond: View, a: View, b: View, out: TypedArray): void;
  /** dst[i] = src[i] over a shared shape; dst may be strided (writing into a slice) and of another dtype (a cast). */
  copy(src: View, dst: View): void;
  /** Reduce x over `axes` (sorted, distinct); out is contiguous with those axes removed. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Float32Array): void;
  /** out[b] = A_b (m×k) · B_b (k×n) for b < batch; out is contiguous (batch, m, n). */
  matmul(a: MatView, b: MatView, out: Float32Array, batch: number, m: number, n: number, k: number): void;
  /** Embedding lookup: out[r, :] = table[idx[r], :]; table contiguous (V, C), out (n, C). Indices are validated by core. */
  gather(table: Float32Array, idx: Int32Array, out: Float32Array, cols: number): void;
  /** Scatter-add, the gradient of gather: dst[idx[r], :] += src[r, :]. */
  indexAdd(dst: Float32Array, idx: Int32Array, src: Float32Array, cols: number): void;

  /** Optional fused kernels; core falls back to a composition of primitives for any that is missing. */
  readonly fused?: Partial<FusedKernels>;
  /** Worker threads the backend uses (1 for single-threaded backends). */
  threads?(): number;
  /** Optional: zero-filled memory for long-lived large tensors (the native backend maps it with
   *  2 MiB pages), or null when it cannot; core then keeps ordinary ArrayBuffers. */
  allocate?(bytes: number): ArrayBuffer | null;
  /** Optional: y (M, N) = x (M, K) · Wᵀ for a weight W (N, K) held as the raw blocks of GGML type
   *  `ggmlType` (ggml's numbering), computed on the blocks as llama.cpp's CPU backend does (the
   *  activations quantised to the weight type's dot-product type). False, computing nothing, when the
   *  backend has no kernel for that type and row length; core then decodes rows and uses matmul. */
  quantMatmul?(ggmlType: number, w: Uint8Array, x: Float32Array, y: Float32Array, M: number, N: number, K: number): boolean;
  /** Optional: quantMatmul of one x (M, K) with several weights of one type (N_i, K) at once,
   *  y_i (M, N_i) = x · W_iᵀ: x is quantised once and, in generation, all the products run as one job
   *  over the threads (a layer's q, k and v). False, computing nothing, where quantMatmul would be. */
  quantMatmulMany?(
    ggmlType: number,
    ws: readonly Uint8Array[],
    x: Float32Array,
    ys: readonly Float32Array[],
    M: number,
    Ns: readonly number[],
    K: number,
  ): boolean;
}

/** Fused kernels work on contiguous row-major buffers of `rows` rows of `cols` columns. */
export interface FusedKernels {
  /** out = softmax(x) (or log_softmax when log) along each row. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, log: boolean): void;
  /** dx from y = softmax(x) (or log_softmax) and dy. */
  softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number, log: boolean): void;
  /** out = (x - mean) * rstd * weight + bias per row; also writes mean and rstd (length rows) for backward.
   *  weight / bias may be null (no affine). */
  layerNorm(
    x: Float32Array,
    weight: Float32Array | null,
    bias: Float32Array | null,
    out: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** dx (overwritten), dweight and dbias (accumulated into, may be null). */
  layerNormBackward(
    x: Float32Array,
    weight: Float32Array | null,
    mean: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dweight: Float32Array | null,
    dbias: Float32Array | null,
    rows: number,
    cols: number,
  ): void;
  /** RMSNorm (Zhang & Sennrich 2019) per row: out = x * rstd * weight, rstd = 1 / sqrt(mean(x²) + eps),
   *  also written to rstd (length rows) for backward. weight may be null (no gain). */
  rmsNorm(
    x: Float32Array,
    weight: Float32Array | null,
    out: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** dx (overwritten) and dweight (accumulated into, may be null) from the forward's rstd. */
  rmsNormBackward(
    x: Float32Array,
    weight: Float32Array | null,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dweight: Float32Array | null,
    rows: number,
    cols: number,
  ): void;
  /** out = silu(x) = x·σ(x) over n elements. */
  silu(x: Float32Array, out: Float32Array, n: number): void;
  siluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  /** SwiGLU's gate: out = silu(gate) · up over n elements. */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /** dgate and dup (both overwritten) of swiglu. */
  swigluBackward(gate: Float32Array, up: Float32Array, dy: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;
  /** Rotary positions in the rotate-half layout: x holds (n, T, H, hs) contiguous, cos and sin (T, hs)
   *  (the rows of the positions x holds); out = x·cos + rotate_half(x)·sin per head, with
   *  rotate_half(x) = [-x2, x1]. With inverse, the transpose of that linear map (for Llama's tables,
   *  whose halves are equal, the rotation by minus the angle): the gradient of the forward. out may be x. */
  rope(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    out: Float32Array,
    n: number,
    T: number,
    H: number,
    hs: number,
    inverse: boolean,
  ): void;
  /** out = gelu(x); approximate "tanh" or "none" (exact, erf). */
  gelu(x: Float32Array, out: Float32Array, approximate: "tanh" | "none"): void;
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, approximate: "tanh" | "none"): void;
  /** A Linear layer's bias + GELU epilogue: x (rows, cols) += bias per row, in place (x keeps the
   *  pre-activation for backward), and out = gelu(x). */
  biasGelu(x: Float32Array, bias: Float32Array, out: Float32Array, rows: number, cols: number, approximate: "tanh" | "none"): void;
  /** Per-row loss of cross-entropy on logits (rows, cols) against targets; rows whose target equals
   *  ignoreIndex get loss 0. Writes the row's log-sum-exp to lse for backward (0 for ignored rows), and with probs the
   *  softmax of every row not ignored (so backward needs no exponentials). */
  crossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    losses: Float32Array,
    lse: Float32Array,
    rows: number,
    cols: number,
    ignoreIndex: number,
    labelSmoothing: number,
    probs?: Float32Array,
  ): void;
  /** dlogits = scale_r * (softmax - smoothed one-hot) per row, where scale_r = dlosses[r] (0 for ignored rows).
   *  With fromProbs, `logits` is the softmax the forward wrote, and dlogits may be that same buffer. */
  crossEntropyBackward(
    logits: Float32Array,
    targets: Int32Array,
    lse: Float32Array,
    dlosses: Float32Array,
    dlogits: Float32Array,
    rows: number,
    cols: number,
    ignoreIndex: number,
    labelSmoothing: number,
    fromProbs?: boolean,
  ): void;
  /** Scaled dot-product attention for bh = batch × heads independent problems, one pass per
   *  query row with an online softmax, so the (T, S) weight matrix is never stored:
   *  out[b, i] = Σ_j softmax_j(scale · q[b, i]·k[b, j] | mask) v[b, j]. q (bh, T, hs); k, v (bh, S, hs);
   *  out (bh, T, hs); lse (bh, T) receives each row's log-sum-exp for backward. When causal, query i
   *  sees keys j <= i + (S - T) (the queries are the last T of S positions, as with a KV cache).
   *  kvStride (default S·hs): elements from one batch-head of k and v to the next, so the first S
   *  positions of a KV cache with room for more are read in place. */
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    bh: number,
    T: number,
    S: number,
    hs: number,
    scale: number,
    causal: boolean,
    kvStride?: number,
  ): void;
  /** Gradients of attention given dout, recomputing the weights from lse; dq, dk, dv are overwritten
   *  (their first S positions per batch-head; kvStride as forward's, for k, v, dk and dv alike). */
  attentionBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    dout: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    bh: number,
    T: number,
    S: number,
    hs: number,
    scale: number,
    causal: boolean,
    kvStride?: number,
  ): void;
  /** One AdamW step in place over a parameter buffer (PyTorch's torch.optim.AdamW semantics).
   *  bc1 = 1 - beta1^t and bc2 = 1 - beta2^t are the bias corrections for step t. */
  adamw(
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;
}

// ---- registry -------------------------------------------------------------------------------

interface Registered {
  backend: Backend;
  priority: number;
}

const registry = new Map<string, Registered>();
const unavailable = new Map<string, string>();
let active: Backend | null = null;
let warned = false;

/** Backends call this when their module loads; the highest priority one becomes the default. */
export function registerBackend(backend: Backend, priority: number): void {
  registry.set(backend.name, { backend, priority });
  active = null;
}

/** A backend that could not start says why, so choosing it explains itself and the default
 *  backend can say once that a faster one is missing. */
export function reportUnavailable(name: string, reason: string): void {
  unavailable.set(name, reason);
}

export function listBackends(): string[] {
  return [...registry.values()].sort((a, b) => b.priority - a.priority).map((r) => r.backend.name);
}

/** Choose the backend by name for everything computed from now on. */
export function setBackend(name: string): Backend {
  const r = registry.get(name);
  const why = unavailable.get(name);
  if (!r && why) throw new Error(`setBackend: the ${name} backend is unavailable: ${why}`);
  if (!r) {
    throw new Error(`setBackend: no backend named '${name}' is registered; available: ${listBackends().join(", ") || "none"}`);
  }
  active = r.backend;
  return active;
}

export function getBackend(): Backend {
  if (active) return active;
  const forced = globalThis.process?.env?.MOXING_BACKEND;
  if (forced) return setBackend(forced);
  const best = [...registry.values()].sort((a, b) => b.priority - a.priority)[0];
  if (!best) {
    throw new Error("moxing: no backend is registered; import from 'moxing' (the package entry), which registers them");
  }
  active = best.backend;
  if (!warned && unavailable.size && !globalThis.process?.env?.MOXING_QUIET) {
    warned = true;
    const missing = [...unavailable].map(([n, why]) => `the ${n} backend is unavailable: ${why}`).join("; ");
    console.warn(`moxing: ${missing}. Using the ${active.name} backend (correct, but slower).`);
  }
  return active;
}
