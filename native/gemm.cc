// GEMM front end: per-thread packing workspace, batching, the choice between GEMM, matrix-vector
// and few-row kernels, and threading. The kernels come from the tables chosen at load time
// (kernels.h): the GEMM family's for products, the GEMV family's for matrix-vector products.
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace mx {
namespace {

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

// A batch of matrix-vector products (m == 1 or n == 1): y_b (N) = sum_p x_b[p * xs] M_b(p, j), with
// M_b(p, j) = w[b*w_bs + p*ps + j*js]; one of ps, js is 1.
struct GemvCtx {
  const GemmImpl* impl;
  const float* x;
  i64 x_bs, xs;
  const float* w;
  i64 w_bs, ps, js;
  float* y;
  i64 N, k;
  i64 parts, chunk;  // pieces of N per batch entry
};

void run_gemv(const GemvCtx& g, i64 t) {
  const i64 bi = t / g.parts, j0 = (t % g.parts) * g.chunk;
  if (j0 >= g.N) return;
  const i64 nn = (g.N - j0) < g.chunk ? (g.N - j0) : g.chunk;
  const float* x = g.x + bi * g.x_bs;
  if (g.xs != 1) {
    float* xc = Workspace::grow(tl_ws.a, tl_ws.na, (size_t)g.k);
    if (!xc) std::abort();
    for (i64 p = 0; p < g.k; p++) xc[p] = x[p * g.xs];
    x = xc;
  }
  const float* w = g.w + bi * g.w_bs + j0 * g.js;
  float* y = g.y + bi * g.N + j0;
  if (g.js == 1)
    g.impl->gemv_n(nn, g.k, x, w, g.ps, y);
  else
    g.impl->gemv_t(nn, g.k, x, w, g.js, y);
}

// Split the n outputs of each of `batch` products into pieces of at least min_piece (a few pieces
// per thread, so a descheduled thread on a loaded machine delays only a small share), record the
// split in g.parts / g.chunk, and run run(g, t) for every piece t, on the pool when it pays.
template <class Ctx, class Run>
void run_pieces(Ctx& g, i64 batch, i64 n, i64 min_piece, double work, Run run) {
  const int T = pool_threads();
  g.parts = 1;
  g.chunk = n;
  if (T > 1 && work >= 131072.0 && batch < 2 * T) {
    const i64 want = ceil_div(4 * T, batch);
    const i64 most = ceil_div(n, min_piece);
    g.parts = want < most ? want : most;
    g.chunk = ceil_div(ceil_div(n, g.parts), 16) * 16;
    g.parts = ceil_div(n, g.chunk);
  }
  const i64 ntasks = batch * g.parts;
  if (ntasks == 1 || T <= 1 || work < 131072.0) {
    for (i64 t = 0; t < ntasks; t++) run(g, t);
    return;
  }
  auto f = [&g, &run](i64 t) { run(g, t); };
  parallel_for(ntasks, f);
}

void gemv(GemvCtx& g, i64 batch) {
  // Pieces of at least 64 rows of w for gemv_t, or 256 columns for gemv_n, whose pieces read w in
  // row segments of that width.
  run_pieces(g, batch, g.N, g.js == 1 ? 256 : 64, (double)batch * (double)g.N * (double)g.k, run_gemv);
}

// Few-row products in the nn.Linear layout (A rows and W rows contiguous): c_b = A_b · W_bᵀ.
struct NtCtx {
  const GemmImpl* impl;
  const float* a;
  i64 a_bs, lda;
  const float* w;
  i64 w_bs, ldw;
  float* c;
  i64 m, n, k;
  i64 parts, chunk;  // pieces of n per batch entry
};

void run_nt(const NtCtx& g, i64 t) {
  const i64 bi = t / g.parts, j0 = (t % g.parts) * g.chunk;
  if (j0 >= g.n) return;
  const i64 nn = (g.n - j0) < g.chunk ? (g.n - j0) : g.chunk;
  g.impl->gemm_nt_small(g.m, nn, g.k, g.a + bi * g.a_bs, g.lda, g.w + bi * g.w_bs + j0 * g.ldw, g.ldw,
                        g.c + bi * g.m * g.n + j0, g.n);
}

void nt_small(NtCtx& g, i64 batch) {
  run_pieces(g, batch, g.n, 64, (double)batch * (double)g.m * (double)g.n * (double)g.k, run_nt);
}

}  // namespace

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
  // Matrix-vector products (token-by-token generation): stream the matrix in place.
  if (m == 1 && (csb == 1 || rsb == 1)) {
    GemvCtx g{kernel_for(F_GEMV)->gemm, a, a_bs, csa, b, b_bs, rsb, csb, c, n, k, 1, n};
    gemv(g, batch);
    return;
  }
  // Few rows against the nn.Linear weight layout: dot products over W's rows in place beat packing
  // (transposing) W for m up to about 16 on every kernel set.
  if (m <= 16 && csa == 1 && rsb == 1 && n >= 4) {
    NtCtx g{kernel_for(F_GEMM)->gemm, a, a_bs, rsa, b, b_bs, csb, c, m, n, k, 1, n};
    nt_small(g, batch);
    return;
  }
  if (n == 1 && (csa == 1 || rsa == 1)) {
    // c[i] = sum_p b[p] A(i, p): A's rows are the matrix's columns.
    GemvCtx g{kernel_for(F_GEMV)->gemm, b, b_bs, rsb, a, a_bs, csa, rsa, c, m, k, 1, m};
    gemv(g, batch);
    return;
  }
  MatmulCtx x;
  x.impl = kernel_for(F_GEMM)->gemm;
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
    // Split each product into one piece per thread, along the side that packs less data per piece
    // (an n-piece packs all of A, an m-piece all of B). Every piece repacks the operand it does not
    // split, so more pieces cost more packing: three per thread (for balance on a loaded machine)
    // measured 289-299 GFLOP/s on 1024^3 with 2 threads against 330-347 for one per thread, and
    // training steps were unchanged.
    const i64 pieces = ceil_div(T, batch);
    const i64 nr = x.impl->nr, mr = x.impl->mr;
    const i64 ncols = ceil_div(n, nr), nrows = ceil_div(m, mr);
    const double cost_n = (double)m * k + (double)k * n / pieces;
    const double cost_m = (double)m * k / pieces + (double)k * n;
    if ((cost_n <= cost_m && ncols >= pieces) || nrows < pieces) {
      if (ncols >= 2) {
        x.split_n = true;
        x.parts = pieces < ncols ? pieces : ncols;
        x.chunk = ceil_div(ncols, x.parts) * nr;
        x.parts = ceil_div(n, x.chunk);
      }
    } else {
      // Tall products (a training step's B*T rows) take up to four pieces per thread, each of at
      // least 768 rows, so a thread descheduled on a shared machine holds up a quarter of its share
      // rather than all of it; at that height repacking B costs each piece about 3% of its
      // arithmetic. Shorter products keep one piece per thread.
      const i64 tall = m / 768;
      const i64 want = tall > pieces ? (tall < 4 * pieces ? tall : 4 * pieces) : pieces;
      x.split_n = false;
      x.parts = want;
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
