// 16-lane vectors for the AVX-512 kernels (32 zmm registers, mask registers for tails and
// selects); the same interface as simd_avx2.h. Compiled with -mavx512f -mavx512vl -mfma.
#pragma once
#include <immintrin.h>

#include "common.h"

namespace {

using mx::i64;

constexpr int W = 16;
typedef __m512 vf;
typedef __mmask16 vm;
typedef __m512i vi;

#define MX_INL static inline __attribute__((always_inline))

MX_INL vf vzero() { return _mm512_setzero_ps(); }
MX_INL vf vset1(float x) { return _mm512_set1_ps(x); }
MX_INL vf vload(const float* p) { return _mm512_loadu_ps(p); }
MX_INL void vstore(float* p, vf x) { _mm512_storeu_ps(p, x); }
MX_INL vf vbcast(const float* p) { return _mm512_set1_ps(*p); }

MX_INL __mmask16 tail_mask(i64 n) { return (__mmask16)((1u << n) - 1u); }
MX_INL vm vfirst(i64 n) { return n >= 16 ? (vm)0xffff : tail_mask(n); }  // lanes [0, n), 0 <= n <= W
MX_INL vf vload_n(const float* p, i64 n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
MX_INL void vstore_n(float* p, vf x, i64 n) { _mm512_mask_storeu_ps(p, tail_mask(n), x); }

MX_INL vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
MX_INL vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
MX_INL vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
MX_INL vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
MX_INL vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
MX_INL vf vfnma(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
MX_INL vf vsqrt(vf a) { return _mm512_sqrt_ps(a); }
MX_INL vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
MX_INL vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
MX_INL vf vabs(vf a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
MX_INL vf vneg(vf a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u))); }

MX_INL vm vlt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
MX_INL vm vle(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
MX_INL vm veq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
MX_INL vm vne(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
MX_INL vm visnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
MX_INL vm mor(vm a, vm b) { return (vm)(a | b); }
MX_INL vm mnone() { return 0; }
MX_INL bool many(vm m) { return m != 0; }
MX_INL vf vsel(vm m, vf t, vf f) { return _mm512_mask_blend_ps(m, f, t); }  // lanes of m from t

MX_INL float vhsum(vf a) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
MX_INL float vhmax(vf a) {
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

MX_INL vi vcvti(vf x) { return _mm512_cvttps_epi32(x); }
MX_INL vi vsrai1(vi x) { return _mm512_srai_epi32(x, 1); }
MX_INL vi vsubi(vi a, vi b) { return _mm512_sub_epi32(a, b); }
MX_INL vf vpow2i(vi n) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23)); }

MX_INL void vprefetch(const void* p) { _mm_prefetch((const char*)p, _MM_HINT_T0); }

}  // namespace
