// `npm test`: type-check, lint, then the test suite once per available backend, so the same
// conformance, gradcheck and parity tests prove every backend; on the native backend the
// conformance tier and the native kernel tests run again for every other instruction set this CPU
// runs (MOXING_ISA), and the C++ kernel test (scripts/test-native-kernels.mjs: every ISA against
// double-precision loops, AArch64 under qemu) runs once. Exits non-zero on any failure.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const run = (cmd, args, env = {}) => {
  console.log(
    `\n$ ${Object.entries(env)
      .map(([k, v]) => `${k}=${v} `)
      .join("")}${cmd} ${args.join(" ")}`,
  );
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`\nnpm test: '${cmd} ${args[0] ?? ""}' failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
};

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return findTests(p);
    return name.endsWith(".test.ts") ? [p] : [];
  });
}

const bin = (name) => join(root, "node_modules", ".bin", name);
const only = process.argv.slice(2);
if (only.length === 0) {
  run(bin("tsc"), ["--noEmit", "-p", "."]);
  run(bin("biome"), ["check", "."]);
}
const files = only.length
  ? only
  : findTests(join(root, "test"))
      .map((p) => p.slice(root.length))
      .sort();

// Which backends (and native instruction sets) exist is asked of the library itself, so this stays
// true as they are added.
const probe = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "-e",
    "import('./src/index.ts').then(async m => { const n = await import('./src/backends/native/index.ts'); console.log(JSON.stringify({ backends: m.listBackends(), isas: n.nativeInfo().available })) })",
  ],
  {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, MOXING_QUIET: "1", MOXING_ISA: "" },
  },
);
const found = JSON.parse(probe.stdout.trim().split("\n").pop() || '{"backends":["reference"],"isas":[]}');
const backends = found.backends;
// Tests that exercise whole programs (CLI, training) run once on the default backend; the
// engine's tiers (conformance, gradcheck, parity) run on every backend.
const perBackend = files.filter((f) => /test\/(tensor|parity|conformance|backends)\/|parity\.test\.ts$/.test(f));
const perIsa = files.filter((f) => /test\/(conformance|backends)\//.test(f));
const once = files.filter((f) => !perBackend.includes(f));
const testArgs = ["--import", "tsx", "--test", "--test-reporter=spec"];
for (const b of backends) {
  if (perBackend.length) run(process.execPath, [...testArgs, ...perBackend], { MOXING_BACKEND: b });
  if (b !== "native") continue;
  // The default run used the best set; every other set this CPU runs gets the kernel tiers too.
  for (const isa of found.isas.slice(1)) {
    if (perIsa.length) run(process.execPath, [...testArgs, ...perIsa], { MOXING_BACKEND: b, MOXING_ISA: isa });
  }
}
if (once.length) run(process.execPath, [...testArgs, ...once]);
if (only.length === 0) run(process.execPath, [join(root, "scripts", "test-native-kernels.mjs")]);
console.log(`\nnpm test: all passed (backends: ${backends.join(", ")}; native instruction sets: ${found.isas.join(", ") || "none"})`);
