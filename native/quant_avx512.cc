// The AVX-512 VNNI quantised dot products (compiled with -mavx512f -mavx512vl -mavx512bw
// -mavx512vnni -mfma -mf16c): quant_body.inc with vpdpbusd (_mm256_dpbusd_epi32, AVX512VL + VNNI)
// for the int8 products, on 256-bit vectors as ggml does. Chosen only where cpuid reports
// AVX512_VNNI, AVX512BW and AVX512VL (isa.cc's cpu_avx512_vnni).
#if defined(__x86_64__)
#define MX_Q_NAME "avx512vnni"
#define MX_Q_TABLE quant_avx512vnni
#define MX_Q_VNNI 1
#include "quant_body.inc"
#endif
