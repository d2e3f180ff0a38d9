#!/usr/bin/env node
// The C++ kernel test (native/test/kernel_test.cc): every kernel family of every instruction set,
// against double-precision loops, without Node.
//
//   node scripts/test-native-kernels.mjs            the host (every ISA its CPU runs, plus the AVX-512
//                                                    and NEON kernel bodies at their widths in portable
//                                                    vectors), then AArch64 under qemu when available
//   node scripts/test-native-kernels.mjs --host     the host only
//   node scripts/test-native-kernels.mjs --aarch64  AArch64 only (NEON and generic), under qemu
//   node scripts/test-native-kernels.mjs --clang    also AArch64 built by clang++ (macOS's compiler;
//                                                    Debian package clang), under qemu
//
// AArch64: cross-compiled with Debian's g++-aarch64-linux-gnu and run with
// `qemu-aarch64 -L /usr/aarch64-linux-gnu` (package qemu-user); skipped, saying so, when either is
// missing (.ci/run installs both). It also checks that the per-ISA objects export nothing but their
// tables: a shared (weak) symbol compiled with AVX-512 flags could be the copy every caller gets.
// Exits non-zero on any failure.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const src = (f) => join(root, "native", f);
const args = process.argv.slice(2);
const wantHost = !args.includes("--aarch64");
const wantArm = !args.includes("--host");
const wantClang = args.includes("--clang");

const FRONT = ["isa.cc", "pool.cc", "gemm.cc", "ops.cc", "fused.cc", "attention.cc", "test/kernel_test.cc"];
// The portable kernel bodies again, at the AVX-512 width and tile (w16) and NEON's tile (w4r8).
const portable = (name, w, r, nv) => ({
  file: "kernels_generic.cc",
  obj: `kernels_${name}.o`,
  flags: [
    `-DMX_GENERIC_W=${w}`,
    `-DMX_MM_R=${r}`,
    `-DMX_MM_NV=${nv}`,
    "-DMX_ATT_BR=32",
    "-DMX_ATT_BC=64",
    `-DMX_GENERIC_TABLE=kernels_${name}`,
    `-DMX_GENERIC_NAME="${name}"`,
    "-DMX_GENERIC_GEMM=gemm_impl_generic",
  ],
});
const X86 = [
  { file: "gemm_avx512.cc", flags: ["-mavx512f", "-mavx512vl", "-mfma"], isa: true },
  { file: "kernels_avx512.cc", flags: ["-mavx512f", "-mavx512vl", "-mfma"], isa: true },
  { file: "gemm_avx2.cc", flags: ["-mavx2", "-mfma"], isa: true },
  { file: "kernels_avx2.cc", flags: ["-mavx2", "-mfma"], isa: true },
  // The quantised dot products, with binding.gyp's flags.
  { file: "quant_avx2.cc", flags: ["-mavx2", "-mfma", "-mf16c"], isa: true },
  {
    file: "quant_avx512.cc",
    flags: ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"],
    isa: true,
  },
];
const ARM = [
  { file: "gemm_neon.cc", flags: [], isa: true },
  { file: "kernels_neon.cc", flags: [], isa: true },
];
const COMMON = [
  { file: "gemm_generic.cc", flags: [], isa: true },
  { file: "kernels_generic.cc", flags: [], isa: true },
  { file: "quant_generic.cc", flags: [], isa: true },
  ...FRONT.map((file) => ({ file, flags: [] })),
];
const PORTABLE = [portable("w16", 16, 8, 2), portable("w4r8", 4, 8, 3), { file: "test/kernel_test.cc", flags: ["-DMX_KT_PORTABLE"] }];
const CXXFLAGS = ["-O2", "-std=gnu++17", "-fno-math-errno", "-Wall", "-Wno-unused-function", "-pthread"];

function has(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).status === 0;
}

function run(cmd, argv) {
  return new Promise((resolve) => {
    const p = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      out += d;
    });
    p.on("close", (code) => resolve({ code, out }));
    p.on("error", (e) => resolve({ code: -1, out: String(e) }));
  });
}

