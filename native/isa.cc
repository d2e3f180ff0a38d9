// The one CPU detection of the native backend: which instruction sets this CPU (and its operating
// system) can run, and which kernel table serves each kernel family. It runs once, when the addon
// is loaded, before any kernel: cpuid and xgetbv on x86-64 (AVX2 needs the OS to save the ymm
// state, AVX-512 the zmm and mask state too), the hardware capabilities on AArch64.
//
// MOXING_ISA=avx512|avx2|neon|generic serves every family from that one set, so each path can be
// tested and benchmarked on any machine that runs it. A set this CPU lacks, or an unknown name, is
// refused: isa_error() says why and the TypeScript side reports it instead of loading the backend.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace mx {

const char* const kFamilyNames[F_COUNT] = {"gemm",  "gemv",         "elementwise", "softmax",   "layerNorm",
                                           "gelu",  "crossEntropy", "adamw",       "attention", "attentionBackward"};

const Kernels* g_family[F_COUNT];

namespace {

struct Cpu {
  bool avx2 = false;
  bool avx512 = false;
  bool neon = false;
};

#if defined(__x86_64__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}
#endif

Cpu detect_cpu() {
  Cpu c;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
  const bool osxsave = cx & (1u << 27), avx = cx & (1u << 28), fma = cx & (1u << 12);
  if (!osxsave || !avx) return c;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm = (xcr0 & 0x6) == 0x6;    // the OS saves the SSE and AVX registers
  const bool zmm = (xcr0 & 0xe6) == 0xe6;  // ... and the opmask and upper zmm registers
  if (__get_cpuid_max(0, nullptr) < 7) return c;
  __cpuid_count(7, 0, a, b, cx, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512vl = b & (1u << 31);
  c.avx2 = ymm && fma && avx2;
  c.avx512 = c.avx2 && zmm && avx512f && avx512vl;
#elif defined(__aarch64__) && defined(__linux__)
  c.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#elif defined(__aarch64__) && defined(__APPLE__)
  int v = 0;
  size_t len = sizeof v;
  // Every Apple Silicon CPU has Advanced SIMD; the query only guards against a future surprise.
  c.neon = sysctlbyname("hw.optional.neon", &v, &len, nullptr, 0) != 0 || v != 0;
#elif defined(__aarch64__)
  c.neon = true;  // Advanced SIMD is part of the AArch64 base architecture
#endif
  return c;
}

struct Isa {
  const char* name;
  const Kernels* table;
  bool present;
};

const Cpu g_cpu = detect_cpu();

// The sets built into this addon, best first, and whether this CPU runs them.
const Isa kIsas[] = {
#if defined(__x86_64__)
    {"avx512", &kernels_avx512, g_cpu.avx512},
    {"avx2", &kernels_avx2, g_cpu.avx2},
#endif
#if defined(__aarch64__)
    {"neon", &kernels_neon, g_cpu.neon},
#endif
    {"generic", &kernels_generic, true},
};
const char* const kKnown[] = {"avx512", "avx2", "neon", "generic"};

bool known(const char* name) {
  for (const char* k : kKnown)
    if (!std::strcmp(k, name)) return true;
  return false;
}

bool provides(const Kernels* k, int f) {
  switch (f) {
    case F_GEMM: return k->gemm && k->gemm->run && k->gemm->gemm_nt_small;
    case F_GEMV: return k->gemm && k->gemm->gemv_t && k->gemm->gemv_n;
    case F_ELEMENTWISE: return k->unary && k->binary;
    case F_SOFTMAX: return k->softmax_rows && k->softmax_bwd_rows;
    case F_LAYERNORM: return k->layernorm_rows && k->layernorm_bwd_rows;
    case F_GELU: return k->gelu && k->gelu_bwd && k->bias_gelu_rows;
    case F_CROSS_ENTROPY: return k->cross_entropy_rows && k->cross_entropy_bwd_rows;
    case F_ADAMW: return k->adamw;
    case F_ATTENTION: return k->attn_fwd_rows && k->attn_fwd_row;
    case F_ATTENTION_BWD: return k->attn_bwd_keys && k->attn_bwd_rows;
  }
  return false;
}

char g_available[64];
char g_error[320];

const Isa* find(const char* name) {
  for (const Isa& i : kIsas)
    if (!std::strcmp(i.name, name)) return &i;
  return nullptr;
}

// Each family from the best set this CPU runs that provides it (the generic set provides all).
void choose_best() {
  for (int f = 0; f < F_COUNT; f++) {
    for (const Isa& i : kIsas) {
      if (i.present && provides(i.table, f)) {
        g_family[f] = i.table;
        break;
      }
    }
  }
}

bool force(const Isa* i) {
  if (!i || !i->present) return false;
  for (int f = 0; f < F_COUNT; f++)
    if (!provides(i->table, f)) return false;
  for (int f = 0; f < F_COUNT; f++) g_family[f] = i->table;
  return true;
}

bool init() {
  size_t at = 0;
  for (const Isa& i : kIsas) {
    if (!i.present) continue;
    at += (size_t)std::snprintf(g_available + at, sizeof g_available - at, "%s%s", at ? "," : "", i.name);
  }
  choose_best();
  const char* e = std::getenv("MOXING_ISA");
  if (!e || !*e) return true;
  const Isa* i = find(e);
  if (force(i)) return true;
  if (!known(e))
    std::snprintf(g_error, sizeof g_error,
                  "MOXING_ISA=%s is not an instruction set moxing knows (%s); unset MOXING_ISA or set it to one "
                  "this CPU runs: %s",
                  e, "avx512, avx2, neon, generic", g_available);
  else
    std::snprintf(g_error, sizeof g_error,
                  "MOXING_ISA=%s asks for an instruction set this CPU lacks (it runs %s); unset MOXING_ISA or set it "
                  "to one of those",
                  e, g_available);
  return false;
}

const bool g_init = init();

}  // namespace

const char* isa_available() { return g_available; }
const char* isa_error() { return g_init ? nullptr : g_error; }
bool isa_force(const char* name) { return force(find(name)); }

// Two more features, for the quantised kernels (quant.cc): F16C (float16 conversion; every AVX2 CPU
// moxing has met has it, but it is its own cpuid bit) and AVX-512 VNNI with BW and VL (vpdpbusd).
#if defined(__x86_64__)
static bool cpuid_bit(unsigned leaf, int reg, unsigned bit) {
  unsigned r[4] = {0, 0, 0, 0};
  if (__get_cpuid_max(0, nullptr) < leaf) return false;
  __cpuid_count(leaf, 0, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit) & 1;
}
// Read once: cpuid is serialising, and in a virtual machine each one traps to the hypervisor.
static const bool g_f16c = g_cpu.avx2 && cpuid_bit(1, 2, 29);
static const bool g_avx512_vnni = g_cpu.avx512 && cpuid_bit(7, 1, 30) && cpuid_bit(7, 2, 11);
bool cpu_f16c() { return g_f16c; }
bool cpu_avx512_vnni() { return g_avx512_vnni; }
#else
bool cpu_f16c() { return false; }
bool cpu_avx512_vnni() { return false; }
#endif

}  // namespace mx
