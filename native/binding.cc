// N-API entry points. Scalars (shapes, strides, offsets, sizes, hyper-parameters) travel through a
// shared Float64Array parameter block that the TypeScript wrapper fills before each call, so a
// call costs one napi_get_cb_info plus one napi_get_typedarray_info per buffer.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>

#include "kernels.h"
#include "ops.h"

using namespace mx;

namespace mx {
void quant_register(napi_env env, napi_value exports, double* P);  // quant.cc: quantised products, mapFile
}

namespace {

constexpr size_t kParams = 1024;

struct Args {
  napi_env env;
  double* P;
  size_t argc;
  napi_value argv[10];
};

bool get_args(napi_env env, napi_callback_info info, Args& a, size_t want) {
  a.env = env;
  a.argc = 10;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &a.argc, a.argv, nullptr, &data) != napi_ok) return false;
  a.P = static_cast<double*>(data);
  if (a.argc < want) {
    napi_throw_type_error(env, nullptr, "moxing native: too few arguments");
    return false;
  }
  return true;
}

// A Float32Array or Int32Array (or null when allow_null). Throws and returns false otherwise.
bool get_buf(const Args& a, size_t i, Buf& b, int want_dt = -1, bool allow_null = false) {
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(a.env, a.argv[i], &t, &len, &data, nullptr, nullptr) != napi_ok) {
    if (allow_null) {
      napi_valuetype vt;
      napi_typeof(a.env, a.argv[i], &vt);
      if (vt == napi_null || vt == napi_undefined) {
        b.p = nullptr;
        b.len = 0;
        b.dt = want_dt;
        return true;
      }
    }
    napi_throw_type_error(a.env, nullptr, "moxing native: expected a Float32Array or Int32Array");
    return false;
  }
  if (t == napi_float32_array)
    b.dt = F32;
  else if (t == napi_int32_array)
    b.dt = I32;
  else {
    napi_throw_type_error(a.env, nullptr, "moxing native: expected a Float32Array or Int32Array");
    return false;
  }
  if (want_dt >= 0 && b.dt != want_dt) {
    napi_throw_type_error(a.env, nullptr,
                          want_dt == F32 ? "moxing native: expected a Float32Array" : "moxing native: expected an Int32Array");
    return false;
  }
  b.p = data;
  b.len = (i64)len;
  return true;
}

// Sizes, strides and offsets travel as doubles. One that is not a number within +-2^53 (NaN,
// +-Infinity, 1e300) becomes kBad, which every size check refuses and whose products overflow, so
// it never reaches a cast whose result is undefined or a loop bound.
constexpr i64 kBad = INT64_MIN;
inline i64 I(double v) { return v >= -9007199254740992.0 && v <= 9007199254740992.0 ? (i64)v : kBad; }

bool range_error(napi_env env, const char* msg) {
  napi_throw_range_error(env, nullptr, msg);
  return false;
}

// r = a * b for sizes: false when either is negative or the product overflows 64 bits.
inline bool mul_size(i64 a, i64 b, i64& r) { return a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &r); }

// n = the product of sizes, each a non-negative integer; otherwise a RangeError naming the op.
bool sizes(napi_env env, const char* op, std::initializer_list<i64> dims, i64& n) {
  n = 1;
  for (const i64 d : dims) {
    if (!mul_size(n, d, n)) {
      char msg[160];
      std::snprintf(msg, sizeof msg,
                    "moxing native: %s sizes must be non-negative integers whose product fits in 64 bits", op);
      return range_error(env, msg);
    }
  }
  return true;
}

// Every element an affine index set touches lies inside [0, len); the extent is computed without
// overflow (an index set that would overflow is out of bounds).
bool check_extent(napi_env env, i64 len, i64 off, int nd, const i64* shape, const i64* st, const char* what) {
  i64 lo = off, hi = off;
  bool ok = off != kBad;
  for (int d = 0; d < nd && ok; d++) {
    if (shape[d] == 0) return true;  // an empty view touches nothing
    i64 e;
    if (shape[d] < 0 || __builtin_mul_overflow(shape[d] - 1, st[d], &e) || st[d] == kBad)
      ok = false;
    else if (e < 0)
      ok = !__builtin_add_overflow(lo, e, &lo);
    else
      ok = !__builtin_add_overflow(hi, e, &hi);
  }
  if (!ok || lo < 0 || hi >= len) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  return true;
}

// Reads nd, shape and `nops` stride sets + offsets from P (layout documented in index.ts).
bool read_nd(const Args& a, Nd& L, int nops, i64& total) {
  const double* P = a.P;
  const i64 nd = I(P[1]);
  if (nd < 0 || nd > MAXD) return range_error(a.env, "moxing native: too many dimensions (max 16)");
  L.nd = (int)nd;
  L.nops = nops;
  total = 1;
  for (int d = 0; d < nd; d++) {
    L.shape[d] = I(P[2 + d]);
    if (L.shape[d] < 0) return range_error(a.env, "moxing native: negative dimension");
    // JavaScript counts elements exactly up to 2^53 (Number.MAX_SAFE_INTEGER): no view may have more.
    if (!mul_size(total, L.shape[d], total) || total > ((i64)1 << 53))
      return range_error(a.env, "moxing native: view has more than 2^53 elements");
  }
  for (int k = 0; k < nops; k++) {
    for (int d = 0; d < nd; d++) L.st[k][d] = I(P[2 + nd * (1 + k) + d]);
    L.off[k] = I(P[2 + nd * (1 + nops) + k]);
  }
  return true;
}

