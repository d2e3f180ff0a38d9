// MemoryArena: a training step run inside an arena reuses buffers and gives bit-identical results;
// with MOXING_ARENA_CHECK=1 recycled buffers are poisoned with NaN, so any use after reset (or any
// kernel that relied on zeroed output memory) would show up as NaN losses.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { mx } from "../helpers.js";

function losses(useArena: boolean): { losses: number[]; bytes: number } {
  const model = new mx.GPT({ n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, vocab_size: 20, dropout: 0.1 }, { seed: 0 });
  const opt = new mx.AdamW(model.optimGroups(0.1), { lr: 1e-2 });
  const g = new mx.Generator(0);
  const arena = new mx.MemoryArena();
  const out: number[] = [];
  for (let i = 0; i < 6; i++) {
    arena.reset();
    const step = () => {
      const x = mx.randint(0, 20, [4, 16], { generator: g });
      const y = mx.randint(0, 20, [4, 16], { generator: g });
      const { loss } = model.forward(x, { targets: y });
      opt.zeroGrad();
      loss?.backward();
      opt.step();
      out.push(loss?.item() ?? Number.NaN);
    };
    if (useArena) arena.run(step);
    else step();
  }
  return { losses: out, bytes: arena.bytes };
}

describe(`MemoryArena (${mx.getBackend().name})`, () => {
  test("training inside an arena gives the same losses and stops allocating after the first step", () => {
    const plain = losses(false);
    const pooled = losses(true);
    assert.deepEqual(pooled.losses, plain.losses);
    assert.ok(pooled.bytes > 0);
  });
  test("steps whose shapes change keep about two steps' worth of buffers, not every size seen", () => {
    const arena = new mx.MemoryArena();
    const step = (n: number) => arena.run(() => mx.ones([n]).mul(2).add(1).sum().item());
    for (let i = 0; i < 60; i++) {
      arena.reset();
      assert.equal(step(1000 + 64 * i), 3 * (1000 + 64 * i));
    }
    // A step allocates ~3 buffers of about 20 kB; without dropping unused sizes it would own 60 steps' worth.
    assert.ok(arena.owned < 3 * 3 * 4 * (1000 + 64 * 60), `owns ${arena.owned} bytes`);
    // Constant shapes: after the first step nothing new is allocated.
    for (let i = 0; i < 3; i++) {
      arena.reset();
      step(5000);
    }
    const owned = arena.owned;
    const peak = arena.bytes;
    for (let i = 0; i < 5; i++) {
      arena.reset();
      step(5000);
    }
    assert.equal(arena.owned, owned);
    assert.equal(arena.bytes, peak);
  });
  test("nearby sizes share buffers (size classes): a step a little smaller than the last allocates nothing", () => {
    const arena = new mx.MemoryArena();
    const step = (n: number) => arena.run(() => mx.ones([n]).mul(2).add(1).sum().item());
    arena.reset();
    assert.equal(step(4000), 12000);
    const owned = arena.owned;
    for (const n of [3900, 3500, 2900, 4000]) {
      arena.reset();
      assert.equal(step(n), 3 * n);
      assert.equal(arena.owned, owned, `a step of ${n} after one of 4000 took new buffers`);
    }
    // Buffers are views of exactly the requested length.
    arena.reset();
    const t = arena.run(() => mx.ones([1000]));
    assert.equal(t.data.length, 1000);
    assert.equal(mx.sizeClass(1000), 1024);
    assert.equal(mx.sizeClass(1025), 1280);
    assert.equal(mx.sizeClass(7), 7);
  });
  test("zeroGrad({ recycle: true }) gives the same gradients and reuses each parameter's gradient buffer", () => {
    const run = (recycle: boolean) => {
      const model = new mx.GPT({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 11 }, { seed: 1 });
      const opt = new mx.AdamW(model.optimGroups(0.1), { lr: 1e-2 });
      const g = new mx.Generator(2);
      const grads: number[][] = [];
      const buffers = new Set<unknown>();
      for (let i = 0; i < 3; i++) {
        opt.zeroGrad({ recycle });
        const x = mx.randint(0, 11, [2, 8], { generator: g });
        model.forward(x, { targets: x }).loss?.backward();
        const p = model.parameters()[0] as mx.Tensor;
        grads.push(p.grad?.toArray() ?? []);
        buffers.add(p.grad?.data);
        opt.step();
      }
      return { grads, buffers: buffers.size };
    };
    const plain = run(false);
    const recycled = run(true);
    assert.deepEqual(recycled.grads, plain.grads);
    assert.equal(plain.buffers, 3);
    assert.equal(recycled.buffers, 1);
  });
  test("with NaN poisoning of recycled buffers the losses are unchanged", () => {
    const code = [
      "import('./src/index.ts').then((mx) => {",
      "  const model = new mx.GPT({ n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, vocab_size: 20 }, { seed: 0 });",
      "  const opt = new mx.AdamW(model.optimGroups(0.1), { lr: 1e-2 });",
      "  const g = new mx.Generator(0); const arena = new mx.MemoryArena(); const out = [];",
      "  for (let i = 0; i < 5; i++) { arena.reset(); arena.run(() => {",
      "    const x = mx.randint(0, 20, [4, 16], { generator: g }); const y = mx.randint(0, 20, [4, 16], { generator: g });",
      "    const { loss } = model.forward(x, { targets: y }); opt.zeroGrad(); loss.backward(); opt.step(); out.push(loss.item()); }); }",
      "  console.log(JSON.stringify(out)); });",
    ].join("\n");
    const run = (check: string) =>
      spawnSync(process.execPath, ["--import", "tsx", "-e", code], {
        cwd: new URL("../..", import.meta.url).pathname,
        env: { ...process.env, MOXING_ARENA_CHECK: check, MOXING_QUIET: "1" },
        encoding: "utf8",
      });
    const a = run("1");
    const b = run("0");
    assert.equal(a.status, 0, a.stderr);
    const poisoned = JSON.parse(a.stdout.trim()) as number[];
    assert.ok(poisoned.every(Number.isFinite), `NaN after recycling: ${poisoned}`);
    assert.deepEqual(poisoned, JSON.parse(b.stdout.trim()));
  });
  test("persistent() escapes the arena", () => {
    const arena = new mx.MemoryArena();
    const kept = arena.run(() => mx.persistent(() => mx.full([100], 3)));
    const temp = arena.run(() => mx.full([100], 3));
    arena.reset();
    arena.run(() => mx.full([100], 7)); // reuses temp's buffer
    assert.equal(kept.toArray()[0], 3);
    assert.equal(temp.toArray()[0], 7, "a tensor used after reset sees the new owner's data");
  });
});

