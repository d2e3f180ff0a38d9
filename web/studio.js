// The studio's entry: the model picker and the three pages (tabs, reachable by keyboard).

import { api } from "./api.js";
import { initChat } from "./chat.js";
import { initInside } from "./inside.js";
import { initTraining, showTraining } from "./training.js";

const $ = (id) => document.getElementById(id);
let models = [];

async function start() {
  const info = await api("/api/info");
  models = info.models;
  const sel = $("model");
  for (const m of models) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = `${m.id} (${m.kind}${m.chat ? ", chat" : ""})`;
    sel.append(o);
  }
  const firstChat = models.find((m) => m.chat);
  if (firstChat) sel.value = firstChat.id;
  sel.addEventListener("change", describe);
  describe();
  const current = () => sel.value;
  initChat(current);
  initInside(current);
  initTraining();
  tabs();
}

function describe() {
  const m = models.find((x) => x.id === $("model").value);
  if (!m) return;
  const c = m.config;
  const size =
    m.kind === "gpt"
      ? `${c.n_layer} layers, ${c.n_head} heads, ${c.n_embd} wide, context ${c.block_size}`
      : `${c.num_hidden_layers} layers, ${c.hidden_size} wide`;
  $("next-chat").checked = m.chat;
  $("next-chat").disabled = !m.chat;
  $("model-info").textContent = `${size}, vocabulary ${m.vocabSize}${m.adapter ? " · LoRA adapter attached" : ""}`;
}

function tabs() {
  const list = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of list) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (tab.id === "tab-training") showTraining();
  };
  list.forEach((t, i) => {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = list[(i + step + list.length) % list.length];
      next.focus();
      select(next);
    });
  });
  const fromHash = list.find((t) => `#${t.id.slice(4)}` === location.hash);
  if (fromHash) select(fromHash);
}

start().catch((e) => {
  document.body.prepend(
    Object.assign(document.createElement("p"), { role: "alert", textContent: `The studio could not start: ${e.message}` }),
  );
});
