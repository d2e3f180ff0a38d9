#!/usr/bin/python3
"""PyTorch side of `npm run bench`: per-op overhead, GPT training-step time and generation speed
for the same workloads bench/bench.ts runs in moxing, measured in the same invocation.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_bench.py \
        --threads 2 --configs '[{"n_layer":4,"n_head":4,"n_embd":128,"block_size":64,"batch_size":12,"vocab_size":65}]'
Prints one JSON object on its last line.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import bench_generation, bench_training  # noqa: E402  (the same model as the quality benchmark)


def op_overhead_us(calls=10000):
    a, b = torch.randn(768), torch.randn(768)
    for _ in range(1000):
        torch.add(a, b)
    t0 = time.perf_counter()
    for _ in range(calls):
        torch.add(a, b)
    return (time.perf_counter() - t0) / calls * 1e6


def train_step(cfg, steps):
    _, step = bench_training(cfg)
    B, T = cfg["batch_size"], cfg["block_size"]
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        step()
        if i >= 2:  # the first steps allocate and warm caches
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"ms_per_step": med * 1e3, "tokens_per_s": B * T / med}


def generation(cfg, tokens):
    _, generate = bench_generation(cfg)
    n = min(tokens, cfg["block_size"] - 1)
    t0 = time.perf_counter()
    generate(n)
    return {"tokens_per_s": n / (time.perf_counter() - t0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--configs", default="[]")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--gen-tokens", type=int, default=100)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"torch": torch.__version__, "threads": a.threads, "op_overhead_us": op_overhead_us(), "configs": []}
    for cfg in json.loads(a.configs):
        out["configs"].append({"config": cfg, "train": train_step(cfg, a.steps), "generate": generation(cfg, a.gen_tokens)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
