// Log keys the user pinned, by checkpoint origin, in localStorage: the page
// verifies checkpoints against these, never against what the server says now.
import { parseVkey } from "./tlog.js";

const PINS = "ironlog.pins";

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(PINS) || "{}");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

export function pinned(origin) {
  const list = load()[origin];
  return Array.isArray(list) ? list : [];
}

export async function pin(origin, vkey) {
  const k = await parseVkey(vkey);
  if (k.name !== origin) throw new Error(`the key is for ${k.name}, not ${origin}`);
  const all = load();
  all[origin] = [...new Set([...(all[origin] || []), k.vkey])];
  localStorage.setItem(PINS, JSON.stringify(all));
}

export function unpin(origin) {
  const all = load();
  delete all[origin];
  localStorage.setItem(PINS, JSON.stringify(all));
}
