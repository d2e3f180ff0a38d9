// Fused scaled-dot-product attention (flash-attention style): forward with an online softmax that
// never stores the (T, S) weights, and backward that recomputes them from the saved log-sum-exp.
//
// Layout: q (bh, T, hs), k and v (bh, S, hs), out (bh, T, hs), lse (bh, T), all contiguous. When
// causal, query i sees keys j <= i + (S - T). A row that sees no key at all gets NaN (as the
// composed softmax of an all -inf row does) and lse = -inf.
//
// Work is done on tiles of BR query rows against BC keys. Every product of a tile (forward: the
// scores Q·Kᵀ and P·V; backward: S, dP = dO·Vᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q, dQ += dS·K) runs through
// one small register-blocked kernel (`mm`) written with GCC vector extensions inside target_clones
// functions, so each ISA clone (AVX-512, AVX2, baseline) gets its own code, as the fused row
// kernels do. K and V are repacked once per task into padded / transposed buffers so the kernel's
// B operand is always contiguous. Tasks: forward (batch-head, row group), backward (batch-head,
// key group; key groups split one entry only when there are fewer entries than threads, their dq
// partials summed after). One or two query rows (generation with a KV cache, T = 1) take a row
// path without packing, parallel over the batch-head entries.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops.h"
#include "vmath.h"

