{
  # One static library per instruction set, each compiled with its own flags (GEMM micro-kernels
  # and the kernel table of kernels_<isa>.cc); native/isa.cc detects the CPU once at load time and
  # picks the table for each kernel family. x86-64 builds AVX-512, AVX2 and generic; arm64 builds
  # NEON and generic (g++ on Linux, clang on macOS, where gyp reads xcode_settings, not cflags).
  "target_defaults": {
    "cflags": ["-O3", "-fno-math-errno", "-fPIC", "-Wall", "-Wno-unused-function", "-Wno-maybe-uninitialized"],
    "cflags_cc": ["-std=gnu++17"],
    "cflags!": ["-O2", "-fno-omit-frame-pointer"],
    "cflags_cc!": ["-std=gnu++14", "-std=gnu++1y"],
    "xcode_settings": {
      "GCC_OPTIMIZATION_LEVEL": "3",
      "CLANG_CXX_LANGUAGE_STANDARD": "gnu++17",
      "OTHER_CPLUSPLUSFLAGS": ["-fno-math-errno", "-Wall", "-Wno-unused-function"],
      "MACOSX_DEPLOYMENT_TARGET": "11.0"
    }
  },
  "targets": [
    {
      "target_name": "moxing_isa_generic",
      "type": "static_library",
      "sources": ["native/gemm_generic.cc", "native/kernels_generic.cc"]
    },
    {
      "target_name": "moxing_isa_avx512",
      "type": "static_library",
      "sources": ["native/gemm_avx512.cc", "native/kernels_avx512.cc"],
      "conditions": [["target_arch=='x64'", {
        "cflags": ["-mavx512f", "-mavx512vl", "-mfma"],
        "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mavx512vl", "-mfma"]}
      }]]
    },
    {
      "target_name": "moxing_isa_avx2",
      "type": "static_library",
      "sources": ["native/gemm_avx2.cc", "native/kernels_avx2.cc"],
      "conditions": [["target_arch=='x64'", {
        "cflags": ["-mavx2", "-mfma"],
        "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma"]}
      }]]
    },
    {
      "target_name": "moxing_isa_neon",
      "type": "static_library",
      "sources": ["native/gemm_neon.cc", "native/kernels_neon.cc"]
    },
    {
      # The quantised dot products (quant_<isa>.cc, chosen by quant.cc), one library per set as above.
      "target_name": "moxing_quant_generic",
      "type": "static_library",
      "sources": ["native/quant_generic.cc"]
    },
    {
      "target_name": "moxing_quant_avx2",
      "type": "static_library",
      "sources": ["native/quant_avx2.cc"],
      "conditions": [["target_arch=='x64'", {
        "cflags": ["-mavx2", "-mfma", "-mf16c"],
        "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma", "-mf16c"]}
      }]]
    },
    {
      "target_name": "moxing_quant_avx512",
      "type": "static_library",
      "sources": ["native/quant_avx512.cc"],
      "conditions": [["target_arch=='x64'", {
        "cflags": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"],
        "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]}
      }]]
    },
    {
      "target_name": "moxing_native",
      "dependencies": ["moxing_isa_generic", "moxing_quant_generic"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["moxing_isa_avx512", "moxing_isa_avx2", "moxing_quant_avx2", "moxing_quant_avx512"]}],
        ["target_arch=='arm64'", {"dependencies": ["moxing_isa_neon"]}]
      ],
      "sources": [
        "native/binding.cc",
        "native/isa.cc",
        "native/pool.cc",
        "native/gemm.cc",
        "native/ops.cc",
        "native/fused.cc",
        "native/attention.cc",
        "native/memory.cc",
        "native/quant.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lpthread"]
    }
  ]
}
