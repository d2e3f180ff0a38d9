// Element-wise primitives, copies/casts, reductions and indexing over strided views.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "ops.h"

namespace mx {
namespace {

constexpr i64 kParallelElems = 1 << 16;  // below this, element-wise work stays on the calling thread

// ---- strided loop engine ----------------------------------------------------------------------

// Drop size-1 dims and merge dims that are contiguous in every operand. Returns the element count.
i64 collapse(Nd& L) {
  i64 total = 1;
  for (int d = 0; d < L.nd; d++) total *= L.shape[d];
  if (total == 0) return 0;
  int w = 0;
  for (int d = 0; d < L.nd; d++) {
    if (L.shape[d] == 1) continue;
    if (w > 0) {
      bool merge = true;
      for (int k = 0; k < L.nops; k++) {
        if (L.st[k][w - 1] != L.st[k][d] * L.shape[d]) {
          merge = false;
          break;
        }
      }
      if (merge) {
        L.shape[w - 1] *= L.shape[d];
        for (int k = 0; k < L.nops; k++) L.st[k][w - 1] = L.st[k][d];
        continue;
      }
    }
    L.shape[w] = L.shape[d];
    for (int k = 0; k < L.nops; k++) L.st[k][w] = L.st[k][d];
    w++;
  }
  if (w == 0) {
    L.shape[0] = 1;
    for (int k = 0; k < L.nops; k++) L.st[k][0] = 1;
    w = 1;
  }
  L.nd = w;
  return total;
}

// Calls f(off[], n) for each piece of an inner row covering flat indices [f0, f1).
template <class F>
void nd_range(const Nd& L, i64 f0, i64 f1, F& f) {
  const int nd = L.nd, nops = L.nops;
  const i64 n = L.shape[nd - 1];
  i64 o = f0 / n, i = f0 % n;
  i64 idx[MAXD];
  i64 off[4];
  for (int k = 0; k < nops; k++) off[k] = L.off[k];
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = o % L.shape[d];
    o /= L.shape[d];
    for (int k = 0; k < nops; k++) off[k] += idx[d] * L.st[k][d];
  }
  i64 pos = f0;
  while (pos < f1) {
    const i64 len = std::min(n - i, f1 - pos);
    i64 cur[4];
    for (int k = 0; k < nops; k++) cur[k] = off[k] + i * L.st[k][nd - 1];
    f(cur, len);
    pos += len;
    i = 0;
    for (int d = nd - 2; d >= 0; d--) {
      for (int k = 0; k < nops; k++) off[k] += L.st[k][d];
      if (++idx[d] < L.shape[d]) break;
      for (int k = 0; k < nops; k++) off[k] -= L.st[k][d] * L.shape[d];
      idx[d] = 0;
    }
  }
}

template <class F>
void nd_for(const Nd& L, i64 total, F& f) {
  const int T = pool_threads();
  if (T <= 1 || total < kParallelElems) {
    nd_range(L, 0, total, f);
    return;
  }
  i64 pieces = std::min<i64>(4 * T, total / (kParallelElems / 4));
  if (pieces < 2) pieces = 2;
  const i64 chunk = ((total + pieces - 1) / pieces + 15) & ~(i64)15;
  pieces = (total + chunk - 1) / chunk;
  auto task = [&](i64 t) { nd_range(L, t * chunk, std::min(total, (t + 1) * chunk), f); };
  parallel_for(pieces, task);
}

// JS ToInt32 (what storing a number into an Int32Array does): truncate, wrap modulo 2^32.
inline int32_t to_i32(double v) {
  if (v > -2147483649.0 && v < 2147483648.0) return (int32_t)v;
  if (!std::isfinite(v)) return 0;
  double t = std::trunc(v);
  double m = std::fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}

template <class T>
inline T from_double(double v);
template <>
inline float from_double<float>(double v) { return (float)v; }
template <>
inline int32_t from_double<int32_t>(double v) { return to_i32(v); }

inline double load_as_double(const Buf& b, i64 i) {
  return b.dt == F32 ? (double)static_cast<const float*>(b.p)[i] : (double)static_cast<const int32_t*>(b.p)[i];
}
inline void store_double(const Buf& b, i64 i, double v) {
  if (b.dt == F32)
    static_cast<float*>(b.p)[i] = (float)v;
  else
    static_cast<int32_t*>(b.p)[i] = to_i32(v);
}

// ---- unary / binary ---------------------------------------------------------------------------
// Contiguous runs go to the element-wise family's kernels (kernels_body.inc, one build per ISA);
// strided runs and int32 arithmetic stay here.

inline float unary_scalar(const Kernels* K, int op, float x) {
  float o = 0.0f;
  K->unary(op, &x, &o, 1);
  return o;
}

#define MX_BIN_CASES(EXPR_LOOP)                                                              \
  switch (op) {                                                                              \
    case B_ADD: EXPR_LOOP(x + y); break;                                                     \
    case B_SUB: EXPR_LOOP(x - y); break;                                                     \
    case B_MUL: EXPR_LOOP(x * y); break;                                                     \
    case B_DIV: EXPR_LOOP(x / y); break;                                                     \
    case B_POW: EXPR_LOOP(std::pow(x, y)); break;                                            \
    case B_MAX: EXPR_LOOP((x > y || x != x) ? x : y); break;                                 \
    case B_MIN: EXPR_LOOP((x < y || x != x) ? x : y); break;                                 \
    case B_EQ: EXPR_LOOP(x == y ? 1.0f : 0.0f); break;                                       \
    case B_NE: EXPR_LOOP(x != y ? 1.0f : 0.0f); break;                                       \
    case B_LT: EXPR_LOOP(x < y ? 1.0f : 0.0f); break;                                        \
    case B_LE: EXPR_LOOP(x <= y ? 1.0f : 0.0f); break;                                       \
    case B_GT: EXPR_LOOP(x > y ? 1.0f : 0.0f); break;                                        \
    case B_GE: EXPR_LOOP(x >= y ? 1.0f : 0.0f); break;                                       \
  }

void binary_strided(int op, const float* a, i64 sa, const float* b, i64 sb, float* o, i64 n) {
#define LS(E) for (i64 i = 0; i < n; i++) { const float x = a[i * sa], y = b[i * sb]; o[i] = (E); }
  MX_BIN_CASES(LS)
#undef LS
}

inline double binary_double(int op, double x, double y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return std::pow(x, y);
    case B_MAX: return (x > y || x != x) ? x : y;
    case B_MIN: return (x < y || x != x) ? x : y;
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    case B_GE: return x >= y;
  }
  return 0;
}

