"""Where the fixture scripts find llama.cpp's own code: the source tree that node-llama-cpp 3.21.1
ships as a git bundle (node_modules/node-llama-cpp/llama/gitRelease.bundle), the same llama.cpp its
prebuilt binaries were built from. Nothing of it is copied into moxing; the scripts import gguf-py
(gguf-py/gguf, which needs only numpy) and compile ggml-quants.c from a temporary checkout.

node-llama-cpp is installed on demand into $MOXING_LLAMACPP_DIR (default
<tmpdir>/moxing-node-llama-cpp-3.21.1), as scripts/test-llamacpp.mjs does; it is never a dependency.
"""

import os
import subprocess
import sys
import tempfile

NODE_LLAMA_CPP = "node-llama-cpp@3.21.1"


def node_llama_cpp_dir():
    d = os.environ.get("MOXING_LLAMACPP_DIR") or os.path.join(tempfile.gettempdir(), "moxing-node-llama-cpp-3.21.1")
    pkg = os.path.join(d, "node_modules", "node-llama-cpp", "package.json")
    if not os.path.exists(pkg):
        print(f"installing {NODE_LLAMA_CPP} into {d} (about 700 MB; once)...", file=sys.stderr)
        os.makedirs(d, exist_ok=True)
        subprocess.run(["npm", "i", "-E", NODE_LLAMA_CPP, "--prefix", d, "--no-audit", "--no-fund"], check=True)
    return os.path.join(d, "node_modules", "node-llama-cpp")


def llamacpp_source():
    """A checkout of the llama.cpp source bundled with node-llama-cpp (cloned once into the temp dir)."""
    src = os.path.join(tempfile.gettempdir(), "moxing-llamacpp-src-3.21.1")
    if not os.path.exists(os.path.join(src, "gguf-py", "gguf", "quants.py")):
        bundle = os.path.join(node_llama_cpp_dir(), "llama", "gitRelease.bundle")
        subprocess.run(["git", "clone", "-q", bundle, src], check=True)
    return src


def import_gguf():
    """llama.cpp's gguf-py package (gguf.quants, gguf.GGMLQuantizationType, ...)."""
    sys.path.insert(0, os.path.join(llamacpp_source(), "gguf-py"))
    import gguf  # noqa: E402

    return gguf
