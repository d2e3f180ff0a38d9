// The chat page: streaming multi-turn chat with sampling controls and a stop button; thumbs up and
// down, "correct this answer", "show me two" (pick one), all kept in the feedback store; and
// "learn now", a LoRA update on this conversation's feedback, showing the answer before and after.

import { api, h, say, stream } from "./api.js";

const $ = (id) => document.getElementById(id);
let conversation = null; // { id, messages }
let running = null; // the request id of the answer being generated
let model = () => "";

export function initChat(getModel) {
  model = getModel;
  for (const id of ["temperature", "top-p"]) {
    const input = $(id);
    input.addEventListener("input", () => {
      $(`${id}-out`).textContent = input.value;
    });
  }
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send(1);
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      send(1);
    }
  });
  $("two").addEventListener("click", () => send(2));
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => {
    conversation = null;
    render();
    say($("learn-status"), "");
    $("input").focus();
  });
  $("learn").addEventListener("click", learnNow);
  listConversations();
  render();
}

function sampling() {
  const s = { temperature: Number($("temperature").value), top_p: Number($("top-p").value), max_tokens: Number($("max-tokens").value) };
  if ($("seed").value !== "") s.seed = Number($("seed").value);
  return s;
}

async function listConversations() {
  const list = $("conversations");
  list.replaceChildren();
  let convs = [];
  try {
    convs = await api("/api/conversations");
  } catch {
    return; // no feedback store
  }
  for (const c of convs) {
    const label = `#${c.id} · ${c.messages} messages`;
    list.append(h("li", {}, h("button", { type: "button", onclick: () => open(c.id) }, label)));
  }
}

async function open(id) {
  conversation = await api(`/api/conversations/${id}`);
  render();
}

/** The message a new user message follows: the chosen one of a pair, else the newest. */
function parentForNext() {
  const msgs = conversation?.messages ?? [];
  const last = msgs[msgs.length - 1];
  if (!last) return null;
  if (last.role !== "assistant") return last.id;
  const siblings = msgs.filter((m) => m.role === "assistant" && m.parentId === last.parentId);
  const chosen = siblings.find((m) => m.chosenOver !== null);
  return (chosen ?? siblings[0]).id;
}

async function send(n) {
  const content = $("input").value.trim();
  if (!content || running) return;
  const status = $("learn-status");
  try {
    if (!conversation) {
      const system = $("system").value.trim();
      conversation = await api("/api/conversations", system ? { system } : {});
    }
    const parent = parentForNext();
    $("input").value = "";
    // Show the question and empty answers at once; the answers fill in as they stream.
    const pending = [...conversation.messages, { id: "pending", role: "user", content, parentId: parent }];
    const answers = Array.from({ length: n }, (_, i) => ({
      id: `pending-${i}`,
      role: "assistant",
      content: "",
      parentId: "pending",
      streaming: true,
    }));
    renderMessages([...pending, ...answers]);
    setRunning(true);
    await stream(`/api/conversations/${conversation.id}/reply`, { model: model(), content, parent, n, sampling: sampling() }, (ev) => {
      if (ev.type === "start") running = ev.request;
      else if (ev.type === "delta") {
        const el = document.querySelector(`[data-message="pending-${ev.choice}"] .content`);
        if (el) el.textContent += ev.text;
      }
    });
    conversation = await api(`/api/conversations/${conversation.id}`);
    listConversations();
  } catch (e) {
    say(status, `Error: ${e.message}`, "error");
  } finally {
    setRunning(false);
    render();
  }
}

function setRunning(on) {
  if (!on) running = null;
  else running = running ?? "starting";
  $("send").disabled = on;
  $("two").disabled = on;
  $("stop").disabled = !on;
}

async function stop() {
  if (running && running !== "starting") await api(`/api/requests/${running}/stop`, {});
}

function render() {
  renderMessages(conversation?.messages ?? []);
  $("learn").disabled = !conversation;
}

function renderMessages(msgs) {
  const box = $("messages");
  box.replaceChildren();
  if (msgs.length === 0) {
    box.append(h("p", { class: "muted" }, "Start a conversation: type a message below. Rate answers, correct them, then press Learn now."));
    return;
  }
  const done = new Set();
  for (const m of msgs) {
    if (done.has(m.id)) continue;
    if (m.role === "assistant") {
      const siblings = msgs.filter((x) => x.role === "assistant" && x.parentId === m.parentId);
      for (const s of siblings) done.add(s.id);
      if (siblings.length > 1) {
        box.append(
          h(
            "div",
            { class: "pair-answers", role: "group", "aria-label": "Two answers: pick the better one" },
            siblings.map((s) => bubble(s, siblings)),
          ),
        );
        continue;
      }
    }
    box.append(bubble(m, [m]));
  }
  box.scrollTop = box.scrollHeight;
}

