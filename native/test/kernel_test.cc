// Every kernel family of every instruction set this CPU runs, against plain double-precision loops:
// GEMM and matrix-vector products (all layouts and edge tiles), the element-wise ops with special
// values, softmax, layer norm, GELU, cross-entropy, AdamW and attention forward and backward, on 1
// and 3 threads. Built and run by scripts/test-native-kernels.mjs, natively and, for AArch64 (NEON),
// cross-compiled and run under qemu-aarch64. No Node: the kernels are called through the same
// front ends (gemm.cc, fused.cc, attention.cc) the addon uses.
//
// It also runs the AVX-512 kernel bodies' logic on any CPU: kernels_generic.cc built again with
// 16-lane portable vectors and the AVX-512 tile sizes (table "w16"), and the NEON bodies' with
// 4-lane vectors and NEON's tile (table "w4r8").
//
// Exit status 0 when every check passes; each failure prints what, where and by how much.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../ops.h"
#include "../quant.h"

#ifdef MX_KT_PORTABLE  // built by the host's run only
namespace mx {
extern const Kernels kernels_w16;
extern const Kernels kernels_w4r8;
}  // namespace mx
#endif

using namespace mx;
using std::vector;

namespace {

int g_failures = 0;
int g_checks = 0;
std::string g_where;

uint64_t g_seed = 88172645463325252ull;
double urand() {  // xorshift64*, uniform in [0, 1)
  g_seed ^= g_seed >> 12;
  g_seed ^= g_seed << 25;
  g_seed ^= g_seed >> 27;
  return (double)((g_seed * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
int irand(int lo, int hi) { return lo + (int)(urand() * (hi - lo + 1)); }
vector<float> randv(size_t n, double scale = 1.0) {
  vector<float> v(n);
  for (auto& x : v) x = (float)((urand() * 2 - 1) * scale);
  return v;
}

// |got - want| <= atol + rtol * scale_of(want) for every element, NaN where want is NaN.
// scale: 0 = elementwise |want|, otherwise a shared magnitude (max |want| of the whole result).
bool close(const char* what, const float* got, const double* want, size_t n, double rtol, double atol,
           bool shared = false) {
  g_checks++;
  double mx_ = 0;
  if (shared)
    for (size_t i = 0; i < n; i++)
      if (std::isfinite(want[i])) mx_ = std::fmax(mx_, std::fabs(want[i]));
  for (size_t i = 0; i < n; i++) {
    const double w = want[i], g = got[i];
    if (std::isnan(w)) {
      if (std::isnan(g)) continue;
    } else if (std::isinf(w)) {
      if (g == w) continue;
    } else {
      const double tol = atol + rtol * (shared ? mx_ : std::fabs(w));
      if (std::fabs(g - w) <= tol) continue;
    }
    std::printf("FAIL %s: %s[%zu] = %.9g, expected %.9g\n", g_where.c_str(), what, i, g, w);
    g_failures++;
    return false;
  }
  return true;
}

// ---- GEMM ------------------------------------------------------------------------------------------

void check_matmul(int batch, int m, int n, int k, bool ta, bool tb, bool share_b) {
  // A (batch, m, k) row-major or transposed storage; B likewise; B shared (batch stride 0) or not.
  const int ab = m * k, bb = k * n;
  vector<float> A = randv((size_t)batch * ab), Bm = randv((size_t)(share_b ? 1 : batch) * bb);
  const i64 rsa = ta ? 1 : k, csa = ta ? m : 1, rsb = tb ? 1 : n, csb = tb ? k : 1;
  vector<float> C((size_t)batch * m * n, NAN);
  matmul(A.data(), ab, rsa, csa, Bm.data(), share_b ? 0 : bb, rsb, csb, C.data(), batch, m, n, k);
  vector<double> want(C.size()), mag(C.size());
  for (int b = 0; b < batch; b++)
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double s = 0, a = 0;
        for (int p = 0; p < k; p++) {
          const double x = A[(size_t)b * ab + i * rsa + p * csa];
          const double y = Bm[(size_t)(share_b ? 0 : b) * bb + p * rsb + j * csb];
          s += x * y;
          a += std::fabs(x * y);
        }
        want[((size_t)b * m + i) * n + j] = s;
        mag[((size_t)b * m + i) * n + j] = a;
      }
  g_checks++;
  for (size_t i = 0; i < C.size(); i++) {
    if (std::fabs(C[i] - want[i]) <= 2e-6 * mag[i] + 1e-6) continue;
    std::printf("FAIL %s: matmul b%d %dx%dx%d ta=%d tb=%d share=%d [%zu] = %.9g, expected %.9g\n", g_where.c_str(),
                batch, m, n, k, ta, tb, share_b, i, C[i], want[i]);
    g_failures++;
    return;
  }
}

void test_gemm() {
  const int sizes[] = {1, 2, 3, 5, 7, 8, 12, 13, 16, 17, 31, 33, 48, 64, 65, 100};
  for (int it = 0; it < 120; it++) {
    const int m = sizes[irand(0, 15)], n = sizes[irand(0, 15)], k = sizes[irand(0, 15)];
    check_matmul(irand(1, 3), m, n, k, urand() < 0.5, urand() < 0.5, urand() < 0.3);
  }
  // cache blocks, tall products, matrix-vector and few-row paths, thread splits
  check_matmul(1, 300, 200, 300, false, false, false);
  check_matmul(1, 64, 770, 513, false, true, false);
  check_matmul(2, 129, 45, 260, true, false, true);
  check_matmul(1, 1, 1000, 300, false, true, false);
  check_matmul(3, 1, 300, 129, false, false, false);
  check_matmul(1, 700, 1, 64, false, false, false);
  check_matmul(1, 9, 500, 200, false, true, false);
  // A panels packed with 8-float stores that overlap the next p's group: transposed A exactly one
  // panel wide (column stride 6) and row-major A whose k leaves a tail after the 8-column blocks.
  check_matmul(1, 6, 40, 37, true, false, false);
  check_matmul(2, 12, 20, 19, false, false, false);
}

// ---- element-wise ------------------------------------------------------------------------------------

double unary_ref(int op, double x) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return std::exp(x);
    case U_LOG: return std::log(x);
    case U_SQRT: return std::sqrt(x);
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return 1 / (1 + std::exp(-x));
    case U_RELU: return x < 0 ? 0 : x;
    case U_ERF: return std::erf(x);
    case U_ABS: return std::fabs(x);
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
  }
  return 0;
}

double binary_ref(int op, double x, double y) {
  switch (op) {
    case B_ADD: return (float)x + (float)y;
    case B_SUB: return (float)x - (float)y;
    case B_MUL: return (float)x * (float)y;
    case B_DIV: return (float)x / (float)y;
    case B_POW: return std::pow(x, y);
    case B_MAX: return std::isnan(x) || std::isnan(y) ? NAN : std::fmax(x, y);
    case B_MIN: return std::isnan(x) || std::isnan(y) ? NAN : std::fmin(x, y);
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    case B_GE: return x >= y;
  }
  return 0;
}

void test_elementwise(const Kernels* K) {
  const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -87.0f, 100.0f, -110.0f, 20.5f,
                            -20.5f, 0.62f, -0.63f, 0.49f, 3.0f, -3.0f, 9.5f, -9.5f, 1e-8f};
  const int ns[] = {1, 3, 7, 8, 15, 16, 17, 33, 100};
  for (int n : ns) {
    vector<float> x = randv((size_t)n, 4.0), y = randv((size_t)n, 4.0), o((size_t)n);
    for (int i = 0; i < n && n > 20; i++) x[(size_t)i] = specials[i % 21];
    for (int op = 0; op < U_COUNT; op++) {
      vector<float> xi = x;
      if (op == U_LOG || op == U_SQRT)
        for (auto& v : xi) v = std::fabs(v);
      K->unary(op, xi.data(), o.data(), n);
      vector<double> want((size_t)n);
      for (int i = 0; i < n; i++) want[(size_t)i] = (float)unary_ref(op, xi[(size_t)i]);  // float's overflow
      char what[32];
      std::snprintf(what, sizeof what, "unary %d n%d", op, n);
      // exp, tanh, erf, sigmoid: polynomial approximations to ~1-3 ulp; near erf's and tanh's
      // zeros the absolute error matters.
      close(what, o.data(), want.data(), (size_t)n, 2e-6, 1e-7);
    }
    for (int op = 0; op < B_COUNT; op++) {
      for (int mode = 0; mode < 3; mode++) {
        vector<float> a = x, b = y;
        if (op == B_POW)
          for (auto& v : a) v = std::fabs(v) + 0.5f;
        if (op >= B_EQ && n > 2) b[1] = a[1];  // some equal pairs
        K->binary(op, mode, a.data(), b.data(), o.data(), n);
        vector<double> want((size_t)n);
        for (int i = 0; i < n; i++) {
          const double av = a[mode == 2 ? 0 : (size_t)i], bv = b[mode == 1 ? 0 : (size_t)i];
          want[(size_t)i] = binary_ref(op, av, bv);
        }
        char what[40];
        std::snprintf(what, sizeof what, "binary %d mode %d n%d", op, mode, n);
        close(what, o.data(), want.data(), (size_t)n, op == B_POW ? 2e-6 : 0, 0);
      }
    }
  }
}

