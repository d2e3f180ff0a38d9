// Fused row kernels (softmax, layer norm, RMSNorm, rotary positions, cross-entropy), GELU, SiLU,
// SwiGLU and AdamW: threading over rows or
// elements here, the arithmetic in each family's kernel table (kernels_body.inc, one build per ISA).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "ops.h"

namespace mx {
namespace {

// Run body(r0, r1) over row ranges, in parallel when the work is large.
template <class F>
void for_rows(i64 rows, i64 cols, F&& body, i64 min_work = 1 << 15) {
  const int T = pool_threads();
  if (T <= 1 || rows < 2 || rows * cols < min_work) {
    body(0, rows);
    return;
  }
  const i64 pieces = std::min<i64>(rows, 4 * T);
  const i64 per = (rows + pieces - 1) / pieces;
  auto task = [&](i64 t) {
    const i64 r0 = t * per, r1 = std::min(rows, (t + 1) * per);
    if (r0 < r1) body(r0, r1);
  };
  parallel_for(pieces, task);
}

template <class F>
void for_elems(i64 n, F&& body) {
  const int T = pool_threads();
  if (T <= 1 || n < (1 << 15)) {
    body(0, n);
    return;
  }
  const i64 pieces = std::min<i64>(4 * T, n / 4096);
  const i64 per = ((n + pieces - 1) / pieces + 63) & ~(i64)63;
  auto task = [&](i64 t) {
    const i64 a = t * per, b = std::min(n, (t + 1) * per);
    if (a < b) body(a, b);
  };
  parallel_for(pieces, task);
}

}  // namespace

void fused_softmax(const float* x, float* out, i64 rows, i64 cols, bool log) {
  const Kernels* K = kernel_for(F_SOFTMAX);
  for_rows(rows, cols, [&](i64 r0, i64 r1) { K->softmax_rows(x, out, r0, r1, cols, log); });
}

void fused_softmax_bwd(const float* y, const float* dy, float* dx, i64 rows, i64 cols, bool log) {
  const Kernels* K = kernel_for(F_SOFTMAX);
  for_rows(rows, cols, [&](i64 r0, i64 r1) { K->softmax_bwd_rows(y, dy, dx, r0, r1, cols, log); });
}

void fused_layernorm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 rows,
                     i64 cols, double eps) {
  const Kernels* K = kernel_for(F_LAYERNORM);
  for_rows(rows, cols, [&](i64 r0, i64 r1) { K->layernorm_rows(x, w, b, out, mean, rstd, r0, r1, cols, eps); });
}

void fused_layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, i64 rows, i64 cols) {
  const Kernels* K = kernel_for(F_LAYERNORM);
  const int T = pool_threads();
  const bool par = T > 1 && rows >= 2 && rows * cols >= (1 << 15);
  const i64 pieces = par ? std::min<i64>(rows, T) : 1;
  const i64 per = (rows + pieces - 1) / pieces;
  const bool need = dw || db;
  std::vector<double> part(need ? (size_t)(pieces * 2 * cols) : 0, 0.0);
  auto task = [&](i64 t) {
    const i64 r0 = t * per, r1 = std::min(rows, (t + 1) * per);
    double* pdw = dw ? part.data() + t * 2 * cols : nullptr;
    double* pdb = db ? part.data() + t * 2 * cols + cols : nullptr;
    if (r0 < r1) K->layernorm_bwd_rows(x, w, mean, rstd, dy, dx, pdw, pdb, r0, r1, cols);
  };
  if (pieces > 1)
    parallel_for(pieces, task);
  else
    task(0);
  if (need) {
    for (i64 c = 0; c < cols; c++) {
      double sw = 0, sb = 0;
      for (i64 t = 0; t < pieces; t++) {
        sw += part[(size_t)(t * 2 * cols + c)];
        sb += part[(size_t)(t * 2 * cols + cols + c)];
      }
      if (dw) dw[c] += (float)sw;
      if (db) db[c] += (float)sb;
    }
  }
}

void fused_rmsnorm(const float* x, const float* w, float* out, float* rstd, i64 rows, i64 cols, double eps) {
  const Kernels* K = kernel_for(F_LAYERNORM);
  for_rows(rows, cols, [&](i64 r0, i64 r1) { K->rmsnorm_rows(x, w, out, rstd, r0, r1, cols, eps); });
}

