// Fused row kernels (softmax, layer norm, cross-entropy), GELU and AdamW.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops.h"
#include "vmath.h"

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

// max over x[0..n); NaN if any is NaN.
MX_CLONES float row_max(const float* x, i64 n) { return lane_max(x, n, 1.0f); }

// out[i] = exp(x[i] - m); returns the sum.
MX_CLONES float exp_shift_sum(const float* x, float* out, i64 n, float m) {
  for (i64 i = 0; i < n; i++) out[i] = vexp(x[i] - m);
  MX_LANE_SUM(n, out[k], s)
  return s;
}

MX_CLONES float exp_shift_sum_only(const float* x, i64 n, float m) {
  MX_LANE_SUM(n, vexp(x[k] - m), s)
  return s;
}

MX_CLONES void scale_row(float* x, i64 n, float s) {
  for (i64 i = 0; i < n; i++) x[i] *= s;
}

MX_CLONES void sub_row(const float* x, float* out, i64 n, float s) {
  for (i64 i = 0; i < n; i++) out[i] = x[i] - s;
}

MX_CLONES float dot_row(const float* a, const float* b, i64 n) {
  MX_LANE_SUM(n, a[k] * b[k], s)
  return s;
}

MX_CLONES float sum_row(const float* a, i64 n) {
  MX_LANE_SUM(n, a[k], s)
  return s;
}

MX_CLONES void softmax_bwd_row(const float* y, const float* dy, float* dx, i64 n, float s) {
  for (i64 i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - s);
}

MX_CLONES void log_softmax_bwd_row(const float* y, const float* dy, float* dx, i64 n, float s) {
  for (i64 i = 0; i < n; i++) dx[i] = dy[i] - vexp(y[i]) * s;
}

// Sum and sum of squared deviations in double (8 independent lanes, vectorisable).
MX_CLONES double sum_d(const float* x, i64 n) { return lane_sum_d(x, n); }

MX_CLONES double sqdev_d(const float* x, i64 n, double mean) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i64 i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      const double d = (double)x[i + j] - mean;
      acc[j] += d * d;
    }
  double t = 0;
  for (; i < n; i++) {
    const double d = (double)x[i] - mean;
    t += d * d;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + t;
}

MX_CLONES void ln_apply(const float* x, const float* w, const float* b, float* out, i64 n, float mean, float rstd) {
  if (w && b) {
    for (i64 i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else if (w) {
    for (i64 i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i];
  } else if (b) {
    for (i64 i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd + b[i];
  } else {
    for (i64 i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd;
  }
}

// One row of layer-norm backward. gsum/gxsum are computed first, then dx; dw/db partials in double.
MX_CLONES void ln_bwd_row(const float* x, const float* w, const float* dy, float* dx, double* dw, double* db,
                          i64 n, float mean, float rstd) {
  float sg, sgx;
  if (w) {
    MX_LANE_SUM(n, dy[k] * w[k], s1)
    MX_LANE_SUM(n, dy[k] * w[k] * ((x[k] - mean) * rstd), s2)
    sg = s1;
    sgx = s2;
  } else {
    MX_LANE_SUM(n, dy[k], s1)
    MX_LANE_SUM(n, dy[k] * ((x[k] - mean) * rstd), s2)
    sg = s1;
    sgx = s2;
  }
  const float a = sg / (float)n, c = sgx / (float)n;
  for (i64 i = 0; i < n; i++) {
    const float xh = (x[i] - mean) * rstd;
    const float g = w ? dy[i] * w[i] : dy[i];
    dx[i] = rstd * (g - a - xh * c);
  }
  if (dw)
    for (i64 i = 0; i < n; i++) dw[i] += (double)(dy[i] * ((x[i] - mean) * rstd));
  if (db)
    for (i64 i = 0; i < n; i++) db[i] += (double)dy[i];
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

MX_CLONES void gelu_tanh(const float* x, float* o, i64 n) {
  for (i64 i = 0; i < n; i++) {
    const float v = x[i];
    const float u = kSqrt2OverPi * (v + kGeluC * v * v * v);
    o[i] = 0.5f * v * (1.0f + vtanh(u));
  }
}

MX_CLONES void gelu_tanh_bwd(const float* x, const float* dy, float* dx, i64 n) {
  for (i64 i = 0; i < n; i++) {
    const float v = x[i];
    const float u = kSqrt2OverPi * (v + kGeluC * v * v * v);
    const float t = vtanh(u);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * v * v);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
}

MX_CLONES void gelu_erf(const float* x, float* o, i64 n) {
  for (i64 i = 0; i < n; i++) {
    const float v = x[i];
    o[i] = 0.5f * v * vone_plus_erf(v * kInvSqrt2);
  }
}

MX_CLONES void gelu_erf_bwd(const float* x, const float* dy, float* dx, i64 n) {
  for (i64 i = 0; i < n; i++) {
    const float v = x[i];
    const float cdf = 0.5f * vone_plus_erf(v * kInvSqrt2);
    const float pdf = kInvSqrt2Pi * vexp(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

MX_CLONES void ce_bwd_row(const float* x, float* d, i64 n, float lse, float scale, float base) {
  for (i64 i = 0; i < n; i++) d[i] = scale * (vexp(x[i] - lse) - base);
}

MX_CLONES void adamw_range(float* p, const float* g, float* m, float* v, i64 n, float decay, float b1c, float b2,
                           float b2c, float step, float inv_sqrt_bc2, float eps) {
  for (i64 i = 0; i < n; i++) {
    const float gi = g[i];
    const float pi = p[i] * decay;
    const float mi = m[i] + b1c * (gi - m[i]);
    const float vi = v[i] * b2 + b2c * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * (mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps));
  }
}

}  // namespace

void fused_softmax(const float* x, float* out, i64 rows, i64 cols, bool log) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      const float m = row_max(xr, cols);
      if (log) {
        const float s = exp_shift_sum_only(xr, cols, m);
        sub_row(xr, o, cols, m + std::log(s));
      } else {
        const float s = exp_shift_sum(xr, o, cols, m);
        scale_row(o, cols, 1.0f / s);
      }
    }
  });
}

void fused_softmax_bwd(const float* y, const float* dy, float* dx, i64 rows, i64 cols, bool log) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      const float* yr = y + r * cols;
      const float* g = dy + r * cols;
      if (log)
        log_softmax_bwd_row(yr, g, dx + r * cols, cols, sum_row(g, cols));
      else
        softmax_bwd_row(yr, g, dx + r * cols, cols, dot_row(g, yr, cols));
    }
  });
}

