#!/usr/bin/python3
"""Golden values for GGML's quantised types, from llama.cpp's own code, for test/quant/ggml.test.ts.
Run from the repository root with Debian's python3-numpy and gcc:

    /usr/bin/python3 tools/gguf_quant_fixtures.py

llama.cpp's source comes from node-llama-cpp's bundle (see tools/llamacpp_source.py). The script
  1. draws 2048 float32 test values (8 rows of 256: normal, heavy-tailed, tiny, huge, constant,
     all-negative, sparse and mixed-scale blocks), seeded;
  2. quantises them with ggml's reference quantisers (quantize_row_*_ref of ggml-quants.c, compiled
     here with -ffp-contract=off, so every float operation rounds as written) to Q8_0, Q5_0, Q4_0,
     Q4_K, Q5_K and Q6_K, and with gguf-py (gguf.quants.quantize, numpy) to Q8_0, Q5_0, Q4_0, BF16,
     and numpy to F16;
  3. dequantises every one of those byte strings with gguf-py (gguf.quants.dequantize).
It checks that gguf-py and the C reference give the same Q8_0 bytes and reports how many Q4_0 and
Q5_0 blocks differ (gguf-py emulates the rounding of ggml built with FMA, as moxing does).

It writes tools/fixtures/ggml-quants/:
  input.f32           the test values, little-endian float32
  TYPE.bin            the quantised bytes moxing must write (Q8_0, Q5_0, Q4_0, BF16, F16: gguf-py/numpy;
                      Q4_K: the C reference) or read (Q5_K, Q6_K: the C reference)
  TYPE.dequant.f32    gguf-py's dequantisation of TYPE.bin
  special.f32, special.F16.bin, special.BF16.bin
                      edge cases for the float conversions (subnormals, overflow, ties, NaN, zeros)
  manifest.json       shapes, types and the checks above
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llamacpp_source import import_gguf, llamacpp_source  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "ggml-quants")

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#define GGML_COMMON_DECL_C
#include "ggml.h"
#include "ggml-quants.h"
#include "ggml-common.h"
/* The few ggml.c functions ggml-quants.c links against, for paths never taken here. */
void ggml_abort(const char *file, int line, const char *fmt, ...) { (void)fmt; fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void)type; (void)ne; abort(); }
size_t ggml_type_size(enum ggml_type type) { (void)type; abort(); }
const char * ggml_type_name(enum ggml_type type) { (void)type; abort(); }
/* harness TYPE N < N float32 > blocks */
int main(int argc, char **argv) {
  if (argc != 3) return 1;
  const char *t = argv[1]; long n = atol(argv[2]);
  float *x = malloc(n * 4); void *y = malloc(n * 4); size_t bytes = 0;
  if (fread(x, 4, n, stdin) != (size_t)n) return 2;
  if (!strcmp(t, "Q8_0")) { quantize_row_q8_0_ref(x, y, n); bytes = n / QK8_0 * sizeof(block_q8_0); }
  else if (!strcmp(t, "Q4_0")) { quantize_row_q4_0_ref(x, y, n); bytes = n / QK4_0 * sizeof(block_q4_0); }
  else if (!strcmp(t, "Q5_0")) { quantize_row_q5_0_ref(x, y, n); bytes = n / QK5_0 * sizeof(block_q5_0); }
  else if (!strcmp(t, "Q4_K")) { quantize_row_q4_K_ref(x, y, n); bytes = n / QK_K * sizeof(block_q4_K); }
  else if (!strcmp(t, "Q5_K")) { quantize_row_q5_K_ref(x, y, n); bytes = n / QK_K * sizeof(block_q5_K); }
  else if (!strcmp(t, "Q6_K")) { quantize_row_q6_K_ref(x, y, n); bytes = n / QK_K * sizeof(block_q6_K); }
  else return 3;
  fwrite(y, 1, bytes, stdout);
  return 0;
}
"""


def build_harness(src, workdir):
    c = os.path.join(workdir, "harness.c")
    exe = os.path.join(workdir, "harness")
    with open(c, "w") as f:
        f.write(HARNESS)
    g = os.path.join(src, "ggml")
    subprocess.run(
        ["gcc", "-O2", "-ffp-contract=off", "-std=gnu11", "-w", f"-I{g}/include", f"-I{g}/src", c, f"{g}/src/ggml-quants.c", "-o", exe, "-lm"],
        check=True,
    )
    return exe


def c_quantize(exe, qtype, x):
    r = subprocess.run([exe, qtype, str(x.size)], input=x.astype("<f4").tobytes(), capture_output=True, check=True)
    return np.frombuffer(r.stdout, dtype=np.uint8)


