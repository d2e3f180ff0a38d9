// Shared declarations of the moxing native CPU backend.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mx {

typedef int64_t i64;

// ---- thread pool (pool.cc) -------------------------------------------------------------------
// run(n, fn, ctx) calls fn(ctx, t) for t in [0, n) on the pool's threads (the caller takes part)
// and returns when all calls are done. Calls from inside a task run serially.
typedef void (*TaskFn)(void* ctx, i64 t);
void pool_run(i64 ntasks, TaskFn fn, void* ctx);
int pool_threads();
void pool_set_threads(int n);

template <class F>
inline void parallel_for(i64 ntasks, F& f) {
  pool_run(ntasks, [](void* c, i64 t) { (*static_cast<F*>(c))(t); }, &f);
}

// ---- GEMM (gemm.cc + one translation unit per ISA) ---------------------------------------------
// C[i*ldc + j] = sum_p A[i*rsa + p*csa] * B[p*rsb + j*csb], for i < m, j < n (C overwritten).
struct GemmArgs {
  const float* a;
  i64 rsa, csa;
  const float* b;
  i64 rsb, csb;
  float* c;
  i64 ldc;
  i64 m, n, k;
  float* pack_a;  // workspace: gemm_pack_a_floats()
  float* pack_b;  // workspace: gemm_pack_b_floats()
};

struct GemmImpl {
  const char* name;
  int mr, nr, kc, mc, nc;
  void (*run)(const GemmArgs& g);
  // Matrix-vector products (m == 1 or n == 1), y contiguous and overwritten, x contiguous:
  //   gemv_t: y[j] = sum_p x[p] * w[j*ldw + p]  (rows of w dotted with x; x @ Wᵀ for W (n, k))
  //   gemv_n: y[j] = sum_p x[p] * w[p*ldw + j]  (rows of w combined by x; x @ W for W (k, n))
  void (*gemv_t)(i64 n, i64 k, const float* x, const float* w, i64 ldw, float* y);
  void (*gemv_n)(i64 n, i64 k, const float* x, const float* w, i64 ldw, float* y);
  // Few rows in the nn.Linear layout, W read in place: c[i*ldc + j] = sum_p a[i*lda + p] * w[j*ldw + p].
  void (*gemm_nt_small)(i64 m, i64 n, i64 k, const float* a, i64 lda, const float* w, i64 ldw, float* c, i64 ldc);
};

// Each is defined in its own translation unit, compiled with its own instruction-set flags, and
// reached through the kernel table of its ISA (kernels.h).
extern const GemmImpl gemm_impl_avx512;
extern const GemmImpl gemm_impl_avx2;
extern const GemmImpl gemm_impl_neon;
extern const GemmImpl gemm_impl_generic;

// Batched product; a, b point at batch 0's element [0, 0]; c is contiguous (batch, m, n).
void matmul(const float* a, i64 a_bs, i64 rsa, i64 csa, const float* b, i64 b_bs, i64 rsb, i64 csb, float* c,
            i64 batch, i64 m, i64 n, i64 k);

}  // namespace mx
