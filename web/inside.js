// Inside the model, on the loaded model and the user's own text: the embedding space in 2-D, the
// positional encoding, attention of every layer and head, and the next-token distribution per step.

import { api, h, say } from "./api.js";
import { heatmap, scatter, show } from "./draw.js";

const $ = (id) => document.getElementById(id);
let model = () => "";
let attention = null;

export const SEED_WORDS = "猫, 狗, 汉堡, king, queen, man, woman, cat, dog, hamburger, apple, paris, france, london, england";

export function initInside(getModel) {
  model = getModel;
  $("emb-words").value = SEED_WORDS;
  $("emb-go").addEventListener("click", () => guard($("emb-notes"), embeddings));
  $("pos-go").addEventListener("click", () => guard($("pos-caption"), positions));
  $("att-go").addEventListener("click", () => guard($("att-grid"), showAttention));
  $("att-layer").addEventListener("change", drawAttention);
  $("att-head").addEventListener("change", drawAttention);
  $("next-go").addEventListener("click", () => guard($("next-out"), nextTokens));
}

async function guard(where, fn) {
  try {
    await fn();
  } catch (e) {
    where.replaceChildren(h("p", { role: "alert" }, `Error: ${e.message}`));
  }
}

async function embeddings() {
  const method = document.querySelector('input[name="emb-method"]:checked').value;
  const words = $("emb-words")
    .value.split(",")
    .map((w) => w.trim())
    .filter(Boolean);
  const r = await api("/api/inside/embeddings", { model: model(), words, method });
  scatter($("emb-canvas"), r.points, r.words);
  $("emb-canvas").setAttribute("aria-label", `${r.words.length} words projected to 2-D by ${method === "pca" ? "PCA" : "t-SNE"}`);
  const notes = [];
  if (r.missing.length) notes.push(h("p", { class: "muted" }, `Not in the vocabulary: ${r.missing.join(", ")}`));
  const split = r.words.map((w, i) => (r.tokens[i].length > 1 ? `${w} = ${r.tokens[i].map(show).join(" + ")}` : null)).filter(Boolean);
  if (split.length) notes.push(h("p", { class: "muted" }, `Several tokens (their mean is shown): ${split.join("; ")}`));
  if (r.similarities.length) {
    notes.push(h("h3", {}, "Cosine similarity"));
    notes.push(
      h(
        "ul",
        {},
        r.similarities.map((s) => h("li", {}, `${s.a} · ${s.b}: ${s.cosine.toFixed(3)}`)),
      ),
    );
  }
  for (const a of r.analogies) {
    notes.push(h("h3", {}, `${a.a} − ${a.b} + ${a.c} ≈ ? (expected ${a.expected})`));
    notes.push(
      h(
        "ol",
        {},
        a.nearest.map((n) => h("li", {}, `${n.word} (${n.cosine.toFixed(3)})`)),
      ),
    );
  }
  $("emb-notes").replaceChildren(...notes);
}

async function positions() {
  const r = await api("/api/inside/positions", { model: model() });
  heatmap($("pos-table"), r.table);
  heatmap($("pos-sim"), r.similarity, { lo: -1, hi: 1 });
  const what = { learned: "learned position embeddings", sinusoidal: "the sinusoidal table", rope: "RoPE's cos table (per head)" }[r.kind];
  say($("pos-caption"), `${what}: ${r.table.length} positions × ${r.dims.length} dimensions`);
}

async function showAttention() {
  const text = $("inside-text").value;
  attention = await api("/api/inside/attention", { model: model(), text });
  const layers = attention.weights.length;
  const heads = attention.weights[0].length;
  $("att-layer").replaceChildren(...Array.from({ length: layers }, (_, i) => h("option", { value: String(i) }, String(i))));
  $("att-head").replaceChildren(...Array.from({ length: heads }, (_, i) => h("option", { value: String(i) }, String(i))));
  // Every layer and head as a small map; choosing one draws it large with the tokens.
  const grid = $("att-grid");
  grid.replaceChildren(h("legend", { class: "visually-hidden" }, "Every layer and head"));
  attention.weights.forEach((layer, l) => {
    layer.forEach((w, hd) => {
      const c = h("canvas", { width: 88, height: 88 });
      heatmap(c, w, { lo: 0, hi: 1 });
      grid.append(
        h(
          "button",
          {
            type: "button",
            class: "att-cell",
            "aria-label": `Layer ${l} head ${hd}`,
            onclick: () => {
              $("att-layer").value = String(l);
              $("att-head").value = String(hd);
              drawAttention();
            },
          },
          c,
          `L${l} H${hd}`,
        ),
      );
    });
  });
  drawAttention();
}

function drawAttention() {
  if (!attention) return;
  const l = Number($("att-layer").value);
  const hd = Number($("att-head").value);
  const c = $("att-canvas");
  heatmap(c, attention.weights[l][hd], { lo: 0, hi: 1, rowLabels: attention.tokens, colLabels: attention.tokens });
  c.setAttribute("aria-label", `Attention of layer ${l}, head ${hd} over ${attention.tokens.length} tokens`);
}

async function nextTokens() {
  const out = $("next-out");
  const r = await api("/api/inside/next", {
    model: model(),
    text: $("inside-text").value,
    chat: $("next-chat").checked,
    steps: Number($("next-steps").value),
    top_k: Number($("next-k").value),
    temperature: Number($("next-temp").value),
  });
  out.replaceChildren(
    ...r.steps.map((s, i) =>
      h(
        "section",
        { class: "step", "aria-label": `Step ${i + 1}` },
        h("h3", {}, `Step ${i + 1}: `, h("span", { class: "tok" }, show(s.token))),
        s.top.map((t) => {
          const p = Math.exp(t.logprob);
          return h(
            "div",
            { class: `bar${t.token === s.token ? " chosen" : ""}`, role: "img", "aria-label": `${t.token}: ${(p * 100).toFixed(1)}%` },
            h("code", {}, show(t.token)),
            h("div", { class: "track" }, h("div", { class: "fill", style: `width:${(p * 100).toFixed(1)}%` })),
            h("span", {}, `${(p * 100).toFixed(1)}%`),
          );
        }),
      ),
    ),
  );
}
