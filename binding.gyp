{
  "target_defaults": {
    "cflags": ["-O3", "-fno-math-errno", "-fPIC", "-Wall", "-Wno-unused-function", "-Wno-maybe-uninitialized"],
    "cflags_cc": ["-std=gnu++17"],
    "cflags!": ["-O2", "-fno-omit-frame-pointer"],
    "cflags_cc!": ["-std=gnu++14", "-std=gnu++1y"]
  },
  "targets": [
    {
      "target_name": "moxing_gemm_avx512",
      "type": "static_library",
      "sources": ["native/gemm_avx512.cc"],
      "conditions": [["target_arch=='x64'", {"cflags": ["-mavx512f", "-mavx512vl", "-mfma"]}]]
    },
    {
      "target_name": "moxing_gemm_avx2",
      "type": "static_library",
      "sources": ["native/gemm_avx2.cc"],
      "conditions": [["target_arch=='x64'", {"cflags": ["-mavx2", "-mfma"]}]]
    },
    {
      "target_name": "moxing_native",
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["moxing_gemm_avx512", "moxing_gemm_avx2"]}]
      ],
      "sources": [
        "native/binding.cc",
        "native/pool.cc",
        "native/gemm.cc",
        "native/gemm_generic.cc",
        "native/ops.cc",
        "native/fused.cc",
        "native/attention.cc",
        "native/memory.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lpthread"]
    }
  ]
}