// ---- row kernels -------------------------------------------------------------------------------------

void test_rows() {
  const int shapes[][2] = {{1, 1}, {3, 7}, {5, 31}, {17, 100}, {64, 1000}, {300, 65}};
  for (const auto& sh : shapes) {
    const int rows = sh[0], cols = sh[1];
    const size_t N = (size_t)rows * cols;
    char what[64];
    // softmax / log_softmax, forward and backward
    for (int log = 0; log < 2; log++) {
      vector<float> x = randv(N, 8.0), y(N), dy = randv(N), dx(N);
      fused_softmax(x.data(), y.data(), rows, cols, log);
      vector<double> want(N), dwant(N);
      for (int r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0, g = 0;
        for (int c = 0; c < cols; c++) m = std::fmax(m, x[(size_t)r * cols + c]);
        for (int c = 0; c < cols; c++) s += std::exp(x[(size_t)r * cols + c] - m);
        for (int c = 0; c < cols; c++) {
          const double v = x[(size_t)r * cols + c] - m;
          want[(size_t)r * cols + c] = log ? v - std::log(s) : std::exp(v) / s;
        }
        for (int c = 0; c < cols; c++)
          g += log ? dy[(size_t)r * cols + c] : dy[(size_t)r * cols + c] * (double)y[(size_t)r * cols + c];
        for (int c = 0; c < cols; c++) {
          const size_t i = (size_t)r * cols + c;
          dwant[i] = log ? dy[i] - std::exp((double)y[i]) * g : (double)y[i] * (dy[i] - g);
        }
      }
      std::snprintf(what, sizeof what, "softmax log=%d %dx%d", log, rows, cols);
      // log_softmax's x - lse is exact only to float's spacing at the row's largest values
      close(what, y.data(), want.data(), N, log ? 1e-6 : 1e-5, 1e-7, log);
      fused_softmax_bwd(y.data(), dy.data(), dx.data(), rows, cols, log);
      std::snprintf(what, sizeof what, "softmax_bwd log=%d %dx%d", log, rows, cols);
      close(what, dx.data(), dwant.data(), N, 1e-5, 1e-5);
    }
    // layer norm with and without affine, forward and backward
    for (int affine = 0; affine < 2; affine++) {
      vector<float> x = randv(N, 3.0), w = randv((size_t)cols), b = randv((size_t)cols), out(N), mean((size_t)rows),
                    rstd((size_t)rows), dy = randv(N), dx(N), dw((size_t)cols, 0.5f), db((size_t)cols, -0.25f);
      for (auto& v : x) v += 2.0f;
      const double eps = 1e-5;
      fused_layernorm(x.data(), affine ? w.data() : nullptr, affine ? b.data() : nullptr, out.data(), mean.data(),
                      rstd.data(), rows, cols, eps);
      fused_layernorm_bwd(x.data(), affine ? w.data() : nullptr, mean.data(), rstd.data(), dy.data(), dx.data(),
                          affine ? dw.data() : nullptr, affine ? db.data() : nullptr, rows, cols);
      vector<double> want(N), dxw(N), dww((size_t)cols, 0.5), dbw((size_t)cols, -0.25);
      for (int r = 0; r < rows; r++) {
        const float* xr = x.data() + (size_t)r * cols;
        double mu = 0, var = 0;
        for (int c = 0; c < cols; c++) mu += xr[c];
        mu /= cols;
        for (int c = 0; c < cols; c++) var += (xr[c] - mu) * (xr[c] - mu);
        var /= cols;
        const double rs = 1 / std::sqrt(var + eps);
        double sg = 0, sgx = 0;
        for (int c = 0; c < cols; c++) {
          const double xh = (xr[c] - mu) * rs, g = dy[(size_t)r * cols + c] * (affine ? w[(size_t)c] : 1.0);
          want[(size_t)r * cols + c] = affine ? xh * w[(size_t)c] + b[(size_t)c] : xh;
          sg += g;
          sgx += g * xh;
          dww[(size_t)c] += dy[(size_t)r * cols + c] * xh;
          dbw[(size_t)c] += dy[(size_t)r * cols + c];
        }
        for (int c = 0; c < cols; c++) {
          const double xh = (xr[c] - mu) * rs, g = dy[(size_t)r * cols + c] * (affine ? w[(size_t)c] : 1.0);
          dxw[(size_t)r * cols + c] = rs * (g - sg / cols - xh * sgx / cols);
        }
      }
      std::snprintf(what, sizeof what, "layernorm affine=%d %dx%d", affine, rows, cols);
      close(what, out.data(), want.data(), N, 1e-5, 1e-5);
      std::snprintf(what, sizeof what, "layernorm_bwd dx affine=%d %dx%d", affine, rows, cols);
      close(what, dx.data(), dxw.data(), N, 1e-4, 1e-5, true);
      if (affine) {
        std::snprintf(what, sizeof what, "layernorm_bwd dw %dx%d", rows, cols);
        close(what, dw.data(), dww.data(), (size_t)cols, 1e-5, 1e-4, true);
        std::snprintf(what, sizeof what, "layernorm_bwd db %dx%d", rows, cols);
        close(what, db.data(), dbw.data(), (size_t)cols, 1e-5, 1e-4, true);
      }
    }
    // GELU (tanh and exact) forward, backward, and the bias + GELU epilogue
    for (int th = 0; th < 2; th++) {
      vector<float> x = randv(N, 5.0), out(N), dy = randv(N), dx(N), bias = randv((size_t)cols), xb = x, outb(N);
      fused_gelu(x.data(), out.data(), (i64)N, th);
      fused_gelu_bwd(x.data(), dy.data(), dx.data(), (i64)N, th);
      fused_bias_gelu(xb.data(), bias.data(), outb.data(), rows, cols, th);
      vector<double> want(N), dwant(N), wantb(N), xbw(N);
      auto gelu = [&](double v) {
        if (th) return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      };
      for (size_t i = 0; i < N; i++) {
        const double v = x[i];
        want[i] = gelu(v);
        double d;
        if (th) {
          const double u = 0.7978845608028654 * (v + 0.044715 * v * v * v), t = std::tanh(u);
          d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * v * v);
        } else {
          d = 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
        }
        dwant[i] = dy[i] * d;
        xbw[i] = (float)(x[i] + bias[i % (size_t)cols]);
        wantb[i] = gelu(xbw[i]);
      }
      std::snprintf(what, sizeof what, "gelu tanh=%d n%zu", th, N);
      close(what, out.data(), want.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "gelu_bwd tanh=%d n%zu", th, N);
      close(what, dx.data(), dwant.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "bias_gelu x tanh=%d %dx%d", th, rows, cols);
      close(what, xb.data(), xbw.data(), N, 0, 0);
      std::snprintf(what, sizeof what, "bias_gelu out tanh=%d %dx%d", th, rows, cols);
      close(what, outb.data(), wantb.data(), N, 1e-5, 1e-6);
    }
    // RMSNorm with and without a weight, forward and backward
    for (int affine = 0; affine < 2; affine++) {
      vector<float> x = randv(N, 3.0), w = randv((size_t)cols), out(N), rstd((size_t)rows), dy = randv(N), dx(N),
                    dw((size_t)cols, 0.5f);
      const double eps = 1e-6;
      fused_rmsnorm(x.data(), affine ? w.data() : nullptr, out.data(), rstd.data(), rows, cols, eps);
      fused_rmsnorm_bwd(x.data(), affine ? w.data() : nullptr, rstd.data(), dy.data(), dx.data(),
                        affine ? dw.data() : nullptr, rows, cols);
      vector<double> want(N), dxw(N), dww((size_t)cols, 0.5);
      for (int r = 0; r < rows; r++) {
        const float* xr = x.data() + (size_t)r * cols;
        double ms = 0;
        for (int c = 0; c < cols; c++) ms += (double)xr[c] * xr[c];
        const double rs = 1 / std::sqrt(ms / cols + eps);
        double sgx = 0;
        for (int c = 0; c < cols; c++) {
          const size_t i = (size_t)r * cols + c;
          const double g = dy[i] * (affine ? w[(size_t)c] : 1.0);
          want[i] = xr[c] * rs * (affine ? w[(size_t)c] : 1.0);
          sgx += g * xr[c];
          dww[(size_t)c] += dy[i] * xr[c] * rs;
        }
        for (int c = 0; c < cols; c++) {
          const size_t i = (size_t)r * cols + c;
          const double g = dy[i] * (affine ? w[(size_t)c] : 1.0);
          dxw[i] = rs * (g - xr[c] * rs * rs * sgx / cols);
        }
      }
      std::snprintf(what, sizeof what, "rmsnorm affine=%d %dx%d", affine, rows, cols);
      close(what, out.data(), want.data(), N, 1e-5, 1e-5);
      std::snprintf(what, sizeof what, "rmsnorm_bwd dx affine=%d %dx%d", affine, rows, cols);
      close(what, dx.data(), dxw.data(), N, 1e-4, 1e-5, true);
      if (affine) {
        std::snprintf(what, sizeof what, "rmsnorm_bwd dw %dx%d", rows, cols);
        close(what, dw.data(), dww.data(), (size_t)cols, 1e-5, 1e-4, true);
      }
    }
    // SiLU and SwiGLU forward and backward
    {
      vector<float> x = randv(N, 8.0), u = randv(N, 2.0), out(N), outg(N), dy = randv(N), dx(N), dg(N), du(N);
      fused_silu(x.data(), out.data(), (i64)N);
      fused_silu_bwd(x.data(), dy.data(), dx.data(), (i64)N);
      fused_swiglu(x.data(), u.data(), outg.data(), (i64)N);
      fused_swiglu_bwd(x.data(), u.data(), dy.data(), dg.data(), du.data(), (i64)N);
      vector<double> want(N), dwant(N), wantg(N), dgw(N), duw(N);
      for (size_t i = 0; i < N; i++) {
        const double v = x[i], sg = 1 / (1 + std::exp(-v)), d = sg * (1 + v * (1 - sg));
        want[i] = v * sg;
        dwant[i] = dy[i] * d;
        wantg[i] = v * sg * u[i];
        dgw[i] = dy[i] * u[i] * d;
        duw[i] = dy[i] * v * sg;
      }
      std::snprintf(what, sizeof what, "silu n%zu", N);
      close(what, out.data(), want.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "silu_bwd n%zu", N);
      close(what, dx.data(), dwant.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "swiglu n%zu", N);
      close(what, outg.data(), wantg.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "swiglu_bwd dgate n%zu", N);
      close(what, dg.data(), dgw.data(), N, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "swiglu_bwd dup n%zu", N);
      close(what, du.data(), duw.data(), N, 1e-5, 1e-6);
    }
    // Rotary positions: rows of `cols` (rounded up to even) as (n, T, H, hs) with T = 3, H = 2 where
    // the rows allow; forward and the inverse (transpose), in place for the inverse.
    {
      const int hs = cols + (cols & 1), T = rows % 3 == 0 ? 3 : 1, H = rows % 2 == 0 ? 2 : 1;
      const int nrow = rows - rows % (T * H), n = nrow / (T * H), half = hs / 2;
      const size_t M = (size_t)nrow * hs;
      vector<float> x = randv(M, 3.0), c = randv((size_t)T * hs), sn = randv((size_t)T * hs), out(M);
      fused_rope(x.data(), c.data(), sn.data(), out.data(), n, T, H, hs, false);
      vector<float> back = x;
      fused_rope(back.data(), c.data(), sn.data(), back.data(), n, T, H, hs, true);
      vector<double> want(M), wantb(M);
      for (int r = 0; r < nrow; r++) {
        const int t = (r / H) % T;
        const float *xr = x.data() + (size_t)r * hs, *cr = c.data() + (size_t)t * hs, *sr = sn.data() + (size_t)t * hs;
        for (int i = 0; i < half; i++) {
          const double x1 = xr[i], x2 = xr[i + half];
          want[(size_t)r * hs + i] = x1 * cr[i] - x2 * sr[i];
          want[(size_t)r * hs + i + half] = x2 * cr[i + half] + x1 * sr[i + half];
          wantb[(size_t)r * hs + i] = x1 * cr[i] + x2 * sr[i + half];
          wantb[(size_t)r * hs + i + half] = x2 * cr[i + half] - x1 * sr[i];
        }
      }
      std::snprintf(what, sizeof what, "rope %dx%dx%dx%d", n, T, H, hs);
      close(what, out.data(), want.data(), M, 1e-5, 1e-6);
      std::snprintf(what, sizeof what, "rope inverse %dx%dx%dx%d", n, T, H, hs);
      close(what, back.data(), wantb.data(), M, 1e-5, 1e-6);
    }
    // cross-entropy with an ignored row, an out-of-range target and label smoothing
    for (double ls : {0.0, 0.1}) {
      vector<float> x = randv(N, 6.0), losses((size_t)rows), lse((size_t)rows), dl = randv((size_t)rows), d(N);
      vector<int32_t> t((size_t)rows);
      for (int r = 0; r < rows; r++) t[(size_t)r] = irand(0, cols - 1);
      const int ignore = -100;
      if (rows > 2) t[1] = ignore;
      if (rows > 3) t[2] = cols + 5;
      fused_cross_entropy(x.data(), t.data(), losses.data(), lse.data(), nullptr, rows, cols, ignore, ls);
      fused_cross_entropy_bwd(x.data(), t.data(), lse.data(), dl.data(), d.data(), rows, cols, ignore, ls, false);
      // The same with the softmax kept by the forward and the backward computed from it, in place.
      vector<float> losses2((size_t)rows), lse2((size_t)rows), p(N, NAN);
      fused_cross_entropy(x.data(), t.data(), losses2.data(), lse2.data(), p.data(), rows, cols, ignore, ls);
      fused_cross_entropy_bwd(p.data(), t.data(), lse2.data(), dl.data(), p.data(), rows, cols, ignore, ls, true);
      vector<double> wl((size_t)rows), wlse((size_t)rows), wd(N);
      for (int r = 0; r < rows; r++) {
        const float* xr = x.data() + (size_t)r * cols;
        double m = -INFINITY, s = 0, sum = 0;
        for (int c = 0; c < cols; c++) m = std::fmax(m, xr[c]);
        for (int c = 0; c < cols; c++) s += std::exp(xr[c] - m), sum += xr[c];
        const double l = m + std::log(s);
        const int tr = t[(size_t)r];
        wlse[(size_t)r] = tr == ignore ? 0 : l;  // an ignored row has no log-sum-exp
        const bool valid = tr != ignore && tr >= 0 && tr < cols;
        wl[(size_t)r] = tr == ignore ? 0 : !valid ? NAN : (1 - ls) * (l - xr[tr]) + ls * (l - sum / cols);
        for (int c = 0; c < cols; c++)
          wd[(size_t)r * cols + c] =
              valid ? dl[(size_t)r] * (std::exp(xr[c] - l) - ls / cols - (c == tr ? 1 - ls : 0)) : 0;
      }
      std::snprintf(what, sizeof what, "cross_entropy ls=%g %dx%d", ls, rows, cols);
      close(what, losses.data(), wl.data(), (size_t)rows, 1e-5, 1e-5);
      close("cross_entropy lse", lse.data(), wlse.data(), (size_t)rows, 1e-6, 1e-6);
      std::snprintf(what, sizeof what, "cross_entropy_bwd ls=%g %dx%d", ls, rows, cols);
      close(what, d.data(), wd.data(), N, 1e-5, 1e-7);
      std::snprintf(what, sizeof what, "cross_entropy with probs ls=%g %dx%d", ls, rows, cols);
      close(what, losses2.data(), wl.data(), (size_t)rows, 1e-5, 1e-5);
      std::snprintf(what, sizeof what, "cross_entropy_bwd from probs ls=%g %dx%d", ls, rows, cols);
      close(what, p.data(), wd.data(), N, 1e-5, 1e-7);
    }
  }
  // AdamW
  for (int n : {1, 13, 100001}) {
    vector<float> p = randv((size_t)n), g = randv((size_t)n), m = randv((size_t)n, 0.1), v = randv((size_t)n, 0.1);
    for (auto& x : v) x = std::fabs(x);
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01, bc1 = 1 - std::pow(b1, 7),
                 bc2 = 1 - std::pow(b2, 7);
    vector<double> ep(p.begin(), p.end()), em(m.begin(), m.end()), ev(v.begin(), v.end());
    for (int i = 0; i < n; i++) {
      ep[(size_t)i] -= lr * wd * ep[(size_t)i];
      em[(size_t)i] = b1 * em[(size_t)i] + (1 - b1) * g[(size_t)i];
      ev[(size_t)i] = b2 * ev[(size_t)i] + (1 - b2) * g[(size_t)i] * g[(size_t)i];
      ep[(size_t)i] -= lr * (em[(size_t)i] / bc1) / (std::sqrt(ev[(size_t)i] / bc2) + eps);
    }
    fused_adamw(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, bc1, bc2);
    close("adamw m", m.data(), em.data(), (size_t)n, 1e-5, 1e-7);
    close("adamw v", v.data(), ev.data(), (size_t)n, 1e-5, 1e-9);
    close("adamw p", p.data(), ep.data(), (size_t)n, 1e-5, 1e-7);
  }
}

