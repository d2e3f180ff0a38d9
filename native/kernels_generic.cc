// The portable kernel table: GCC / clang vector extensions, 4 lanes (simd_generic.h), for CPUs
// without the instruction sets above and for MOXING_ISA=generic.
#include "kernels.h"
#include "simd_generic.h"
#include "simd_math.inc"
#include "kernels_body.inc"

#ifndef MX_MM_R  // the kernel test builds this file again with another width and tile
#define MX_MM_R 4
#define MX_MM_NV 2
#define MX_ATT_BR 32
#define MX_ATT_BC 64
#endif
#include "attention_body.inc"

#ifndef MX_GENERIC_TABLE
#define MX_GENERIC_TABLE kernels_generic
#define MX_GENERIC_NAME "generic"
#define MX_GENERIC_GEMM gemm_impl_generic
#endif
namespace mx {
extern const Kernels MX_GENERIC_TABLE;  // external linkage also for the kernel test's extra tables
const Kernels MX_GENERIC_TABLE = MX_KERNEL_TABLE(MX_GENERIC_NAME, &MX_GENERIC_GEMM);
}
