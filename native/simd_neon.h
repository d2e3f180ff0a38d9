// 4-lane vectors for the NEON kernels (AArch64 Advanced SIMD: 32 q registers, FMA, horizontal
// adds); the same interface as simd_avx2.h. NEON is part of every AArch64 CPU, so this builds
// with the compiler's default flags (g++ on Linux, clang on macOS).
#pragma once
#include <arm_neon.h>
#include <string.h>

#include "common.h"

namespace {

using mx::i64;

constexpr int W = 4;
typedef float32x4_t vf;
typedef uint32x4_t vm;
typedef int32x4_t vi;

#define MX_INL static inline __attribute__((always_inline))

MX_INL vf vzero() { return vdupq_n_f32(0.0f); }
MX_INL vf vset1(float x) { return vdupq_n_f32(x); }
MX_INL vf vload(const float* p) { return vld1q_f32(p); }
MX_INL void vstore(float* p, vf x) { vst1q_f32(p, x); }
MX_INL vf vbcast(const float* p) { return vld1q_dup_f32(p); }

MX_INL vm vfirst(i64 n) {  // lanes [0, n), 0 <= n <= W
  const int32_t idx[4] = {0, 1, 2, 3};
  return vcltq_s32(vld1q_s32(idx), vdupq_n_s32((int32_t)n));
}
MX_INL vf vload_n(const float* p, i64 n) {
  float t[4] = {0, 0, 0, 0};
  memcpy(t, p, sizeof(float) * (size_t)n);
  return vld1q_f32(t);
}
MX_INL void vstore_n(float* p, vf x, i64 n) {
  float t[4];
  vst1q_f32(t, x);
  memcpy(p, t, sizeof(float) * (size_t)n);
}

MX_INL vf vadd(vf a, vf b) { return vaddq_f32(a, b); }
MX_INL vf vsub(vf a, vf b) { return vsubq_f32(a, b); }
MX_INL vf vmul(vf a, vf b) { return vmulq_f32(a, b); }
MX_INL vf vdiv(vf a, vf b) { return vdivq_f32(a, b); }
MX_INL vf vfma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
MX_INL vf vfnma(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
MX_INL vf vsqrt(vf a) { return vsqrtq_f32(a); }
MX_INL vf vmax(vf a, vf b) { return vmaxq_f32(a, b); }
MX_INL vf vmin(vf a, vf b) { return vminq_f32(a, b); }
MX_INL vf vabs(vf a) { return vabsq_f32(a); }
MX_INL vf vneg(vf a) { return vnegq_f32(a); }

MX_INL vm vlt(vf a, vf b) { return vcltq_f32(a, b); }
MX_INL vm vle(vf a, vf b) { return vcleq_f32(a, b); }
MX_INL vm veq(vf a, vf b) { return vceqq_f32(a, b); }
MX_INL vm vne(vf a, vf b) { return vmvnq_u32(vceqq_f32(a, b)); }
MX_INL vm visnan(vf a) { return vmvnq_u32(vceqq_f32(a, a)); }
MX_INL vm mor(vm a, vm b) { return vorrq_u32(a, b); }
MX_INL vm mnone() { return vdupq_n_u32(0); }
MX_INL bool many(vm m) { return vmaxvq_u32(m) != 0; }
MX_INL vf vsel(vm m, vf t, vf f) { return vbslq_f32(m, t, f); }

MX_INL float vhsum(vf a) { return vaddvq_f32(a); }
MX_INL float vhmax(vf a) { return vmaxvq_f32(a); }

MX_INL vi vcvti(vf x) { return vcvtq_s32_f32(x); }
MX_INL vi vsrai1(vi x) { return vshrq_n_s32(x, 1); }
MX_INL vi vsubi(vi a, vi b) { return vsubq_s32(a, b); }
MX_INL vf vpow2i(vi n) { return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n, vdupq_n_s32(127)), 23)); }

MX_INL void vprefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

}  // namespace
