#!/usr/bin/env node
// npm install step: build the native CPU backend (build/Release/moxing_native.node) with node-gyp.
// Never fails the install: without the addon moxing runs on its pure-TypeScript reference backend.
//   MOXING_SKIP_NATIVE=1   skip the build entirely
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const fallback = "moxing: the native backend could not be built; moxing will use the reference backend";

if (process.env.MOXING_SKIP_NATIVE === "1") {
  console.log("moxing: MOXING_SKIP_NATIVE=1, skipping the native backend build (the reference backend will be used)");
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
    join(dirname(process.execPath), "node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
    "/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    "/usr/share/nodejs/node-gyp/bin/node-gyp.js",
  ];
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

const gyp = findNodeGyp();
if (!gyp) {
  console.log(`${fallback} (node-gyp not found)`);
  process.exit(0);
}

const args = [gyp, "rebuild"];
const nodedir = process.env.npm_config_nodedir || (existsSync("/usr/include/node/node_api.h") ? "/usr" : "");
if (nodedir) args.push(`--nodedir=${nodedir}`);

const verbose = process.env.MOXING_NATIVE_VERBOSE === "1";
const r = spawnSync(process.execPath, args, { cwd: root, stdio: verbose ? "inherit" : "pipe", encoding: "utf8" });
if (r.status !== 0) {
  const why = r.error ? r.error.message : `node-gyp exited with ${r.status}`;
  console.log(`${fallback} (${why}; set MOXING_NATIVE_VERBOSE=1 for the build log)`);
  process.exit(0);
}
console.log("moxing: native backend built (build/Release/moxing_native.node)");