// ---- attention -----------------------------------------------------------------------------------------

void check_attention(int bh, int T, int S, int hs, bool causal) {
  const size_t nq = (size_t)bh * T * hs, nk = (size_t)bh * S * hs;
  vector<float> q = randv(nq, 2.0), k = randv(nk, 2.0), v = randv(nk), out(nq, NAN), lse((size_t)bh * T, NAN),
                dout = randv(nq), dq(nq, NAN), dk(nk, NAN), dv(nk, NAN);
  const double scale = 1 / std::sqrt((double)hs);
  fused_attention(q.data(), k.data(), v.data(), out.data(), lse.data(), bh, T, S, hs, scale, causal);
  fused_attention_bwd(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(), dk.data(),
                      dv.data(), bh, T, S, hs, scale, causal);
  vector<double> wo(nq), wl((size_t)bh * T), wdq(nq, 0), wdk(nk, 0), wdv(nk, 0), P((size_t)S), dP((size_t)S);
  for (int b = 0; b < bh; b++) {
    for (int i = 0; i < T; i++) {
      const float* qi = q.data() + ((size_t)b * T + i) * hs;
      const float* gi = dout.data() + ((size_t)b * T + i) * hs;
      const int nv = causal ? std::min(S, i + S - T + 1) : S;
      double* oi = wo.data() + ((size_t)b * T + i) * hs;
      if (nv <= 0) {
        for (int d = 0; d < hs; d++) oi[d] = NAN;
        wl[(size_t)b * T + i] = -INFINITY;
        continue;
      }
      double m = -INFINITY, s = 0;
      for (int j = 0; j < nv; j++) {
        double dot = 0;
        for (int d = 0; d < hs; d++) dot += (double)qi[d] * k[((size_t)b * S + j) * hs + d];
        P[(size_t)j] = dot * scale;
        m = std::fmax(m, P[(size_t)j]);
      }
      for (int j = 0; j < nv; j++) s += (P[(size_t)j] = std::exp(P[(size_t)j] - m));
      for (int d = 0; d < hs; d++) oi[d] = 0;
      for (int j = 0; j < nv; j++) {
        P[(size_t)j] /= s;
        for (int d = 0; d < hs; d++) oi[d] += P[(size_t)j] * v[((size_t)b * S + j) * hs + d];
      }
      wl[(size_t)b * T + i] = m + std::log(s);
      double D = 0;
      for (int d = 0; d < hs; d++) D += (double)gi[d] * oi[d];
      for (int j = 0; j < nv; j++) {
        double dot = 0;
        for (int d = 0; d < hs; d++) dot += (double)gi[d] * v[((size_t)b * S + j) * hs + d];
        const double ds = P[(size_t)j] * (dot - D) * scale;
        for (int d = 0; d < hs; d++) {
          wdq[((size_t)b * T + i) * hs + d] += ds * k[((size_t)b * S + j) * hs + d];
          wdk[((size_t)b * S + j) * hs + d] += ds * qi[d];
          wdv[((size_t)b * S + j) * hs + d] += P[(size_t)j] * gi[d];
        }
      }
    }
  }
  char what[96];
  std::snprintf(what, sizeof what, "attention bh=%d T=%d S=%d hs=%d causal=%d", bh, T, S, hs, causal);
  std::string w = what;
  close((w + " out").c_str(), out.data(), wo.data(), nq, 2e-5, 1e-6, true);
  close((w + " lse").c_str(), lse.data(), wl.data(), wl.size(), 1e-5, 1e-5);
  close((w + " dq").c_str(), dq.data(), wdq.data(), nq, 3e-5, 1e-6, true);
  close((w + " dk").c_str(), dk.data(), wdk.data(), nk, 3e-5, 1e-6, true);
  close((w + " dv").c_str(), dv.data(), wdv.data(), nk, 3e-5, 1e-6, true);
}

