#!/usr/bin/python3
"""PyTorch side of bench/memory.ts: peak resident set size of a GPT training step and of generation,
the same workloads bench/memory.ts measures in moxing, one workload per process.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 \
        /usr/bin/python3 bench/torch_memory.py --case train --threads 2 \
        --config '{"n_layer":4,"n_head":4,"n_embd":128,"block_size":64,"batch_size":12,"vocab_size":65}'
Run it once per case (bench/memory.ts starts a fresh process for each), so peaks do not mix.

The baseline is VmRSS from /proc/self/status after `import torch` (and the model's module); then
VmHWM is reset to the current RSS (`5` into /proc/self/clear_refs) so the import's own peak does not
count, the workload runs, and the peak is VmHWM. Sizes are in MB of 2^20 bytes.
Prints one JSON object on its last line.
"""
import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import bench_generation, bench_training  # noqa: E402  (the same model as the quality benchmark)


def proc_memory():
    """VmRSS and VmHWM of this process, in MB."""
    status = open("/proc/self/status").read()

    def kb(key):
        return int(re.search(r"^%s:\s+(\d+) kB" % key, status, re.M).group(1))

    return {"rss_mb": kb("VmRSS") / 1024, "hwm_mb": kb("VmHWM") / 1024}


def reset_peak():
    """Reset VmHWM to the current RSS (Linux 4.0+); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def train(cfg, steps):
    m, step = bench_training(cfg)
    for _ in range(steps):
        step()
    return m


def generate(cfg, tokens):
    m, generate_n = bench_generation(cfg)
    n = min(tokens, cfg["block_size"] - 1)
    assert generate_n(n).shape[1] == n + 1
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=["train", "generate"], required=True)
    ap.add_argument("--config", required=True, help="JSON: n_layer, n_head, n_embd, block_size, batch_size, vocab_size")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.config)
    base = proc_memory()
    hwm_reset = reset_peak()
    m = train(cfg, a.steps) if a.case == "train" else generate(cfg, a.gen_tokens)
    end = proc_memory()
    print(json.dumps({
        "torch": torch.__version__,
        "threads": a.threads,
        "case": a.case,
        "config": cfg,
        "baseline_mb": base["rss_mb"],
        "peak_mb": end["hwm_mb"],
        "delta_mb": end["hwm_mb"] - base["rss_mb"],
        "hwm_reset": hwm_reset,
        "params": sum(p.numel() for p in m.parameters()),
    }))


if __name__ == "__main__":
    main()