def test_values():
    rng = np.random.default_rng(16)
    rows = [
        rng.standard_normal(256),
        rng.standard_t(2, 256),  # heavy tails: a few large values per block
        rng.standard_normal(256) * 1e-4,
        rng.standard_normal(256) * 300,
        np.full(256, 0.75),  # constant blocks (max == min)
        -np.abs(rng.standard_normal(256)) - 0.5,  # all negative, no zero
        np.where(rng.random(256) < 0.8, 0.0, rng.standard_normal(256)),  # mostly zeros, one all-zero block
        rng.standard_normal(256) * np.repeat(10.0 ** rng.integers(-3, 3, 8), 32),  # each 32-block its own scale
    ]
    rows[6][:32] = 0.0
    return np.stack(rows).astype(np.float32)  # (8, 256)


def special_values():
    v = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1035156e-05, 6.0e-05, 5.9604645e-08, 2.9802322e-08,
         2.9802326e-08, 1e-9, 1.0009765625, 1.00048828125, 1.00146484375, 0.333333, -2.5e-3, 3.14159265, float("inf"),
         float("-inf"), 1.00390625, 1.001953125, 3.3895314e38]
    # Values exactly halfway between bfloat16 neighbours (ties to even, both ways).
    v += [np.frombuffer(np.uint32(b).tobytes(), np.float32)[0] for b in (0x3F808000, 0x3F818000, 0x3F80C000, 0x3F807FFF)]
    return np.array(v + [float("nan")], dtype=np.float32)


def main():
    gguf = import_gguf()
    q = gguf.quants
    T = gguf.GGMLQuantizationType
    src = llamacpp_source()
    os.makedirs(OUT, exist_ok=True)
    x = test_values()
    x.astype("<f4").tofile(os.path.join(OUT, "input.f32"))
    manifest = {"shape": list(x.shape), "types": {}, "source": "llama.cpp bundled with node-llama-cpp 3.21.1 (gguf-py, ggml-quants.c)"}
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_harness(src, tmp)
        c_bytes = {t: c_quantize(exe, t, x.reshape(-1)) for t in ["Q8_0", "Q5_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"]}
    py_bytes = {
        "Q8_0": q.quantize(x, T.Q8_0).reshape(-1),
        "Q4_0": q.quantize(x, T.Q4_0).reshape(-1),
        "Q5_0": q.quantize(x, T.Q5_0).reshape(-1),
        "BF16": q.quantize(x, T.BF16).reshape(-1),
        "F16": x.astype("<f2").view(np.uint8).reshape(-1),
    }
    if not np.array_equal(py_bytes["Q8_0"], c_bytes["Q8_0"]):
        raise SystemExit("gguf-py and ggml's C reference disagree on Q8_0 bytes")
    q4_0_blocks = int((py_bytes["Q4_0"].reshape(-1, 18) != c_bytes["Q4_0"].reshape(-1, 18)).any(axis=1).sum())
    q5_0_blocks = int((py_bytes["Q5_0"].reshape(-1, 22) != c_bytes["Q5_0"].reshape(-1, 22)).any(axis=1).sum())
    chosen = {"Q8_0": py_bytes["Q8_0"], "Q5_0": py_bytes["Q5_0"], "Q4_0": py_bytes["Q4_0"], "BF16": py_bytes["BF16"], "F16": py_bytes["F16"],
              "Q4_K": c_bytes["Q4_K"], "Q5_K": c_bytes["Q5_K"], "Q6_K": c_bytes["Q6_K"]}
    writes = {"Q8_0": "gguf-py (= C reference)", "Q5_0": "gguf-py", "Q4_0": "gguf-py", "BF16": "gguf-py", "F16": "numpy astype(float16)",
              "Q4_K": "C reference", "Q5_K": "C reference (read only)", "Q6_K": "C reference (read only)"}
    for name, b in chosen.items():
        b.tofile(os.path.join(OUT, f"{name}.bin"))
        rows = b.reshape(x.shape[0], -1)
        d = q.dequantize(rows, T[name]) if name != "F16" else rows.view("<f2").astype(np.float32)
        assert d.shape == x.shape, (name, d.shape)
        d.astype("<f4").tofile(os.path.join(OUT, f"{name}.dequant.f32"))
        err = float(np.abs(d - x).max() / np.abs(x).max())
        manifest["types"][name] = {"bytes": int(b.size), "bytes_from": writes[name], "max_rel_error": round(err, 6)}
    manifest["q4_0_blocks_differing_from_c_without_fma"] = q4_0_blocks
    manifest["q5_0_blocks_differing_from_c_without_fma"] = q5_0_blocks
    s = special_values()
    s.astype("<f4").tofile(os.path.join(OUT, "special.f32"))
    s.astype("<f2").tofile(os.path.join(OUT, "special.F16.bin"))
    q.quantize(s, T.BF16).tofile(os.path.join(OUT, "special.BF16.bin"))
    manifest["special_count"] = int(s.size)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