void test_attention() {
  const int cases[][5] = {{1, 1, 1, 1, 1},    {7, 1, 256, 64, 1},   {7, 1, 37, 13, 0},  {3, 2, 5, 16, 1},
                          {1, 64, 64, 64, 1}, {2, 33, 70, 7, 1},    {7, 40, 40, 1, 0},  {1, 100, 257, 64, 1},
                          {2, 65, 129, 48, 0}, {1, 5, 3, 4, 1},     {2, 40, 300, 128, 1}, {1, 3, 1000, 96, 0},
                          {4, 64, 64, 32, 1}, {2, 256, 256, 64, 1}, {3, 97, 97, 24, 1}};
  for (const auto& c : cases) check_attention(c[0], c[1], c[2], c[3], c[4]);
  for (int it = 0; it < 12; it++) {
    const int Ts[] = {1, 2, 3, 17, 31, 32, 33, 64, 65, 100};
    const int T = Ts[irand(0, 9)];
    const int extra[] = {0, 0, 1, 5, 31, 64, 70};
    const int hsz[] = {1, 3, 8, 13, 16, 31, 32, 64};
    check_attention(irand(1, 3), T, T + extra[irand(0, 6)], hsz[irand(0, 7)], urand() < 0.6);
  }
}

void run_all(const char* name) {
  const int fails = g_failures;
  for (int threads : {1, 3}) {
    pool_set_threads(threads);
    g_where = std::string(name) + ", " + std::to_string(threads) + " thread(s)";
    test_gemm();
    test_elementwise(kernel_for(F_ELEMENTWISE));
    test_rows();
    test_attention();
  }
  std::printf("%s: %s\n", name, g_failures == fails ? "ok" : "FAILED");
}

