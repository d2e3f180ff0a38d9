// Branch-free float math the compiler can vectorise (used inside target_clones loops).
#pragma once
#include <cmath>
#include <cstdint>

// Hot loops are compiled for AVX-512, AVX2+FMA and the baseline; the loader picks one per CPU.
#if defined(__x86_64__) && defined(__linux__) && !defined(MX_NO_CLONES)
#define MX_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MX_CLONES
#endif

// Float reductions over 16 explicit lanes so the loops vectorise without -ffast-math: RESULT is
// the sum of EXPR for k in [0, N).
#define MX_LANE_SUM(N, EXPR, RESULT)                                   \
  float RESULT;                                                        \
  {                                                                    \
    float acc_[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; \
    i64 i_ = 0;                                                        \
    for (; i_ + 16 <= (N); i_ += 16)                                   \
      for (int j_ = 0; j_ < 16; j_++) {                                \
        const i64 k = i_ + j_;                                         \
        acc_[j_] += (EXPR);                                            \
      }                                                                \
    float t_ = 0.0f;                                                   \
    for (; i_ < (N); i_++) {                                           \
      const i64 k = i_;                                                \
      t_ += (EXPR);                                                    \
    }                                                                  \
    for (int j_ = 0; j_ < 8; j_++) acc_[j_] += acc_[j_ + 8];           \
    for (int j_ = 0; j_ < 4; j_++) acc_[j_] += acc_[j_ + 4];           \
    RESULT = ((acc_[0] + acc_[1]) + (acc_[2] + acc_[3])) + t_;         \
  }

namespace mx {

static inline __attribute__((always_inline)) float vexp(float x) {
  // exp(x) = 2^n * e^r, |r| <= ln2/2; 2^n applied in two halves so subnormal results and
  // overflow to +inf come out right. About 1 ulp (Cephes polynomial).
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  const float t = xc * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = (int32_t)n;
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = __builtin_bit_cast(float, (n1 + 127) << 23);
  const float s2 = __builtin_bit_cast(float, (n2 + 127) << 23);
  const float res = p * s1 * s2;
  return x != x ? x : res;
}

static inline __attribute__((always_inline)) float vtanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = x * x;
  float p = -5.70498872745E-3f;
  p = p * z + 2.06390887954E-2f;
  p = p * z - 5.37397155531E-2f;
  p = p * z + 1.33314422036E-1f;
  p = p * z - 3.33332819422E-1f;
  const float small = p * z * x + x;
  const float e = vexp(2.0f * (ax > 20.0f ? 20.0f : ax));
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = x < 0.0f ? -big : big;
  const float res = ax < 0.625f ? small : big;
  return x != x ? x : res;
}

// erfc(z) for z >= 0 with relative error ~1e-7 (Numerical Recipes' erfcc, in float).
static inline __attribute__((always_inline)) float verfc_pos(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * vexp(p - z * z);
}

// 1 + erf(x), accurate relative to its value also where it is tiny (x very negative).
static inline __attribute__((always_inline)) float vone_plus_erf(float x) {
  const float z = x < 0.0f ? -x : x;
  const float e = verfc_pos(z > 10.0f ? 10.0f : z);
  const float r = x < 0.0f ? e : 2.0f - e;
  return x != x ? x : r;
}

static inline __attribute__((always_inline)) float verf(float x) {
  const float ax = x < 0.0f ? -x : x;
  // Taylor series near 0 (where 1 - erfc would lose relative accuracy).
  const float z = x * x;
  float s = -1.0f / 1320.0f;
  s = s * z + 1.0f / 216.0f;
  s = s * z - 1.0f / 42.0f;
  s = s * z + 1.0f / 10.0f;
  s = s * z - 1.0f / 3.0f;
  s = s * z + 1.0f;
  const float small = 1.12837916709551257f * x * s;
  float big = 1.0f - verfc_pos(ax > 10.0f ? 10.0f : ax);
  big = x < 0.0f ? -big : big;
  const float r = ax < 0.5f ? small : big;
  return x != x ? x : r;
}

static inline __attribute__((always_inline)) float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

// Sum of x[0..n) in double over 8 independent lanes, so it vectorises without -ffast-math.
template <class T>
static inline __attribute__((always_inline)) double lane_sum_d(const T* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j];
  double t = 0;
  for (; i < n; i++) t += (double)x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + t;
}

// max over s[0..n) * scale, NaN if any is NaN, over 16 lanes so it vectorises without -ffast-math.
// Inlined into each caller's target_clones function (a constant scale of 1 folds away).
static inline __attribute__((always_inline)) float lane_max(const float* s, int64_t n, float scale) {
  float acc[16];
  int nan[16];
  for (int j = 0; j < 16; j++) {
    acc[j] = -INFINITY;
    nan[j] = 0;
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) {
      const float v = s[i + j] * scale;
      acc[j] = v > acc[j] ? v : acc[j];
      nan[j] |= v != v;
    }
  float m = -INFINITY;
  int any = 0;
  for (; i < n; i++) {
    const float v = s[i] * scale;
    m = v > m ? v : m;
    any |= v != v;
  }
  for (int j = 0; j < 16; j++) {
    m = acc[j] > m ? acc[j] : m;
    any |= nan[j];
  }
  return any ? NAN : m;
}

}  // namespace mx