void fused_rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       i64 rows, i64 cols) {
  const Kernels* K = kernel_for(F_LAYERNORM);
  const int T = pool_threads();
  const bool par = T > 1 && rows >= 2 && rows * cols >= (1 << 15);
  const i64 pieces = par ? std::min<i64>(rows, T) : 1;
  const i64 per = (rows + pieces - 1) / pieces;
  // Each piece sums its rows' dw in double; the pieces are added in a fixed order (deterministic).
  std::vector<double> part(dw ? (size_t)(pieces * cols) : 0, 0.0);
  auto task = [&](i64 t) {
    const i64 r0 = t * per, r1 = std::min(rows, (t + 1) * per);
    if (r0 < r1) K->rmsnorm_bwd_rows(x, w, rstd, dy, dx, dw ? part.data() + t * cols : nullptr, r0, r1, cols);
  };
  if (pieces > 1)
    parallel_for(pieces, task);
  else
    task(0);
  if (dw)
    for (i64 c = 0; c < cols; c++) {
      double s = 0;
      for (i64 t = 0; t < pieces; t++) s += part[(size_t)(t * cols + c)];
      dw[c] += (float)s;
    }
}

void fused_silu(const float* x, float* out, i64 n) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->silu(x + a, out + a, b - a); });
}

void fused_silu_bwd(const float* x, const float* dy, float* dx, i64 n) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->silu_bwd(x + a, dy + a, dx + a, b - a); });
}

void fused_swiglu(const float* gate, const float* up, float* out, i64 n) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->swiglu(gate + a, up + a, out + a, b - a); });
}

void fused_swiglu_bwd(const float* gate, const float* up, const float* dy, float* dgate, float* dup, i64 n) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->swiglu_bwd(gate + a, up + a, dy + a, dgate + a, dup + a, b - a); });
}

void fused_rope(const float* x, const float* cos, const float* sin, float* out, i64 n, i64 T, i64 H, i64 hs,
                bool inverse) {
  const Kernels* K = kernel_for(F_ELEMENTWISE);
  for_rows(n * T * H, hs,
           [&](i64 r0, i64 r1) { K->rope_rows(x, cos, sin, out, r0, r1, T, H, hs, inverse); });
}

void fused_gelu(const float* x, float* out, i64 n, bool tanh_approx) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->gelu(x + a, out + a, b - a, tanh_approx); });
}

void fused_bias_gelu(float* x, const float* bias, float* out, i64 rows, i64 cols, bool tanh_approx) {
  const Kernels* K = kernel_for(F_GELU);
  for_rows(rows, cols, [&](i64 r0, i64 r1) { K->bias_gelu_rows(x, bias, out, r0, r1, cols, tanh_approx); });
}

void fused_gelu_bwd(const float* x, const float* dy, float* dx, i64 n, bool tanh_approx) {
  const Kernels* K = kernel_for(F_GELU);
  for_elems(n, [&](i64 a, i64 b) { K->gelu_bwd(x + a, dy + a, dx + a, b - a, tanh_approx); });
}

void fused_cross_entropy(const float* logits, const int32_t* t, float* losses, float* lse, float* probs, i64 rows,
                         i64 cols, i64 ignore, double ls) {
  const Kernels* K = kernel_for(F_CROSS_ENTROPY);
  for_rows(rows, cols,
           [&](i64 r0, i64 r1) { K->cross_entropy_rows(logits, t, losses, lse, probs, r0, r1, cols, ignore, ls); });
}

void fused_cross_entropy_bwd(const float* logits, const int32_t* t, const float* lse, const float* dlosses,
                             float* dlogits, i64 rows, i64 cols, i64 ignore, double ls, bool from_probs) {
  const Kernels* K = kernel_for(F_CROSS_ENTROPY);
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    K->cross_entropy_bwd_rows(logits, t, lse, dlosses, dlogits, r0, r1, cols, ignore, ls, from_probs);
  });
}

void fused_adamw(float* p, const float* g, float* m, float* v, i64 n, double lr, double b1, double b2, double eps,
                 double wd, double bc1, double bc2) {
  const Kernels* K = kernel_for(F_ADAMW);
  const AdamWArgs h{(float)(1.0 - lr * wd), (float)(1.0 - b1), (float)b2, (float)(1.0 - b2), (float)(lr / bc1),
                    (float)(1.0 / std::sqrt(bc2)), (float)eps};
  for_elems(n, [&](i64 a, i64 b) { K->adamw(p + a, g + a, m + a, v + a, b - a, h); });
}

}  // namespace mx