// Adds a contiguous operand (the output) as operand k.
void add_contiguous(Nd& L, int k) {
  i64 s = 1;
  for (int d = L.nd - 1; d >= 0; d--) {
    L.st[k][d] = s;
    s *= L.shape[d];
  }
  L.off[k] = 0;
  L.nops = k + 1;
}

// A view operand and the error naming it when its view leaves its buffer.
struct Operand {
  const Buf& buf;
  const char* what;
};

// read_nd for these operands (in parameter-block order), then check that each view stays inside its buffer.
bool read_views(const Args& a, Nd& L, i64& total, std::initializer_list<Operand> ops) {
  if (!read_nd(a, L, (int)ops.size(), total)) return false;
  int k = 0;
  for (const Operand& o : ops) {
    if (!check_extent(a.env, o.buf.len, L.off[k], L.nd, L.shape, L.st[k], o.what)) return false;
    k++;
  }
  return true;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// ---- primitives ---------------------------------------------------------------------------------

napi_value js_unary(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 2)) return nullptr;
  Buf x, out;
  if (!get_buf(a, 0, x) || !get_buf(a, 1, out, F32)) return nullptr;
  const int op = (int)a.P[0];
  if (op < 0 || op >= U_COUNT) return range_error(env, "moxing native: bad unary op"), nullptr;
  Nd L;
  i64 total;
  if (!read_views(a, L, total, {{x, "moxing native: unary input view out of bounds"}})) return nullptr;
  if (out.len < total) return range_error(env, "moxing native: unary output too small"), nullptr;
  add_contiguous(L, 1);
  op_unary(op, L, x, static_cast<float*>(out.p));
  return undefined(env);
}

napi_value js_binary(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf x, y, out;
  if (!get_buf(a, 0, x) || !get_buf(a, 1, y) || !get_buf(a, 2, out)) return nullptr;
  const int op = (int)a.P[0];
  if (op < 0 || op >= B_COUNT) return range_error(env, "moxing native: bad binary op"), nullptr;
  Nd L;
  i64 total;
  if (!read_views(a, L, total,
                  {{x, "moxing native: binary input a out of bounds"}, {y, "moxing native: binary input b out of bounds"}}))
    return nullptr;
  if (out.len < total) return range_error(env, "moxing native: binary output too small"), nullptr;
  add_contiguous(L, 2);
  op_binary(op, L, x, y, out);
  return undefined(env);
}

napi_value js_where(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 4)) return nullptr;
  Buf c, x, y, out;
  if (!get_buf(a, 0, c) || !get_buf(a, 1, x) || !get_buf(a, 2, y) || !get_buf(a, 3, out)) return nullptr;
  Nd L;
  i64 total;
  if (!read_views(a, L, total,
                  {{c, "moxing native: where cond out of bounds"},
                   {x, "moxing native: where input a out of bounds"},
                   {y, "moxing native: where input b out of bounds"}}))
    return nullptr;
  if (out.len < total) return range_error(env, "moxing native: where output too small"), nullptr;
  add_contiguous(L, 3);
  op_where(L, c, x, y, out);
  return undefined(env);
}

napi_value js_copy(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 2)) return nullptr;
  Buf s, d;
  if (!get_buf(a, 0, s) || !get_buf(a, 1, d)) return nullptr;
  Nd L;
  i64 total;
  if (!read_views(a, L, total,
                  {{s, "moxing native: copy source out of bounds"}, {d, "moxing native: copy destination out of bounds"}}))
    return nullptr;
  op_copy(L, s, d);
  return undefined(env);
}

napi_value js_reduce(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 2)) return nullptr;
  Buf x, out;
  if (!get_buf(a, 0, x) || !get_buf(a, 1, out, F32)) return nullptr;
  const int op = (int)a.P[0];
  Nd L;
  i64 total;
  if (!read_views(a, L, total, {{x, "moxing native: reduce input out of bounds"}})) return nullptr;
  bool reduced[MAXD];
  i64 out_len = 1;
  const i64 base = 2 + L.nd * 2 + 1;
  for (int d = 0; d < L.nd; d++) {
    reduced[d] = a.P[base + d] != 0.0;
    if (!reduced[d] && !mul_size(out_len, L.shape[d], out_len))
      return range_error(env, "moxing native: reduce output has more elements than fit in 64 bits"), nullptr;
  }
  if (out.len < out_len) return range_error(env, "moxing native: reduce output too small"), nullptr;
  op_reduce(op, L, reduced, x, static_cast<float*>(out.p), out_len);
  return undefined(env);
}

