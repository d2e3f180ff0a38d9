// Matrix products with GGML-quantised weights, computed on the blocks as llama.cpp's CPU backend
// does: the activations are quantised to the weight type's dot-product type (Q8_0 blocks of 32 for
// Q8_0/Q5_0/Q4_0, Q8_K blocks of 256 for the K-quants, float16 values for F16, bfloat16 for BF16),
// then each weight block is multiplied with its activation block in integers and scaled once.
//
// quant.cc is the front end (activation quantisation, threading, N-API); the arithmetic lives in one
// table per instruction set (quant_<isa>.cc, each compiled with its own -m flags from quant_body.inc).
// A table may leave a type out (null): the generic table's kernel serves it then.
#pragma once
#include <cstdint>
#include <cstring>

#include "common.h"

namespace mx {

// IEEE half -> float, exactly (subnormals normalised). `static`: every kernel set's file is compiled
// with its own -m flags, so each keeps its own copy rather than sharing one the linker might pick
// from a file built for a wider instruction set.
static inline float h2f(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (!mant) {
      bits = sign;
    } else {  // subnormal half: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Weight types, numbered as GGML numbers them (ggml.h's ggml_type).
enum QType { QT_F16 = 1, QT_Q4_0 = 2, QT_Q5_0 = 6, QT_Q8_0 = 8, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14, QT_BF16 = 30 };
constexpr int QT_MAX = 31;

// Quantised activations: M rows of K values, row-major.
//   q  (M, K) int8        the quantised values (Q8_0 and Q8_K)
//   d  (M, K / 32) float  Q8_0: each block's scale (a float16 value, as ggml stores it)
//      (M, K / 256)       Q8_K: each super-block's scale
//   s  (M, K / 16) int16  Q8_K: sums of each 16 values of q (the K-quants' minimums use them)
//      (M, K / 32)        Q8_0: sums of each block's 32 values of q (the integer GEMM takes Q4_0's and
//                         Q5_0's offsets of 8 and 16 off with them)
//   f  (M, K) float       F16 and BF16 weights: the activations rounded to float16 / bfloat16
struct QX {
  const int8_t* q;
  const float* d;
  const int16_t* s;
  const float* f;
  i64 K;
};

// rows <= 4 activation rows m0 .. m0+rows-1 dotted with one weight row w of K values (its raw
// blocks): y[r * ldy] = <x row m0 + r, w>. Writing one weight row's products with several
// activation rows at once decodes each weight block once for all of them (prompt processing).
typedef void (*QDotFn)(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy);

struct QuantKernels {
  const char* name;  // "avx512vnni", "avx2", "neon", "generic"
  QDotFn dot[QT_MAX];
  // Optional, generation: gemv_n[type] weight rows w, w + ldw, ... with activation row 0 into y[0..n).
  void (*gemv_rows[QT_MAX])(const uint8_t* w, i64 ldw, const QX& x, float* y);
  int gemv_n[QT_MAX];
  // One weight row of K values decoded to float32 (as quant/ggml.ts decodes it), for prompt
  // processing of the types without an integer GEMM (below), which multiplies decoded tiles with the
  // float GEMM.
  void (*dequant[QT_MAX])(const uint8_t* w, float* out, i64 K);
  // Rows of F16 weights as float32 (n values), for the prompt path that multiplies decoded tiles.
  void (*f16_to_f32)(const uint16_t* h, float* out, i64 n);
  // Optional, prompt processing: the integer GEMM. y[m * ldy + j] = <x row m, w row j> for all M
  // activation rows and the nn <= kGemmRows weight rows w, w + ldw, ... Each 8 weight rows are
  // repacked (into a thread-local buffer) so that one vector holds 4 consecutive values of each of
  // the 8 rows: the int8 products of one activation row's 4 values (broadcast) with them land in the
  // 8 rows' own lanes, and a block's sums need no horizontal addition. False (nothing written)
  // where that buffer cannot be allocated.
  bool (*gemm[QT_MAX])(const uint8_t* w, i64 ldw, i64 nn, const QX& x, i64 M, float* y, i64 ldy);
  // Optional, the activations (null: quant.cc's scalar loops, which give the same values): n values
  // rounded to float16 (F16 weights), and nb blocks of 32 quantised to Q8_0 (q, d, s of QX).
  void (*round_f16)(const float* x, float* out, i64 n);
  void (*quantize_q8_0)(const float* x, int8_t* q, float* d, int16_t* s, i64 nb);
};

// Weight rows per call of QuantKernels::gemm (a multiple of 8).
constexpr i64 kGemmRows = 16;
// The most products quantMatmulMany runs with one activation matrix (q, k, v: 3).
constexpr int kMaxGroup = 4;

extern const QuantKernels quant_generic;
extern const QuantKernels quant_avx2;
extern const QuantKernels quant_avx512vnni;

// AVX-512 VNNI (with BW and VL) and F16C, from the one CPU detection in isa.cc.
bool cpu_avx512_vnni();
bool cpu_f16c();

// Bytes of one row of K values of a type (0 for a type without kernels or K not whole blocks).
i64 quant_row_bytes(int type, i64 K);

}  // namespace mx