// ---- copy -------------------------------------------------------------------------------------

template <class S, class D>
inline D conv(S v);
template <>
inline float conv<float, float>(float v) { return v; }
template <>
inline int32_t conv<int32_t, int32_t>(int32_t v) { return v; }
template <>
inline float conv<int32_t, float>(int32_t v) { return (float)v; }
template <>
inline int32_t conv<float, int32_t>(float v) { return to_i32((double)v); }

// Transpose-like copies (destination contiguous along the last dim, source contiguous along the
// one before): 32x32 tiles so both sides touch few cache lines at a time.
template <class S, class D>
void copy_transpose(const Nd& L, const S* s, D* d) {
  const int nd = L.nd;
  const i64 R = L.shape[nd - 2], C = L.shape[nd - 1];
  const i64 sc = L.st[0][nd - 1], dr = L.st[1][nd - 2];  // src row stride is 1, dst col stride is 1
  i64 outer = 1;
  for (int q = 0; q < nd - 2; q++) outer *= L.shape[q];
  constexpr i64 TB = 32;
  const i64 rblocks = (R + TB - 1) / TB;
  auto task = [&](i64 t) {
    i64 o = t / rblocks;
    const i64 r0 = (t % rblocks) * TB, r1 = std::min(R, r0 + TB);
    i64 so = L.off[0], doff = L.off[1];
    for (int q = nd - 3; q >= 0; q--) {
      const i64 iq = o % L.shape[q];
      o /= L.shape[q];
      so += iq * L.st[0][q];
      doff += iq * L.st[1][q];
    }
    for (i64 c0 = 0; c0 < C; c0 += TB) {
      const i64 c1 = std::min(C, c0 + TB);
      for (i64 r = r0; r < r1; r++) {
        D* dp = d + doff + r * dr;
        const S* sp = s + so + r;
        for (i64 c = c0; c < c1; c++) dp[c] = conv<S, D>(sp[c * sc]);
      }
    }
  };
  const i64 tasks = outer * rblocks;
  if (pool_threads() > 1 && outer * R * C >= kParallelElems) {
    parallel_for(tasks, task);
  } else {
    for (i64 t = 0; t < tasks; t++) task(t);
  }
}