namespace mx {
namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LDV(p) (*(const v16u*)(p))
#define STV(p, x) (*(v16u*)(p) = (x))
typedef int v16i __attribute__((vector_size(64)));
// Tree reductions of a v16 into lane 0 (macros: no vector values cross a call boundary). GCC's
// two-input __builtin_shuffle and vector ?: are used where available; other compilers get plain
// per-lane loops (as does -DMX_NO_GCC_VECTORS, to test them).
#if defined(__GNUC__) && !defined(__clang__) && !defined(MX_NO_GCC_VECTORS)
#define MX_GCC_VECTORS 1
#define MX_TREE(x, OP)                                                                                   \
  do {                                                                                                   \
    x = OP(x, __builtin_shuffle(x, (v16i){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7}));      \
    x = OP(x, __builtin_shuffle(x, (v16i){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11}));      \
    x = OP(x, __builtin_shuffle(x, (v16i){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13}));      \
    x = OP(x, __builtin_shuffle(x, (v16i){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14}));      \
  } while (0)
#define MX_VSEL_MAX(m, x) m = (x) > (m) ? (x) : (m)
#else
#define MX_TREE(x, OP)                                             \
  do {                                                             \
    float t_ = x[0];                                               \
    for (int e_ = 1; e_ < 16; e_++) t_ = OP(t_, (float)x[e_]);     \
    x[0] = t_;                                                     \
  } while (0)
#define MX_VSEL_MAX(m, x) \
  for (int e_ = 0; e_ < 16; e_++) m[e_] = (x)[e_] > m[e_] ? (x)[e_] : m[e_]
#endif
#define MX_VADD(a, b) ((a) + (b))
#define MX_VMAX(a, b) ((a) > (b) ? (a) : (b))

constexpr i64 BR = 32;  // query rows per tile
constexpr i64 BC = 64;  // keys per tile

inline i64 rup16(i64 x) { return (x + 15) & ~(i64)15; }
inline i64 clampi(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }

// One R x (16*NV) tile of C (+)= A · B, A(i, p) = A[i*ars + p*acs], B(p, j) = B[p*ldb + j].
template <int R, int NV>
static inline __attribute__((always_inline)) void mm_tile(i64 K, const float* A, i64 ars, i64 acs, const float* B,
                                                          i64 ldb, float* C, i64 ldc, bool acc) {
  v16 c[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      if (acc) {
        c[r][v] = LDV(C + r * ldc + 16 * v);
      } else {
        v16 z = {};
        c[r][v] = z;
      }
    }
  for (i64 p = 0; p < K; p++) {
    v16 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = LDV(B + p * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const float a = A[r * ars + p * acs];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) STV(C + r * ldc + 16 * v, c[r][v]);
}

// C (M x N, ldc) (+)= A (M x K) · B (K x N, ldb); N is a multiple of 16 (B and C padded).
MX_CLONES void mm(i64 M, i64 N, i64 K, const float* A, i64 ars, i64 acs, const float* B, i64 ldb, float* C, i64 ldc,
                  bool acc) {
  i64 i = 0;
  for (; i + 4 <= M; i += 4) {
    const float* a = A + i * ars;
    float* c = C + i * ldc;
    i64 j = 0;
    for (; j + 64 <= N; j += 64) mm_tile<4, 4>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
    for (; j + 32 <= N; j += 32) mm_tile<4, 2>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
    for (; j < N; j += 16) mm_tile<4, 1>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
  }
  for (; i < M; i++) {
    const float* a = A + i * ars;
    float* c = C + i * ldc;
    i64 j = 0;
    for (; j + 64 <= N; j += 64) mm_tile<1, 4>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
    for (; j + 32 <= N; j += 32) mm_tile<1, 2>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
    for (; j < N; j += 16) mm_tile<1, 1>(K, a, ars, acs, B + j, ldb, c + j, ldc, acc);
  }
}

// max over s[0..n) * scale; NaN if any is NaN.
MX_CLONES float scaled_max(const float* s, i64 n, float scale) { return lane_max(s, n, scale); }

// p[c] = exp(s[c] * scale - sub) (in place allowed); returns the sum.
MX_CLONES float exp_row(const float* s, float* p, i64 n, float scale, float sub) {
  for (i64 i = 0; i < n; i++) p[i] = vexp(s[i] * scale - sub);
  MX_LANE_SUM(n, p[k], r)
  return r;
}

// One butterfly stage of a 16 x 16 in-register transpose of r[16]: swaps the off-diagonal h x h
// blocks (masks index the two-input shuffle: 0-15 from the first operand, 16-31 from the second).
#define MX_TSTAGE(h, LO, HI)                        \
  for (int i = 0; i < 16; i++)                      \
    if (!(i & (h))) {                               \
      const v16 a_ = r[i], b_ = r[i + (h)];         \
      r[i] = __builtin_shuffle(a_, b_, LO);         \
      r[i + (h)] = __builtin_shuffle(a_, b_, HI);   \
    }

// Transposed copy: dst[d*ldd + j] = src[j*hs + d] for j < n, d < hs; columns [n, ldd) zeroed.
// Full 16 x 16 blocks are transposed in registers (four butterfly stages of two-input shuffles).
MX_CLONES void pack_t(const float* src, i64 n, i64 hs, float* dst, i64 ldd) {
  i64 j0 = 0;
  for (; j0 + 16 <= n; j0 += 16) {
    i64 d0 = 0;
    for (; d0 + 16 <= hs; d0 += 16) {
#ifdef MX_GCC_VECTORS
      v16 r[16];
      for (int i = 0; i < 16; i++) r[i] = LDV(src + (j0 + i) * hs + d0);
      {
        const v16i lo_ = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
        const v16i hi_ = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
        MX_TSTAGE(8, lo_, hi_)
      }
      {
        const v16i lo_ = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
        const v16i hi_ = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
        MX_TSTAGE(4, lo_, hi_)
      }
      {
        const v16i lo_ = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
        const v16i hi_ = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
        MX_TSTAGE(2, lo_, hi_)
      }
      {
        const v16i lo_ = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
        const v16i hi_ = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
        MX_TSTAGE(1, lo_, hi_)
      }
      for (int i = 0; i < 16; i++) STV(dst + (d0 + i) * ldd + j0, r[i]);
#else
      for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) dst[(d0 + i) * ldd + j0 + j] = src[(j0 + j) * hs + d0 + i];
#endif
    }
    for (i64 d = d0; d < hs; d++) {
      float* o = dst + d * ldd + j0;
      const float* x = src + j0 * hs + d;
      for (int j = 0; j < 16; j++) o[j] = x[j * hs];
    }
  }
  for (i64 d = 0; d < hs; d++) {
    float* o = dst + d * ldd;
    for (i64 j = j0; j < n; j++) o[j] = src[j * hs + d];
    for (i64 j = n; j < ldd; j++) o[j] = 0.0f;
  }
}

// Padded copy: dst[j*ldd + d] = src[j*hs + d] for d < hs, zeros in [hs, ldd).
void pack_rows(const float* src, i64 n, i64 hs, float* dst, i64 ldd) {
  for (i64 j = 0; j < n; j++) {
    std::memcpy(dst + j * ldd, src + j * hs, sizeof(float) * (size_t)hs);
    for (i64 d = hs; d < ldd; d++) dst[j * ldd + d] = 0.0f;
  }
}

// Online-softmax step for a tile of scores Sb (br x bc, row stride BC): row r sees its first
// nv(r) = clamp(base + r, 0, bc) keys (all bc when !causal). Scores become weights (0 where
// masked), the running max / sum are updated and O's rows rescaled.
MX_CLONES void softmax_tile(float* Sb, i64 br, i64 bc, bool causal, i64 base, float scale, float* mrow, float* lrow,
                            float* O, i64 ldo) {
  for (i64 r = 0; r < br; r++) {
    float* s = Sb + r * BC;
    const i64 nv = causal ? clampi(base + r, 0, bc) : bc;
    if (nv == 0) {
      for (i64 c = 0; c < bc; c++) s[c] = 0.0f;
      continue;
    }
    v16 mv = {};
    mv -= INFINITY;
    i64 c = 0;
    for (; c + 16 <= nv; c += 16) {
      const v16 x = LDV(s + c) * scale;
      MX_VSEL_MAX(mv, x);
    }
    MX_TREE(mv, MX_VMAX);
    float m = mv[0];
    for (; c < nv; c++) {
      const float x = s[c] * scale;
      m = x > m ? x : m;
    }
    const float mold = mrow[r];
    const float mnew = m > mold ? m : mold;
    for (c = 0; c < nv; c++) s[c] = vexp(s[c] * scale - mnew);
    for (c = nv; c < bc; c++) s[c] = 0.0f;
    v16 sv = {};
    for (c = 0; c + 16 <= nv; c += 16) sv += LDV(s + c);
    MX_TREE(sv, MX_VADD);
    float sum = sv[0];
    for (; c < nv; c++) sum += s[c];
    if (mold == -INFINITY) {  // first keys of this row: O's row is still 0
      lrow[r] = sum;
      mrow[r] = mnew;
      continue;
    }
    const float corr = vexp(mold - mnew);
    lrow[r] = lrow[r] * corr + sum;
    mrow[r] = mnew;
    if (corr != 1.0f) {
      float* o = O + r * ldo;
      for (i64 d = 0; d < ldo; d++) o[d] *= corr;
    }
  }
}

// Backward tile: p = exp(s*scale - lse) and ds = p (dp - D) in place (Sb -> P, dPb -> dS).
MX_CLONES void bwd_tile(float* Sb, float* dPb, i64 br, i64 bc, bool causal, i64 base, float scale, const float* L,
                        const float* D) {
  for (i64 r = 0; r < br; r++) {
    float* s = Sb + r * BC;
    float* dp = dPb + r * BC;
    const i64 nv = causal ? clampi(base + r, 0, bc) : bc;
    const float l = L[r], dr = D[r];
    for (i64 c = 0; c < nv; c++) {
      const float p = vexp(s[c] * scale - l);
      s[c] = p;
      dp[c] = p * (dp[c] - dr);
    }
    for (i64 c = nv; c < bc; c++) s[c] = dp[c] = 0.0f;
  }
}

MX_CLONES void scale_row(float* x, i64 n, float s) {
  for (i64 i = 0; i < n; i++) x[i] *= s;
}

MX_CLONES void scale_copy(const float* x, float* out, i64 n, float s) {
  for (i64 i = 0; i < n; i++) out[i] = x[i] * s;
}

MX_CLONES void add_to(const float* x, float* out, i64 n) {
  for (i64 i = 0; i < n; i++) out[i] += x[i];
}

MX_CLONES float dot(const float* a, const float* b, i64 n) {
  MX_LANE_SUM(n, a[k] * b[k], r)
  return r;
}

// s[j] = q · K[j] for j < n (K rows of hs floats).
MX_CLONES void dots(const float* q, const float* K, i64 n, i64 hs, float* s) {
  if ((hs & 15) == 0) {
    i64 j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* k0 = K + j * hs;
      v16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (i64 d = 0; d < hs; d += 16) {
        const v16 qv = LDV(q + d);
        a0 += qv * LDV(k0 + d);
        a1 += qv * LDV(k0 + hs + d);
        a2 += qv * LDV(k0 + 2 * hs + d);
        a3 += qv * LDV(k0 + 3 * hs + d);
      }
      MX_TREE(a0, MX_VADD);
      MX_TREE(a1, MX_VADD);
      MX_TREE(a2, MX_VADD);
      MX_TREE(a3, MX_VADD);
      s[j] = a0[0];
      s[j + 1] = a1[0];
      s[j + 2] = a2[0];
      s[j + 3] = a3[0];
    }
    for (; j < n; j++) {
      const float* kj = K + j * hs;
      v16 a = {};
      for (i64 d = 0; d < hs; d += 16) a += LDV(q + d) * LDV(kj + d);
      MX_TREE(a, MX_VADD);
      s[j] = a[0];
    }
    return;
  }
  for (i64 j = 0; j < n; j++) {
    const float* kj = K + j * hs;
    MX_LANE_SUM(hs, q[k] * kj[k], r)
    s[j] = r;
  }
}

