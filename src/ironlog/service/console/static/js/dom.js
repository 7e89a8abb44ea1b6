// A tiny element builder: no innerHTML anywhere, so nothing from the log
// can become markup (and the CSP forbids inline script and style anyway).

import { routeMissing } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(us) {
  if (us === null || us === undefined) return "—";
  return new Date(Number(us) / 1000).toISOString().replace(".000Z", "Z");
}

export function ago(iso) {
  if (!iso) return "—";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return iso;
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name, class: "hidden" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) flash(button, "Copied");
  } catch {
    if (button) flash(button, "Copy failed");
  }
}

function flash(button, text) {
  const was = button.textContent;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = was;
  }, 1200);
}

// A button that asks once more before it acts (no window.confirm).
export function confirmButton(label, ask, action, cls = "danger") {
  const b = h("button", { type: "button", class: cls, text: label });
  let armed = false;
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      b.textContent = ask;
      setTimeout(() => {
        armed = false;
        b.textContent = label;
      }, 4000);
      return;
    }
    armed = false;
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
      b.textContent = label;
    }
  });
  return b;
}

// A form field: a visible label tied to its control.
let seq = 0;
export function field(label, control, hint = null) {
  const id = control.id || `f${++seq}`;
  control.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint", text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hintEl);
}

export function message(kind, text) {
  return h("p", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status", text });
}

// A button that downloads an evidence bundle (GET .../evidence, a newer
// API): where the server does not have the route, the button goes away; any
// other refusal (e.g. entries not yet under a signed checkpoint) is shown
// and the button stays, to try again.
export function evidenceButton(label, path, name, fetchBundle) {
  const b = h("button", { type: "button", text: label });
  const wrap = h("span", { class: "evidence" }, b);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const text = await fetchBundle(path);
      download(name, "application/json", text);
    } catch (e) {
      if (routeMissing(e)) clear(wrap, h("span", { class: "muted", role: "status", text: "Evidence bundles over HTTP are not available on this server (use `ironlog evidence export`)." }));
      else wrap.append(h("span", { class: "bad", role: "status", text: ` Evidence bundle: ${e.message}` }));
    } finally {
      b.disabled = false;
    }
  });
  return wrap;
}
