// AVX2 GEMM: 6x16 register tile (12 ymm accumulators), compiled with -mavx2 -mfma.
#if defined(__x86_64__)  // other architectures build only the portable kernels
#include <immintrin.h>

#include "common.h"

using mx::i64;

#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_KC 256
#define GEMM_MC 192
#define GEMM_NC 3072

namespace {

inline void kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, int acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int i = 0; i < 6; i++) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
#define MX_ROW(i)                                   \
  {                                                 \
    const __m256 ai = _mm256_broadcast_ss(a + i);   \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);     \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);     \
  }
#pragma GCC unroll 4
  for (i64 p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    MX_ROW(0) MX_ROW(1) MX_ROW(2) MX_ROW(3) MX_ROW(4) MX_ROW(5)
    a += 6;
    b += 16;
  }
#undef MX_ROW
#define MX_STORE(i)                                                   \
  {                                                                   \
    float* ci = c + i * ldc;                                          \
    if (acc) {                                                        \
      c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(ci));          \
      c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(ci + 8));      \
    }                                                                 \
    _mm256_storeu_ps(ci, c##i##0);                                    \
    _mm256_storeu_ps(ci + 8, c##i##1);                                \
  }
  MX_STORE(0) MX_STORE(1) MX_STORE(2) MX_STORE(3) MX_STORE(4) MX_STORE(5)
#undef MX_STORE
}

}  // namespace

#define GEMM_VW 8
#include "gemm_body.inc"

namespace mx {
const GemmImpl gemm_impl_avx2 = {"avx2", GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC, GEMM_NC,
                                  gemm_run, gemv_t, gemv_n, gemm_nt_small};
}

#endif  // __x86_64__