// o[0..16*NV) = Σ_j p[j] V[j] for j < n (V rows of ldv floats), two accumulator sets for ILP.
template <int NV>
static inline __attribute__((always_inline)) void wsum_cols(const float* p, const float* V, i64 n, i64 ldv,
                                                            float* o) {
  v16 c0[NV], c1[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    v16 z = {};
    c0[v] = z;
    c1[v] = z;
  }
  i64 j = 0;
  for (; j + 2 <= n; j += 2) {
    const float p0 = p[j], p1 = p[j + 1];
    const float* v0 = V + j * ldv;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      c0[v] += p0 * LDV(v0 + 16 * v);
      c1[v] += p1 * LDV(v0 + ldv + 16 * v);
    }
  }
  if (j < n) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) c0[v] += p[j] * LDV(V + j * ldv + 16 * v);
  }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) STV(o + 16 * v, c0[v] + c1[v]);
}

// o[0..hs) = Σ_j p[j] V[j] for j < n.
MX_CLONES void weighted_sum(const float* p, const float* V, i64 n, i64 hs, float* o) {
  if ((hs & 15) == 0) {
    i64 d = 0;
    for (; d + 64 <= hs; d += 64) wsum_cols<4>(p, V + d, n, hs, o + d);
    for (; d + 32 <= hs; d += 32) wsum_cols<2>(p, V + d, n, hs, o + d);
    for (; d < hs; d += 16) wsum_cols<1>(p, V + d, n, hs, o + d);
    return;
  }
  for (i64 d = 0; d < hs; d++) o[d] = 0.0f;
  for (i64 j = 0; j < n; j++) {
    const float pj = p[j];
    const float* vj = V + j * hs;
    for (i64 d = 0; d < hs; d++) o[d] += pj * vj[d];
  }
}

