// The kernel table: every ISA-specific entry point of the native backend, one table per instruction
// set (kernels_<isa>.cc + gemm_<isa>.cc, each compiled with its own -m flags), and the one CPU
// detection (isa.cc) that picks, at load time, which table serves each kernel family.
//
// The front ends (gemm.cc, ops.cc, fused.cc, attention.cc) own threading, argument handling and
// scratch memory, and call through kernel_for(family) for the arithmetic. Code in the per-ISA
// translation units has internal linkage and uses no std:: templates or inline library functions:
// the linker merges such out-of-line copies across translation units, and a copy compiled for
// AVX-512 could then run on a CPU without it.
#pragma once
#include <cstddef>

#include "common.h"

namespace mx {

// Scaled dot-product attention on one call's operands (attention.cc fills it; see there).
struct Attn {
  const float *q, *k, *v, *out, *lse, *dout;
  float *o, *l;         // forward outputs (out, lse)
  float *dq, *dk, *dv;  // backward outputs
  i64 bh, T, S, hs;
  i64 kvs;  // elements between consecutive batch-heads of k and v (S * hs when contiguous)
  float scale;
  bool causal;
  i64 G;    // groups per batch-head entry (row groups forward, key groups backward)
  i64 per;  // rows (forward) or keys (backward) per group, a multiple of the ISA's attn_br / attn_bc
};

// Grow-only per-thread scratch owned by the front end: returns at least n floats.
typedef float* (*ScratchFn)(size_t n);

struct AdamWArgs {
  float decay, b1c, b2, b2c, step, inv_sqrt_bc2, eps;
};

struct Kernels {
  const char* name;  // "avx512", "avx2", "neon", "generic"
  const GemmImpl* gemm;  // GEMM, GEMV and few-row products (gemm_<isa>.cc)
  // Element-wise inner loops of ops.cc over contiguous runs (op codes of ops.h). binary mode 0:
  // both contiguous; 1: b is one scalar; 2: a is one scalar.
  void (*unary)(int op, const float* x, float* o, i64 n);
  void (*binary)(int op, int mode, const float* a, const float* b, float* o, i64 n);
  // Row kernels over rows [r0, r1) of a (rows, cols) matrix.
  void (*softmax_rows)(const float* x, float* out, i64 r0, i64 r1, i64 cols, bool log);
  void (*softmax_bwd_rows)(const float* y, const float* dy, float* dx, i64 r0, i64 r1, i64 cols, bool log);
  void (*layernorm_rows)(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 r0,
                         i64 r1, i64 cols, double eps);
  // dw / db (when not null) are this range's partial sums, in double, added to.
  void (*layernorm_bwd_rows)(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                             float* dx, double* dw, double* db, i64 r0, i64 r1, i64 cols);
  // RMSNorm (family F_LAYERNORM): rstd per row; dw (when not null) this range's partial sums, added to.
  void (*rmsnorm_rows)(const float* x, const float* w, float* out, float* rstd, i64 r0, i64 r1, i64 cols, double eps);
  void (*rmsnorm_bwd_rows)(const float* x, const float* w, const float* rstd, const float* dy, float* dx, double* dw,
                           i64 r0, i64 r1, i64 cols);
  // SiLU and SwiGLU's silu(gate) * up (family F_GELU, the activations).
  void (*silu)(const float* x, float* out, i64 n);
  void (*silu_bwd)(const float* x, const float* dy, float* dx, i64 n);
  void (*swiglu)(const float* gate, const float* up, float* out, i64 n);
  void (*swiglu_bwd)(const float* gate, const float* up, const float* dy, float* dgate, float* dup, i64 n);
  // Rotary positions (family F_ELEMENTWISE) over rows [r0, r1) of hs values of x (n, T, H, hs).
  void (*rope_rows)(const float* x, const float* cos, const float* sin, float* out, i64 r0, i64 r1, i64 T, i64 H,
                    i64 hs, bool inverse);
  void (*gelu)(const float* x, float* out, i64 n, bool tanh_approx);
  void (*gelu_bwd)(const float* x, const float* dy, float* dx, i64 n, bool tanh_approx);
  void (*bias_gelu_rows)(float* x, const float* bias, float* out, i64 r0, i64 r1, i64 cols, bool tanh_approx);
  // probs (may be null): also write each kept row's softmax there, for a backward without exp.
  void (*cross_entropy_rows)(const float* logits, const int32_t* t, float* losses, float* lse, float* probs, i64 r0,
                             i64 r1, i64 cols, i64 ignore, double ls);
  // from_probs: `logits` holds the forward's softmax (dlogits may be the same buffer).
  void (*cross_entropy_bwd_rows)(const float* logits, const int32_t* t, const float* lse, const float* dlosses,
                                 float* dlogits, i64 r0, i64 r1, i64 cols, i64 ignore, double ls, bool from_probs);
  void (*adamw)(float* p, const float* g, float* m, float* v, i64 n, const AdamWArgs& a);
  // Attention (flash-attention style tiles, see attention_body.inc): forward for rows [r0, r1) of
  // batch-head b, or one row without packing (generation); backward for keys [k0, k1) of b (dq
  // unscaled into dqa, T x hs), or every row of b without packing (few query rows).
  void (*attn_fwd_rows)(const Attn& a, i64 b, i64 r0, i64 r1, ScratchFn scratch);
  void (*attn_fwd_row)(const Attn& a, i64 b, i64 i, float* s);
  void (*attn_bwd_keys)(const Attn& a, i64 b, i64 k0, i64 k1, float* dqa, ScratchFn scratch);
  void (*attn_bwd_rows)(const Attn& a, i64 b, float* s, float* dp);
  i64 attn_br, attn_bc;  // query rows and keys per attention tile
};

// A translation unit's table, after it includes kernels_body.inc and attention_body.inc.
#define MX_KERNEL_TABLE(NAME, GEMM)                                                                   \
  {                                                                                                  \
    NAME, GEMM, k_unary, k_binary, k_softmax_rows, k_softmax_bwd_rows, k_layernorm_rows,             \
        k_layernorm_bwd_rows, k_rmsnorm_rows, k_rmsnorm_bwd_rows, k_silu, k_silu_bwd, k_swiglu,      \
        k_swiglu_bwd, k_rope_rows, k_gelu, k_gelu_bwd, k_bias_gelu_rows, k_cross_entropy_rows,            \
        k_cross_entropy_bwd_rows, k_adamw, k_attn_fwd_rows, k_attn_fwd_row, k_attn_bwd_keys,         \
        k_attn_bwd_rows, BR, BC                                                                      \
  }

extern const Kernels kernels_avx512;
extern const Kernels kernels_avx2;
extern const Kernels kernels_neon;
extern const Kernels kernels_generic;

// Kernel families: each is served by one table, chosen at load time (isa.cc).
enum Family {
  F_GEMM,
  F_GEMV,
  F_ELEMENTWISE,
  F_SOFTMAX,
  F_LAYERNORM,
  F_GELU,
  F_CROSS_ENTROPY,
  F_ADAMW,
  F_ATTENTION,
  F_ATTENTION_BWD,
  F_COUNT
};
extern const char* const kFamilyNames[F_COUNT];

extern const Kernels* g_family[F_COUNT];
static inline const Kernels* kernel_for(Family f) { return g_family[f]; }

// The instruction sets this CPU (and OS) can run, best first, as a comma-separated list.
const char* isa_available();
// Why MOXING_ISA could not be honoured at load time (null when it was, or was unset).
const char* isa_error();
// Serve every family from one instruction set ("avx512", "avx2", "neon", "generic"); false when
// the CPU lacks it or the name is unknown. Not thread-safe against running kernels (tests).
bool isa_force(const char* name);

}  // namespace mx
