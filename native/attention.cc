// Fused scaled-dot-product attention (flash-attention style): forward with an online softmax that
// never stores the (T, S) weights, and backward that recomputes them from the saved log-sum-exp.
//
// Layout: q (bh, T, hs), k and v (bh, S, hs), out (bh, T, hs), lse (bh, T), all contiguous. When
// causal, query i sees keys j <= i + (S - T). A row that sees no key at all gets NaN (as the
// composed softmax of an all -inf row does) and lse = -inf.
//
// This file splits the work into tasks and owns the scratch memory; the tiles are computed by the
// attention families' kernels (attention_body.inc, one build per ISA, chosen at load time). Tasks:
// forward (batch-head, row group), backward (batch-head, key group; key groups split one entry only
// when there are fewer entries than threads, their dq partials summed after). Forward, up to 8
// query rows (generation with a KV cache: T = 1, or grouped-query attention's g query heads of one
// key/value head as g rows) take a row path without packing, parallel over the rows: packing the
// keys for the tiles cost as much as the few rows' products (the backward's row path stays at T <= 2).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "ops.h"

namespace mx {
namespace {

inline i64 clampi(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Grow-only per-thread scratch.
struct Scratch {
  std::vector<float> buf;
  float* get(size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
};
thread_local Scratch tl_fwd, tl_bwd;
float* fwd_scratch(size_t n) { return tl_fwd.get(n); }
float* bwd_scratch(size_t n) { return tl_bwd.get(n); }

// Work (multiply-adds) below which a call stays on the calling thread: waking the pool costs
// microseconds, as much as the whole of a small generation step.
constexpr double kMinParallelWork = 131072.0;

// Run body(t) for t < n, in parallel when there is enough work.
template <class F>
void run_tasks(i64 n, double work, F& body) {
  if (n <= 1 || pool_threads() <= 1 || work < kMinParallelWork) {
    for (i64 t = 0; t < n; t++) body(t);
    return;
  }
  parallel_for(n, body);
}

}  // namespace

void fused_attention(const float* q, const float* k, const float* v, float* out, float* lse, i64 bh, i64 T, i64 S,
                     i64 hs, double scale, bool causal, i64 kv_stride) {
  if (bh <= 0 || T <= 0) return;
  Attn a{};
  a.q = q;
  a.k = k;
  a.v = v;
  a.kvs = kv_stride > 0 ? kv_stride : S * hs;
  a.o = out;
  a.l = lse;
  a.bh = bh;
  a.T = T;
  a.S = S;
  a.hs = hs;
  a.scale = (float)scale;
  a.causal = causal;
  if (S <= 0 || hs <= 0) {
    // No keys: every row is fully masked. No features: scores are 0, out is empty.
    for (i64 r = 0; r < bh * T; r++) {
      if (S <= 0) {
        for (i64 d = 0; d < hs; d++) out[r * hs + d] = NAN;
        lse[r] = -INFINITY;
      } else {
        const i64 i = r % T, nv = causal ? std::min(S, i + S - T + 1) : S;
        lse[r] = nv > 0 ? std::log((float)nv) : -INFINITY;
      }
    }
    return;
  }
  const Kernels* K = kernel_for(F_ATTENTION);
  const int threads = pool_threads();
  const double work = (double)bh * T * S * hs * (causal && T > 1 ? 0.5 : 1.0);
  if (T <= 8) {
    // Row path: tasks are runs of (batch-head, row) pairs.
    const i64 rows = bh * T;
    const i64 ntasks = std::min<i64>(rows, 4 * (i64)threads);
    const i64 per = (rows + ntasks - 1) / ntasks;
    auto body = [&](i64 t) {
      float* s = tl_fwd.get((size_t)S);
      const i64 a0 = t * per, a1 = std::min(rows, a0 + per);
      for (i64 r = a0; r < a1; r++) K->attn_fwd_row(a, r / T, r % T, s);
    };
    run_tasks(ntasks, work, body);
    return;
  }
  const i64 BR = K->attn_br;
  const i64 blocks = (T + BR - 1) / BR;
  const i64 G = clampi((4 * threads + bh - 1) / bh, 1, blocks);
  const i64 per = (blocks + G - 1) / G * BR;
  a.G = (T + per - 1) / per;
  a.per = per;
  auto body = [&](i64 t) {
    // Later row groups see more keys under a causal mask: hand them out first.
    const i64 b = t / a.G, g = a.G - 1 - t % a.G;
    const i64 r0 = g * a.per, r1 = std::min(T, r0 + a.per);
    K->attn_fwd_rows(a, b, r0, r1, fwd_scratch);
  };
  run_tasks(bh * a.G, work, body);
}

void fused_attention_bwd(const float* q, const float* k, const float* v, const float* out, const float* lse,
                         const float* dout, float* dq, float* dk, float* dv, i64 bh, i64 T, i64 S, i64 hs,
                         double scale, bool causal, i64 kv_stride) {
  if (bh <= 0) return;
  const i64 kvs = kv_stride > 0 ? kv_stride : S * hs;
  const size_t nq = (size_t)(bh * T * hs);
  if (T <= 0 || S <= 0 || hs <= 0) {
    // Every gradient is 0. dk and dv are zeroed head by head (heads may lie kvs apart); with no keys
    // or no features a head holds nothing, and bh is then bounded by no buffer (a valid call may
    // pass 2^53): no loop over it.
    std::memset(dq, 0, sizeof(float) * nq);
    if (S <= 0 || hs <= 0) return;
    for (i64 b = 0; b < bh; b++) {
      std::memset(dk + b * kvs, 0, sizeof(float) * (size_t)(S * hs));
      std::memset(dv + b * kvs, 0, sizeof(float) * (size_t)(S * hs));
    }
    return;
  }
  Attn a{};
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  a.lse = lse;
  a.dout = dout;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  a.bh = bh;
  a.T = T;
  a.S = S;
  a.hs = hs;
  a.kvs = kvs;
  a.scale = (float)scale;
  a.causal = causal;
  const Kernels* K = kernel_for(F_ATTENTION_BWD);
  const int threads = pool_threads();
  const double work = 2.5 * (double)bh * T * S * hs * (causal && T > 1 ? 0.5 : 1.0);
  if (T <= 2) {
    // Row path: tasks are runs of batch-head entries (each owns its dk, dv).
    const i64 ntasks = std::min<i64>(bh, 4 * (i64)threads);
    const i64 per = (bh + ntasks - 1) / ntasks;
    auto body = [&](i64 t) {
      float* s = tl_bwd.get((size_t)(2 * S));
      for (i64 b = t * per; b < std::min(bh, (t + 1) * per); b++) K->attn_bwd_rows(a, b, s, s + S);
    };
    run_tasks(ntasks, work, body);
    return;
  }
  const bool par = threads > 1 && work >= kMinParallelWork;
  const i64 BC = K->attn_bc;
  const i64 blocks = (S + BC - 1) / BC;
  const i64 G = par ? clampi((4 * threads + bh - 1) / bh, 1, blocks) : 1;
  const i64 per = (blocks + G - 1) / G * BC;
  a.G = (S + per - 1) / per;
  a.per = per;
  std::vector<float> part(a.G > 1 ? (size_t)(bh * a.G) * (size_t)(T * hs) : 0);
  auto body = [&](i64 t) {
    const i64 b = t / a.G, g = t % a.G;
    const i64 k0 = g * a.per, k1 = std::min(S, k0 + a.per);
    float* dqa = a.G > 1 ? part.data() + (size_t)t * (size_t)(T * hs) : dq + b * T * hs;
    K->attn_bwd_keys(a, b, k0, k1, dqa, bwd_scratch);
  };
  run_tasks(bh * a.G, work, body);
  if (a.G == 1) return;
  const Kernels* E = kernel_for(F_ELEMENTWISE);
  auto reduce = [&](i64 b) {
    float* d = dq + b * T * hs;
    const float* p = part.data() + (size_t)(b * a.G) * (size_t)(T * hs);
    std::memcpy(d, p, sizeof(float) * (size_t)(T * hs));
    for (i64 g = 1; g < a.G; g++) E->binary(B_ADD, 0, p + (size_t)g * (size_t)(T * hs), d, d, T * hs);
  };
  run_tasks(bh, (double)bh * T * hs * a.G, reduce);
}

}  // namespace mx