// M[j][0..hs) += alpha * w[j] * x[0..hs) for j < n (M rows of hs floats).
MX_CLONES void rank1_add(float* M, const float* w, i64 n, const float* x, i64 hs, float alpha) {
  for (i64 j = 0; j < n; j++) {
    const float c = alpha * w[j];
    float* m = M + j * hs;
    for (i64 d = 0; d < hs; d++) m[d] += c * x[d];
  }
}

// Grow-only per-thread scratch.
struct Scratch {
  std::vector<float> buf;
  float* get(size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
};
thread_local Scratch tl_fwd, tl_bwd;

struct Attn {
  const float *q, *k, *v, *out, *lse, *dout;
  float *o, *l;           // forward outputs (out, lse)
  float *dq, *dk, *dv;    // backward outputs
  i64 bh, T, S, hs;
  i64 kvs;    // elements between consecutive batch-heads of k and v (S * hs when contiguous)
  float scale;
  bool causal;
  i64 G;      // groups per batch-head entry (row groups forward, key groups backward)
  i64 per;    // rows (forward) or keys (backward) per group, a multiple of BR / BC
};

void set_masked_row(float* o, float* lse, i64 hs) {
  for (i64 d = 0; d < hs; d++) o[d] = NAN;
  *lse = -INFINITY;
}

// Forward for one query row (no packing): the generation path.
void fwd_row(const Attn& a, i64 b, i64 i, float* s) {
  const i64 T = a.T, S = a.S, hs = a.hs, off = S - T;
  const float* qi = a.q + (b * T + i) * hs;
  float* oi = a.o + (b * T + i) * hs;
  const i64 nv = a.causal ? std::min(S, i + off + 1) : S;
  if (nv <= 0) return set_masked_row(oi, a.l + b * T + i, hs);
  const float* K = a.k + b * a.kvs;
  const float* V = a.v + b * a.kvs;
  dots(qi, K, nv, hs, s);
  const float m = scaled_max(s, nv, a.scale);
  const float sum = exp_row(s, s, nv, a.scale, m);
  weighted_sum(s, V, nv, hs, oi);
  scale_row(oi, hs, 1.0f / sum);
  a.l[b * T + i] = m + std::log(sum);
}

// Forward for rows [r0, r1) of batch-head b on tiles.
void fwd_rows(const Attn& a, i64 b, i64 r0, i64 r1) {
  const i64 T = a.T, S = a.S, hs = a.hs, hsp = rup16(hs), off = S - T;
  const float scale = a.scale;
  const i64 kend = a.causal ? clampi(r1 - 1 + off + 1, 0, S) : S;
  if (kend <= 0) {
    for (i64 i = r0; i < r1; i++) set_masked_row(a.o + (b * T + i) * hs, a.l + b * T + i, hs);
    return;
  }
  const i64 ldk = rup16(kend);
  float* Kt = tl_fwd.get((size_t)(hs * ldk + kend * hsp + BR * BC + BR * hsp + 2 * BR));
  float* Vp = Kt + hs * ldk;
  float* Sb = Vp + kend * hsp;
  float* O = Sb + BR * BC;
  float* mrow = O + BR * hsp;
  float* lrow = mrow + BR;
  const float* K = a.k + b * a.kvs;
  const float* V = a.v + b * a.kvs;
  pack_t(K, kend, hs, Kt, ldk);
  pack_rows(V, kend, hs, Vp, hsp);

  for (i64 i0 = r0; i0 < r1; i0 += BR) {
    const i64 br = std::min(BR, r1 - i0);
    std::memset(O, 0, sizeof(float) * (size_t)(br * hsp));
    for (i64 r = 0; r < br; r++) {
      mrow[r] = -INFINITY;
      lrow[r] = 0.0f;
    }
    const i64 jend = a.causal ? clampi(i0 + br - 1 + off + 1, 0, kend) : kend;
    const float* Q = a.q + (b * T + i0) * hs;
    for (i64 j0 = 0; j0 < jend; j0 += BC) {
      const i64 bc = std::min(BC, jend - j0), bcp = rup16(bc);
      mm(br, bcp, hs, Q, hs, 1, Kt + j0, ldk, Sb, BC, false);
      softmax_tile(Sb, br, bc, a.causal, i0 + off - j0 + 1, scale, mrow, lrow, O, hsp);
      mm(br, hsp, bc, Sb, BC, 1, Vp + j0 * hsp, hsp, O, hsp, true);
    }
    for (i64 r = 0; r < br; r++) {
      const i64 i = i0 + r;
      float* oi = a.o + (b * T + i) * hs;
      if (lrow[r] == 0.0f && mrow[r] == -INFINITY) {
        set_masked_row(oi, a.l + b * T + i, hs);
        continue;
      }
      scale_copy(O + r * hsp, oi, hs, 1.0f / lrow[r]);
      a.l[b * T + i] = mrow[r] + std::log(lrow[r]);
    }
  }
}

// Backward for every row of batch-head b without packing (few query rows): dq, dk, dv written.
void bwd_rows(const Attn& a, i64 b, float* s, float* dp) {
  const i64 T = a.T, S = a.S, hs = a.hs, off = S - T;
  const float scale = a.scale;
  const float* K = a.k + b * S * hs;
  const float* V = a.v + b * S * hs;
  float* dK = a.dk + b * S * hs;
  float* dV = a.dv + b * S * hs;
  std::memset(dK, 0, sizeof(float) * (size_t)(S * hs));
  std::memset(dV, 0, sizeof(float) * (size_t)(S * hs));
  for (i64 i = 0; i < T; i++) {
    const i64 r = b * T + i;
    const float* qi = a.q + r * hs;
    const float* gi = a.dout + r * hs;
    float* dqi = a.dq + r * hs;
    const i64 nv = a.causal ? std::min(S, i + off + 1) : S;
    if (nv <= 0) {
      std::memset(dqi, 0, sizeof(float) * (size_t)hs);
      continue;
    }
    dots(qi, K, nv, hs, s);
    dots(gi, V, nv, hs, dp);
    const float D = dot(gi, a.out + r * hs, hs);
    bwd_tile(s, dp, 1, nv, false, 0, scale, a.lse + r, &D);
    weighted_sum(dp, K, nv, hs, dqi);
    scale_row(dqi, hs, scale);
    rank1_add(dK, dp, nv, qi, hs, scale);
    rank1_add(dV, s, nv, gi, hs, 1.0f);
  }
}

// Backward for keys [k0, k1) of batch-head b over every query row that sees them. dk, dv rows of
// the range are written; dq (unscaled) is accumulated into dqa (T x hs), rows it does not touch 0.
void bwd_keys(const Attn& a, i64 b, i64 k0, i64 k1, float* dqa) {
  const i64 T = a.T, S = a.S, hs = a.hs, hsp = rup16(hs), off = S - T;
  const float scale = a.scale;
  const i64 nk = k1 - k0, ldk = rup16(nk);
  const i64 rstart = a.causal ? clampi(k0 - off, 0, T) : 0;
  float* Kt = tl_bwd.get((size_t)(2 * hs * ldk + 3 * nk * hsp + 3 * T * hsp + 2 * BR * BC + T));
  float* Vt = Kt + hs * ldk;
  float* Kp = Vt + hs * ldk;
  float* dKa = Kp + nk * hsp;
  float* dVa = dKa + nk * hsp;
  float* dQa = dVa + nk * hsp;
  float* Qp = dQa + T * hsp;
  float* dOp = Qp + T * hsp;
  float* Sb = dOp + T * hsp;
  float* dPb = Sb + BR * BC;
  float* Dr = dPb + BR * BC;
  const float* K = a.k + b * S * hs;
  const float* V = a.v + b * S * hs;
  const float* Q = a.q + b * T * hs;
  const float* dO = a.dout + b * T * hs;
  const float* Ob = a.out + b * T * hs;
  const float* L = a.lse + b * T;
  pack_t(K + k0 * hs, nk, hs, Kt, ldk);
  pack_t(V + k0 * hs, nk, hs, Vt, ldk);
  pack_rows(K + k0 * hs, nk, hs, Kp, hsp);
  std::memset(dKa, 0, sizeof(float) * (size_t)(2 * nk * hsp));
  std::memset(dQa + rstart * hsp, 0, sizeof(float) * (size_t)((T - rstart) * hsp));
  for (i64 i = rstart; i < T; i++) Dr[i] = dot(dO + i * hs, Ob + i * hs, hs);
  pack_rows(Q + rstart * hs, T - rstart, hs, Qp + rstart * hsp, hsp);
  pack_rows(dO + rstart * hs, T - rstart, hs, dOp + rstart * hsp, hsp);

  for (i64 j0 = k0; j0 < k1; j0 += BC) {
    const i64 bc = std::min(BC, k1 - j0), bcp = rup16(bc), jl = j0 - k0;
    const i64 rs = a.causal ? clampi(j0 - off, 0, T) : 0;
    for (i64 i0 = rs; i0 < T; i0 += BR) {
      const i64 br = std::min(BR, T - i0);
      mm(br, bcp, hs, Q + i0 * hs, hs, 1, Kt + jl, ldk, Sb, BC, false);
      mm(br, bcp, hs, dO + i0 * hs, hs, 1, Vt + jl, ldk, dPb, BC, false);
      bwd_tile(Sb, dPb, br, bc, a.causal, i0 + off - j0 + 1, scale, L + i0, Dr + i0);
      // dV += Pᵀ dO, dK += dSᵀ Q (scaled at the end), dQ += dS K
      mm(bc, hsp, br, Sb, 1, BC, dOp + i0 * hsp, hsp, dVa + jl * hsp, hsp, true);
      mm(bc, hsp, br, dPb, 1, BC, Qp + i0 * hsp, hsp, dKa + jl * hsp, hsp, true);
      mm(br, hsp, bc, dPb, BC, 1, Kp + jl * hsp, hsp, dQa + i0 * hsp, hsp, true);
    }
  }
  for (i64 j = 0; j < nk; j++) {
    scale_copy(dKa + j * hsp, a.dk + (b * S + k0 + j) * hs, hs, scale);
    std::memcpy(a.dv + (b * S + k0 + j) * hs, dVa + j * hsp, sizeof(float) * (size_t)hs);
  }
  for (i64 i = 0; i < rstart; i++) std::memset(dqa + i * hs, 0, sizeof(float) * (size_t)hs);
  for (i64 i = rstart; i < T; i++) std::memcpy(dqa + i * hs, dQa + i * hsp, sizeof(float) * (size_t)hs);
}

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
  const int threads = pool_threads();
  const double work = (double)bh * T * S * hs * (causal && T > 1 ? 0.5 : 1.0);
  if (T <= 2) {
    // Row path: tasks are runs of (batch-head, row) pairs.
    const i64 rows = bh * T;
    const i64 ntasks = std::min<i64>(rows, 4 * (i64)threads);
    const i64 per = (rows + ntasks - 1) / ntasks;
    auto body = [&](i64 t) {
      float* s = tl_fwd.get((size_t)S);
      const i64 a0 = t * per, a1 = std::min(rows, a0 + per);
      for (i64 r = a0; r < a1; r++) fwd_row(a, r / T, r % T, s);
    };
    run_tasks(ntasks, work, body);
    return;
  }
  const i64 blocks = (T + BR - 1) / BR;
  const i64 G = clampi((4 * threads + bh - 1) / bh, 1, blocks);
  const i64 per = (blocks + G - 1) / G * BR;
  a.G = (T + per - 1) / per;
  a.per = per;
  auto body = [&](i64 t) {
    // Later row groups see more keys under a causal mask: hand them out first.
    const i64 b = t / a.G, g = a.G - 1 - t % a.G;
    const i64 r0 = g * a.per, r1 = std::min(T, r0 + a.per);
    fwd_rows(a, b, r0, r1);
  };
  run_tasks(bh * a.G, work, body);
}

