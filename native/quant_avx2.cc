// The AVX2 quantised dot products (compiled with -mavx2 -mfma -mf16c): quant_body.inc with
// _mm256_maddubs_epi16 + _mm256_madd_epi16 for the int8 products.
#if defined(__x86_64__)  // other architectures build only the portable kernels
#define MX_Q_NAME "avx2"
#define MX_Q_TABLE quant_avx2
#define MX_Q_VNNI 0
#include "quant_body.inc"
#endif
