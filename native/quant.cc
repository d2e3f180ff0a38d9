// The front end of the quantised matrix products (quant.h) and of memory-mapped model files:
// activation quantisation exactly as ggml rounds it (quantize_row_q8_0 on AVX2, quantize_row_q8_K),
// the choice of kernel table, threading over the blocking pool, and the N-API entry points, which
// binding.cc registers with quant_register().
//
// Threading: generation (one activation row) splits the weight's rows into chunks over the pool.
// Prompt processing (kTileRows activation rows or more) runs the kernel table's integer GEMM where it
// has one (AVX2: Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K), kGemmRows weight rows per task; the other types
// (F16, BF16, every type on the generic table) are decoded a tile at a time to float32 and multiplied
// by the float GEMM. Between 2 and kTileRows rows, each task dots a weight row with 4
// activation rows at a time, so a weight block is decoded once per 4 rows.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "quant.h"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define MX_HAVE_MMAP 1
#endif

namespace mx {

i64 quant_row_bytes(int type, i64 K) {
  if (K <= 0) return 0;
  switch (type) {
    case QT_F16:
    case QT_BF16: return 2 * K;
    case QT_Q8_0: return K % 32 ? 0 : K / 32 * 34;
    case QT_Q4_0: return K % 32 ? 0 : K / 32 * 18;
    case QT_Q5_0: return K % 32 ? 0 : K / 32 * 22;
    case QT_Q4_K: return K % 256 ? 0 : K / 256 * 144;
    case QT_Q5_K: return K % 256 ? 0 : K / 256 * 176;
    case QT_Q6_K: return K % 256 ? 0 : K / 256 * 210;
  }
  return 0;
}

namespace {

enum ActKind { ACT_Q8_0, ACT_Q8_K, ACT_F16, ACT_BF16 };

ActKind act_kind(int type) {
  switch (type) {
    case QT_F16: return ACT_F16;
    case QT_BF16: return ACT_BF16;
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K: return ACT_Q8_K;
    default: return ACT_Q8_0;
  }
}

// The table serving quantised products: the set serving GEMM (so MOXING_ISA and the tests' setIsa
// choose it too), with AVX-512 VNNI only where the CPU has it and AVX2 only with F16C.
const QuantKernels* quant_table() {
  const char* g = kernel_for(F_GEMM)->name;
#if defined(__x86_64__)
  if (!std::strcmp(g, "avx512") && cpu_avx512_vnni()) return &quant_avx512vnni;
  if ((!std::strcmp(g, "avx512") || !std::strcmp(g, "avx2")) && cpu_f16c()) return &quant_avx2;
#endif
  (void)g;
  return &quant_generic;
}

QDotFn dot_for(int type) {
  const QuantKernels* k = quant_table();
  return k->dot[type] ? k->dot[type] : quant_generic.dot[type];
}

// ---- float16 / bfloat16 rounding (IEEE round to nearest even, as F16C and numpy) -------------------

uint16_t f2h(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  const uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff;
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
  const int e = (int)exp - 127 + 15;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t h = mant >> shift;
    if (rest > half || (rest == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float round_bf16(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  uint32_t b;
  if ((x & 0x7fffffff) > 0x7f800000) b = ((x >> 16) | 64) << 16;  // quiet NaN, as ggml
  else b = ((x + (0x7fff + ((x >> 16) & 1))) >> 16) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// ggml's nearest_int: float32 round half to even through 1.5·2^23.
inline int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The activations, quantised (thread-local, grow-only: one JS thread calls at a time per isolate).
struct Acts {
  std::vector<int8_t> q;
  std::vector<float> d, f;
  std::vector<int16_t> s;
};
thread_local Acts tl_acts;

// Calls f(b) for b in [0, n) blocks; over the pool when there are many values (prompt processing:
// on one thread, quantising the activations was about 4% of a 2-thread prompt's time with the other
// core idle), serially otherwise (generation: a pool round trip would cost more than the work).
template <class F>
void for_blocks(i64 n, i64 values, F&& f) {
  const int T = pool_threads();
  if (T < 2 || values < 32768) {
    for (i64 b = 0; b < n; b++) f(b);
    return;
  }
  const i64 per = (n + 4 * T - 1) / (4 * T);
  auto task = [&](i64 t) {
    const i64 b1 = (t + 1) * per < n ? (t + 1) * per : n;
    for (i64 b = t * per; b < b1; b++) f(b);
  };
  parallel_for((n + per - 1) / per, task);
}

QX quantize_acts(int type, const float* x, i64 M, i64 K) {
  Acts& A = tl_acts;
  QX out{nullptr, nullptr, nullptr, nullptr, K};
  const ActKind kind = act_kind(type);
  if (kind == ACT_F16 || kind == ACT_BF16) {
    if ((i64)A.f.size() < M * K) A.f.resize((size_t)(M * K));
    float* f = A.f.data();
    const auto vec = kind == ACT_F16 ? quant_table()->round_f16 : nullptr;
    for_blocks(M, M * K, [&](i64 m) {
      if (vec) vec(x + m * K, f + m * K, K);
      else
        for (i64 i = m * K; i < (m + 1) * K; i++) f[i] = kind == ACT_F16 ? h2f(f2h(x[i])) : round_bf16(x[i]);
    });
    out.f = f;
    return out;
  }
  if ((i64)A.q.size() < M * K) A.q.resize((size_t)(M * K));
  int8_t* Q = A.q.data();
  if (kind == ACT_Q8_0) {
    const i64 nb = K / 32;
    if ((i64)A.d.size() < M * nb) A.d.resize((size_t)(M * nb));
    if ((i64)A.s.size() < M * nb) A.s.resize((size_t)(M * nb));
    float* D = A.d.data();
    int16_t* S = A.s.data();
    if (const auto vec = quant_table()->quantize_q8_0) {
      // Rows of blocks at a time (a call per block would cost more than the block).
      for_blocks(M, M * K, [&](i64 m) { vec(x + m * K, Q + m * K, D + m * nb, S + m * nb, nb); });
      out.q = Q;
      out.d = D;
      out.s = S;
      return out;
    }
    for_blocks(M * nb, M * K, [&](i64 b) {
      const float* xb = x + 32 * b;
      int8_t* q = Q + 32 * b;
      // A plain comparison, not std::fmax (a libm call here, once per value; NaN never wins either way).
      float amax = 0;
      for (int j = 0; j < 32; j++) {
        const float a = std::fabs(xb[j]);
        amax = a > amax ? a : amax;
      }
      const float d = amax / 127.f;
      const float id = amax != 0.f ? 127.f / amax : 0.f;
      D[b] = h2f(f2h(d));
      // half to even, as _mm256_round_ps (|x · id| <= 127, so nearest_int's float trick is exact)
      int sum = 0;
      for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)nearest_int(xb[j] * id);
        sum += q[j];
      }
      S[b] = (int16_t)sum;
    });
    out.q = Q;
    out.d = D;
    out.s = S;
    return out;
  }
  const i64 nb = K / 256;
  if ((i64)A.d.size() < M * nb) A.d.resize((size_t)(M * nb));
  if ((i64)A.s.size() < M * K / 16) A.s.resize((size_t)(M * K / 16));
  float* D = A.d.data();
  int16_t* S = A.s.data();
  for_blocks(M * nb, M * K, [&](i64 b) {
    const float* xb = x + 256 * b;
    int8_t* q = Q + 256 * b;
    float amax = 0, max = 0;
    for (int j = 0; j < 256; j++) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax == 0.f) {
      D[b] = 0;
      std::memset(q, 0, 256);
    } else {
      const float iscale = -127.f / max;
      for (int j = 0; j < 256; j++) {
        const int v = nearest_int(iscale * xb[j]);
        q[j] = (int8_t)(v < 127 ? v : 127);
      }
      D[b] = 1.f / iscale;
    }
    for (int g = 0; g < 16; g++) {
      int sum = 0;
      for (int j = 0; j < 16; j++) sum += q[16 * g + j];
      S[16 * b + g] = (int16_t)sum;
    }
  });
  out.q = Q;
  out.d = D;
  out.s = S;
  return out;
}

// ---- the product ------------------------------------------------------------------------------------

struct QCtx {
  QDotFn dot;
  void (*gemv_rows)(const uint8_t*, i64, const QX&, float*);
  i64 gemv_n;
  const uint8_t* w;
  i64 rb;  // bytes per weight row
  QX x;
  float* y;
  i64 M, N, nchunk, mchunk, ntn;
};

void qtask(void* c, i64 t) {
  const QCtx& q = *static_cast<const QCtx*>(c);
  const i64 n0 = (t % q.ntn) * q.nchunk, n1 = n0 + q.nchunk < q.N ? n0 + q.nchunk : q.N;
  const i64 m0 = (t / q.ntn) * q.mchunk, m1 = m0 + q.mchunk < q.M ? m0 + q.mchunk : q.M;
  i64 n = n0;
  if (q.gemv_rows && q.M == 1)
    for (; n + q.gemv_n <= n1; n += q.gemv_n) q.gemv_rows(q.w + n * q.rb, q.rb, q.x, q.y + n);
  for (; n < n1; n++) {
    const uint8_t* wr = q.w + n * q.rb;
    for (i64 m = m0; m < m1; m += 4) {
      const int rows = m1 - m < 4 ? (int)(m1 - m) : 4;
      q.dot(wr, q.x, m, rows, q.y + m * q.N + n, q.N);
    }
  }
}

// Several activation rows (prompt processing): tiles of weight rows decoded to float32 and multiplied
// by the float GEMM with the activations as ggml rounds them (q · d, or float16 values for F16): the
// reference's arithmetic, at the float GEMM's speed, the decoding paid once per tile for all rows.
struct TileCtx {
  void (*dequant)(const uint8_t*, float*, i64);
  const uint8_t* w;
  i64 rb;
  const float* x;
  float* y;
  i64 M, N, K, nchunk;
};
thread_local std::vector<float> tl_tile, tl_out;

void tile_task(void* c, i64 t) {
  const TileCtx& q = *static_cast<const TileCtx*>(c);
  const i64 n0 = t * q.nchunk, nn = n0 + q.nchunk < q.N ? q.nchunk : q.N - n0;
  if ((i64)tl_tile.size() < nn * q.K) tl_tile.resize((size_t)(nn * q.K));
  if ((i64)tl_out.size() < nn * q.M) tl_out.resize((size_t)(nn * q.M));
  for (i64 r = 0; r < nn; r++) q.dequant(q.w + (n0 + r) * q.rb, tl_tile.data() + r * q.K, q.K);
  // (M, K) x (K, nn): the tile's rows are the columns of B (rsb 1, csb K). Runs serially here.
  matmul(q.x, 0, q.K, 1, tl_tile.data(), 0, 1, q.K, tl_out.data(), 1, q.M, nn, q.K);
  for (i64 m = 0; m < q.M; m++) std::memcpy(q.y + m * q.N + n0, tl_out.data() + m * nn, sizeof(float) * (size_t)nn);
}

// Several activation rows with a kernel table's integer GEMM: kGemmRows weight rows per task.
struct GemmCtx {
  bool (*gemm)(const uint8_t*, i64, i64, const QX&, i64, float*, i64);
  QDotFn dot;  // where the repacking buffer cannot be allocated
  const uint8_t* w;
  i64 rb;
  QX x;
  float* y;
  i64 M, N;
};

void gemm_task(void* c, i64 t) {
  const GemmCtx& q = *static_cast<const GemmCtx*>(c);
  const i64 n0 = t * kGemmRows, nn = n0 + kGemmRows < q.N ? kGemmRows : q.N - n0;
  if (q.gemm(q.w + n0 * q.rb, q.rb, nn, q.x, q.M, q.y + n0, q.N)) return;
  for (i64 n = n0; n < n0 + nn; n++)
    for (i64 m = 0; m < q.M; m += 4) q.dot(q.w + n * q.rb, q.x, m, q.M - m < 4 ? (int)(q.M - m) : 4, q.y + m * q.N + n, q.N);
}

thread_local std::vector<float> tl_xf;

// The rounded activations as float32 values (q · d).
const float* rounded_floats(int type, const QX& qx, i64 M, i64 K) {
  if (qx.f) return qx.f;
  if ((i64)tl_xf.size() < M * K) tl_xf.resize((size_t)(M * K));
  const i64 blk = act_kind(type) == ACT_Q8_K ? 256 : 32;
  // block by block: a 64-bit division per value cost more than the rest of the loop
  for (i64 b = 0; b < M * K / blk; b++) {
    const float d = qx.d[b];
    for (i64 i = b * blk; i < (b + 1) * blk; i++) tl_xf[i] = d * (float)qx.q[i];
  }
  return tl_xf.data();
}

}  // namespace

// From this many activation rows on, the integer GEMM (or decoded tiles and the float GEMM) beat the
// row-by-row integer dot products (MOXING_QUANT_TILE_ROWS overrides it, for benchmarks).
const i64 kTileRows = [] {
  const char* e = std::getenv("MOXING_QUANT_TILE_ROWS");
  return e && *e ? (i64)std::atoll(e) : (i64)8;
}();

// The products of several weights (the same type and K) with one activation matrix x (M, K), already
// quantised: y_i (M, N_i) = x · W_iᵀ. One pool job runs all of them where they go row by row
// (generation), so a layer's q, k and v (or gate and up) cost one quantisation of x and one round trip
// through the pool instead of three.
void quant_matmul_q(int type, const uint8_t* const* ws, const i64* Ns, float* const* ys, int count, i64 K, const QX& qx,
                    i64 M) {
  const int T = pool_threads();
  const QuantKernels* k = quant_table();
  const i64 rb = quant_row_bytes(type, K);
  if (M >= kTileRows && k->gemm[type]) {
    for (int i = 0; i < count; i++) {
      GemmCtx c{k->gemm[type], dot_for(type), ws[i], rb, qx, ys[i], M, Ns[i]};
      pool_run((Ns[i] + kGemmRows - 1) / kGemmRows, gemm_task, &c);
    }
    return;
  }
  auto dq = k->dequant[type] ? k->dequant[type] : quant_generic.dequant[type];
  if (M >= kTileRows && dq) {
    const float* xf = rounded_floats(type, qx, M, K);
    for (int i = 0; i < count; i++) {
      TileCtx c{dq, ws[i], rb, xf, ys[i], M, Ns[i], K, 64};
      pool_run((Ns[i] + c.nchunk - 1) / c.nchunk, tile_task, &c);
    }
    return;
  }
  struct Many {
    QCtx c[kMaxGroup];
    i64 first[kMaxGroup + 1];  // task ids of product i: [first[i], first[i + 1])
    int count;
  } g;
  g.count = count;
  i64 Ntot = 0;
  for (int i = 0; i < count; i++) Ntot += Ns[i];
  // Generation: about 4 chunks per thread over all the products' rows (rows of 4), so a thread slowed
  // by a busy core is caught up by the others.
  i64 ch = (Ntot + 4 * T - 1) / (4 * T);
  ch = (ch + 3) / 4 * 4;
  g.first[0] = 0;
  for (int i = 0; i < count; i++) {
    QCtx& c = g.c[i];
    c = QCtx{dot_for(type), k->gemv_rows[type], k->gemv_n[type], ws[i], rb, qx, ys[i], M, Ns[i], 0, 0, 0};
    if (M == 1) {
      c.nchunk = ch < 8 ? 8 : ch;
      c.mchunk = 1;
    } else {
      c.nchunk = 16;
      c.mchunk = 64;  // 64 activation rows stay in L2 while 16 weight rows pass over them
    }
    c.ntn = (Ns[i] + c.nchunk - 1) / c.nchunk;
    g.first[i + 1] = g.first[i] + c.ntn * ((M + c.mchunk - 1) / c.mchunk);
  }
  pool_run(
      g.first[count],
      [](void* p, i64 t) {
        const Many& m = *static_cast<const Many*>(p);
        int i = 0;
        while (t >= m.first[i + 1]) i++;
        qtask(const_cast<QCtx*>(&m.c[i]), t - m.first[i]);
      },
      &g);
}

// y (M, N) = x (M, K) · Wᵀ for W (N, K) in `type`. The caller has checked the sizes.
void quant_matmul(int type, const uint8_t* w, i64 N, i64 K, const float* x, i64 M, float* y) {
  const QX qx = quantize_acts(type, x, M, K);
  quant_matmul_q(type, &w, &N, &y, 1, K, qx, M);
}

namespace {

// ---- N-API -------------------------------------------------------------------------------------------

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

bool typed(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* len) {
  napi_typedarray_type t;
  if (napi_get_typedarray_info(env, v, &t, len, data, nullptr, nullptr) != napi_ok || t != want) return false;
  return true;
}

// quantMatmul(w: Uint8Array, x: Float32Array, y: Float32Array) with P[0] type, P[1] N, P[2] K, P[3] M:
// y (M, N) = x (M, K) · Wᵀ. Every size is checked against the buffers (a file's tensor is untrusted).
napi_value js_quant_matmul(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || argc < 3) {
    napi_throw_type_error(env, nullptr, "quantMatmul: expected (w, x, y)");
    return nullptr;
  }
  const double* P = static_cast<const double*>(data);
  void *w, *x, *y;
  size_t wl, xl, yl;
  if (!typed(env, argv[0], napi_uint8_array, &w, &wl) || !typed(env, argv[1], napi_float32_array, &x, &xl) ||
      !typed(env, argv[2], napi_float32_array, &y, &yl)) {
    napi_throw_type_error(env, nullptr, "quantMatmul: expected a Uint8Array and two Float32Arrays");
    return nullptr;
  }
  const double dt = P[0], dn = P[1], dk = P[2], dm = P[3];
  const bool ints = dt == std::floor(dt) && dn == std::floor(dn) && dk == std::floor(dk) && dm == std::floor(dm);
  if (!ints || dt < 0 || dt >= QT_MAX || dn < 1 || dk < 1 || dm < 1 || dn > 1e12 || dk > 1e12 || dm > 1e12) {
    napi_throw_range_error(env, nullptr, "quantMatmul: bad type or sizes");
    return nullptr;
  }
  const int type = (int)dt;
  const i64 N = (i64)dn, K = (i64)dk, M = (i64)dm;
  const i64 rb = quant_row_bytes(type, K);
  if (!rb || !quant_generic.dot[type]) {
    napi_throw_range_error(env, nullptr, "quantMatmul: no kernel for this type and row length");
    return nullptr;
  }
  if ((double)rb * (double)N > (double)wl || (double)M * (double)K > (double)xl || (double)M * (double)N > (double)yl) {
    napi_throw_range_error(env, nullptr, "quantMatmul: a buffer is smaller than its sizes say");
    return nullptr;
  }
  quant_matmul(type, static_cast<const uint8_t*>(w), N, K, static_cast<const float*>(x), M, static_cast<float*>(y));
  return undef(env);
}

// quantMatmulMany(w_0, .., w_{n-1}, x, y_0, .., y_{n-1}): P[0] type, P[1] K, P[2] M, P[3] n (2..kMaxGroup),
// P[4 + i] N_i. The products of one activation matrix with n weights (quant_matmul_q).
napi_value js_quant_matmul_many(napi_env env, napi_callback_info info) {
  const double* P = nullptr;
  size_t argc = 2 * kMaxGroup + 1;
  napi_value argv[2 * kMaxGroup + 1];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  P = static_cast<const double*>(data);
  const double dt = P[0], dk = P[1], dm = P[2], dc = P[3];
  const bool ints = dt == std::floor(dt) && dk == std::floor(dk) && dm == std::floor(dm) && dc == std::floor(dc);
  if (!ints || dt < 0 || dt >= QT_MAX || dk < 1 || dm < 1 || dk > 1e12 || dm > 1e12 || dc < 1 || dc > kMaxGroup ||
      argc != (size_t)(2 * dc + 1)) {
    napi_throw_range_error(env, nullptr, "quantMatmulMany: bad type, sizes or argument count");
    return nullptr;
  }
  const int type = (int)dt, count = (int)dc;
  const i64 K = (i64)dk, M = (i64)dm;
  const i64 rb = quant_row_bytes(type, K);
  if (!rb || !quant_generic.dot[type]) {
    napi_throw_range_error(env, nullptr, "quantMatmulMany: no kernel for this type and row length");
    return nullptr;
  }
  const uint8_t* ws[kMaxGroup];
  float* ys[kMaxGroup];
  i64 Ns[kMaxGroup];
  void* x;
  size_t xl;
  if (!typed(env, argv[count], napi_float32_array, &x, &xl) || (double)M * (double)K > (double)xl) {
    napi_throw_range_error(env, nullptr, "quantMatmulMany: x is not a Float32Array of M·K values");
    return nullptr;
  }
  for (int i = 0; i < count; i++) {
    void *w, *y;
    size_t wl, yl;
    const double dn = P[4 + i];
    if (dn != std::floor(dn) || dn < 1 || dn > 1e12 || !typed(env, argv[i], napi_uint8_array, &w, &wl) ||
        !typed(env, argv[count + 1 + i], napi_float32_array, &y, &yl) || (double)rb * dn > (double)wl ||
        (double)M * dn > (double)yl) {
      napi_throw_range_error(env, nullptr, "quantMatmulMany: a weight or output is not of its sizes");
      return nullptr;
    }
    ws[i] = static_cast<const uint8_t*>(w);
    ys[i] = static_cast<float*>(y);
    Ns[i] = (i64)dn;
  }
  const QX qx = quantize_acts(type, static_cast<const float*>(x), M, K);
  quant_matmul_q(type, ws, Ns, ys, count, K, qx, M);
  return undef(env);
}

// quantInfo() -> { isa: the table serving quantised products now, types: [...ggml type ids it runs
// natively, the rest by the generic table] }
napi_value js_quant_info(napi_env env, napi_callback_info) {
  const QuantKernels* k = quant_table();
  napi_value o, s, arr;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, k->name, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "isa", s);
  napi_create_array(env, &arr);
  uint32_t n = 0;
  for (int t = 0; t < QT_MAX; t++) {
    if (!k->dot[t]) continue;
    napi_value v;
    napi_create_int32(env, t, &v);
    napi_set_element(env, arr, n++, v);
  }
  napi_set_named_property(env, o, "types", arr);
  return o;
}

// ---- memory-mapped files ----------------------------------------------------------------------------

struct Mapping {
  void* p;
  size_t len;
};

void finalize_map(napi_env env, void*, void* hint) {
  Mapping* m = static_cast<Mapping*>(hint);
#if MX_HAVE_MMAP
  munmap(m->p, m->len);
#endif
  delete m;
}

// mapFile(path) -> an ArrayBuffer over the whole file, mapped copy-on-write (MAP_PRIVATE): pages are
// read from the page cache when first touched and never written back, so the file is never changed
// and a page written to (llama's q/k row permutation) becomes a private copy. null where mmap is
// unavailable, the file is empty or cannot be mapped (the caller reads it instead). The views the
// caller takes are bounds-checked by JavaScript against the buffer's length, the size of the file.
napi_value js_map_file(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_get_null(env, &result);
#if MX_HAVE_MMAP
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return result;
  char path[4096];
  size_t plen = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok || plen >= sizeof path - 1)
    return result;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return result;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    close(fd);
    return result;
  }
  const size_t len = (size_t)st.st_size;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) return result;
  Mapping* m = new Mapping{p, len};
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, len, finalize_map, m, &ab) != napi_ok) {
    munmap(p, len);
    delete m;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    return result;
  }
  return ab;
#else
  (void)info;
  return result;
#endif
}

}  // namespace

void quant_register(napi_env env, napi_value exports, double* P) {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  const Fn fns[] = {{"quantMatmul", js_quant_matmul},
                    {"quantMatmulMany", js_quant_matmul_many},
                    {"quantInfo", js_quant_info},
                    {"mapFile", js_map_file}};
  for (const Fn& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, P, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
}

}  // namespace mx
