// Element-wise, reduction, indexing and fused kernels (ops.cc, fused.cc).
#pragma once
#include "common.h"

namespace mx {

enum DType { F32 = 0, I32 = 1 };
constexpr int MAXD = 16;

// A typed buffer: p points at element 0 of the JS typed array.
struct Buf {
  void* p;
  i64 len;
  int dt;
};

// A strided loop over a shared shape for up to 4 operands (element strides and offsets).
struct Nd {
  int nd = 0;
  int nops = 0;
  i64 shape[MAXD];
  i64 st[4][MAXD];
  i64 off[4];
};

// Operation codes: the order of UNARY_OPS / BINARY_OPS in src/tensor/backend.ts.
enum UnaryOp { U_NEG, U_EXP, U_LOG, U_SQRT, U_TANH, U_SIGMOID, U_RELU, U_ERF, U_ABS, U_SIN, U_COS, U_COUNT };
enum BinaryOp { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };

void op_unary(int op, Nd& L, const Buf& x, float* out);
void op_binary(int op, Nd& L, const Buf& a, const Buf& b, const Buf& out);
void op_where(Nd& L, const Buf& c, const Buf& a, const Buf& b, const Buf& out);
void op_copy(Nd& L, const Buf& src, const Buf& dst);
// L has operand 0 = x; `reduced[d]` marks the axes to reduce; out contiguous over the rest.
void op_reduce(int op, Nd& L, const bool* reduced, const Buf& x, float* out, i64 out_len);
void op_gather(const float* table, const int32_t* idx, float* out, i64 rows, i64 cols);
void op_index_add(float* dst, const int32_t* idx, const float* src, i64 rows, i64 cols);

void fused_softmax(const float* x, float* out, i64 rows, i64 cols, bool log);
void fused_softmax_bwd(const float* y, const float* dy, float* dx, i64 rows, i64 cols, bool log);
void fused_layernorm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 rows,
                     i64 cols, double eps);
void fused_layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, i64 rows, i64 cols);
void fused_rmsnorm(const float* x, const float* w, float* out, float* rstd, i64 rows, i64 cols, double eps);
void fused_rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       i64 rows, i64 cols);
void fused_silu(const float* x, float* out, i64 n);
void fused_silu_bwd(const float* x, const float* dy, float* dx, i64 n);
void fused_swiglu(const float* gate, const float* up, float* out, i64 n);
void fused_swiglu_bwd(const float* gate, const float* up, const float* dy, float* dgate, float* dup, i64 n);
// x (n, T, H, hs) contiguous, cos / sin (T, hs); out may be x.
void fused_rope(const float* x, const float* cos, const float* sin, float* out, i64 n, i64 T, i64 H, i64 hs,
                bool inverse);
void fused_gelu(const float* x, float* out, i64 n, bool tanh_approx);
void fused_gelu_bwd(const float* x, const float* dy, float* dx, i64 n, bool tanh_approx);
void fused_bias_gelu(float* x, const float* bias, float* out, i64 rows, i64 cols, bool tanh_approx);
// probs (may be null): also the softmax of each kept row; from_probs: `logits` holds that softmax.
void fused_cross_entropy(const float* logits, const int32_t* t, float* losses, float* lse, float* probs, i64 rows,
                         i64 cols, i64 ignore, double ls);
void fused_cross_entropy_bwd(const float* logits, const int32_t* t, const float* lse, const float* dlosses,
                             float* dlogits, i64 rows, i64 cols, i64 ignore, double ls, bool from_probs);
// Scaled dot-product attention (attention.cc): q (bh, T, hs), k and v (bh, S, hs), out (bh, T, hs), lse (bh, T).
// Batch-head b of k and v starts kv_stride elements after b - 1 (0: S * hs, contiguous), so a KV
// cache of capacity > S is read in place.
void fused_attention(const float* q, const float* k, const float* v, float* out, float* lse, i64 bh, i64 T, i64 S,
                     i64 hs, double scale, bool causal, i64 kv_stride = 0);
void fused_attention_bwd(const float* q, const float* k, const float* v, const float* out, const float* lse,
                         const float* dout, float* dq, float* dk, float* dv, i64 bh, i64 T, i64 S, i64 hs,
                         double scale, bool causal, i64 kv_stride = 0);
void fused_adamw(float* p, const float* g, float* m, float* v, i64 n, double lr, double b1, double b2, double eps,
                 double wd, double bc1, double bc2);

// memory.cc: zero-filled memory aligned to 2 MiB pages; null when unavailable. Free with huge_free(base, len).
void* huge_alloc(size_t bytes, void** base, size_t* len);
void huge_free(void* base, size_t len);

}  // namespace mx
