// Canvas drawings: heatmaps (attention, positional tables) and a labelled scatter plot.

/** Viridis-like colour for t in [0, 1]: dark blue, through teal and green, to yellow. */
export function colour(t) {
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [stops[i], stops[i + 1]];
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(",")})`;
}

/**
 * Draw matrix (rows x cols) as a heatmap in canvas, values mapped from [lo, hi]; optional row and
 * column labels (tokens) along the left and top.
 */
export function heatmap(canvas, matrix, { lo, hi, rowLabels, colLabels } = {}) {
  const ctx = canvas.getContext("2d");
  const rows = matrix.length;
  const cols = matrix[0]?.length ?? 0;
  const flat = matrix.flat();
  const min = lo ?? Math.min(...flat);
  const max = hi ?? Math.max(...flat);
  const span = max - min || 1;
  const pad = rowLabels ? Math.min(70, canvas.width * 0.18) : 0;
  const top = colLabels ? Math.min(70, canvas.height * 0.18) : 0;
  const cw = (canvas.width - pad) / cols;
  const ch = (canvas.height - top) / rows;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      ctx.fillStyle = colour((matrix[r][c] - min) / span);
      ctx.fillRect(pad + c * cw, top + r * ch, Math.ceil(cw), Math.ceil(ch));
    }
  }
  ctx.fillStyle = "#1d1d1f";
  const size = Math.max(8, Math.min(13, Math.min(cw, ch) * 0.9));
  ctx.font = `${size}px ui-monospace, monospace`;
  if (rowLabels) {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    rowLabels.forEach((l, r) => {
      ctx.fillText(show(l), pad - 4, top + (r + 0.5) * ch);
    });
  }
  if (colLabels) {
    ctx.save();
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    colLabels.forEach((l, c) => {
      ctx.save();
      ctx.translate(pad + (c + 0.5) * cw, top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(show(l), 0, 0);
      ctx.restore();
    });
    ctx.restore();
  }
}

/** A token as it can be read in a label: spaces and newlines made visible. */
export function show(token) {
  return token.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5");
}

/** Points with text labels, scaled to fit. */
export function scatter(canvas, points, labels) {
  const ctx = canvas.getContext("2d");
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const m = 40;
  const sx = (x) => m + ((x - x0) / (x1 - x0 || 1)) * (canvas.width - 2 * m);
  const sy = (y) => canvas.height - m - ((y - y0) / (y1 - y0 || 1)) * (canvas.height - 2 * m);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#dedbd2";
  ctx.strokeRect(0.5, 0.5, canvas.width - 1, canvas.height - 1);
  ctx.font = "13px system-ui, sans-serif";
  points.forEach(([x, y], i) => {
    ctx.fillStyle = "#1f5fbf";
    ctx.beginPath();
    ctx.arc(sx(x), sy(y), 4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = "#1d1d1f";
    ctx.fillText(labels[i], sx(x) + 6, sy(y) - 6);
  });
}
