// The studio's calls to its server: JSON requests with OpenAI-shaped errors, and server-sent events.

/** POST (or GET without a body) JSON; throws an Error carrying the server's message. */
export async function api(path, body, { method } = {}) {
  const res = await fetch(path, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

/** POST JSON and call onEvent with each parsed `data:` event of the streamed answer. */
export async function stream(path, body, onEvent, { signal } = {}) {
  const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    throw new Error(data?.error?.message ?? `${res.status} ${res.statusText}`);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut = buffer.indexOf("\n\n");
    while (cut >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (block.startsWith("data: ")) {
        const data = block.slice(6);
        if (data !== "[DONE]") {
          const event = JSON.parse(data);
          if (event.error) throw new Error(event.error.message);
          onEvent(event);
        }
      }
      cut = buffer.indexOf("\n\n");
    }
  }
}

/** A short status line in an element (role=status regions announce it). */
export function say(el, text, kind = "") {
  el.textContent = text;
  el.dataset.kind = kind;
}

/** Create an element with properties and children. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k.startsWith("aria-") || k.startsWith("data-") || k === "role" || k === "for") el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}
