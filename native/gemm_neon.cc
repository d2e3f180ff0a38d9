// NEON GEMM (AArch64): 8x12 register tile, 24 accumulators of 4 lanes; A's eight values per step
// arrive in two registers and multiply by lane (fmla v.4s, v.4s, v.s[i]), so no broadcasts.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "common.h"

using mx::i64;

#define GEMM_MR 8
#define GEMM_NR 12
#define GEMM_KC 256
#define GEMM_MC 128
#define GEMM_NC 2048

namespace {

inline void kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, int acc) {
#define MX_DECL(i) float32x4_t c##i##0 = vdupq_n_f32(0), c##i##1 = vdupq_n_f32(0), c##i##2 = vdupq_n_f32(0);
  MX_DECL(0) MX_DECL(1) MX_DECL(2) MX_DECL(3) MX_DECL(4) MX_DECL(5) MX_DECL(6) MX_DECL(7)
#undef MX_DECL
#define MX_ROW(i, A, L)                              \
  c##i##0 = vfmaq_laneq_f32(c##i##0, b0, A, L);      \
  c##i##1 = vfmaq_laneq_f32(c##i##1, b1, A, L);      \
  c##i##2 = vfmaq_laneq_f32(c##i##2, b2, A, L);
  for (i64 p = 0; p < kc; p++) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
    MX_ROW(0, a0, 0) MX_ROW(1, a0, 1) MX_ROW(2, a0, 2) MX_ROW(3, a0, 3)
    MX_ROW(4, a1, 0) MX_ROW(5, a1, 1) MX_ROW(6, a1, 2) MX_ROW(7, a1, 3)
    a += 8;
    b += 12;
  }
#undef MX_ROW
#define MX_STORE(i)                                                    \
  {                                                                    \
    float* ci = c + i * ldc;                                           \
    if (acc) {                                                         \
      c##i##0 = vaddq_f32(c##i##0, vld1q_f32(ci));                     \
      c##i##1 = vaddq_f32(c##i##1, vld1q_f32(ci + 4));                 \
      c##i##2 = vaddq_f32(c##i##2, vld1q_f32(ci + 8));                 \
    }                                                                  \
    vst1q_f32(ci, c##i##0);                                            \
    vst1q_f32(ci + 4, c##i##1);                                        \
    vst1q_f32(ci + 8, c##i##2);                                        \
  }
  MX_STORE(0) MX_STORE(1) MX_STORE(2) MX_STORE(3) MX_STORE(4) MX_STORE(5) MX_STORE(6) MX_STORE(7)
#undef MX_STORE
}

}  // namespace

#define GEMM_VW 4
#define GEMM_NT_R 4
#include "gemm_body.inc"

namespace mx {
const GemmImpl gemm_impl_neon = {"neon", GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC, GEMM_NC,
                                 gemm_run, gemv_t, gemv_n, gemm_nt_small};
}

#endif  // __aarch64__
