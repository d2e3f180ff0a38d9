#!/usr/bin/python3
"""PyTorch side of bench/step-cpu.ts: CPU time (time.process_time) and wall time per training step
of bench/torch_gpt.py's bench_training workload, one config, after warm-up steps.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        /usr/bin/python3 bench/torch_step_cpu.py --config '{...}' --steps 20 --warmup 3 --threads 1
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
from torch_gpt import bench_training  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    _, step = bench_training(json.loads(a.config))
    for _ in range(a.warmup):
        step()
    wall, cpu = [], []
    for _ in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    print(json.dumps({"cpu_ms": statistics.median(cpu), "cpu_ms_min": min(cpu), "wall_ms": statistics.median(wall)}))


if __name__ == "__main__":
    main()