bool check_mat(napi_env env, const Buf& b, i64 off, i64 bs, i64 rs, i64 cs, i64 batch, i64 rows, i64 cols,
               const char* what) {
  const i64 shape[3] = {batch, rows, cols};
  const i64 st[3] = {bs, rs, cs};
  return check_extent(env, b.len, off, 3, shape, st, what);
}

napi_value js_matmul(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf A, B, C;
  if (!get_buf(a, 0, A, F32) || !get_buf(a, 1, B, F32) || !get_buf(a, 2, C, F32)) return nullptr;
  const double* P = a.P;
  const i64 aoff = I(P[0]), abs_ = I(P[1]), ars = I(P[2]), acs = I(P[3]);
  const i64 boff = I(P[4]), bbs = I(P[5]), brs = I(P[6]), bcs = I(P[7]);
  const i64 batch = I(P[8]), m = I(P[9]), n = I(P[10]), k = I(P[11]);
  // The operands as (batch, m, k) and (batch, k, n) views: at most 2^53 elements each, as any view.
  i64 nc = 0, na = 0, nb = 0;
  if (!sizes(env, "matmul", {batch, m, n}, nc) || !sizes(env, "matmul", {batch, m, k}, na) ||
      !sizes(env, "matmul", {batch, k, n}, nb))
    return nullptr;
  if (na > ((i64)1 << 53) || nb > ((i64)1 << 53))
    return range_error(env, "moxing native: matmul operand has more than 2^53 elements"), nullptr;
  if (!check_mat(env, A, aoff, abs_, ars, acs, batch, m, k, "moxing native: matmul operand a out of bounds") ||
      !check_mat(env, B, boff, bbs, brs, bcs, batch, k, n, "moxing native: matmul operand b out of bounds"))
    return nullptr;
  if (C.len < nc) return range_error(env, "moxing native: matmul output too small"), nullptr;
  matmul(static_cast<const float*>(A.p) + aoff, abs_, ars, acs, static_cast<const float*>(B.p) + boff, bbs, brs, bcs,
         static_cast<float*>(C.p), batch, m, n, k);
  return undefined(env);
}

bool check_indices(napi_env env, const Buf& idx, i64 limit) {
  const int32_t* p = static_cast<const int32_t*>(idx.p);
  for (i64 i = 0; i < idx.len; i++) {
    if (p[i] < 0 || p[i] >= limit) return range_error(env, "moxing native: index out of range");
  }
  return true;
}

napi_value js_gather(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf table, idx, out;
  if (!get_buf(a, 0, table, F32) || !get_buf(a, 1, idx, I32) || !get_buf(a, 2, out, F32)) return nullptr;
  const i64 cols = I(a.P[0]);
  if (cols <= 0) return undefined(env);
  i64 n = 0;
  if (!sizes(env, "gather", {idx.len, cols}, n)) return nullptr;
  if (out.len < n) return range_error(env, "moxing native: gather output too small"), nullptr;
  if (!check_indices(env, idx, table.len / cols)) return nullptr;
  op_gather(static_cast<const float*>(table.p), static_cast<const int32_t*>(idx.p), static_cast<float*>(out.p),
            idx.len, cols);
  return undefined(env);
}

napi_value js_index_add(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf dst, idx, src;
  if (!get_buf(a, 0, dst, F32) || !get_buf(a, 1, idx, I32) || !get_buf(a, 2, src, F32)) return nullptr;
  const i64 cols = I(a.P[0]);
  if (cols <= 0) return undefined(env);
  i64 n = 0;
  if (!sizes(env, "indexAdd", {idx.len, cols}, n)) return nullptr;
  if (src.len < n) return range_error(env, "moxing native: indexAdd source too small"), nullptr;
  if (!check_indices(env, idx, dst.len / cols)) return nullptr;
  op_index_add(static_cast<float*>(dst.p), static_cast<const int32_t*>(idx.p), static_cast<const float*>(src.p),
               idx.len, cols);
  return undefined(env);
}

// ---- fused ------------------------------------------------------------------------------------

bool need(napi_env env, const Buf& b, i64 n, const char* what) {
  if (b.p == nullptr && n > 0) return range_error(env, what);
  if (b.len < n) return range_error(env, what);
  return true;
}

#define F32P(b) static_cast<float*>((b).p)
#define I32P(b) static_cast<int32_t*>((b).p)

napi_value js_softmax(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 2)) return nullptr;
  Buf x, out;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, out, F32)) return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  const bool log = a.P[2] != 0.0;
  i64 n = 0;
  if (!sizes(env, "softmax", {rows, cols}, n) || !need(env, x, n, "moxing native: softmax input too small") ||
      !need(env, out, n, "moxing native: softmax output too small"))
    return nullptr;
  if (n > 0) fused_softmax(F32P(x), F32P(out), rows, cols, log);  // no columns: nothing to compute
  return undefined(env);
}