void fused_layernorm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 rows,
                     i64 cols, double eps) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const double mu = cols > 0 ? sum_d(xr, cols) / (double)cols : NAN;
      const double var = cols > 0 ? sqdev_d(xr, cols, mu) / (double)cols : NAN;
      const float rs = (float)(1.0 / std::sqrt(var + eps));
      mean[r] = (float)mu;
      rstd[r] = rs;
      ln_apply(xr, w, b, out + r * cols, cols, (float)mu, rs);
    }
  });
}

void fused_layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, i64 rows, i64 cols) {
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
    for (i64 r = r0; r < r1; r++)
      ln_bwd_row(x + r * cols, w, dy + r * cols, dx + r * cols, pdw, pdb, cols, mean[r], rstd[r]);
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

void fused_gelu(const float* x, float* out, i64 n, bool tanh_approx) {
  for_elems(n, [&](i64 a, i64 b) {
    if (tanh_approx)
      gelu_tanh(x + a, out + a, b - a);
    else
      gelu_erf(x + a, out + a, b - a);
  });
}

// Bias + GELU epilogue of a Linear layer: x[r, c] += bias[c] in place (x becomes the
// pre-activation kept for backward), then out = gelu(x), in one pass over each row.
MX_CLONES void add_row(float* x, const float* b, i64 n) {
  for (i64 i = 0; i < n; i++) x[i] += b[i];
}

void fused_bias_gelu(float* x, const float* bias, float* out, i64 rows, i64 cols, bool tanh_approx) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      float* xr = x + r * cols;
      add_row(xr, bias, cols);
      if (tanh_approx)
        gelu_tanh(xr, out + r * cols, cols);
      else
        gelu_erf(xr, out + r * cols, cols);
    }
  });
}

void fused_gelu_bwd(const float* x, const float* dy, float* dx, i64 n, bool tanh_approx) {
  for_elems(n, [&](i64 a, i64 b) {
    if (tanh_approx)
      gelu_tanh_bwd(x + a, dy + a, dx + a, b - a);
    else
      gelu_erf_bwd(x + a, dy + a, dx + a, b - a);
  });
}

void fused_cross_entropy(const float* logits, const int32_t* t, float* losses, float* lse, i64 rows, i64 cols,
                         i64 ignore, double ls) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      const float* x = logits + r * cols;
      const float m = row_max(x, cols);
      const float l = m + std::log(exp_shift_sum_only(x, cols, m));
      lse[r] = l;
      const i64 tr = t[r];
      if (tr == ignore) {
        losses[r] = 0.0f;
        continue;
      }
      if (tr < 0 || tr >= cols) {
        losses[r] = NAN;
        continue;
      }
      double loss = (1.0 - ls) * ((double)l - (double)x[tr]);
      if (ls != 0.0) loss += ls * ((double)l - sum_d(x, cols) / (double)cols);
      losses[r] = (float)loss;
    }
  });
}

void fused_cross_entropy_bwd(const float* logits, const int32_t* t, const float* lse, const float* dlosses,
                             float* dlogits, i64 rows, i64 cols, i64 ignore, double ls) {
  for_rows(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
      float* d = dlogits + r * cols;
      const i64 tr = t[r];
      if (tr == ignore || tr < 0 || tr >= cols) {
        std::memset(d, 0, sizeof(float) * (size_t)cols);
        continue;
      }
      const float scale = dlosses[r];
      const float base = (float)(ls / (double)cols);
      ce_bwd_row(logits + r * cols, d, cols, lse[r], scale, base);
      d[tr] -= scale * (float)(1.0 - ls);
    }
  });
}

void fused_adamw(float* p, const float* g, float* m, float* v, i64 n, double lr, double b1, double b2, double eps,
                 double wd, double bc1, double bc2) {
  const float decay = (float)(1.0 - lr * wd);
  const float step = (float)(lr / bc1);
  const float inv_sqrt_bc2 = (float)(1.0 / std::sqrt(bc2));
  for_elems(n, [&](i64 a, i64 b) {
    adamw_range(p + a, g + a, m + a, v + a, b - a, decay, (float)(1.0 - b1), (float)b2, (float)(1.0 - b2), step,
                inv_sqrt_bc2, (float)eps);
  });
}

}  // namespace mx