void use_table(const Kernels* k) {
  for (int f = 0; f < F_COUNT; f++) g_family[f] = k;
}

}  // namespace

// ---- quantised dot products (quant.h): each table's kernels against double-precision loops over
// weights decoded here from GGML's block layouts, with activations drawn directly in the activation
// formats (Q8_0 blocks, Q8_K super-blocks with their 16-value sums, float16 values).
namespace {

double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

// A normal float16 of magnitude between 2^-6 and 2^2 and random sign (a finite, ordinary scale).
uint16_t rand_half() { return (uint16_t)((irand(0, 1) << 15) | (irand(9, 17) << 10) | irand(0, 1023)); }

void put_half(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

i64 row_bytes(int type, i64 K) {
  switch (type) {
    case QT_Q8_0: return K / 32 * 34;
    case QT_Q4_0: return K / 32 * 18;
    case QT_Q5_0: return K / 32 * 22;
    case QT_Q4_K: return K / 256 * 144;
    case QT_Q5_K: return K / 256 * 176;
    case QT_Q6_K: return K / 256 * 210;
    case QT_F16:
    case QT_BF16: return K * 2;
  }
  return 0;
}

// The K-quants: super-blocks of 256, activations in Q8_K (float32 scale per 256, sums of 16).
bool k_quant(int type) { return type == QT_Q4_K || type == QT_Q5_K || type == QT_Q6_K; }

// A normal bfloat16 of magnitude between 2^-6 and 2^2 and random sign.
uint16_t rand_bf16() { return (uint16_t)((irand(0, 1) << 15) | (irand(121, 129) << 7) | irand(0, 127)); }

double bf16_to_double(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A random weight row: random quant bytes, ordinary float16 scales.
void rand_row(int type, uint8_t* w, i64 K) {
  const i64 n = row_bytes(type, K);
  for (i64 i = 0; i < n; i++) w[i] = (uint8_t)irand(0, 255);
  if (type == QT_F16) {
    for (i64 i = 0; i < K; i++) put_half(w + 2 * i, rand_half());
  } else if (type == QT_BF16) {
    for (i64 i = 0; i < K; i++) put_half(w + 2 * i, rand_bf16());
  } else if (type == QT_Q4_K || type == QT_Q5_K) {
    const i64 bb = type == QT_Q4_K ? 144 : 176;
    for (i64 b = 0; b < K / 256; b++) {
      put_half(w + b * bb, rand_half() & 0x7fff);  // d
      put_half(w + b * bb + 2, rand_half() & 0x7fff);  // dmin
    }
  } else if (type == QT_Q6_K) {
    for (i64 b = 0; b < K / 256; b++) put_half(w + b * 210 + 208, rand_half());  // d (the int8 scales: any bytes)
  } else {
    const i64 bb = type == QT_Q8_0 ? 34 : type == QT_Q4_0 ? 18 : 22;
    for (i64 b = 0; b < K / 32; b++) put_half(w + b * bb, rand_half());
  }
}

uint16_t ld16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// GGML's decoding of one row (ggml-quants.c dequantize_row_*), in double.
void decode_row(int type, const uint8_t* w, double* out, i64 K) {
  if (type == QT_F16) {
    for (i64 i = 0; i < K; i++) out[i] = half_to_double(ld16(w + 2 * i));
  } else if (type == QT_BF16) {
    for (i64 i = 0; i < K; i++) out[i] = bf16_to_double(ld16(w + 2 * i));
  } else if (type == QT_Q8_0) {
    for (i64 b = 0; b < K / 32; b++) {
      const uint8_t* p = w + b * 34;
      const double d = half_to_double(ld16(p));
      for (int j = 0; j < 32; j++) out[b * 32 + j] = d * (int8_t)p[2 + j];
    }
  } else if (type == QT_Q4_0) {
    for (i64 b = 0; b < K / 32; b++) {
      const uint8_t* p = w + b * 18;
      const double d = half_to_double(ld16(p));
      for (int j = 0; j < 16; j++) {
        out[b * 32 + j] = d * ((p[2 + j] & 0xf) - 8);
        out[b * 32 + j + 16] = d * ((p[2 + j] >> 4) - 8);
      }
    }
  } else if (type == QT_Q5_0) {
    for (i64 b = 0; b < K / 32; b++) {
      const uint8_t* p = w + b * 22;
      const double d = half_to_double(ld16(p));
      uint32_t qh;
      std::memcpy(&qh, p + 2, 4);
      for (int j = 0; j < 16; j++) {
        out[b * 32 + j] = d * ((int)((p[6 + j] & 0xf) | (((qh >> j) & 1) << 4)) - 16);
        out[b * 32 + j + 16] = d * ((int)((p[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
      }
    }
  } else if (type == QT_Q4_K || type == QT_Q5_K) {
    const bool five = type == QT_Q5_K;
    for (i64 b = 0; b < K / 256; b++) {
      const uint8_t* p = w + b * (five ? 176 : 144);
      const double d = half_to_double(ld16(p)), dmin = half_to_double(ld16(p + 2));
      const uint8_t* sc = p + 4;
      const uint8_t* qh = p + 16;  // Q5_K: bit j of byte l is the fifth bit of value l of sub-block j
      const uint8_t* q = p + (five ? 48 : 16);
      auto scale_min = [&](int j, int& s, int& m) {
        if (j < 4) {
          s = sc[j] & 63;
          m = sc[j + 4] & 63;
        } else {
          s = (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
          m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        }
      };
      double* y = out + b * 256;
      for (int j = 0; j < 8; j += 2) {
        int s1, m1, s2, m2;
        scale_min(j, s1, m1);
        scale_min(j + 1, s2, m2);
        for (int l = 0; l < 32; l++) y[l] = d * s1 * ((q[l] & 0xf) + (five ? 16 * ((qh[l] >> j) & 1) : 0)) - dmin * m1;
        for (int l = 0; l < 32; l++) y[32 + l] = d * s2 * ((q[l] >> 4) + (five ? 16 * ((qh[l] >> (j + 1)) & 1) : 0)) - dmin * m2;
        y += 64;
        q += 32;
      }
    }
  } else if (type == QT_Q6_K) {
    // ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16] (one per 16 values), f16 d;
    // value = d · scale · (q - 32), in halves of 128 as dequantize_row_q6_K
    for (i64 b = 0; b < K / 256; b++) {
      const uint8_t* p = w + b * 210;
      const double d = half_to_double(ld16(p + 208));
      const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192);
      for (int h = 0; h < 2; h++) {
        const uint8_t* ql = p + 64 * h;
        const uint8_t* qh = p + 128 + 32 * h;
        double* y = out + b * 256 + 128 * h;
        for (int l = 0; l < 32; l++) {
          const int is = 8 * h + l / 16;
          y[l] = d * sc[is] * ((int)((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
          y[l + 32] = d * sc[is + 2] * ((int)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
          y[l + 64] = d * sc[is + 4] * ((int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          y[l + 96] = d * sc[is + 6] * ((int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
    }
  }
}

// Activations in a type's dot-product format (Q8_0 blocks with their sums, Q8_K super-blocks with
// their 16-value sums, float16 values), and their values in double.
struct Acts {
  vector<int8_t> q;
  vector<float> d, f;
  vector<int16_t> s;
  vector<double> xd;
  QX x{nullptr, nullptr, nullptr, nullptr, 0};
};

void rand_acts(int type, i64 M, i64 K, Acts& a) {
  a.q.assign((size_t)(M * K), 0);
  a.d.assign((size_t)(M * K / 32), 0.f);
  a.f.assign((size_t)(M * K), 0.f);
  a.s.assign((size_t)(M * K / 16), 0);
  a.xd.assign((size_t)(M * K), 0.);
  a.x = QX{nullptr, nullptr, nullptr, nullptr, K};
  if (type == QT_F16 || type == QT_BF16) {
    for (i64 i = 0; i < M * K; i++)
      a.xd[i] = a.f[i] = (float)(type == QT_F16 ? half_to_double(rand_half()) : bf16_to_double(rand_bf16()));
    a.x.f = a.f.data();
    return;
  }
  const int blk = k_quant(type) ? 256 : 32;
  const int sum = k_quant(type) ? 16 : 32;  // Q8_K: sums of 16, Q8_0: of each block
  for (i64 i = 0; i < M * K / blk; i++) a.d[i] = k_quant(type) ? (float)(urand() * 0.02 + 1e-4) : (float)half_to_double(rand_half());
  // Mostly uniform values, some rows at the extremes (the int16 sums' worst case: +-127 throughout).
  for (i64 i = 0; i < M * K; i++) {
    const i64 row = i / K;
    a.q[i] = (int8_t)(row % 3 == 2 ? (irand(0, 1) ? 127 : -127) : irand(-127, 127));
    a.xd[i] = (double)a.d[i / blk] * a.q[i];
  }
  for (i64 i = 0; i < M * K / sum; i++) {
    int acc = 0;
    for (int j = 0; j < sum; j++) acc += a.q[i * sum + j];
    a.s[i] = (int16_t)acc;
  }
  a.x.q = a.q.data();
  a.x.d = a.d.data();
  a.x.s = a.s.data();
}

// A row at the extremes of the values (Q8_0: -128 bytes; 4-, 5- and 6-bit: all bits set, the largest
// values), its scales kept (Q6_K's: random int8 of either sign). F16 and BF16 rows stay as they are.
void extreme_row(int type, uint8_t* w, i64 rb) {
  if (type == QT_F16 || type == QT_BF16) return;
  for (i64 i = 0; i < rb; i++)
    if (type == QT_Q8_0   ? i % 34 >= 2
        : type == QT_Q4_0 ? i % 18 >= 2
        : type == QT_Q5_0 ? i % 22 >= 2
        : type == QT_Q4_K ? i % 144 >= 16
        : type == QT_Q5_K ? i % 176 >= 16
                          : i % 210 < 192)
      w[i] = type == QT_Q8_0 ? 0x80 : 0xff;
}

// The integer GEMM (QuantKernels::gemm) of M activation rows with nn weight rows of K values.
void check_quant_gemm(const QuantKernels* t, int type, const char* tname, i64 K, i64 M, i64 nn) {
  const i64 rb = row_bytes(type, K);
  vector<uint8_t> w((size_t)(nn * rb));
  vector<double> wd((size_t)(nn * K));
  for (i64 n = 0; n < nn; n++) {
    rand_row(type, w.data() + n * rb, K);
    if (n % 5 == 3) extreme_row(type, w.data() + n * rb, rb);
    decode_row(type, w.data() + n * rb, wd.data() + n * K, K);
  }
  Acts a;
  rand_acts(type, M, K, a);
  const i64 ldy = nn + 3;
  vector<float> y((size_t)(M * ldy), NAN);
  t->gemm[type](w.data(), rb, nn, a.x, M, y.data(), ldy);
  for (i64 m = 0; m < M; m++) {
    for (i64 n = 0; n < ldy; n++) {
      const float got = y[m * ldy + n];
      g_checks++;
      if (n >= nn) {  // beyond the nn rows: untouched
        if (!std::isnan(got)) {
          std::printf("FAIL: quant %s %s gemm K=%lld M=%lld nn=%lld wrote y[%lld][%lld]\n", t->name, tname, (long long)K,
                      (long long)M, (long long)nn, (long long)m, (long long)n);
          g_failures++;
          return;
        }
        continue;
      }
      double acc = 0, mag = 0;
      for (i64 k = 0; k < K; k++) {
        acc += wd[n * K + k] * a.xd[m * K + k];
        mag += std::fabs(wd[n * K + k] * a.xd[m * K + k]);
      }
      if (!std::isfinite(got) || std::fabs(got - acc) > 2e-5 * mag + 1e-30) {
        std::printf("FAIL: quant %s %s gemm K=%lld M=%lld nn=%lld: row %lld x weight row %lld = %.9g, expected %.9g (scale %.3g)\n",
                    t->name, tname, (long long)K, (long long)M, (long long)nn, (long long)m, (long long)n, got, acc, mag);
        g_failures++;
        return;
      }
    }
  }
}

void check_quant_type(const QuantKernels* t, int type, const char* tname) {
  const i64 K = 512;
  const int M = 5;
  if (t->gemm[type]) {
    // Every activation-row tail (M mod 4) and weight-row tail (nn mod 8), one and several blocks.
    const i64 blk = k_quant(type) ? 256 : 32;
    for (const i64 k : {blk, 3 * blk, (i64)1024})
      for (const i64 m : {1, 2, 3, 4, 5, 8, 11})
        for (const i64 nn : {1, 5, 8, 9, 13, 16}) check_quant_gemm(t, type, tname, k, m, nn);
  }
  const i64 rb = row_bytes(type, K);
  const int gn = t->gemv_rows[type] ? t->gemv_n[type] : 0;
  const int N = std::max(8, gn);
  vector<uint8_t> w((size_t)(N * rb));
  vector<double> wd((size_t)(N * K));
  for (int n = 0; n < N; n++) {
    rand_row(type, w.data() + n * rb, K);
    if (n == 3) extreme_row(type, w.data() + n * rb, rb);
    decode_row(type, w.data() + n * rb, wd.data() + n * K, K);
  }
  Acts a;
  rand_acts(type, M, K, a);
  const QX& x = a.x;
  const vector<double>& xd = a.xd;
  auto expect = [&](int m, int n, double& mag) {
    double acc = 0;
    mag = 0;
    for (i64 k = 0; k < K; k++) {
      acc += wd[n * K + k] * xd[m * K + k];
      mag += std::fabs(wd[n * K + k] * xd[m * K + k]);
    }
    return acc;
  };
  auto close = [&](double got, double want, double mag, const char* what, int m, int n) {
    g_checks++;
    if (std::isfinite(got) && std::fabs(got - want) <= 2e-5 * mag + 1e-30) return;
    std::printf("FAIL: quant %s %s %s: row %d x weight row %d = %.9g, expected %.9g (scale %.3g)\n", t->name, tname, what, m, n, got,
                want, mag);
    g_failures++;
  };
  if (t->dot[type]) {
    const i64 ldy = 3;
    for (int m0 = 0; m0 < M; m0++)
      for (int rows = 1; rows <= 4 && m0 + rows <= M; rows++)
        for (int n = 0; n < N; n++) {
          vector<float> y((size_t)(rows * ldy), NAN);
          t->dot[type](w.data() + n * rb, x, m0, rows, y.data(), ldy);
          for (int r = 0; r < rows; r++) {
            double mag;
            const double want = expect(m0 + r, n, mag);
            close(y[r * ldy], want, mag, "dot", m0 + r, n);
          }
        }
  }
  if (gn > 0) {
    // Activation row 0 (uniform values) and row 2 (all +-127), as the one row of generation.
    for (const int m : {0, 2}) {
      QX xm = x;
      if (x.q) xm.q = x.q + m * K;
      if (x.d) xm.d = x.d + m * K / (k_quant(type) ? 256 : 32);
      if (x.s) xm.s = x.s + m * K / (k_quant(type) ? 16 : 32);
      if (x.f) xm.f = x.f + m * K;
      vector<float> y((size_t)gn, NAN);
      t->gemv_rows[type](w.data(), rb, xm, y.data());
      for (int n = 0; n < gn; n++) {
        double mag;
        const double want = expect(m, n, mag);
        close(y[n], want, mag, "gemv_rows", m, n);
      }
    }
  }
  if (t->dequant[type]) {
    vector<float> out((size_t)K);
    for (int n = 0; n < N; n++) {
      t->dequant[type](w.data() + n * rb, out.data(), K);
      for (i64 k = 0; k < K; k++) {
        const double want = wd[n * K + k];
        g_checks++;
        if (std::fabs(out[k] - want) > 1e-6 * std::fabs(want) + 1e-30) {
          std::printf("FAIL: quant %s %s dequant: weight row %d value %lld = %.9g, expected %.9g\n", t->name, tname, n, (long long)k, out[k],
                      want);
          g_failures++;
          break;
        }
      }
    }
  }
}

void run_quant(const QuantKernels* t) {
  const int fails = g_failures;
  const struct {
    int type;
    const char* name;
  } types[] = {{QT_Q8_0, "Q8_0"}, {QT_Q4_0, "Q4_0"}, {QT_Q5_0, "Q5_0"}, {QT_Q4_K, "Q4_K"}, {QT_Q5_K, "Q5_K"},
                 {QT_Q6_K, "Q6_K"}, {QT_F16, "F16"},   {QT_BF16, "BF16"}};
  for (const auto& ty : types) check_quant_type(t, ty.type, ty.name);
  if (t->f16_to_f32) {
    vector<uint16_t> h(100);
    vector<float> out(100);
    for (auto& v : h) v = rand_half();
    t->f16_to_f32(h.data(), out.data(), (i64)h.size());
    for (size_t i = 0; i < h.size(); i++) {
      g_checks++;
      if ((double)out[i] != half_to_double(h[i])) {
        std::printf("FAIL: quant %s f16_to_f32: %#x -> %.9g, expected %.9g\n", t->name, h[i], out[i], half_to_double(h[i]));
        g_failures++;
        break;
      }
    }
  }
  // The activations: float16 rounding (to nearest, ties to even: the nearest of the two neighbouring
  // halves, checked in double) and Q8_0 blocks (ggml's quantize_row_q8_0, written out here).
  if (t->round_f16) {
    vector<float> x = randv(203, 4.0), out(203);
    x[0] = 1.0f + 1.0f / 2048;  // exactly between two halves: ties to even (1.0)
    x[1] = 1.0f + 3.0f / 2048;  // ties to even (1 + 2/1024)
    x[2] = 3e-6f;               // a subnormal half
    t->round_f16(x.data(), out.data(), (i64)x.size());
    for (size_t i = 0; i < x.size(); i++) {
      g_checks++;
      // The candidates: every half with the same sign near x; the result must be the nearest (even on ties).
      double best = 0, bd = 1e300;
      int bh = 0;
      for (int h = 0; h < 0x7c00; h++) {
        const double v = half_to_double((uint16_t)((x[i] < 0 ? 0x8000 : 0) | h)), dd = std::fabs(v - (double)x[i]);
        if (dd < bd || (dd == bd && (h & 1) == 0 && (bh & 1))) {
          bd = dd;
          best = v;
          bh = h;
        }
      }
      if ((double)out[i] != best) {
        std::printf("FAIL: quant %s round_f16: %.9g -> %.9g, expected %.9g\n", t->name, x[i], out[i], best);
        g_failures++;
        break;
      }
    }
  }
  if (t->quantize_q8_0) {
    const i64 nb = 7;
    vector<float> x = randv(32 * nb, 3.0);
    for (int j = 0; j < 32; j++) x[(size_t)(32 + j)] = 0.0f;                  // an all-zero block
    x[64] = -5.0f;                                                              // a negative extreme
    for (int j = 1; j < 32; j++) x[(size_t)(96 + j)] = (float)j * (5.0f / 127); // values on the grid
    x[96] = 5.0f;
    vector<int8_t> q((size_t)(32 * nb));
    vector<float> d((size_t)nb);
    vector<int16_t> sm((size_t)nb);
    t->quantize_q8_0(x.data(), q.data(), d.data(), sm.data(), nb);
    for (i64 b = 0; b < nb; b++) {
      g_checks++;
      float amax = 0;
      for (int j = 0; j < 32; j++) amax = std::fmax(amax, std::fabs(x[(size_t)(32 * b + j)]));
      const float db = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
      int sum = 0;
      bool ok = true;
      for (int j = 0; j < 32; j++) {
        const int want = (int)std::nearbyint(x[(size_t)(32 * b + j)] * id);  // float product, then ties to even
        sum += want;
        ok = ok && q[(size_t)(32 * b + j)] == want;
      }
      // d is db rounded to float16: within half a float16 step of it, and itself a float16 value.
      const double rel = std::fabs((double)d[(size_t)b] - db) / (db > 0 ? db : 1);
      ok = ok && rel <= 1.0 / 2048 && sm[(size_t)b] == sum;
      if (!ok) {
        std::printf("FAIL: quant %s quantize_q8_0 block %lld (d %.9g, expected about %.9g; sum %d, expected %d)\n", t->name,
                    (long long)b, d[(size_t)b], db, sm[(size_t)b], sum);
        g_failures++;
        break;
      }
    }
  }
  std::printf("quant %s: %s\n", t->name, g_failures == fails ? "ok" : "FAILED");
}

}  // namespace

int main(int argc, char** argv) {
  // Arguments, optional: run only the named tables (e.g. "neon generic").
  auto wanted = [&](const char* name) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++)
      if (!std::strcmp(argv[i], name)) return true;
    return false;
  };
  std::printf("kernel test: this CPU runs %s\n", isa_available());
  std::string avail = isa_available();
  size_t start = 0;
  while (start <= avail.size()) {
    size_t end = avail.find(',', start);
    if (end == std::string::npos) end = avail.size();
    const std::string isa = avail.substr(start, end - start);
    start = end + 1;
    if (isa.empty() || !wanted(isa.c_str())) continue;
    if (!isa_force(isa.c_str())) {
      std::printf("FAIL: isa_force(%s) refused a set isa_available() lists\n", isa.c_str());
      g_failures++;
      continue;
    }
    for (int f = 0; f < F_COUNT; f++)
      if (std::strcmp(kernel_for((Family)f)->name, isa.c_str()) != 0) {
        std::printf("FAIL: family %s is served by %s after forcing %s\n", kFamilyNames[f], kernel_for((Family)f)->name,
                    isa.c_str());
        g_failures++;
      }
    run_all(isa.c_str());
  }
  // The quantised kernels: the portable table, and each x86 one this CPU runs.
  if (wanted("generic")) run_quant(&quant_generic);
#if defined(__x86_64__)
  if (wanted("avx2") && cpu_f16c()) run_quant(&quant_avx2);
  if (wanted("avx512vnni") && cpu_avx512_vnni()) run_quant(&quant_avx512vnni);
#endif
  if (isa_force("no-such-set")) {
    std::printf("FAIL: isa_force accepted an unknown name\n");
    g_failures++;
  }
#ifdef MX_KT_PORTABLE
  // The other widths' kernel bodies, in portable vectors.
  if (wanted("w16")) {
    use_table(&kernels_w16);
    run_all("w16 (the AVX-512 bodies and tiles in 16-lane portable vectors)");
  }
  if (wanted("w4r8")) {
    use_table(&kernels_w4r8);
    run_all("w4r8 (the NEON bodies and tiles in 4-lane portable vectors)");
  }
#endif
  std::printf("kernel test: %d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