napi_value js_softmax_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf y, dy, dx;
  if (!get_buf(a, 0, y, F32) || !get_buf(a, 1, dy, F32) || !get_buf(a, 2, dx, F32)) return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  const bool log = a.P[2] != 0.0;
  i64 n = 0;
  if (!sizes(env, "softmaxBackward", {rows, cols}, n) || !need(env, y, n, "moxing native: softmaxBackward y too small") ||
      !need(env, dy, n, "moxing native: softmaxBackward dy too small") ||
      !need(env, dx, n, "moxing native: softmaxBackward dx too small"))
    return nullptr;
  if (n > 0) fused_softmax_bwd(F32P(y), F32P(dy), F32P(dx), rows, cols, log);
  return undefined(env);
}

napi_value js_layernorm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 6)) return nullptr;
  Buf x, w, b, out, mean, rstd;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, w, F32, true) || !get_buf(a, 2, b, F32, true) ||
      !get_buf(a, 3, out, F32) || !get_buf(a, 4, mean, F32) || !get_buf(a, 5, rstd, F32))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  const double eps = a.P[2];
  i64 n = 0;
  if (!sizes(env, "layerNorm", {rows, cols}, n) || !need(env, x, n, "moxing native: layerNorm x too small") ||
      !need(env, out, n, "moxing native: layerNorm out too small") ||
      !need(env, mean, rows, "moxing native: layerNorm mean too small") ||
      !need(env, rstd, rows, "moxing native: layerNorm rstd too small") ||
      (w.p && !need(env, w, cols, "moxing native: layerNorm weight too small")) ||
      (b.p && !need(env, b, cols, "moxing native: layerNorm bias too small")))
    return nullptr;
  fused_layernorm(F32P(x), F32P(w), F32P(b), F32P(out), F32P(mean), F32P(rstd), rows, cols, eps);
  return undefined(env);
}

napi_value js_layernorm_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 8)) return nullptr;
  Buf x, w, mean, rstd, dy, dx, dw, db;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, w, F32, true) || !get_buf(a, 2, mean, F32) ||
      !get_buf(a, 3, rstd, F32) || !get_buf(a, 4, dy, F32) || !get_buf(a, 5, dx, F32) ||
      !get_buf(a, 6, dw, F32, true) || !get_buf(a, 7, db, F32, true))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  i64 n = 0;
  if (!sizes(env, "layerNormBackward", {rows, cols}, n) ||
      !need(env, x, n, "moxing native: layerNormBackward x too small") ||
      !need(env, dy, n, "moxing native: layerNormBackward dy too small") ||
      !need(env, dx, n, "moxing native: layerNormBackward dx too small") ||
      !need(env, mean, rows, "moxing native: layerNormBackward mean too small") ||
      !need(env, rstd, rows, "moxing native: layerNormBackward rstd too small") ||
      (w.p && !need(env, w, cols, "moxing native: layerNormBackward weight too small")) ||
      (dw.p && !need(env, dw, cols, "moxing native: layerNormBackward dweight too small")) ||
      (db.p && !need(env, db, cols, "moxing native: layerNormBackward dbias too small")))
    return nullptr;
  fused_layernorm_bwd(F32P(x), F32P(w), F32P(mean), F32P(rstd), F32P(dy), F32P(dx), F32P(dw), F32P(db), rows, cols);
  return undefined(env);
}

// P[0] = rows, P[1] = cols, P[2] = eps
napi_value js_rmsnorm(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 4)) return nullptr;
  Buf x, w, out, rstd;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, w, F32, true) || !get_buf(a, 2, out, F32) || !get_buf(a, 3, rstd, F32))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  i64 n = 0;
  if (!sizes(env, "rmsNorm", {rows, cols}, n) || !need(env, x, n, "moxing native: rmsNorm x too small") ||
      !need(env, out, n, "moxing native: rmsNorm out too small") ||
      !need(env, rstd, rows, "moxing native: rmsNorm rstd too small") ||
      (w.p && !need(env, w, cols, "moxing native: rmsNorm weight too small")))
    return nullptr;
  if (n > 0) fused_rmsnorm(F32P(x), F32P(w), F32P(out), F32P(rstd), rows, cols, a.P[2]);
  return undefined(env);
}

// P[0] = rows, P[1] = cols
napi_value js_rmsnorm_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 6)) return nullptr;
  Buf x, w, rstd, dy, dx, dw;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, w, F32, true) || !get_buf(a, 2, rstd, F32) ||
      !get_buf(a, 3, dy, F32) || !get_buf(a, 4, dx, F32) || !get_buf(a, 5, dw, F32, true))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  i64 n = 0;
  if (!sizes(env, "rmsNormBackward", {rows, cols}, n) ||
      !need(env, x, n, "moxing native: rmsNormBackward x too small") ||
      !need(env, dy, n, "moxing native: rmsNormBackward dy too small") ||
      !need(env, dx, n, "moxing native: rmsNormBackward dx too small") ||
      !need(env, rstd, rows, "moxing native: rmsNormBackward rstd too small") ||
      (w.p && !need(env, w, cols, "moxing native: rmsNormBackward weight too small")) ||
      (dw.p && !need(env, dw, cols, "moxing native: rmsNormBackward dweight too small")))
    return nullptr;
  if (n > 0) fused_rmsnorm_bwd(F32P(x), F32P(w), F32P(rstd), F32P(dy), F32P(dx), F32P(dw), rows, cols);
  return undefined(env);
}