function bubble(m, siblings) {
  const chosen = siblings.some((s) => s.chosenOver !== null);
  const cls = ["msg", m.role];
  if (chosen) cls.push(m.chosenOver !== null ? "chosen" : "rejected");
  const el = h(
    "article",
    { class: cls.join(" "), "data-message": String(m.id), "aria-label": `${m.role} message` },
    h("div", { class: "who" }, m.role === "assistant" && m.model ? `assistant · ${m.model}` : m.role),
    h("p", { class: "content" }, m.content),
  );
  if (m.correction) el.append(h("div", { class: "corrected" }, h("strong", {}, "Corrected: "), m.correction));
  if (m.role === "assistant" && typeof m.id === "number") el.append(tools(m, siblings));
  return el;
}

function tools(m, siblings) {
  const up = h(
    "button",
    { type: "button", "aria-label": "Thumbs up: a good answer", title: "Good answer", onclick: () => rate(m, 1) },
    thumb(false),
    " Good",
  );
  const down = h(
    "button",
    { type: "button", "aria-label": "Thumbs down: a bad answer", title: "Bad answer", onclick: () => rate(m, -1) },
    thumb(true),
    " Bad",
  );
  if (m.rating === 1) up.classList.add("rated-up");
  if (m.rating === -1) down.classList.add("rated-down");
  up.setAttribute("aria-pressed", String(m.rating === 1));
  down.setAttribute("aria-pressed", String(m.rating === -1));
  const bar = h(
    "div",
    { class: "tools" },
    up,
    down,
    h("button", { type: "button", onclick: (e) => correct(m, e.target.closest("article")) }, "Correct this answer"),
  );
  if (siblings.length > 1 && !siblings.some((s) => s.chosenOver !== null)) {
    const other = siblings.find((s) => s.id !== m.id);
    bar.append(h("button", { type: "button", onclick: () => choose(m, other) }, "Pick this one"));
  }
  return bar;
}

async function refresh() {
  conversation = await api(`/api/conversations/${conversation.id}`);
  render();
}

async function rate(m, rating) {
  await api(`/api/messages/${m.id}/rate`, { rating });
  await refresh();
}

async function choose(m, other) {
  await api(`/api/messages/${m.id}/choose`, { rejected: other.id });
  await refresh();
}

function correct(m, article) {
  const area = h("textarea", { rows: 3, value: m.correction ?? m.content, "aria-label": "The better answer" });
  const form = h(
    "form",
    {
      class: "correct-form",
      onsubmit: async (e) => {
        e.preventDefault();
        if (!area.value.trim()) return;
        await api(`/api/messages/${m.id}/correct`, { content: area.value });
        await refresh();
      },
    },
    area,
    h(
      "div",
      { class: "tools" },
      h("button", { type: "submit" }, "Save correction"),
      h("button", { type: "button", onclick: () => render() }, "Cancel"),
    ),
  );
  article.append(form);
  area.focus();
}

async function learnNow() {
  const status = $("learn-status");
  if (!conversation) return;
  $("learn").disabled = true;
  try {
    let job = await api(`/api/conversations/${conversation.id}/learn`, { model: model(), method: $("learn-method").value });
    const bar = h("progress", { max: job.maxSteps, value: 0, "aria-label": "Learning progress" });
    const line = h("div", {}, `Learning from ${job.examples} example(s)…`);
    status.replaceChildren(line, bar);
    while (job.state === "running") {
      await new Promise((r) => setTimeout(r, 400));
      job = await api(`/api/learn/${job.id}`);
      bar.value = job.step;
      line.textContent = `Step ${job.step} of ${job.maxSteps}${job.loss !== null ? `, loss ${job.loss.toFixed(3)}` : ""}`;
    }
    if (job.state === "failed") throw new Error(job.error);
    const question = job.prompt.filter((p) => p.role === "user").pop()?.content ?? "";
    status.replaceChildren(
      h(
        "div",
        { class: "learn-result" },
        h("strong", {}, `Learned by ${job.method.toUpperCase()} (${job.step} steps, loss ${job.loss?.toFixed(3)}). For “${question}”:`),
        h("div", { class: "before" }, h("strong", {}, "Before: "), job.before),
        h("div", { class: "after" }, h("strong", {}, "After: "), job.after),
        h("div", { class: "muted" }, h("strong", {}, "Taught: "), job.target),
      ),
    );
  } catch (e) {
    say(status, `Learn now: ${e.message}`, "error");
  } finally {
    $("learn").disabled = false;
  }
}

/** A thumb icon (drawn, so it needs no emoji font); pointing down for thumbs-down. */
function thumb(down) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (down) svg.style.transform = "rotate(180deg)";
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  // The cuff on the left, the hand beside it with the thumb raised.
  path.setAttribute("d", "M2 10h4v11H2zM8 21h9.5a2 2 0 0 0 1.9-1.4l2.4-7A2 2 0 0 0 19.9 10H14l1-4.5A2 2 0 0 0 13 3h-.5L8 9.5z");
  svg.append(path);
  return svg;
}