// Compile every unit (two at a time: the machine may be shared) and link; returns the binary or null.
// extra: { cxxflags, ldflags } for a cross compiler that needs them (clang for AArch64).
async function build(name, cxx, units, extra = { cxxflags: [], ldflags: [] }) {
  const dir = join(root, "build", "kernel-test", name);
  mkdirSync(dir, { recursive: true });
  const objs = units.map((u) => join(dir, u.obj ?? u.file.replace(/^test\//, "").replace(/\.cc$/, ".o")));
  const jobs = units.map((u, i) => () => run(cxx, [...CXXFLAGS, ...extra.cxxflags, ...u.flags, "-c", src(u.file), "-o", objs[i]]));
  const width = Math.max(1, Math.min(2, cpus().length));
  let failed = null;
  for (let i = 0; i < jobs.length && !failed; i += width) {
    const res = await Promise.all(jobs.slice(i, i + width).map((j) => j()));
    failed = res.find((r) => r.code !== 0) ?? null;
  }
  if (failed) {
    console.error(`kernel test (${name}): compiling failed:\n${failed.out}`);
    return null;
  }
  const bin = join(dir, "kernel_test");
  const link = await run(cxx, [
    ...CXXFLAGS,
    ...extra.cxxflags,
    ...objs,
    "-o",
    bin,
    ...(name === "host" ? [] : ["-static"]),
    ...extra.ldflags,
  ]);
  if (link.code !== 0) {
    console.error(`kernel test (${name}): linking failed:\n${link.out}`);
    return null;
  }
  // Per-ISA objects: external symbols are the tables only, and nothing is weak (shared).
  const nm = name === "host" ? "nm" : "aarch64-linux-gnu-nm";
  for (const [i, u] of units.entries()) {
    if (!u.isa || !has(nm)) continue;
    const r = spawnSync(nm, ["-C", "--defined-only", "--extern-only", objs[i]], { encoding: "utf8" });
    const bad = r.stdout.split("\n").filter((l) => l.trim() && !/ [RDB] mx::(kernels|gemm_impl|quant)_\w+$/.test(l));
    if (bad.length) {
      console.error(`kernel test (${name}): ${u.file} exports shared symbols (must be internal):\n${bad.join("\n")}`);
      return null;
    }
  }
  return bin;
}

function execute(label, cmd, argv) {
  console.log(`$ ${[cmd, ...argv].join(" ")}`);
  const r = spawnSync(cmd, argv, { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`kernel test (${label}) failed (exit ${r.status ?? r.signal})`);
    return false;
  }
  return true;
}

let ok = true;
if (wantHost && !has("g++") && !has("c++")) {
  console.log("kernel test (host): skipped, no C++ compiler (g++ or c++) on PATH");
} else if (wantHost) {
  const own = process.arch === "x64" ? X86 : process.arch === "arm64" ? ARM : [];
  const units = [...own, ...COMMON.filter((u) => u.file !== "test/kernel_test.cc"), ...PORTABLE];
  const bin = await build("host", has("g++") ? "g++" : "c++", units);
  ok = bin !== null && execute("host", bin, []) && ok;
}
if (wantArm && process.arch !== "arm64") {
  const cross = "aarch64-linux-gnu-g++";
  const sysroot = "/usr/aarch64-linux-gnu";
  if (!has(cross) || !has("qemu-aarch64") || !existsSync(sysroot)) {
    console.log(
      "kernel test (aarch64): skipped, needs g++-aarch64-linux-gnu and qemu-user (apt-get install g++-aarch64-linux-gnu qemu-user)",
    );
  } else {
    const bin = await build("aarch64", cross, [...ARM, ...COMMON]);
    // The portable bodies at other widths ran on the host already.
    ok = bin !== null && execute("aarch64 under qemu", "qemu-aarch64", ["-L", sysroot, bin, "neon", "generic"]) && ok;
    if (wantClang && has("clang++")) {
      // clang with the GNU cross toolchain's headers, libraries and linker.
      const inc = `${sysroot}/include/c++/12`;
      const lib = "/usr/lib/gcc-cross/aarch64-linux-gnu/12";
      const cbin = await build("aarch64-clang", "clang++", [...ARM, ...COMMON], {
        cxxflags: ["--target=aarch64-linux-gnu", "-isystem", inc, "-isystem", `${inc}/aarch64-linux-gnu`, "-I", `${sysroot}/include`],
        ldflags: ["-fuse-ld=/usr/bin/aarch64-linux-gnu-ld", `-L${lib}`, `-B${lib}`],
      });
      ok = cbin !== null && execute("aarch64 (clang) under qemu", "qemu-aarch64", ["-L", sysroot, cbin, "neon", "generic"]) && ok;
    } else if (wantClang) {
      console.log("kernel test (aarch64, clang): skipped, no clang++ (apt-get install clang)");
    }
  }
}
process.exit(ok ? 0 : 1);
