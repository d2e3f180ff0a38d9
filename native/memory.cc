// Memory for large tensors: anonymous mappings aligned to 2 MiB and marked for transparent huge
// pages, so streaming a model's weights costs one TLB entry per 2 MiB instead of per 4 KiB.
// Systems without mmap (Windows) return null and the caller allocates an ordinary buffer.
#include "ops.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

namespace mx {

constexpr size_t kHuge = size_t(2) << 20;

void* huge_alloc(size_t bytes, void** base, size_t* len) {
#if defined(__unix__) || defined(__APPLE__)
  // Over-map by one huge page and use the first aligned address in it.
  const size_t want = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;
  void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const uintptr_t aligned = ((uintptr_t)p + kHuge - 1) & ~(uintptr_t)(kHuge - 1);
#if defined(MADV_HUGEPAGE)
  madvise((void*)aligned, want - (aligned - (uintptr_t)p), MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  *base = p;
  *len = want;
  return (void*)aligned;  // fresh anonymous pages read as zero
#else
  (void)bytes;
  *base = nullptr;
  *len = 0;
  return nullptr;
#endif
}

void huge_free(void* base, size_t len) {
#if defined(__unix__) || defined(__APPLE__)
  if (base) munmap(base, len);
#else
  (void)base;
  (void)len;
#endif
}

}  // namespace mx