template <class S, class D>
void copy_typed(Nd& L, i64 total, const S* s, D* d) {
  if (L.nd >= 2 && L.st[1][L.nd - 1] == 1 && L.st[0][L.nd - 2] == 1 && L.st[0][L.nd - 1] != 1 &&
      L.shape[L.nd - 2] >= 8 && L.shape[L.nd - 1] >= 8) {
    copy_transpose(L, s, d);
    return;
  }
  auto f = [&](const i64* off, i64 n) {
    const S* sp = s + off[0];
    D* dp = d + off[1];
    const i64 ss = L.st[0][L.nd - 1], ds = L.st[1][L.nd - 1];
    if (ss == 1 && ds == 1) {
      if (sizeof(S) == sizeof(D) && std::is_same<S, D>::value) {
        std::memcpy(dp, sp, sizeof(S) * (size_t)n);
      } else {
        for (i64 i = 0; i < n; i++) dp[i] = conv<S, D>(sp[i]);
      }
    } else if (ss == 0) {
      const D v = conv<S, D>(sp[0]);
      for (i64 i = 0; i < n; i++) dp[i * ds] = v;
    } else {
      for (i64 i = 0; i < n; i++) dp[i * ds] = conv<S, D>(sp[i * ss]);
    }
  };
  nd_for(L, total, f);
}

// A copy whose destination is written out of order (e.g. a transposed source read contiguously)
// is fastest in the destination's memory order: sort dims by destination stride.
void order_by_operand(Nd& L, int k) {
  int perm[MAXD];
  for (int d = 0; d < L.nd; d++) perm[d] = d;
  std::stable_sort(perm, perm + L.nd, [&](int x, int y) {
    return std::llabs(L.st[k][x]) > std::llabs(L.st[k][y]);
  });
  Nd c = L;
  for (int d = 0; d < L.nd; d++) {
    L.shape[d] = c.shape[perm[d]];
    for (int q = 0; q < L.nops; q++) L.st[q][d] = c.st[q][perm[d]];
  }
}

}  // namespace

// ---- public entry points ----------------------------------------------------------------------

void op_unary(int op, Nd& L, const Buf& x, float* out) {
  // operands: 0 = x, 1 = out (contiguous)
  const i64 total = collapse(L);
  if (total == 0) return;
  if (x.dt == F32) {
    const float* xp = static_cast<const float*>(x.p);
    const Kernels* K = kernel_for(F_ELEMENTWISE);
    auto f = [&](const i64* off, i64 n) {
      const i64 sx = L.st[0][L.nd - 1];
      float* o = out + off[1];
      if (sx == 1) {
        K->unary(op, xp + off[0], o, n);
      } else {
        for (i64 i = 0; i < n; i++) o[i] = unary_scalar(K, op, xp[off[0] + i * sx]);
      }
    };
    nd_for(L, total, f);
  } else {
    const int32_t* xp = static_cast<const int32_t*>(x.p);
    const Kernels* K = kernel_for(F_ELEMENTWISE);
    auto f = [&](const i64* off, i64 n) {
      const i64 sx = L.st[0][L.nd - 1];
      float* o = out + off[1];
      for (i64 i = 0; i < n; i++) o[i] = (float)xp[off[0] + i * sx];
      K->unary(op, o, o, n);
    };
    nd_for(L, total, f);
  }
}

