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

// The 6x16 tile: C (6 rows at c, ldc apart; added to when acc) = the A panel (6 per p) times kc rows
// of B, 16 floats each, ldb apart. Packed B (PACK false) has ldb 16. With PACK, B is read unpacked
// and each row is also stored to dst[p*16 + j], so the remaining row tiles of a few-row product
// reuse it from L1 and B is never packed in a pass of its own (as the AVX-512 kernel does; 81-83 ->
// 86-91 GFLOP/s on 64 and 128 x 768 x 768, one thread).
template <bool PACK>
__attribute__((always_inline)) inline void tile(i64 kc, const float* a, const float* b, i64 ldb, float* dst, float* c,
                                                i64 ldc, int acc) {
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
    if constexpr (PACK) {
      _mm_prefetch((const char*)(b + 8 * ldb), _MM_HINT_T0);
      _mm256_storeu_ps(dst, b0);
      _mm256_storeu_ps(dst + 8, b1);
      dst += 16;
    }
    MX_ROW(0) MX_ROW(1) MX_ROW(2) MX_ROW(3) MX_ROW(4) MX_ROW(5)
    a += 6;
    b += ldb;
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

inline void kernel(i64 kc, const float* a, const float* b, float* c, i64 ldc, int acc) {
  tile<false>(kc, a, b, 16, nullptr, c, ldc, acc);
}

inline void kernel_ldb_pack(i64 kc, const float* a, const float* b, i64 ldb, float* dst, float* c, i64 ldc,
                            int acc) {
  tile<true>(kc, a, b, ldb, dst, c, ldc, acc);
}
#define GEMM_KERNEL_LDB_PACK kernel_ldb_pack

// Packs one full NR=16 panel of a transposed B (B(p, j) = b[p + j*cs], the nn.Linear weight layout)
// with in-register 8x8 transposes: dst[p*16 + j]. The scalar fallback reads 8 columns at a time
// and writes one float per instruction, which cost a quarter of a few-row product's time.
inline void pack_b_panel_trans(i64 kc, const float* b, i64 cs, float* dst) {
  for (int h = 0; h < 2; h++) {
    const float* bh = b + (i64)h * 8 * cs;
    float* dh = dst + h * 8;
    i64 p0 = 0;
    for (; p0 + 8 <= kc; p0 += 8) {
      __m256 r0 = _mm256_loadu_ps(bh + 0 * cs + p0), r1 = _mm256_loadu_ps(bh + 1 * cs + p0);
      __m256 r2 = _mm256_loadu_ps(bh + 2 * cs + p0), r3 = _mm256_loadu_ps(bh + 3 * cs + p0);
      __m256 r4 = _mm256_loadu_ps(bh + 4 * cs + p0), r5 = _mm256_loadu_ps(bh + 5 * cs + p0);
      __m256 r6 = _mm256_loadu_ps(bh + 6 * cs + p0), r7 = _mm256_loadu_ps(bh + 7 * cs + p0);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      r0 = _mm256_permute2f128_ps(u0, u4, 0x20);
      r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
      r2 = _mm256_permute2f128_ps(u2, u6, 0x20);
      r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
      r4 = _mm256_permute2f128_ps(u0, u4, 0x31);
      r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
      r6 = _mm256_permute2f128_ps(u2, u6, 0x31);
      r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
      float* d = dh + p0 * 16;
      _mm256_storeu_ps(d + 0 * 16, r0);
      _mm256_storeu_ps(d + 1 * 16, r1);
      _mm256_storeu_ps(d + 2 * 16, r2);
      _mm256_storeu_ps(d + 3 * 16, r3);
      _mm256_storeu_ps(d + 4 * 16, r4);
      _mm256_storeu_ps(d + 5 * 16, r5);
      _mm256_storeu_ps(d + 6 * 16, r6);
      _mm256_storeu_ps(d + 7 * 16, r7);
    }
    for (; p0 < kc; p0++)
      for (int j = 0; j < 8; j++) dh[p0 * 16 + j] = bh[j * cs + p0];
  }
}
#define GEMM_PACK_B_PANEL_TRANS pack_b_panel_trans

// Packs one full MR=6 panel of A: dst[p*6 + i] = A(i, p), A(i, p) = a[i*rs + p*cs]. Row-major A
// (cs == 1, the activations) goes through 8x8 in-register transposes (rows 6 and 7 zero), each of
// the eight 6-float groups written with one 8-float store that the next group's store overwrites.
// The scalar loop of gemm_body.inc moved one float per instruction. Returns false for other strides
// (transposed A goes through pack_a_block below; any other layout through the generic loop).
inline bool pack_a_panel(i64 kc, const float* a, i64 rs, i64 cs, float* dst) {
  const __m256i first6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  if (cs == 1) {
    const float* r0 = a;
    const float* r1 = a + rs;
    const float* r2 = a + 2 * rs;
    const float* r3 = a + 3 * rs;
    const float* r4 = a + 4 * rs;
    const float* r5 = a + 5 * rs;
    const __m256 z = _mm256_setzero_ps();
    i64 p = 0;
    for (; p + 8 <= kc; p += 8) {
      const __m256 x0 = _mm256_loadu_ps(r0 + p), x1 = _mm256_loadu_ps(r1 + p);
      const __m256 x2 = _mm256_loadu_ps(r2 + p), x3 = _mm256_loadu_ps(r3 + p);
      const __m256 x4 = _mm256_loadu_ps(r4 + p), x5 = _mm256_loadu_ps(r5 + p);
      const __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
      const __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
      const __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
      const __m256 t6 = _mm256_unpacklo_ps(z, z), t7 = t6;
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* d = dst + p * 6;
      _mm256_storeu_ps(d + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + 6, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 12, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 18, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 30, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 36, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_maskstore_ps(d + 42, first6, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; p < kc; p++) {
      float* d = dst + p * 6;
      d[0] = r0[p];
      d[1] = r1[p];
      d[2] = r2[p];
      d[3] = r3[p];
      d[4] = r4[p];
      d[5] = r5[p];
    }
    return true;
  }
  return false;
}
#define GEMM_PACK_A_PANEL pack_a_panel

// Packs a whole A block when A is stored transposed (rs == 1: A(i, p) = a[i + p*cs], a weight
// gradient's dYᵀ): one pass along each stored row p, which is contiguous, handing 6 floats to each
// panel. Panel by panel, every panel walked kc rows cs floats apart and the loads waited on memory
// (the hottest instruction of the pack in a profile). An 8-float load and store per panel and p:
// the 2 extra floats read stay inside A while a later p exists (row p+1 follows), and the 2 extra
// written are overwritten by the next p; the last p reads and writes only its 6. The rows of a
// last partial panel (mc not a multiple of 6) are copied one float at a time, zero-padded.
inline bool pack_a_block(i64 mc, i64 kc, const float* a, i64 rs, i64 cs, float* dst) {
  if (rs != 1 || cs < 2) return false;
  const __m256i first6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  const i64 np = mc / 6, ps = 6 * kc;  // full panels; floats per packed panel
  for (i64 p = 0; p < kc; p++) {
    const float* s = a + p * cs;
    float* d = dst + p * 6;
    if (p + 1 < kc) {
      for (i64 q = 0; q < np; q++) _mm256_storeu_ps(d + q * ps, _mm256_loadu_ps(s + q * 6));
    } else {
      for (i64 q = 0; q < np; q++) _mm256_maskstore_ps(d + q * ps, first6, _mm256_maskload_ps(s + q * 6, first6));
    }
  }
  const i64 mr = mc - np * 6;
  if (mr > 0) {
    float* d = dst + np * ps;
    const float* s = a + np * 6;
    for (i64 p = 0; p < kc; p++) {
      int i = 0;
      for (; i < mr; i++) d[p * 6 + i] = s[i + p * cs];
      for (; i < 6; i++) d[p * 6 + i] = 0.0f;
    }
  }
  return true;
}
#define GEMM_PACK_A_BLOCK pack_a_block

}  // namespace

#define GEMM_VW 8
#include "gemm_body.inc"

namespace mx {
const GemmImpl gemm_impl_avx2 = {"avx2", GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC, GEMM_NC,
                                  gemm_run, gemv_t, gemv_n, gemm_nt_small};
}

#endif  // __x86_64__
