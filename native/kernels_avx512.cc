// The AVX-512 kernel table (compiled with -mavx512f -mavx512vl -mfma): 16-lane vectors, 32
// registers, mask registers for vector tails.
#if defined(__x86_64__)
#include "kernels.h"
#include "simd_avx512.h"
#include "simd_math.inc"
#include "kernels_body.inc"

// Attention's register tile: 8 rows x 2 vectors = 16 accumulators (32 columns), 19 of the 32 zmm
// registers with the B vectors and the broadcast.
#define MX_MM_R 8
#define MX_MM_NV 2
#define MX_ATT_BR 32
#define MX_ATT_BC 64
#include "attention_body.inc"

namespace mx {
const Kernels kernels_avx512 = MX_KERNEL_TABLE("avx512", &gemm_impl_avx512);
}

#endif
