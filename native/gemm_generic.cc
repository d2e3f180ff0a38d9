// Portable GEMM: 4x8 register tile in plain C++ (the compiler vectorises it for the baseline ISA).
#include "common.h"

using mx::i64;

#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_MC 128
#define GEMM_NC 2048

namespace {

inline void kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, int acc) {
  float t[GEMM_MR][GEMM_NR];
  for (int i = 0; i < GEMM_MR; i++)
    for (int j = 0; j < GEMM_NR; j++) t[i][j] = 0.0f;
  for (i64 p = 0; p < kc; p++) {
    for (int i = 0; i < GEMM_MR; i++) {
      const float ai = a[i];
      for (int j = 0; j < GEMM_NR; j++) t[i][j] += ai * b[j];
    }
    a += GEMM_MR;
    b += GEMM_NR;
  }
  for (int i = 0; i < GEMM_MR; i++) {
    float* ci = c + i * ldc;
    if (acc) {
      for (int j = 0; j < GEMM_NR; j++) ci[j] += t[i][j];
    } else {
      for (int j = 0; j < GEMM_NR; j++) ci[j] = t[i][j];
    }
  }
}

}  // namespace

#define GEMM_VW 4
#include "gemm_body.inc"

namespace mx {
const GemmImpl gemm_impl_generic = {"generic", GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC, GEMM_NC,
                                  gemm_run, gemv_t, gemv_n, gemm_nt_small};
}
