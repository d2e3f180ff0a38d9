#!/usr/bin/env python3
"""torch.mm GFLOP/s on the GEMM shapes of bench/gemm.ts, for comparison with moxing's native backend.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_gemm_bench.py [--threads 1,2] [--reps 9]
Prints one JSON object: {"torch": version, "results": [{"m","n","k","layout","threads","gflops","ms"}, ...]}.
layout "nn" is A(m,k) @ B(k,n); "nt" is A(m,k) @ W(n,k).T, the nn.Linear layout.
"""
import argparse
import json
import os
import statistics
import time

import torch

SHAPES = [(64, 768, 768), (512, 768, 768), (512, 3072, 768), (1024, 1024, 1024)]


def bench(m, n, k, layout, reps):
    a = torch.randn(m, k)
    b = torch.randn(k, n) if layout == "nn" else torch.randn(n, k)
    out = torch.empty(m, n)
    rhs = b if layout == "nn" else b.t()
    for _ in range(3):
        torch.mm(a, rhs, out=out)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, rhs, out=out)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return 2.0 * m * n * k / t / 1e9, t * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", default=f"1,{os.cpu_count()}")
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--layouts", default="nn,nt")
    args = p.parse_args()
    results = []
    for th in [int(x) for x in args.threads.split(",") if x]:
        torch.set_num_threads(th)
        for layout in args.layouts.split(","):
            for m, n, k in SHAPES:
                gf, ms = bench(m, n, k, layout, args.reps)
                results.append({"m": m, "n": n, "k": k, "layout": layout, "threads": th, "gflops": round(gf, 1), "ms": round(ms, 3)})
    print(json.dumps({"torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
