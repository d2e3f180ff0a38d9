// Preloaded into a moxing process by test/safety/cli.test.ts (NODE_OPTIONS=--import ...): file
// system calls that write under MOXING_TEST_FS_PREFIX fail with MOXING_TEST_FS_ERROR, as they do
// on a read-only file system (EROFS: creating, opening for writing, renaming) or a full disk
// (ENOSPC: writing, where the real error carries no path either). This tests the messages
// without mounting a read-only or full file system, which needs root.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { resolve } from "node:path";

const prefix = resolve(process.env.MOXING_TEST_FS_PREFIX ?? "/nonexistent-prefix");
const code = process.env.MOXING_TEST_FS_ERROR;
const text = { EROFS: "read-only file system", ENOSPC: "no space left on device" }[code];
const under = (p) => typeof p === "string" && resolve(p).startsWith(prefix);
const error = (syscall, path) =>
  Object.assign(new Error(`${code}: ${text}, ${syscall}${path ? ` '${path}'` : ""}`), { code, syscall, ...(path ? { path } : {}) });
const writing = (flags) =>
  flags !== undefined && flags !== "r" && flags !== fs.constants.O_RDONLY && !(typeof flags === "number" && (flags & 3) === 0);

const orig = {
  accessSync: fs.accessSync,
  mkdirSync: fs.mkdirSync,
  openSync: fs.openSync,
  renameSync: fs.renameSync,
  writeSync: fs.writeSync,
};
const ours = new Set();
if (code === "EROFS") {
  fs.accessSync = (p, mode, ...rest) => {
    if (under(p) && mode !== undefined && mode & fs.constants.W_OK) throw error("access", p);
    return orig.accessSync(p, mode, ...rest);
  };
  fs.mkdirSync = (p, ...rest) => {
    if (under(p)) throw error("mkdir", p);
    return orig.mkdirSync(p, ...rest);
  };
  fs.openSync = (p, flags, ...rest) => {
    if (under(p) && writing(flags)) throw error("open", p);
    return orig.openSync(p, flags, ...rest);
  };
  fs.renameSync = (a, b) => {
    if (under(b)) throw error("rename", a);
    return orig.renameSync(a, b);
  };
} else if (code === "ENOSPC") {
  fs.openSync = (p, flags, ...rest) => {
    const fd = orig.openSync(p, flags, ...rest);
    if (under(p) && writing(flags)) ours.add(fd);
    return fd;
  };
  fs.writeSync = (fd, ...rest) => {
    if (ours.has(fd)) throw error("write");
    return orig.writeSync(fd, ...rest);
  };
}
syncBuiltinESMExports();
