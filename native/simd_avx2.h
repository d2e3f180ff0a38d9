// 8-lane vectors for the AVX2 + FMA kernels (16 ymm registers): the small vector interface the
// per-ISA kernel bodies are written against (simd_*.h each define the same names). Included by one
// translation unit compiled with -mavx2 -mfma; everything has internal linkage.
#pragma once
#include <immintrin.h>

#include "common.h"

namespace {

using mx::i64;

constexpr int W = 8;   // floats per vector
typedef __m256 vf;     // floats
typedef __m256 vm;     // lane masks: all bits set or clear
typedef __m256i vi;    // 32-bit integers

#define MX_INL static inline __attribute__((always_inline))

MX_INL vf vzero() { return _mm256_setzero_ps(); }
MX_INL vf vset1(float x) { return _mm256_set1_ps(x); }
MX_INL vf vload(const float* p) { return _mm256_loadu_ps(p); }
MX_INL void vstore(float* p, vf x) { _mm256_storeu_ps(p, x); }
MX_INL vf vbcast(const float* p) { return _mm256_broadcast_ss(p); }

// The first n (0 <= n < W) lanes; the others read as 0 and are never written.
MX_INL vi tail_mask(i64 n) {
  alignas(32) static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i*)(m + 8 - n));
}
MX_INL vm vfirst(i64 n) { return _mm256_castsi256_ps(tail_mask(n)); }  // lanes [0, n), 0 <= n <= W
MX_INL vf vload_n(const float* p, i64 n) { return _mm256_maskload_ps(p, tail_mask(n)); }
MX_INL void vstore_n(float* p, vf x, i64 n) { _mm256_maskstore_ps(p, tail_mask(n), x); }

MX_INL vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
MX_INL vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
MX_INL vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
MX_INL vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
MX_INL vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }    // a*b + c
MX_INL vf vfnma(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a*b
MX_INL vf vsqrt(vf a) { return _mm256_sqrt_ps(a); }
// min/max of two numbers; which operand a NaN yields is not specified (callers track NaNs).
MX_INL vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
MX_INL vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
MX_INL vf vabs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
MX_INL vf vneg(vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }

MX_INL vm vlt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
MX_INL vm vle(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
MX_INL vm veq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
MX_INL vm vne(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }  // true for NaN, like C's !=
MX_INL vm visnan(vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
MX_INL vm mor(vm a, vm b) { return _mm256_or_ps(a, b); }
MX_INL vm mnone() { return _mm256_setzero_ps(); }
MX_INL bool many(vm m) { return _mm256_movemask_ps(m) != 0; }
MX_INL vf vsel(vm m, vf t, vf f) { return _mm256_blendv_ps(f, t, m); }  // m ? t : f per lane

MX_INL float vhsum(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
MX_INL float vhmax(vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Integer helpers for exp's 2^n: x holds integral values in int range.
MX_INL vi vcvti(vf x) { return _mm256_cvttps_epi32(x); }
MX_INL vi vsrai1(vi x) { return _mm256_srai_epi32(x, 1); }
MX_INL vi vsubi(vi a, vi b) { return _mm256_sub_epi32(a, b); }
// 2^n as a float for -126 <= n <= 127.
MX_INL vf vpow2i(vi n) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23)); }

MX_INL void vprefetch(const void* p) { _mm_prefetch((const char*)p, _MM_HINT_T0); }

}  // namespace