// An element-wise op: P[0] = n; argv[i] a Float32Array of at least n elements, named parts[i] in its
// "too small" error (at most 8). Runs run(buffers, n) once they are checked.
template <class F>
napi_value elementwise(napi_env env, napi_callback_info info, const char* op, std::initializer_list<const char*> parts,
                       F run) {
  Args a;
  if (!get_args(env, info, a, parts.size())) return nullptr;
  Buf b[8];
  for (size_t i = 0; i < parts.size(); i++)
    if (!get_buf(a, i, b[i], F32)) return nullptr;
  i64 n = 0;
  if (!sizes(env, op, {I(a.P[0])}, n)) return nullptr;
  size_t i = 0;
  for (const char* part : parts) {
    const Buf& x = b[i++];
    if ((x.p == nullptr && n > 0) || x.len < n) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "moxing native: %s %s too small", op, part);
      return range_error(env, msg), nullptr;
    }
  }
  run(b, n);
  return undefined(env);
}

napi_value js_silu(napi_env env, napi_callback_info info) {
  return elementwise(env, info, "silu", {"x", "output"}, [](Buf* b, i64 n) { fused_silu(F32P(b[0]), F32P(b[1]), n); });
}

napi_value js_silu_bwd(napi_env env, napi_callback_info info) {
  return elementwise(env, info, "siluBackward", {"x", "dy", "dx"},
                     [](Buf* b, i64 n) { fused_silu_bwd(F32P(b[0]), F32P(b[1]), F32P(b[2]), n); });
}

napi_value js_swiglu(napi_env env, napi_callback_info info) {
  return elementwise(env, info, "swiglu", {"gate", "up", "output"},
                     [](Buf* b, i64 n) { fused_swiglu(F32P(b[0]), F32P(b[1]), F32P(b[2]), n); });
}

napi_value js_swiglu_bwd(napi_env env, napi_callback_info info) {
  return elementwise(env, info, "swigluBackward", {"gate", "up", "dy", "dgate", "dup"}, [](Buf* b, i64 n) {
    fused_swiglu_bwd(F32P(b[0]), F32P(b[1]), F32P(b[2]), F32P(b[3]), F32P(b[4]), n);
  });
}

// P[0..5) = n, T, H, hs, inverse
napi_value js_rope(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 4)) return nullptr;
  Buf x, c, s, out;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, c, F32) || !get_buf(a, 2, s, F32) || !get_buf(a, 3, out, F32))
    return nullptr;
  const i64 n = I(a.P[0]), T = I(a.P[1]), H = I(a.P[2]), hs = I(a.P[3]);
  i64 total = 0, table = 0;
  if (!sizes(env, "rope", {n, T, H, hs}, total)) return nullptr;
  if (hs % 2 != 0) return range_error(env, "moxing native: rope needs an even head size"), nullptr;
  if (!sizes(env, "rope", {T, hs}, table) ||
      !need(env, x, total, "moxing native: rope x too small") ||
      !need(env, out, total, "moxing native: rope output too small") ||
      !need(env, c, table, "moxing native: rope cos too small") || !need(env, s, table, "moxing native: rope sin too small"))
    return nullptr;
  if (total > 0) fused_rope(F32P(x), F32P(c), F32P(s), F32P(out), n, T, H, hs, a.P[4] != 0.0);
  return undefined(env);
}

napi_value js_gelu(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 2)) return nullptr;
  Buf x, out;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, out, F32)) return nullptr;
  if (!need(env, out, x.len, "moxing native: gelu output too small")) return nullptr;
  fused_gelu(F32P(x), F32P(out), x.len, a.P[0] != 0.0);
  return undefined(env);
}

// P[0] = rows, P[1] = cols, P[2] = tanh approximation
napi_value js_bias_gelu(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf x, bias, out;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, bias, F32) || !get_buf(a, 2, out, F32)) return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]);
  i64 n = 0;
  if (!sizes(env, "biasGelu", {rows, cols}, n) || !need(env, x, n, "moxing native: biasGelu x too small") ||
      !need(env, bias, cols, "moxing native: biasGelu bias too small") ||
      !need(env, out, n, "moxing native: biasGelu output too small"))
    return nullptr;
  if (n > 0) fused_bias_gelu(F32P(x), F32P(bias), F32P(out), rows, cols, a.P[2] != 0.0);
  return undefined(env);
}

