// AVX-512 GEMM: 8x32 register tile (16 zmm accumulators), compiled with -mavx512f -mavx512vl -mfma.
#if defined(__x86_64__)  // other architectures build only the portable kernels
#include <immintrin.h>

#include "common.h"

using mx::i64;

#define GEMM_MR 8
#define GEMM_NR 32
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#ifndef GEMM_MC
#define GEMM_MC 96
#endif
#ifndef GEMM_NC
#define GEMM_NC 768
#endif

namespace {

// The 8x32 tile: C (8 rows at c, ldc apart; added to when acc) = the A panel (8 per p) times kc rows
// of B, 32 floats each, ldb apart. Packed B (PACK false) has ldb 32. With PACK, B is read unpacked
// and each row is also stored to dst[p*32 + j], so the remaining row tiles of a small-m product
// reuse it from L1: B is read from memory once and never in a separate packing pass.
template <bool PACK>
__attribute__((always_inline)) inline void tile(i64 kc, const float* a, const float* b, i64 ldb, float* dst, float* c, i64 ldc,
                                              int acc) {
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
  __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
  __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
  __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
  __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  for (int i = 0; i < 8; i++) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + 16), _MM_HINT_T0);
  }
#define MX_ROW(i)                                   \
  {                                                 \
    const __m512 ai = _mm512_set1_ps(a[i]);         \
    c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);     \
    c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);     \
  }
#pragma GCC unroll 4
  for (i64 p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
    if constexpr (PACK) {
      _mm_prefetch((const char*)(b + 8 * ldb), _MM_HINT_T0);
      _mm_prefetch((const char*)(b + 8 * ldb + 16), _MM_HINT_T0);
      _mm512_storeu_ps(dst, b0);
      _mm512_storeu_ps(dst + 16, b1);
      dst += 32;
    } else {
      _mm_prefetch((const char*)(b + 512), _MM_HINT_T0);
    }
    MX_ROW(0) MX_ROW(1) MX_ROW(2) MX_ROW(3) MX_ROW(4) MX_ROW(5) MX_ROW(6) MX_ROW(7)
    a += 8;
    b += ldb;
  }
#undef MX_ROW
#define MX_STORE(i)                                                                   \
  {                                                                                   \
    float* ci = c + i * ldc;                                                          \
    if (acc) {                                                                        \
      c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(ci));                          \
      c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(ci + 16));                     \
    }                                                                                 \
    _mm512_storeu_ps(ci, c##i##0);                                                    \
    _mm512_storeu_ps(ci + 16, c##i##1);                                               \
  }
  MX_STORE(0) MX_STORE(1) MX_STORE(2) MX_STORE(3) MX_STORE(4) MX_STORE(5) MX_STORE(6) MX_STORE(7)
#undef MX_STORE
}

inline void kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, int acc) {
  tile<false>(kc, a, b, 32, nullptr, c, ldc, acc);
}

// Packs one full NR=32 panel of a transposed B (B(p, j) = b[p + j*cs], the nn.Linear weight layout)
// with in-register 16x16 transposes: dst[p*32 + j].
inline void pack_b_panel_trans(i64 kc, const float* b, i64 cs, float* dst) {
  for (int h = 0; h < 2; h++) {
    const float* bh = b + (i64)h * 16 * cs;
    float* dh = dst + h * 16;
    i64 p0 = 0;
    for (; p0 + 16 <= kc; p0 += 16) {
      __m512 r[16], t[16];
      for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(bh + j * cs + p0);
      for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
      }
      for (int j = 0; j < 16; j += 4) {
        r[j] = _mm512_shuffle_ps(t[j], t[j + 2], 0x44);
        r[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], 0xEE);
        r[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0x44);
        r[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
      }
      for (int q = 0; q < 16; q += 8) {
        for (int j = 0; j < 4; j++) {
          t[q + j] = _mm512_shuffle_f32x4(r[q + j], r[q + 4 + j], 0x88);
          t[q + 4 + j] = _mm512_shuffle_f32x4(r[q + j], r[q + 4 + j], 0xDD);
        }
      }
      for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
      }
      for (int p = 0; p < 16; p++) _mm512_storeu_ps(dh + (p0 + p) * 32, r[p]);
    }
    for (; p0 < kc; p0++)
      for (int j = 0; j < 16; j++) dh[p0 * 32 + j] = bh[j * cs + p0];
  }
}
#define GEMM_PACK_B_PANEL_TRANS pack_b_panel_trans

inline void kernel_ldb_pack(i64 kc, const float* a, const float* b, i64 ldb, float* dst, float* c, i64 ldc,
                            int acc) {
  tile<true>(kc, a, b, ldb, dst, c, ldc, acc);
}

#define GEMM_KERNEL_LDB_PACK kernel_ldb_pack
#ifndef GEMM_SMALL_M
#define GEMM_SMALL_M 96
#endif

}  // namespace

#define GEMM_VW 16
#define GEMM_NT_R 4
#define GEMM_GEMV_ROWS8
#include "gemm_body.inc"

namespace mx {
const GemmImpl gemm_impl_avx512 = {"avx512", GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC, GEMM_NC,
                                  gemm_run, gemv_t, gemv_n, gemm_nt_small};
}

#endif  // __x86_64__
