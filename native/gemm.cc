// GEMM front end: run-time ISA choice, per-thread packing workspace, batching and threading.
#include <cstdlib>
#include <cstring>

#include "common.h"

namespace mx {
namespace {

#if defined(__x86_64__)
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
// Other architectures build only the portable kernels.
bool cpu_has_avx512() { return false; }
bool cpu_has_avx2() { return false; }
#endif

#if defined(__x86_64__)
#define MX_AVX512_IMPL (&gemm_impl_avx512)
#define MX_AVX2_IMPL (&gemm_impl_avx2)
#else
#define MX_AVX512_IMPL (&gemm_impl_generic)
#define MX_AVX2_IMPL (&gemm_impl_generic)
#endif

const GemmImpl* detect() {
  const char* e = std::getenv("MOXING_ISA");
  const bool has512 = cpu_has_avx512();
  const bool has2 = cpu_has_avx2();
  if (e && *e) {
    if (!std::strcmp(e, "avx512") && has512) return MX_AVX512_IMPL;
    if (!std::strcmp(e, "avx2") && has2) return MX_AVX2_IMPL;
    if (!std::strcmp(e, "generic")) return &gemm_impl_generic;
  }
  if (has512) return MX_AVX512_IMPL;
  if (has2) return MX_AVX2_IMPL;
  return &gemm_impl_generic;
}

const GemmImpl* g_impl = detect();

// Grow-only, 64-byte aligned, one per thread.
struct Workspace {
  float* a = nullptr;
  float* b = nullptr;
  size_t na = 0, nb = 0;
  ~Workspace() {
    std::free(a);
    std::free(b);
  }
  static float* grow(float*& p, size_t& have, size_t need) {
    if (need > have) {
      std::free(p);
      size_t bytes = ((need * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      have = p ? need : 0;
    }
    return p;
  }
};
thread_local Workspace tl_ws;

inline i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }

struct MatmulCtx {
  const GemmImpl* impl;
  const float* a;
  i64 a_bs, rsa, csa;
  const float* b;
  i64 b_bs, rsb, csb;
  float* c;
  i64 m, n, k;
  i64 parts;        // pieces per batch entry
  bool split_n;     // pieces split n (else m)
  i64 chunk;        // rows or columns per piece
};

void run_piece(const MatmulCtx& x, i64 t) {
  const i64 bi = t / x.parts, piece = t % x.parts;
  const GemmImpl* im = x.impl;
  GemmArgs g;
  g.a = x.a + bi * x.a_bs;
  g.b = x.b + bi * x.b_bs;
  g.c = x.c + bi * x.m * x.n;
  g.rsa = x.rsa;
  g.csa = x.csa;
  g.rsb = x.rsb;
  g.csb = x.csb;
  g.ldc = x.n;
  g.m = x.m;
  g.n = x.n;
  g.k = x.k;
  if (x.split_n) {
    const i64 j0 = piece * x.chunk;
    if (j0 >= x.n) return;
    g.n = (x.n - j0) < x.chunk ? (x.n - j0) : x.chunk;
    g.b += j0 * x.csb;
    g.c += j0;
  } else {
    const i64 i0 = piece * x.chunk;
    if (i0 >= x.m) return;
    g.m = (x.m - i0) < x.chunk ? (x.m - i0) : x.chunk;
    g.a += i0 * x.rsa;
    g.c += i0 * x.n;
  }
  const i64 kc = x.k < im->kc ? x.k : im->kc;
  const i64 mc = g.m < im->mc ? g.m : im->mc;
  const i64 nc = g.n < im->nc ? g.n : im->nc;
  g.pack_a = Workspace::grow(tl_ws.a, tl_ws.na, (size_t)(ceil_div(mc, im->mr) * im->mr * kc));
  g.pack_b = Workspace::grow(tl_ws.b, tl_ws.nb, (size_t)(ceil_div(nc, im->nr) * im->nr * kc));
  if (!g.pack_a || !g.pack_b) std::abort();
  im->run(g);
}

}  // namespace

const GemmImpl* gemm_select() { return g_impl; }
const char* isa_name() { return g_impl->name; }

bool gemm_set_isa(const char* name) {
  if (!std::strcmp(name, "avx512")) {
    if (!cpu_has_avx512()) return false;
    g_impl = MX_AVX512_IMPL;
  } else if (!std::strcmp(name, "avx2")) {
    if (!cpu_has_avx2()) return false;
    g_impl = MX_AVX2_IMPL;
  } else if (!std::strcmp(name, "generic")) {
    g_impl = &gemm_impl_generic;
  } else {
    return false;
  }
  return true;
}

void matmul(const float* a, i64 a_bs, i64 rsa, i64 csa, const float* b, i64 b_bs, i64 rsb, i64 csb, float* c,
            i64 batch, i64 m, i64 n, i64 k) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    std::memset(c, 0, sizeof(float) * (size_t)(batch * m * n));
    return;
  }
  // A shared B with A's batches laid out as continuing rows: one tall product.
  if (batch > 1 && b_bs == 0 && a_bs == m * rsa) {
    m *= batch;
    batch = 1;
  }
  MatmulCtx x;
  x.impl = g_impl;
  x.a = a; x.a_bs = a_bs; x.rsa = rsa; x.csa = csa;
  x.b = b; x.b_bs = b_bs; x.rsb = rsb; x.csb = csb;
  x.c = c;
  x.m = m; x.n = n; x.k = k;
  x.parts = 1;
  x.split_n = true;
  x.chunk = n;
  const int T = pool_threads();
  const double flops = 2.0 * (double)batch * (double)m * (double)n * (double)k;
  if (T > 1 && flops >= 4.0e6 && batch < 2 * T) {
    // Split each product into pieces, a few per thread so a descheduled thread (a loaded machine)
    // delays only a small share: the pool hands pieces out dynamically. Pick the split that packs
    // less data per piece (an n-piece packs all of A, an m-piece all of B).
    const i64 want = ceil_div(3 * T, batch), least = ceil_div(T, batch);
    const i64 nr = x.impl->nr, mr = x.impl->mr;
    const i64 ncols = ceil_div(n, nr), nrows = ceil_div(m, mr);
    auto clamp = [](i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); };
    const i64 pn = clamp(ncols / 4, least, want), pm = clamp(nrows / 8, least, want);
    const double cost_n = (double)m * k + (double)k * n / pn;
    const double cost_m = (double)m * k / pm + (double)k * n;
    if ((cost_n <= cost_m && ncols >= least) || nrows < least) {
      if (ncols >= 2) {
        x.split_n = true;
        x.parts = pn < ncols ? pn : ncols;
        x.chunk = ceil_div(ncols, x.parts) * nr;
        x.parts = ceil_div(n, x.chunk);
      }
    } else {
      x.split_n = false;
      x.parts = pm < nrows ? pm : nrows;
      x.chunk = ceil_div(nrows, x.parts) * mr;
      x.parts = ceil_div(m, x.chunk);
    }
  }
  const i64 ntasks = batch * x.parts;
  if (ntasks == 1 || flops < 4.0e6) {
    for (i64 t = 0; t < ntasks; t++) run_piece(x, t);
    return;
  }
  auto f = [&x](i64 t) { run_piece(x, t); };
  parallel_for(ntasks, f);
}

}  // namespace mx