void op_binary(int op, Nd& L, const Buf& a, const Buf& b, const Buf& out) {
  // operands: 0 = a, 1 = b, 2 = out (contiguous)
  const i64 total = collapse(L);
  if (total == 0) return;
  if (a.dt == F32 && b.dt == F32 && out.dt == F32) {
    const float* ap = static_cast<const float*>(a.p);
    const float* bp = static_cast<const float*>(b.p);
    float* op_ = static_cast<float*>(out.p);
    const Kernels* K = kernel_for(F_ELEMENTWISE);
    auto f = [&](const i64* off, i64 n) {
      const i64 sa = L.st[0][L.nd - 1], sb = L.st[1][L.nd - 1];
      const float* x = ap + off[0];
      const float* y = bp + off[1];
      float* o = op_ + off[2];
      if (sa == 1 && sb == 1)
        K->binary(op, 0, x, y, o, n);
      else if (sa == 1 && sb == 0)
        K->binary(op, 1, x, y, o, n);
      else if (sa == 0 && sb == 1)
        K->binary(op, 2, x, y, o, n);
      else
        binary_strided(op, x, sa, y, sb, o, n);
    };
    nd_for(L, total, f);
    return;
  }
  // Any int32 operand: compute in double (as JavaScript numbers would), store in out's dtype.
  auto f = [&](const i64* off, i64 n) {
    const i64 sa = L.st[0][L.nd - 1], sb = L.st[1][L.nd - 1];
    for (i64 i = 0; i < n; i++) {
      const double x = load_as_double(a, off[0] + i * sa);
      const double y = load_as_double(b, off[1] + i * sb);
      store_double(out, off[2] + i, binary_double(op, x, y));
    }
  };
  nd_for(L, total, f);
}

void op_where(Nd& L, const Buf& c, const Buf& a, const Buf& b, const Buf& out) {
  // operands: 0 = cond, 1 = a, 2 = b, 3 = out (contiguous)
  const i64 total = collapse(L);
  if (total == 0) return;
  if (a.dt == F32 && b.dt == F32 && out.dt == F32) {
    const float* ap = static_cast<const float*>(a.p);
    const float* bp = static_cast<const float*>(b.p);
    float* o = static_cast<float*>(out.p);
    auto f = [&](const i64* off, i64 n) {
      const i64 sc = L.st[0][L.nd - 1], sa = L.st[1][L.nd - 1], sb = L.st[2][L.nd - 1];
      const float* x = ap + off[1];
      const float* y = bp + off[2];
      float* oo = o + off[3];
      if (c.dt == F32) {
        const float* cp = static_cast<const float*>(c.p) + off[0];
        for (i64 i = 0; i < n; i++) oo[i] = cp[i * sc] != 0.0f ? x[i * sa] : y[i * sb];
      } else {
        const int32_t* cp = static_cast<const int32_t*>(c.p) + off[0];
        for (i64 i = 0; i < n; i++) oo[i] = cp[i * sc] != 0 ? x[i * sa] : y[i * sb];
      }
    };
    nd_for(L, total, f);
    return;
  }
  auto f = [&](const i64* off, i64 n) {
    const i64 sc = L.st[0][L.nd - 1], sa = L.st[1][L.nd - 1], sb = L.st[2][L.nd - 1];
    for (i64 i = 0; i < n; i++) {
      const bool t = load_as_double(c, off[0] + i * sc) != 0.0;
      store_double(out, off[3] + i, t ? load_as_double(a, off[1] + i * sa) : load_as_double(b, off[2] + i * sb));
    }
  };
  nd_for(L, total, f);
}