describe("packTensors: parameters in one block of backend memory", () => {
  const backend = mx.getBackend();
  test("values are kept, each tensor starts on a cache line, tiny sets are left alone", () => {
    const ts = [mx.randn([1500, 700], { generator: new mx.Generator(1) }), mx.randn([333], { generator: new mx.Generator(2) })];
    const before = ts.map((t) => Float32Array.from(t.data as Float32Array));
    const bytes = mx.packTensors([...ts, ts[0] as mx.Tensor]); // a tied tensor listed twice moves once
    if (!backend.allocate || backend.allocate(16) === null) {
      assert.equal(bytes, 0, `${backend.name} has no allocator: nothing moves`);
      return;
    }
    assert.equal(bytes, (1050000 + 336) * 4);
    assert.equal(ts[0]?.data.buffer, ts[1]?.data.buffer, "one block");
    ts.forEach((t, i) => {
      assert.deepEqual(t.data, before[i]);
      assert.equal(t.data.byteOffset % 64, 0);
    });
    const small = mx.randn([100]);
    const own = small.data;
    assert.equal(mx.packTensors([small]), 0, "below 4 MiB packing is not worth the page rounding");
    assert.equal(small.data, own);
  });
  test("MOXING_HUGE_PAGES=0 keeps ordinary buffers", () => {
    const code = "import('./src/index.ts').then((mx) => console.log(mx.packTensors([mx.zeros([2000, 1000])])));";
    const run = (huge: string) =>
      spawnSync(process.execPath, ["--import", "tsx", "-e", code], {
        cwd: new URL("../..", import.meta.url).pathname,
        env: { ...process.env, MOXING_HUGE_PAGES: huge, MOXING_QUIET: "1" },
        encoding: "utf8",
      });
    const off = run("0");
    assert.equal(off.status, 0, off.stderr);
    assert.equal(off.stdout.trim(), "0");
    const on = run("1");
    assert.equal(on.stdout.trim(), backend.allocate?.(16) ? String(2000 * 1000 * 4) : "0");
  });
  test("a GPT's parameters share one block and train as before", () => {
    const config = { n_layer: 2, n_head: 2, n_embd: 256, block_size: 16, vocab_size: 2000 };
    const model = new mx.GPT(config, { seed: 0 });
    const buffers = new Set(model.parameters().map((p) => p.data.buffer));
    // Unpacked (no native block), small parameters may share the allocator's slabs, so only
    // "not one block" can be asserted there.
    if (backend.allocate?.(16)) assert.equal(buffers.size, 1);
    else assert.ok(buffers.size > 1, `${buffers.size} buffers`);
    const idx = mx.tensor([[1, 2, 3, 4]], { dtype: "int32" });
    const opt = new mx.AdamW(model.parameters(), { lr: 1e-3 });
    const { loss } = model.forward(idx, { targets: idx });
    loss?.backward();
    opt.step();
    const again = model.forward(idx, { targets: idx }).loss?.item() as number;
    assert.ok(again < (loss?.item() as number), "a step on packed parameters lowers the loss");
  });
});

describe("small tensors outside an arena", () => {
  test("are zeroed, 64-byte aligned and never overlap, whatever their sizes", () => {
    const sizes = [17, 64, 100, 768, 2048, 33, 1500, 4000];
    const made = [];
    for (let i = 0; i < 200; i++) {
      const n = sizes[i % sizes.length] as number;
      const t = i % 3 === 0 ? mx.zeros([n], { dtype: "int32" }) : mx.empty([n]);
      assert.ok(
        t.data.every((v) => v === 0),
        `a fresh ${n}-element tensor reads as zeros`,
      );
      assert.equal(t.data.byteOffset % 64, 0, "views start on 64-byte boundaries");
      t.data.fill(i + 1);
      made.push(t);
    }
    // Every tensor still holds what was written to it: no two share bytes.
    for (const [i, t] of made.entries()) assert.ok(t.data.every((v) => v === i + 1));
  });
});
