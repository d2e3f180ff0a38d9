// Portable vectors for the generic kernels: GCC / clang vector extensions of MX_GENERIC_W floats
// (4 by default: SSE2 on x86-64's baseline, Advanced SIMD on AArch64, scalar code elsewhere); the
// same interface as simd_avx2.h. Only operators and element access are used (no two-input
// shuffles), so GCC and clang compile it alike. The kernel test also builds it 16 lanes wide with
// the AVX-512 tile sizes, to run the AVX-512 kernel bodies' logic on CPUs without AVX-512.
#pragma once
#include <string.h>

#include "common.h"

#ifndef MX_GENERIC_W
#define MX_GENERIC_W 4
#endif

namespace {

using mx::i64;

constexpr int W = MX_GENERIC_W;
typedef float vf __attribute__((vector_size(4 * MX_GENERIC_W)));
typedef int32_t vi __attribute__((vector_size(4 * MX_GENERIC_W)));
typedef vi vm;  // -1 or 0 per lane, as vector comparisons give

#define MX_INL static inline __attribute__((always_inline))

MX_INL vf vzero() { return vf{} ; }
MX_INL vf vset1(float x) { return vf{} + x; }
MX_INL vf vload(const float* p) {
  vf r;
  memcpy(&r, p, sizeof r);
  return r;
}
MX_INL void vstore(float* p, vf x) { memcpy(p, &x, sizeof x); }
MX_INL vf vbcast(const float* p) { return vset1(*p); }
MX_INL vm vfirst(i64 n) {  // lanes [0, n), 0 <= n <= W
  vm m;
  for (int i = 0; i < W; i++) m[i] = i < n ? -1 : 0;
  return m;
}
MX_INL vf vload_n(const float* p, i64 n) {
  vf r = {};
  memcpy(&r, p, sizeof(float) * (size_t)n);
  return r;
}
MX_INL void vstore_n(float* p, vf x, i64 n) { memcpy(p, &x, sizeof(float) * (size_t)n); }

MX_INL vf vadd(vf a, vf b) { return a + b; }
MX_INL vf vsub(vf a, vf b) { return a - b; }
MX_INL vf vmul(vf a, vf b) { return a * b; }
MX_INL vf vdiv(vf a, vf b) { return a / b; }
MX_INL vf vfma(vf a, vf b, vf c) { return a * b + c; }
MX_INL vf vfnma(vf a, vf b, vf c) { return c - a * b; }
MX_INL vf vsqrt(vf a) {
  for (int i = 0; i < W; i++) a[i] = __builtin_sqrtf(a[i]);
  return a;
}
MX_INL vm vlt(vf a, vf b) { return a < b; }
MX_INL vm vle(vf a, vf b) { return a <= b; }
MX_INL vm veq(vf a, vf b) { return a == b; }
MX_INL vm vne(vf a, vf b) { return a != b; }
MX_INL vm visnan(vf a) { return a != a; }
MX_INL vm mor(vm a, vm b) { return a | b; }
MX_INL vm mnone() { return vm{}; }
MX_INL bool many(vm m) {
  int32_t r = 0;
  for (int i = 0; i < W; i++) r |= m[i];
  return r != 0;
}
MX_INL vf vsel(vm m, vf t, vf f) { return (vf)((m & (vi)t) | (~m & (vi)f)); }
MX_INL vf vmax(vf a, vf b) { return vsel(a > b, a, b); }
MX_INL vf vmin(vf a, vf b) { return vsel(a < b, a, b); }
MX_INL vf vabs(vf a) { return (vf)((vi)a & (vi{} + 0x7fffffff)); }
MX_INL vf vneg(vf a) { return -a; }

MX_INL float vhsum(vf a) {
  // Pairwise, as the SIMD sets' horizontal sums are.
  for (int h = W / 2; h >= 1; h /= 2)
    for (int i = 0; i < h; i++) a[i] += a[i + h];
  return a[0];
}
MX_INL float vhmax(vf a) {
  float m = a[0];
  for (int i = 1; i < W; i++) m = a[i] > m ? a[i] : m;
  return m;
}

MX_INL vi vcvti(vf x) { return __builtin_convertvector(x, vi); }
MX_INL vi vsrai1(vi x) { return x >> 1; }
MX_INL vi vsubi(vi a, vi b) { return a - b; }
MX_INL vf vpow2i(vi n) { return (vf)((n + 127) << 23); }

MX_INL void vprefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

}  // namespace