void op_copy(Nd& L, const Buf& src, const Buf& dst) {
  // operands: 0 = src, 1 = dst
  order_by_operand(L, 1);
  const i64 total = collapse(L);
  if (total == 0) return;
  if (src.dt == F32 && dst.dt == F32)
    copy_typed(L, total, static_cast<const float*>(src.p), static_cast<float*>(dst.p));
  else if (src.dt == I32 && dst.dt == I32)
    copy_typed(L, total, static_cast<const int32_t*>(src.p), static_cast<int32_t*>(dst.p));
  else if (src.dt == I32 && dst.dt == F32)
    copy_typed(L, total, static_cast<const int32_t*>(src.p), static_cast<float*>(dst.p));
  else
    copy_typed(L, total, static_cast<const float*>(src.p), static_cast<int32_t*>(dst.p));
}

// ---- reduce -----------------------------------------------------------------------------------

namespace {

// Sum of x[0..n) in double over 8 independent lanes, so it vectorises without -ffast-math.
template <class T>
inline double lane_sum_d(const T* x, i64 n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i64 i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j];
  double t = 0;
  for (; i < n; i++) t += (double)x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + t;
}

template <class T>
struct ReduceCtx {
  const T* x;
  bool is_max;
};

// Sum (or max) of n strided elements, in double.
template <class T>
inline double run_reduce(const T* x, i64 s, i64 n, bool is_max) {
  if (is_max) {
    double m = -INFINITY;
    for (i64 i = 0; i < n; i++) {
      const double v = (double)x[i * s];
      if (v > m || v != v) m = v;
      if (m != m) break;
    }
    return m;
  }
  if (s == 1) return lane_sum_d(x, n);
  double t = 0;
  for (i64 i = 0; i < n; i++) t += (double)x[i * s];
  return t;
}

template <class T>
void reduce_typed(bool is_max, Nd& L, i64 total, const T* x, double* acc, i64 out_len) {
  // operands: 0 = x, 1 = accumulator (stride 0 on reduced dims)
  auto body = [&](double* a, i64 f0, i64 f1) {
    auto f = [&](const i64* off, i64 n) {
      const i64 sx = L.st[0][L.nd - 1], so = L.st[1][L.nd - 1];
      const T* xp = x + off[0];
      double* ap = a + off[1];
      if (so == 0) {
        const double r = run_reduce(xp, sx, n, is_max);
        if (is_max) {
          if (r > *ap || r != r) *ap = r;
        } else {
          *ap += r;
        }
      } else if (is_max) {
        for (i64 i = 0; i < n; i++) {
          const double v = (double)xp[i * sx];
          if (v > ap[i * so] || v != v) ap[i * so] = v;
        }
      } else if (so == 1 && sx == 1) {
        // A row added into the accumulator row (a bias gradient): unit strides let it vectorise.
        for (i64 i = 0; i < n; i++) ap[i] += (double)xp[i];
      } else {
        for (i64 i = 0; i < n; i++) ap[i * so] += (double)xp[i * sx];
      }
    };
    nd_range(L, f0, f1, f);
  };
  const int T_ = pool_threads();
  const double init = is_max ? -INFINITY : 0.0;
  if (T_ > 1 && total >= 4 * kParallelElems && out_len * 8 * T_ <= total) {
    // Private accumulators per piece over the flat range, combined at the end.
    const i64 pieces = T_;
    const i64 chunk = (total + pieces - 1) / pieces;
    std::vector<double> part((size_t)(pieces * out_len), init);
    auto task = [&](i64 t) {
      body(part.data() + t * out_len, t * chunk, std::min(total, (t + 1) * chunk));
    };
    parallel_for(pieces, task);
    for (i64 t = 0; t < pieces; t++) {
      const double* p = part.data() + t * out_len;
      for (i64 i = 0; i < out_len; i++) {
        if (is_max) {
          if (p[i] > acc[i] || p[i] != p[i]) acc[i] = p[i];
        } else {
          acc[i] += p[i];
        }
      }
    }
    return;
  }
  if (T_ > 1 && total >= kParallelElems && L.nd >= 2 && L.st[1][0] != 0 && L.shape[0] >= 2) {
    // Outermost dim is kept: pieces write disjoint outputs.
    const i64 inner = total / L.shape[0];
    const i64 pieces = std::min<i64>(L.shape[0], 4 * T_);
    const i64 per = (L.shape[0] + pieces - 1) / pieces;
    auto task = [&](i64 t) {
      const i64 r0 = t * per, r1 = std::min(L.shape[0], (t + 1) * per);
      if (r0 < r1) body(acc, r0 * inner, r1 * inner);
    };
    parallel_for(pieces, task);
    return;
  }
  body(acc, 0, total);
}

}  // namespace

