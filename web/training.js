// Training: loss, learning-rate and tokens/s curves of a run's metrics.jsonl, live while it runs.

import { api, h, say } from "./api.js";

const $ = (id) => document.getElementById(id);
let state = { run: null, lines: [], next: 0 };
let charts = [];
let timer = null;

export function initTraining() {
  $("runs-refresh").addEventListener("click", listRuns);
  $("run").addEventListener("change", () => select($("run").value));
  $("live").addEventListener("change", schedule);
}

export async function showTraining() {
  await listRuns();
  schedule();
}

async function listRuns() {
  const runs = await api("/api/runs");
  const info = await api("/api/info");
  if (!info.runs) say($("runs-note"), "Start the server with --runs DIR to chart the training runs in DIR.");
  else
    say(
      $("runs-note"),
      runs.length ? `${runs.length} run(s) in ${info.runs}` : `No runs in ${info.runs} yet (folders with a metrics.jsonl).`,
    );
  const sel = $("run");
  const keep = sel.value;
  sel.replaceChildren(...runs.map((r) => h("option", { value: r.name }, `${r.name} (${r.steps} steps)`)));
  if (runs.some((r) => r.name === keep)) sel.value = keep;
  if (sel.value && sel.value !== state.run) await select(sel.value);
}

async function select(run) {
  state = { run, lines: [], next: 0 };
  await poll();
}

async function poll() {
  const s = state;
  if (!s.run) return;
  const r = await api(`/api/runs/metrics?run=${encodeURIComponent(s.run)}&from=${s.next}`);
  // Another run was chosen meanwhile (or another poll got there first): these lines are not ours.
  if (s !== state || r.next <= s.next) {
    if (s === state && !charts.length) draw();
    return;
  }
  s.lines.push(...r.lines);
  s.next = r.next;
  draw();
}

function schedule() {
  clearInterval(timer);
  if ($("live").checked) timer = setInterval(() => poll().catch(() => {}), 2000);
}

/** One series per metric present in the lines; x is the step. */
function series(keys) {
  const rows = state.lines;
  const present = keys.filter((k) => rows.some((l) => typeof l[k] === "number"));
  const x = rows.map((l) => l.step);
  return { present, data: [x, ...present.map((k) => rows.map((l) => (typeof l[k] === "number" ? l[k] : null)))] };
}

function draw() {
  for (const c of charts) c.destroy();
  charts = [];
  const colours = ["#1f5fbf", "#d1495b", "#1d7a3a", "#8e44ad"];
  const plot = (el, keys, label) => {
    const { present, data } = series(keys);
    el.replaceChildren();
    if (!present.length) {
      el.append(h("p", { class: "muted" }, `No ${label} in this run.`));
      return;
    }
    const width = Math.max(320, el.clientWidth || 520);
    const opts = {
      width,
      height: 240,
      scales: { x: { time: false } },
      // Small values (learning rates) in exponent form, so 3e-4 and 1e-4 do not both read "0".
      axes: [
        { label: "step" },
        {
          label,
          size: 70,
          values: (_u, vals) => vals.map((v) => (v !== 0 && Math.abs(v) < 0.01 ? v.toExponential(1) : v.toLocaleString())),
        },
      ],
      series: [{ label: "step" }, ...present.map((k, i) => ({ label: k, stroke: colours[i % colours.length], width: 2, spanGaps: true }))],
    };
    charts.push(new uPlot(opts, data, el));
  };
  plot($("chart-loss"), ["train_loss", "val_loss", "eval_loss", "eval_accuracy"], "loss");
  plot($("chart-lr"), ["lr"], "learning rate");
  plot($("chart-tps"), ["tokens_per_s"], "tokens/s");
}
