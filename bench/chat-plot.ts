// The curve of RLHF: reward and KL to the reference over training, from the metrics.jsonl of PPO and
// GRPO runs (and DPO's implicit reward margin), drawn as an SVG and rendered to PNG by Chromium
// (playwright-core, Debian's chromium).
//
//   node --import tsx bench/chat-plot.ts --runs ppo=runs/chat-bench/ppo,grpo=runs/chat-bench/grpo --out docs/rlhf-curves.png
//
// Left: the score of each rollout's completions (PPO's objective/scores, GRPO's reward; thin: each
// step, thick: the mean of the last 10) and the held-out greedy score (dots, eval_score). Right: the
// KL to the reference, summed over a completion (objective/kl), same smoothing. Without Chromium the
// SVG is written beside the PNG's path and the PNG is skipped.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { runs: { type: "string" }, out: { type: "string" }, title: { type: "string" } } });
if (!values.runs || !values.out) throw new Error("bench/chat-plot.ts: --runs NAME=DIR[,NAME=DIR...] and --out FILE.png are required");
const runs = values.runs.split(",").map((r) => {
  const [name, dir] = r.split("=") as [string, string];
  const rows = readFileSync(`${dir}/metrics.jsonl`, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);
  return { name, rows };
});

type Series = { name: string; color: string; points: [number, number][]; dots?: boolean; thin?: boolean };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
const smooth = (pts: [number, number][], k = 10): [number, number][] =>
  pts.map(([x], i) => {
    const w = pts.slice(Math.max(0, i - k + 1), i + 1);
    return [x, w.reduce((s, p) => s + p[1], 0) / w.length];
  });
const pick = (rows: Record<string, number>[], keys: string[]): [number, number][] =>
  rows.flatMap((r) => {
    const k = keys.find((key) => typeof r[key] === "number");
    return k ? [[r.step as number, r[k] as number] as [number, number]] : [];
  });

const rewardSeries: Series[] = [];
const klSeries: Series[] = [];
runs.forEach(({ name, rows }, i) => {
  const color = COLORS[i % COLORS.length] as string;
  const reward = pick(rows, ["objective/scores", "reward"]);
  const kl = pick(rows, ["objective/kl"]);
  rewardSeries.push({ name: `${name} (each step)`, color, points: reward, thin: true });
  rewardSeries.push({ name: `${name} (mean of 10)`, color, points: smooth(reward) });
  const ev = pick(rows, ["eval_score"]);
  if (ev.length) rewardSeries.push({ name: `${name} held-out greedy`, color, points: ev, dots: true });
  klSeries.push({ name: `${name} (each step)`, color, points: kl, thin: true });
  klSeries.push({ name: `${name} (mean of 10)`, color, points: smooth(kl) });
});

function panel(x0: number, title: string, yLabel: string, series: Series[]): string {
  const W = 520;
  const H = 340;
  const m = { l: 60, r: 16, t: 34, b: 44 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [xmin, xmax] = [Math.min(0, ...xs), Math.max(1, ...xs)];
  let [ymin, ymax] = [Math.min(...ys), Math.max(...ys)];
  if (ymin === ymax) [ymin, ymax] = [ymin - 1, ymax + 1];
  const pad = (ymax - ymin) * 0.05;
  [ymin, ymax] = [ymin - pad, ymax + pad];
  const sx = (x: number) => x0 + m.l + ((x - xmin) / (xmax - xmin)) * (W - m.l - m.r);
  const sy = (y: number) => m.t + (1 - (y - ymin) / (ymax - ymin)) * (H - m.t - m.b);
  const ticks = (lo: number, hi: number, n = 5) => Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  let svg = `<text x="${x0 + W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${title}</text>`;
  svg += `<rect x="${x0 + m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#888"/>`;
  for (const t of ticks(ymin, ymax)) {
    svg += `<line x1="${x0 + m.l}" x2="${x0 + W - m.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`;
    svg += `<text x="${x0 + m.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`;
  }
  for (const t of ticks(xmin, xmax)) {
    svg += `<text x="${sx(t)}" y="${H - m.b + 16}" text-anchor="middle" font-size="11">${Math.round(t)}</text>`;
  }
  svg += `<text x="${x0 + m.l + (W - m.l - m.r) / 2}" y="${H - 8}" text-anchor="middle" font-size="12">optimizer step</text>`;
  svg += `<text transform="translate(${x0 + 14},${m.t + (H - m.t - m.b) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${yLabel}</text>`;
  for (const s of series) {
    if (s.dots) {
      for (const [x, y] of s.points)
        svg += `<circle cx="${sx(x)}" cy="${sy(y)}" r="4" fill="${s.color}" stroke="#000" stroke-width="0.8"/>`;
      continue;
    }
    const d = s.points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    svg += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.thin ? 0.8 : 2.2}" opacity="${s.thin ? 0.35 : 1}"/>`;
  }
  const legend = series.filter((s) => !s.thin);
  legend.forEach((s, i) => {
    const y = m.t + 14 + i * 16;
    const lx = x0 + m.l + 10;
    svg += s.dots
      ? `<circle cx="${lx + 8}" cy="${y - 4}" r="4" fill="${s.color}" stroke="#000" stroke-width="0.8"/>`
      : `<line x1="${lx}" x2="${lx + 16}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2.2"/>`;
    svg += `<text x="${lx + 22}" y="${y}" font-size="11">${s.name}</text>`;
  });
  return svg;
}

const title = values.title ?? "RLHF on the SYNTHETIC chat set: reward and KL to the reference";
const svg =
  `<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="370" font-family="DejaVu Sans, Arial, sans-serif">` +
  `<rect width="1040" height="370" fill="white"/>` +
  `<text x="520" y="366" text-anchor="middle" font-size="11" fill="#555">${title}</text>` +
  panel(0, "score of the sampled completions", "reward", rewardSeries) +
  panel(520, "KL to the reference (per completion)", "objective/kl", klSeries) +
  "</svg>";
const svgPath = values.out.replace(/\.png$/i, ".svg");
const chromium = "/usr/bin/chromium";
if (!existsSync(chromium)) {
  writeFileSync(svgPath, svg);
  console.log(`no ${chromium}: wrote ${svgPath} only`);
} else {
  const { chromium: pw } = await import("playwright-core");
  const browser = await pw.launch({ executablePath: chromium });
  try {
    const page = await browser.newPage({ viewport: { width: 1040, height: 370 }, deviceScaleFactor: 1.5 });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.screenshot({ path: values.out, clip: { x: 0, y: 0, width: 1040, height: 370 } });
  } finally {
    await browser.close();
  }
  console.log(`wrote ${values.out}`);
}