napi_value js_gelu_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 3)) return nullptr;
  Buf x, dy, dx;
  if (!get_buf(a, 0, x, F32) || !get_buf(a, 1, dy, F32) || !get_buf(a, 2, dx, F32)) return nullptr;
  if (!need(env, dy, x.len, "moxing native: geluBackward dy too small") ||
      !need(env, dx, x.len, "moxing native: geluBackward dx too small"))
    return nullptr;
  fused_gelu_bwd(F32P(x), F32P(dy), F32P(dx), x.len, a.P[0] != 0.0);
  return undefined(env);
}

napi_value js_cross_entropy(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 4)) return nullptr;
  Buf logits, t, losses, lse;
  if (!get_buf(a, 0, logits, F32) || !get_buf(a, 1, t, I32) || !get_buf(a, 2, losses, F32) ||
      !get_buf(a, 3, lse, F32))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]), ignore = I(a.P[2]);
  const double ls = a.P[3];
  i64 n = 0;
  if (!sizes(env, "crossEntropy", {rows, cols}, n) ||
      !need(env, logits, n, "moxing native: crossEntropy logits too small") ||
      !need(env, t, rows, "moxing native: crossEntropy targets too small") ||
      !need(env, losses, rows, "moxing native: crossEntropy losses too small") ||
      !need(env, lse, rows, "moxing native: crossEntropy lse too small"))
    return nullptr;
  // An optional fifth buffer receives the softmax (P[4] = 1), for a backward without exp.
  Buf probs{};
  const bool with_probs = a.P[4] != 0.0;
  if (with_probs) {
    if (a.argc < 5) {
      napi_throw_type_error(env, nullptr, "moxing native: crossEntropy with probs needs a fifth buffer");
      return nullptr;
    }
    if (!get_buf(a, 4, probs, F32) || !need(env, probs, n, "moxing native: crossEntropy probs too small")) return nullptr;
  }
  fused_cross_entropy(F32P(logits), I32P(t), F32P(losses), F32P(lse), with_probs ? F32P(probs) : nullptr, rows, cols,
                      ignore, ls);
  return undefined(env);
}

napi_value js_cross_entropy_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 5)) return nullptr;
  Buf logits, t, lse, dl, dlogits;
  if (!get_buf(a, 0, logits, F32) || !get_buf(a, 1, t, I32) || !get_buf(a, 2, lse, F32) ||
      !get_buf(a, 3, dl, F32) || !get_buf(a, 4, dlogits, F32))
    return nullptr;
  const i64 rows = I(a.P[0]), cols = I(a.P[1]), ignore = I(a.P[2]);
  const double ls = a.P[3];
  i64 n = 0;
  if (!sizes(env, "crossEntropyBackward", {rows, cols}, n) ||
      !need(env, logits, n, "moxing native: crossEntropyBackward logits too small") ||
      !need(env, dlogits, n, "moxing native: crossEntropyBackward dlogits too small") ||
      !need(env, t, rows, "moxing native: crossEntropyBackward targets too small") ||
      !need(env, lse, rows, "moxing native: crossEntropyBackward lse too small") ||
      !need(env, dl, rows, "moxing native: crossEntropyBackward dlosses too small"))
    return nullptr;
  // P[4] = 1: the first buffer holds the forward's softmax, not logits.
  fused_cross_entropy_bwd(F32P(logits), I32P(t), F32P(lse), F32P(dl), F32P(dlogits), rows, cols, ignore, ls,
                          a.P[4] != 0.0);
  return undefined(env);
}

napi_value js_adamw(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 4)) return nullptr;
  Buf p, g, m, v;
  if (!get_buf(a, 0, p, F32) || !get_buf(a, 1, g, F32) || !get_buf(a, 2, m, F32) || !get_buf(a, 3, v, F32))
    return nullptr;
  const i64 n = p.len;
  if (!need(env, g, n, "moxing native: adamw grad too small") || !need(env, m, n, "moxing native: adamw m too small") ||
      !need(env, v, n, "moxing native: adamw v too small"))
    return nullptr;
  const double* P = a.P;
  fused_adamw(F32P(p), F32P(g), F32P(m), F32P(v), n, P[0], P[1], P[2], P[3], P[4], P[5], P[6]);
  return undefined(env);
}

// P[0..6) = bh, T, S, hs, scale, causal. nq = bh*T*hs (q, out, dout), nl = bh*T (lse), sk = S*hs (one
// batch-head of k and v), each checked for overflow.
bool attn_dims(const Args& a, const char* op, i64& bh, i64& T, i64& S, i64& hs, double& scale, bool& causal, i64& nq,
               i64& nl, i64& sk) {
  const double* P = a.P;
  bh = I(P[0]);
  T = I(P[1]);
  S = I(P[2]);
  hs = I(P[3]);
  scale = P[4];
  causal = P[5] != 0.0;
  i64 ignored;
  return sizes(a.env, op, {bh, T, hs}, nq) && sizes(a.env, op, {bh, T}, nl) && sizes(a.env, op, {S, hs}, sk) &&
         sizes(a.env, op, {bh, S, hs}, ignored);
}

