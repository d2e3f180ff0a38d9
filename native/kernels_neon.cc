// The NEON kernel table (AArch64): 4-lane vectors, 32 registers.
#if defined(__aarch64__)
#include "kernels.h"
#include "simd_neon.h"
#include "simd_math.inc"
#include "kernels_body.inc"

// Attention's register tile: 8 rows x 3 vectors = 24 accumulators, 28 of the 32 q registers with
// the B vectors and the broadcast.
#define MX_MM_R 8
#define MX_MM_NV 3
#define MX_ATT_BR 32
#define MX_ATT_BC 64
#include "attention_body.inc"

namespace mx {
const Kernels kernels_neon = MX_KERNEL_TABLE("neon", &gemm_impl_neon);
}

#endif
