// The AVX2 + FMA kernel table (compiled with -mavx2 -mfma): 8-lane vectors, 16 registers.
#if defined(__x86_64__)  // other architectures build only their own kernels
#include "kernels.h"
#include "simd_avx2.h"
#include "simd_math.inc"
#include "kernels_body.inc"

// Attention's register tile: 6 rows x 2 vectors = 12 accumulators, with 2 B vectors and one
// broadcast in flight 15 of the 16 ymm registers (a 16-lane-wide tile spills on this register file).
#define MX_MM_R 6
#define MX_MM_NV 2
#define MX_ATT_BR 24  // 4 x 6 rows; measured best of 24, 32, 36, 48 with BC 48 or 64 on T 64 and 256
#define MX_ATT_BC 48
#include "attention_body.inc"

namespace mx {
const Kernels kernels_avx2 = MX_KERNEL_TABLE("avx2", &gemm_impl_avx2);
}

#endif
