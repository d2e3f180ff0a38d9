// The portable quantised dot products: plain C++ that any compiler and CPU runs, and the table every
// other set falls back to for the types it leaves out. The integer sums are exact, so every set
// agrees with this one up to the float32 order of the per-block scalings.
#include <cstring>

#include "quant.h"

namespace mx {
namespace {

constexpr int QK8 = 32;
constexpr int QKK = 256;

float ld_h(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h2f(h);
}

// Q8_0 weights: f16 d, int8 qs[32].
void dot_q8_0(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  const i64 nb = x.K / QK8;
  for (int r = 0; r < rows; r++) {
    const int8_t* xq = x.q + (m0 + r) * x.K;
    const float* xd = x.d + (m0 + r) * nb;
    float sum = 0;
    for (i64 b = 0; b < nb; b++) {
      const uint8_t* blk = w + 34 * b;
      const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
      int s = 0;
      for (int j = 0; j < QK8; j++) s += q[j] * xq[b * QK8 + j];
      sum += (float)s * (ld_h(blk) * xd[b]);
    }
    y[r * ldy] = sum;
  }
}

// Q4_0: f16 d, qs[16]; value j in the low nibble of byte j, value j + 16 in its high nibble; q - 8.
void dot_q4_0(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  const i64 nb = x.K / QK8;
  for (int r = 0; r < rows; r++) {
    const int8_t* xq = x.q + (m0 + r) * x.K;
    const float* xd = x.d + (m0 + r) * nb;
    float sum = 0;
    for (i64 b = 0; b < nb; b++) {
      const uint8_t* blk = w + 18 * b;
      const int8_t* xb = xq + b * QK8;
      int s = 0;
      for (int j = 0; j < 16; j++) s += ((blk[2 + j] & 0xf) - 8) * xb[j] + ((blk[2 + j] >> 4) - 8) * xb[j + 16];
      sum += (float)s * (ld_h(blk) * xd[b]);
    }
    y[r * ldy] = sum;
  }
}

// Q5_0: f16 d, u32 qh (bit j: the fifth bit of value j), qs[16] as Q4_0; q - 16.
void dot_q5_0(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  const i64 nb = x.K / QK8;
  for (int r = 0; r < rows; r++) {
    const int8_t* xq = x.q + (m0 + r) * x.K;
    const float* xd = x.d + (m0 + r) * nb;
    float sum = 0;
    for (i64 b = 0; b < nb; b++) {
      const uint8_t* blk = w + 22 * b;
      uint32_t qh;
      std::memcpy(&qh, blk + 2, 4);
      const int8_t* xb = xq + b * QK8;
      int s = 0;
      for (int j = 0; j < 16; j++) {
        const int lo = (blk[6 + j] & 0xf) | (((qh >> j) & 1) << 4);
        const int hi = (blk[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        s += (lo - 16) * xb[j] + (hi - 16) * xb[j + 16];
      }
      sum += (float)s * (ld_h(blk) * xd[b]);
    }
    y[r * ldy] = sum;
  }
}

// The 6-bit scale and min j of a K-quant block's 12 scale bytes (ggml's get_scale_min_k4).
void scale_min(const uint8_t* q, int j, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K: f16 d, f16 dmin, scales[12], (Q5_K: qh[32]), qs[128]; x = d·sc·q - dmin·m per 32 values.
template <bool FIVE>
void dot_qk45(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  const i64 nb = x.K / QKK;
  const int bytes = FIVE ? 176 : 144;
  for (int r = 0; r < rows; r++) {
    const int8_t* xq = x.q + (m0 + r) * x.K;
    const float* xd = x.d + (m0 + r) * nb;
    const int16_t* xs = x.s + (m0 + r) * (x.K / 16);
    float sum = 0;
    for (i64 b = 0; b < nb; b++) {
      const uint8_t* blk = w + bytes * b;
      const uint8_t* qh = blk + 16;
      const uint8_t* qs = blk + (FIVE ? 48 : 16);
      const int8_t* xb = xq + b * QKK;
      int sumi = 0, summ = 0;
      for (int c = 0; c < 4; c++) {
        int sc1, m1, sc2, m2;
        scale_min(blk + 4, 2 * c, sc1, m1);
        scale_min(blk + 4, 2 * c + 1, sc2, m2);
        int s1 = 0, s2 = 0;
        for (int l = 0; l < 32; l++) {
          int lo = qs[32 * c + l] & 0xf, hi = qs[32 * c + l] >> 4;
          if (FIVE) {
            lo |= ((qh[l] >> (2 * c)) & 1) << 4;
            hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
          }
          s1 += lo * xb[64 * c + l];
          s2 += hi * xb[64 * c + 32 + l];
        }
        sumi += sc1 * s1 + sc2 * s2;
        const int16_t* bs = xs + b * 16 + 4 * c;
        summ += m1 * (bs[0] + bs[1]) + m2 * (bs[2] + bs[3]);
      }
      sum += xd[b] * ld_h(blk) * (float)sumi - xd[b] * ld_h(blk + 2) * (float)summ;
    }
    y[r * ldy] = sum;
  }
}

// Q6_K: ql[128], qh[64], int8 scales[16], f16 d; x = d·scale·(q - 32) per 16 values.
void dot_q6_k(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  const i64 nb = x.K / QKK;
  for (int r = 0; r < rows; r++) {
    const int8_t* xq = x.q + (m0 + r) * x.K;
    const float* xd = x.d + (m0 + r) * nb;
    float sum = 0;
    for (i64 b = 0; b < nb; b++) {
      const uint8_t* blk = w + 210 * b;
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      int sumi = 0;
      for (int h = 0; h < 2; h++) {
        const uint8_t* ql = blk + 64 * h;
        const uint8_t* qh = blk + 128 + 32 * h;
        const int8_t* xb = xq + b * QKK + 128 * h;
        for (int g = 0; g < 2; g++) {
          int s0 = 0, s2 = 0, s4 = 0, s6 = 0;
          for (int l = 16 * g; l < 16 * g + 16; l++) {
            s0 += (((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32) * xb[l];
            s2 += (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32) * xb[l + 32];
            s4 += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * xb[l + 64];
            s6 += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * xb[l + 96];
          }
          sumi += sc[8 * h + g] * s0 + sc[8 * h + g + 2] * s2 + sc[8 * h + g + 4] * s4 + sc[8 * h + g + 6] * s6;
        }
      }
      sum += xd[b] * ld_h(blk + 208) * (float)sumi;
    }
    y[r * ldy] = sum;
  }
}

// F16 and BF16: float sums of the products, 8 partial sums so the compiler can vectorise.
template <bool BF>
void dot_half(const uint8_t* w, const QX& x, i64 m0, int rows, float* y, i64 ldy) {
  for (int r = 0; r < rows; r++) {
    const float* f = x.f + (m0 + r) * x.K;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    i64 k = 0;
    for (; k + 8 <= x.K; k += 8) {
      for (int j = 0; j < 8; j++) {
        uint16_t h;
        std::memcpy(&h, w + 2 * (k + j), 2);
        float v;
        if (BF) {
          const uint32_t bits = (uint32_t)h << 16;
          std::memcpy(&v, &bits, 4);
        } else {
          v = h2f(h);
        }
        acc[j] += v * f[k + j];
      }
    }
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; k < x.K; k++) {
      uint16_t h;
      std::memcpy(&h, w + 2 * k, 2);
      float v;
      if (BF) {
        const uint32_t bits = (uint32_t)h << 16;
        std::memcpy(&v, &bits, 4);
      } else {
        v = h2f(h);
      }
      sum += v * f[k];
    }
    y[r * ldy] = sum;
  }
}

// Rows of K values as float32, exactly as the TypeScript decoders (quant/ggml.ts) and gguf-py give them.
void dq_q8_0(const uint8_t* w, float* out, i64 K) {
  for (i64 b = 0; b < K / QK8; b++) {
    const uint8_t* blk = w + 34 * b;
    const float d = ld_h(blk);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
    for (int j = 0; j < QK8; j++) out[QK8 * b + j] = q[j] * d;
  }
}

void dq_q4_0(const uint8_t* w, float* out, i64 K) {
  for (i64 b = 0; b < K / QK8; b++) {
    const uint8_t* blk = w + 18 * b;
    const float d = ld_h(blk);
    for (int j = 0; j < 16; j++) {
      out[QK8 * b + j] = ((blk[2 + j] & 0xf) - 8) * d;
      out[QK8 * b + j + 16] = ((blk[2 + j] >> 4) - 8) * d;
    }
  }
}

void dq_q5_0(const uint8_t* w, float* out, i64 K) {
  for (i64 b = 0; b < K / QK8; b++) {
    const uint8_t* blk = w + 22 * b;
    const float d = ld_h(blk);
    uint32_t qh;
    std::memcpy(&qh, blk + 2, 4);
    for (int j = 0; j < 16; j++) {
      const int lo = (blk[6 + j] & 0xf) | (int)(((qh >> j) & 1) << 4);
      const int hi = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
      out[QK8 * b + j] = (lo - 16) * d;
      out[QK8 * b + j + 16] = (hi - 16) * d;
    }
  }
}

template <bool FIVE>
void dq_qk45(const uint8_t* w, float* out, i64 K) {
  const int bytes = FIVE ? 176 : 144;
  for (i64 b = 0; b < K / QKK; b++) {
    const uint8_t* blk = w + bytes * b;
    const float d = ld_h(blk), dmin = ld_h(blk + 2);
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (FIVE ? 48 : 16);
    for (int c = 0; c < 4; c++) {
      int sc1, m1, sc2, m2;
      scale_min(blk + 4, 2 * c, sc1, m1);
      scale_min(blk + 4, 2 * c + 1, sc2, m2);
      const float d1 = d * sc1, dm1 = dmin * m1, d2 = d * sc2, dm2 = dmin * m2;
      float* o = out + QKK * b + 64 * c;
      for (int l = 0; l < 32; l++) {
        int lo = qs[32 * c + l] & 0xf, hi = qs[32 * c + l] >> 4;
        if (FIVE) {
          lo |= ((qh[l] >> (2 * c)) & 1) << 4;
          hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        o[l] = d1 * lo - dm1;
        o[32 + l] = d2 * hi - dm2;
      }
    }
  }
}

void dq_q6_k(const uint8_t* w, float* out, i64 K) {
  for (i64 b = 0; b < K / QKK; b++) {
    const uint8_t* blk = w + 210 * b;
    const float d = ld_h(blk + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int h = 0; h < 2; h++) {
      const uint8_t* ql = blk + 64 * h;
      const uint8_t* qh = blk + 128 + 32 * h;
      float* o = out + QKK * b + 128 * h;
      for (int l = 0; l < 32; l++) {
        const int g = l / 16;
        o[l] = d * sc[8 * h + g] * (((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
        o[l + 32] = d * sc[8 * h + g + 2] * (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = d * sc[8 * h + g + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = d * sc[8 * h + g + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
  }
}

void dq_bf16(const uint8_t* w, float* out, i64 K) {
  for (i64 i = 0; i < K; i++) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    const uint32_t bits = (uint32_t)h << 16;
    std::memcpy(out + i, &bits, 4);
  }
}

void f16_to_f32(const uint16_t* h, float* out, i64 n) {
  for (i64 i = 0; i < n; i++) {
    uint16_t v;
    std::memcpy(&v, h + i, 2);
    out[i] = h2f(v);
  }
}

void dq_f16(const uint8_t* w, float* out, i64 K) { f16_to_f32(reinterpret_cast<const uint16_t*>(w), out, K); }

constexpr QuantKernels make() {
  QuantKernels k{};
  k.name = "generic";
  k.dot[QT_F16] = dot_half<false>;
  k.dot[QT_BF16] = dot_half<true>;
  k.dot[QT_Q8_0] = dot_q8_0;
  k.dot[QT_Q4_0] = dot_q4_0;
  k.dot[QT_Q5_0] = dot_q5_0;
  k.dot[QT_Q4_K] = dot_qk45<false>;
  k.dot[QT_Q5_K] = dot_qk45<true>;
  k.dot[QT_Q6_K] = dot_q6_k;
  k.f16_to_f32 = f16_to_f32;
  k.dequant[QT_F16] = dq_f16;
  k.dequant[QT_BF16] = dq_bf16;
  k.dequant[QT_Q8_0] = dq_q8_0;
  k.dequant[QT_Q4_0] = dq_q4_0;
  k.dequant[QT_Q5_0] = dq_q5_0;
  k.dequant[QT_Q4_K] = dq_qk45<false>;
  k.dequant[QT_Q5_K] = dq_qk45<true>;
  k.dequant[QT_Q6_K] = dq_q6_k;
  return k;
}

}  // namespace

// Constant-initialised (no code of this translation unit runs before the CPU is checked).
constexpr QuantKernels quant_generic = make();

}  // namespace mx