napi_value js_attention(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 5)) return nullptr;
  Buf q, k, v, out, lse;
  if (!get_buf(a, 0, q, F32) || !get_buf(a, 1, k, F32) || !get_buf(a, 2, v, F32) || !get_buf(a, 3, out, F32) ||
      !get_buf(a, 4, lse, F32))
    return nullptr;
  i64 bh, T, S, hs, nq, nl, sk;
  double scale;
  bool causal;
  if (!attn_dims(a, "attention", bh, T, S, hs, scale, causal, nq, nl, sk)) return nullptr;
  // P[6]: the batch-head stride of k and v (0: contiguous, S * hs); k and v hold (bh - 1) * kvs + S * hs.
  const i64 given = I(a.P[6]);
  const i64 kvs = given > 0 ? given : sk;
  if (kvs < sk) {
    range_error(env, "moxing native: attention kv stride smaller than S * hs");
    return nullptr;
  }
  i64 nk = 0;
  if (bh > 0 && (__builtin_mul_overflow(bh - 1, kvs, &nk) || __builtin_add_overflow(nk, sk, &nk)))
    return range_error(env, "moxing native: attention kv stride times batch-heads overflows 64 bits"), nullptr;
  if (!need(env, q, nq, "moxing native: attention q too small") ||
      !need(env, k, nk, "moxing native: attention k too small") ||
      !need(env, v, nk, "moxing native: attention v too small") ||
      !need(env, out, nq, "moxing native: attention out too small") ||
      !need(env, lse, nl, "moxing native: attention lse too small"))
    return nullptr;
  fused_attention(F32P(q), F32P(k), F32P(v), F32P(out), F32P(lse), bh, T, S, hs, scale, causal, kvs);
  return undefined(env);
}

napi_value js_attention_bwd(napi_env env, napi_callback_info info) {
  Args a;
  if (!get_args(env, info, a, 9)) return nullptr;
  Buf q, k, v, out, lse, dout, dq, dk, dv;
  if (!get_buf(a, 0, q, F32) || !get_buf(a, 1, k, F32) || !get_buf(a, 2, v, F32) || !get_buf(a, 3, out, F32) ||
      !get_buf(a, 4, lse, F32) || !get_buf(a, 5, dout, F32) || !get_buf(a, 6, dq, F32) ||
      !get_buf(a, 7, dk, F32) || !get_buf(a, 8, dv, F32))
    return nullptr;
  i64 bh, T, S, hs, nq, nl, sk;
  double scale;
  bool causal;
  if (!attn_dims(a, "attentionBackward", bh, T, S, hs, scale, causal, nq, nl, sk)) return nullptr;
  // P[6]: the batch-head stride of k, v, dk and dv (0: contiguous, S * hs), as forward's.
  const i64 given = I(a.P[6]);
  const i64 kvs = given > 0 ? given : sk;
  if (kvs < sk) {
    range_error(env, "moxing native: attentionBackward kv stride smaller than S * hs");
    return nullptr;
  }
  i64 nk = 0;
  if (bh > 0 && (__builtin_mul_overflow(bh - 1, kvs, &nk) || __builtin_add_overflow(nk, sk, &nk)))
    return range_error(env, "moxing native: attentionBackward kv stride times batch-heads overflows 64 bits"), nullptr;
  if (!need(env, q, nq, "moxing native: attentionBackward q too small") ||
      !need(env, k, nk, "moxing native: attentionBackward k too small") ||
      !need(env, v, nk, "moxing native: attentionBackward v too small") ||
      !need(env, out, nq, "moxing native: attentionBackward out too small") ||
      !need(env, lse, nl, "moxing native: attentionBackward lse too small") ||
      !need(env, dout, nq, "moxing native: attentionBackward dout too small") ||
      !need(env, dq, nq, "moxing native: attentionBackward dq too small") ||
      !need(env, dk, nk, "moxing native: attentionBackward dk too small") ||
      !need(env, dv, nk, "moxing native: attentionBackward dv too small"))
    return nullptr;
  fused_attention_bwd(F32P(q), F32P(k), F32P(v), F32P(out), F32P(lse), F32P(dout), F32P(dq), F32P(dk), F32P(dv), bh,
                      T, S, hs, scale, causal, kvs);
  return undefined(env);
}

// ---- info / test hooks --------------------------------------------------------------------------

napi_value str(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

// { isa, threads, kernels: { family: isa }, available: "avx2,generic", isaError? }: isa is the set
// serving GEMM, kernels the set serving each family (the same one unless a set lacks a family).
napi_value js_info(napi_env env, napi_callback_info info) {
  napi_value o, th, fam;
  napi_create_object(env, &o);
  napi_create_int32(env, pool_threads(), &th);
  napi_set_named_property(env, o, "isa", str(env, kernel_for(F_GEMM)->name));
  napi_set_named_property(env, o, "threads", th);
  napi_create_object(env, &fam);
  for (int f = 0; f < F_COUNT; f++) napi_set_named_property(env, fam, kFamilyNames[f], str(env, g_family[f]->name));
  napi_set_named_property(env, o, "kernels", fam);
  napi_set_named_property(env, o, "available", str(env, isa_available()));
  if (isa_error()) napi_set_named_property(env, o, "isaError", str(env, isa_error()));
  return o;
}

napi_value js_set_isa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char name[32] = {0};
  size_t len = 0;
  bool ok = false;
  if (argc >= 1 && napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) == napi_ok) ok = isa_force(name);
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

