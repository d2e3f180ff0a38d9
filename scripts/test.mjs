// `npm test`: type-check, lint, then the test suite once per available backend, so the same
// conformance, gradcheck and parity tests prove every backend. Exits non-zero on any failure.
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

// Which backends exist is asked of the library itself, so this stays true as backends are added.
const probe = spawnSync(
  process.execPath,
  ["--import", "tsx", "-e", "import('./src/index.ts').then(m => console.log(m.listBackends().join(',')))"],
  {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, MOXING_QUIET: "1" },
  },
);
const backends = (probe.stdout.trim().split("\n").pop() || "reference").split(",");
// Tests that exercise whole programs (CLI, training) run once on the default backend; the
// engine's tiers (conformance, gradcheck, parity) run on every backend.
const perBackend = files.filter((f) => /test\/(tensor|parity|conformance|backends)\/|parity\.test\.ts$/.test(f));
const once = files.filter((f) => !perBackend.includes(f));
for (const b of backends) {
  if (perBackend.length) run(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...perBackend], { MOXING_BACKEND: b });
}
if (once.length) run(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...once]);
console.log(`\nnpm test: all passed (backends: ${backends.join(", ")})`);