void fused_attention_bwd(const float* q, const float* k, const float* v, const float* out, const float* lse,
                         const float* dout, float* dq, float* dk, float* dv, i64 bh, i64 T, i64 S, i64 hs,
                         double scale, bool causal) {
  if (bh <= 0) return;
  const size_t nq = (size_t)(bh * T * hs), nk = (size_t)(bh * S * hs);
  if (T <= 0 || S <= 0 || hs <= 0) {
    std::memset(dq, 0, sizeof(float) * nq);
    std::memset(dk, 0, sizeof(float) * nk);
    std::memset(dv, 0, sizeof(float) * nk);
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
  a.scale = (float)scale;
  a.causal = causal;
  const int threads = pool_threads();
  const double work = 2.5 * (double)bh * T * S * hs * (causal && T > 1 ? 0.5 : 1.0);
  if (T <= 2) {
    // Row path: tasks are runs of batch-head entries (each owns its dk, dv).
    const i64 ntasks = std::min<i64>(bh, 4 * (i64)threads);
    const i64 per = (bh + ntasks - 1) / ntasks;
    auto body = [&](i64 t) {
      float* s = tl_bwd.get((size_t)(2 * S));
      for (i64 b = t * per; b < std::min(bh, (t + 1) * per); b++) bwd_rows(a, b, s, s + S);
    };
    run_tasks(ntasks, work, body);
    return;
  }
  const bool par = threads > 1 && work >= kMinParallelWork;
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
    bwd_keys(a, b, k0, k1, dqa);
  };
  run_tasks(bh * a.G, work, body);
  const float sc = (float)scale;
  if (a.G == 1) {
    scale_row(dq, (i64)nq, sc);
    return;
  }
  auto reduce = [&](i64 b) {
    float* d = dq + b * T * hs;
    const float* p = part.data() + (size_t)(b * a.G) * (size_t)(T * hs);
    std::memcpy(d, p, sizeof(float) * (size_t)(T * hs));
    for (i64 g = 1; g < a.G; g++) add_to(p + (size_t)g * (size_t)(T * hs), d, T * hs);
    scale_row(d, T * hs, sc);
  };
  run_tasks(bh, (double)bh * T * hs * a.G, reduce);
}

}  // namespace mx
