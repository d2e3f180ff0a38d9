// A small blocking thread pool. Workers sleep on a condition variable between jobs after spinning
// a bounded time (MOXING_POOL_SPIN_US, default 200 µs), so a loaded machine is not starved by
// busy-waiting, while generation's back-to-back products (a few hundred per token, tens of µs apart)
// find the workers awake: a futex wake-up costs the caller a system call and the worker tens of µs
// before it joins, during which the caller does the work alone.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MX_PAUSE() _mm_pause()
#else
#define MX_PAUSE() ((void)0)
#endif

namespace mx {
namespace {

using Clock = std::chrono::steady_clock;

// How long a worker spins for the next job, and the caller for the workers to finish, before blocking.
const Clock::duration kSpin = [] {
  const char* e = std::getenv("MOXING_POOL_SPIN_US");
  const long us = e && *e ? std::atol(e) : 200;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us < 0 ? 0 : us));
}();

// Spin (with PAUSE) while done() is false, for at most kSpin; true when done() became true.
template <class F>
bool spin_until(F&& done) {
  if (done()) return true;
  const Clock::time_point end = Clock::now() + kSpin;
  for (;;) {
    for (int s = 0; s < 64; s++) {
      MX_PAUSE();
      if (done()) return true;
    }
    if (Clock::now() >= end) return done();
  }
}

struct Job {
  TaskFn fn;
  void* ctx;
  i64 n;
  std::atomic<i64> next{0};
};

thread_local bool tl_in_pool = false;

struct Pool {
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::vector<std::thread> workers;
  Job* job = nullptr;
  std::atomic<uint64_t> gen{0};
  std::atomic<int> active{0};
  bool stop = false;
  int nthreads = 0;    // including the calling thread
  std::mutex run_mu;   // one job at a time; a second caller runs its job serially

  static void work(Job* j) {
    for (;;) {
      const i64 t = j->next.fetch_add(1, std::memory_order_relaxed);
      if (t >= j->n) break;
      j->fn(j->ctx, t);
    }
  }

  void worker_main() {
    tl_in_pool = true;
    uint64_t seen = gen.load();
    for (;;) {
      // A bounded spin for back-to-back jobs, then block.
      spin_until([&] { return gen.load(std::memory_order_acquire) != seen; });
      Job* j;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_work.wait(lk, [&] { return stop || gen.load() != seen; });
        if (stop) return;
        seen = gen.load();
        j = job;
        if (!j) continue;
        active.fetch_add(1);
      }
      work(j);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (active.fetch_sub(1) == 1) cv_done.notify_all();
      }
    }
  }

  void start(int n) {
    shutdown();
    nthreads = n < 1 ? 1 : n;
    stop = false;
    for (int i = 1; i < nthreads; i++) workers.emplace_back([this] { worker_main(); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  void run(i64 n, TaskFn fn, void* ctx) {
    if (n <= 0) return;
    if (n == 1 || nthreads <= 1 || tl_in_pool || !run_mu.try_lock()) {
      for (i64 t = 0; t < n; t++) fn(ctx, t);
      return;
    }
    Job j;
    j.fn = fn;
    j.ctx = ctx;
    j.n = n;
    {
      std::lock_guard<std::mutex> lk(mu);
      job = &j;
      gen.fetch_add(1, std::memory_order_release);
    }
    cv_work.notify_all();
    tl_in_pool = true;
    work(&j);
    tl_in_pool = false;
    {
      std::unique_lock<std::mutex> lk(mu);
      job = nullptr;  // late wakers skip it; those that took it are counted in `active`
    }
    // The workers still at it are computing their last task: wait for them spinning (bounded).
    spin_until([&] { return active.load(std::memory_order_acquire) == 0; });
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_done.wait(lk, [&] { return active.load() == 0; });
    }
    run_mu.unlock();
  }

  ~Pool() { shutdown(); }
};

int default_threads() {
  const char* e = std::getenv("MOXING_THREADS");
  if (e && *e) {
    int v = std::atoi(e);
    if (v >= 1) return v > 256 ? 256 : v;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : (int)h;
}

Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();  // intentionally leaked: joining threads during static destruction is unsafe
    q->start(default_threads());
    return q;
  }();
  return *p;
}

}  // namespace

void pool_run(i64 ntasks, TaskFn fn, void* ctx) { pool().run(ntasks, fn, ctx); }
int pool_threads() { return pool().nthreads; }
void pool_set_threads(int n) {
  n = n < 1 ? 1 : (n > 256 ? 256 : n);  // as MOXING_THREADS is bounded
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.run_mu);
  p.start(n);
}

}  // namespace mx