void op_reduce(int op, Nd& L, const bool* reduced, const Buf& x, float* out, i64 out_len) {
  // Give operand 1 (the accumulator) contiguous strides over kept dims and 0 over reduced ones.
  const bool is_max = op == 1;
  L.nops = 2;
  i64 s = 1;
  for (int d = L.nd - 1; d >= 0; d--) {
    if (reduced[d]) {
      L.st[1][d] = 0;
    } else {
      L.st[1][d] = s;
      s *= L.shape[d];
    }
  }
  L.off[1] = 0;
  std::vector<double> acc((size_t)out_len, is_max ? -INFINITY : 0.0);
  order_by_operand(L, 0);
  const i64 total = collapse(L);
  if (total > 0) {
    if (x.dt == F32)
      reduce_typed(is_max, L, total, static_cast<const float*>(x.p), acc.data(), out_len);
    else
      reduce_typed(is_max, L, total, static_cast<const int32_t*>(x.p), acc.data(), out_len);
  }
  for (i64 i = 0; i < out_len; i++) out[i] = (float)acc[i];
}

// ---- gather / indexAdd -------------------------------------------------------------------------

void op_gather(const float* table, const int32_t* idx, float* out, i64 rows, i64 cols) {
  auto f = [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++)
      std::memcpy(out + r * cols, table + (i64)idx[r] * cols, sizeof(float) * (size_t)cols);
  };
  const int T = pool_threads();
  if (T > 1 && rows * cols >= 4 * kParallelElems && rows >= 2) {
    const i64 pieces = std::min<i64>(rows, 2 * T), per = (rows + pieces - 1) / pieces;
    auto task = [&](i64 t) { f(t * per, std::min(rows, (t + 1) * per)); };
    parallel_for(pieces, task);
  } else {
    f(0, rows);
  }
}

void op_index_add(float* dst, const int32_t* idx, const float* src, i64 rows, i64 cols) {
  // Pieces split columns, so repeated indices never race.
  auto f = [&](i64 c0, i64 c1) {
    for (i64 r = 0; r < rows; r++) {
      float* d = dst + (i64)idx[r] * cols;
      const float* s = src + r * cols;
      for (i64 c = c0; c < c1; c++) d[c] += s[c];
    }
  };
  const int T = pool_threads();
  if (T > 1 && rows * cols >= 4 * kParallelElems && cols >= 256) {
    const i64 pieces = std::min<i64>(cols / 64, 2 * T);
    const i64 per = ((cols + pieces - 1) / pieces + 15) & ~(i64)15;
    auto task = [&](i64 t) {
      const i64 c0 = t * per, c1 = std::min(cols, (t + 1) * per);
      if (c0 < c1) f(c0, c1);
    };
    parallel_for(pieces, task);
  } else {
    f(0, cols);
  }
}

}  // namespace mx
