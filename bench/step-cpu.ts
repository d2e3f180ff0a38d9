// CPU time per training step, moxing beside PyTorch, for a machine too loaded for wall times: a
// process's CPU time (user + system) barely moves when other jobs take turns on its cores, its wall
// time triples. One thread each (MOXING_THREADS=1 is set for this process; PyTorch gets
// OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1), the same step as `npm run bench` (bench/workloads.ts:
// forward, backward, clipping at 1.0, AdamW; PyTorch: bench/torch_gpt.py's bench_training).
//
//   node --import tsx bench/step-cpu.ts [--config small|medium] [--steps N] [--warmup W] [--turns T] [--json]
//
// The sides take T alternating turns; each turn's figure is the median CPU time of its N steps,
// and the speed-up is PyTorch's CPU time over moxing's, per turn (median and range given).

process.env.MOXING_THREADS = "1";
const { runTorch } = await import("./torch.js");
const { median } = await import("./timing.js");
const { MEDIUM, SMALL, gptTrainStep } = await import("./workloads.js");

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const which = opt("config") ?? "small";
if (which !== "small" && which !== "medium") throw new Error(`bench/step-cpu: --config is small or medium (got ${which})`);
const cfg = which === "medium" ? MEDIUM : SMALL;
const steps = Number(opt("steps") ?? (which === "medium" ? 2 : 40));
const warmup = Number(opt("warmup") ?? (which === "medium" ? 1 : 5));
const turns = Number(opt("turns") ?? 3);
const log = (s: string) => process.stderr.write(`${s}\n`);

const w = gptTrainStep(cfg);
function moxingTurn(): { cpu_ms: number; wall_ms: number } {
  for (let i = 0; i < warmup; i++) w.step();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    w.step();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
  }
  return { cpu_ms: median(cpu), wall_ms: median(wall) };
}

const rows: { moxing: { cpu_ms: number; wall_ms: number }; torch: { cpu_ms: number; wall_ms: number } | null }[] = [];
for (let t = 0; t < turns; t++) {
  const r = runTorch<{ cpu_ms: number; wall_ms: number }>(
    "torch_step_cpu.py",
    ["--config", JSON.stringify(cfg), "--steps", String(steps), "--warmup", String(warmup), "--threads", "1"],
    1,
  );
  const m = moxingTurn();
  const torch = r.ok ? r.value : null;
  rows.push({ moxing: m, torch });
  log(
    `turn ${t + 1}: moxing ${m.cpu_ms.toFixed(1)} ms CPU (${m.wall_ms.toFixed(1)} wall); torch ${torch ? `${torch.cpu_ms.toFixed(1)} ms CPU (${torch.wall_ms.toFixed(1)} wall)` : r.ok ? "-" : r.reason}` +
      (torch ? `; speed-up ${(torch.cpu_ms / m.cpu_ms).toFixed(2)}x` : ""),
  );
}
const ratios = rows.filter((r) => r.torch).map((r) => (r.torch?.cpu_ms as number) / r.moxing.cpu_ms);
const result = {
  config: cfg,
  steps,
  warmup,
  moxing_cpu_ms: median(rows.map((r) => r.moxing.cpu_ms)),
  torch_cpu_ms: ratios.length ? median(rows.filter((r) => r.torch).map((r) => r.torch?.cpu_ms as number)) : null,
  speedup: ratios.length ? { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) } : null,
  turns: rows,
};
log(
  `median: moxing ${result.moxing_cpu_ms.toFixed(1)} ms CPU/step, torch ${result.torch_cpu_ms?.toFixed(1) ?? "-"}; speed-up ${result.speedup ? `${result.speedup.median.toFixed(2)} (${result.speedup.min.toFixed(2)}-${result.speedup.max.toFixed(2)})` : "-"}`,
);
if (argv.includes("--json")) console.log(JSON.stringify(result));