napi_value js_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &n) == napi_ok && n >= 1) pool_set_threads(n);
  return undefined(env);
}

void finalize_params(napi_env, void* data, void*) { delete[] static_cast<double*>(data); }

// Large tensors (weights above all) in memory backed by 2 MiB pages where the kernel allows it.
// Generation streams every weight once per token; with 4 KiB pages a 120 MB model touches 30,000
// pages, and the TLB misses cost 10-15% of the time in a C microbenchmark of that access pattern
// (BENCHMARKS.md, section 3). V8 allocates ArrayBuffers with calloc, so they never get huge pages.
struct HugeBlock {
  void* base;
  size_t len;
  size_t accounted;
};

void finalize_huge(napi_env env, void*, void* hint) {
  HugeBlock* b = static_cast<HugeBlock*>(hint);
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)b->accounted, &ignored);
  huge_free(b->base, b->len);
  delete b;
}

// alloc(bytes) -> a zero-filled ArrayBuffer, or null when the memory could not be mapped (the caller
// then allocates an ordinary one).
napi_value js_alloc(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  napi_get_null(env, &result);
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return result;
  double want = 0;
  if (napi_get_value_double(env, argv[0], &want) != napi_ok || !(want > 0) || want > 1e15) return result;
  const size_t bytes = (size_t)want;
  HugeBlock* b = new HugeBlock{nullptr, 0, bytes};
  void* data = huge_alloc(bytes, &b->base, &b->len);
  if (!data) {
    delete b;
    return result;
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, data, bytes, finalize_huge, b, &ab) != napi_ok) {
    huge_free(b->base, b->len);
    delete b;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    return result;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, (int64_t)bytes, &ignored);  // so V8's GC sees the memory it holds
  return ab;
}

napi_value init(napi_env env, napi_value exports) {
  double* P = new double[kParams]();
  napi_value ab, params;
  if (napi_create_external_arraybuffer(env, P, kParams * sizeof(double), finalize_params, nullptr, &ab) != napi_ok) {
    // Some runtimes forbid external buffers: fall back to a JS-owned one.
    delete[] P;
    void* data = nullptr;
    napi_create_arraybuffer(env, kParams * sizeof(double), &data, &ab);
    P = static_cast<double*>(data);
  }
  napi_create_typedarray(env, napi_float64_array, kParams, ab, 0, &params);
  napi_ref keep;
  napi_create_reference(env, ab, 1, &keep);  // the block must outlive every call
  napi_set_named_property(env, exports, "params", params);

  struct Fn {
    const char* name;
    napi_callback cb;
  };
  const Fn fns[] = {
      {"unary", js_unary},
      {"binary", js_binary},
      {"where", js_where},
      {"copy", js_copy},
      {"reduce", js_reduce},
      {"matmul", js_matmul},
      {"gather", js_gather},
      {"indexAdd", js_index_add},
      {"softmax", js_softmax},
      {"softmaxBackward", js_softmax_bwd},
      {"layerNorm", js_layernorm},
      {"layerNormBackward", js_layernorm_bwd},
      {"rmsNorm", js_rmsnorm},
      {"rmsNormBackward", js_rmsnorm_bwd},
      {"silu", js_silu},
      {"siluBackward", js_silu_bwd},
      {"swiglu", js_swiglu},
      {"swigluBackward", js_swiglu_bwd},
      {"rope", js_rope},
      {"gelu", js_gelu},
      {"geluBackward", js_gelu_bwd},
      {"biasGelu", js_bias_gelu},
      {"crossEntropy", js_cross_entropy},
      {"crossEntropyBackward", js_cross_entropy_bwd},
      {"adamw", js_adamw},
      {"attention", js_attention},
      {"attentionBackward", js_attention_bwd},
      {"info", js_info},
      {"setIsa", js_set_isa},
      {"setThreads", js_set_threads},
      {"alloc", js_alloc},
  };
  for (const Fn& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, P, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  quant_register(env, exports, P);
  // Interface revision: 2 added alloc and attention's kv stride (P[6]); 3 rmsNorm, silu, swiglu and
  // rope. The TypeScript side checks it so a stale build is never handed parameters it would ignore.
  napi_value abi;
  napi_create_int32(env, 3, &abi);
  napi_set_named_property(env, exports, "abi", abi);
  napi_value maxd;
  napi_create_int32(env, MAXD, &maxd);
  napi_set_named_property(env, exports, "maxDims", maxd);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
