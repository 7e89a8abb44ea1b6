// Search one log: time range, filters, paging that keeps them, downloads.
import { api, enc, optional, q, request } from "../api.js";
import { stackedChart } from "../charts.js";
import { clear, download, evidenceButton, field, h, message } from "../dom.js";
import { readableLogs } from "./logs.js";

const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400 };
const BUCKET = { "1h": "1m", "24h": "1h", "7d": "1d" };
const FILTERS = ["actor", "action", "resource", "outcome"];
const COLUMNS = ["received_at", "actor", "action", "resource", "outcome"];

function isoOf(local) {
  // <input type=datetime-local> is local time: send RFC 3339 UTC
  const t = Date.parse(local);
  return Number.isFinite(t) ? new Date(t).toISOString() : "";
}

function localOf(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "";
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export function apiQuery(p) {
  const out = {};
  const range = p.get("range") || "24h";
  if (range === "custom") {
    out.since = p.get("since") || null;
    out.until = p.get("until") || null;
  } else if (range !== "all") {
    out.since = range; // "1h", "24h", "7d": that long ago
  }
  for (const f of FILTERS) out[f] = p.get(f) || null;
  return out;
}

function parsed(e) {
  try {
    return JSON.parse(e.entry);
  } catch {
    return {};
  }
}

function csvCell(v) {
  const s = v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function exportAs(kind, logPath, entries) {
  const base = `${logPath.replace("/", "_")}-${entries.length ? entries[0].index : 0}`;
  if (kind === "json") {
    const body = entries.map((e) => ({ index: e.index, entry: parsed(e) }));
    download(`${base}.json`, "application/json", `${JSON.stringify(body, null, 2)}\n`);
  } else if (kind === "ndjson") {
    download(`${base}.ndjson`, "application/x-ndjson", entries.map((e) => `${e.entry}\n`).join(""));
  } else {
    const head = ["index", ...COLUMNS, "entry"].join(",");
    const lines = entries.map((e) => {
      const p = parsed(e);
      return [e.index, ...COLUMNS.map((c) => p[c]), e.entry].map(csvCell).join(",");
    });
    download(`${base}.csv`, "text/csv", `${[head, ...lines].join("\r\n")}\r\n`);
  }
}

function form(logs, p) {
  const sel = h("select", { name: "log", required: true },
    logs.map((lg) => {
      const path = `${lg.tenant}/${lg.name}`;
      return h("option", { value: path, selected: path === p.get("log"), text: path });
    }));
  const range = h("select", { name: "range" },
    [["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["all", "All time"], ["custom", "Between…"]].map(([v, t]) =>
      h("option", { value: v, selected: (p.get("range") || "24h") === v, text: t })));
  const since = h("input", { type: "datetime-local", name: "since", value: localOf(p.get("since")) });
  const until = h("input", { type: "datetime-local", name: "until", value: localOf(p.get("until")) });
  const custom = h("div", { class: "row custom" }, field("From (local time)", since), field("To (local time)", until));
  const showCustom = () => { custom.hidden = range.value !== "custom"; };
  range.addEventListener("change", showCustom);
  showCustom();
  const inputs = Object.fromEntries(FILTERS.map((f) => [f, h("input", { type: "text", name: f, value: p.get(f) || "", autocomplete: "off" })]));
  const text = h("input", { type: "search", name: "text", value: p.get("text") || "", autocomplete: "off" });
  const limit = h("select", { name: "limit" }, ["25", "50", "100", "500"].map((n) => h("option", { value: n, selected: (p.get("limit") || "50") === n, text: n })));
  const f = h("form", { class: "card search", role: "search", "aria-label": "Search entries" },
    h("div", { class: "row" }, field("Log", sel), field("Time range", range), field("Per page", limit)),
    custom,
    h("div", { class: "row" }, FILTERS.map((k) => field(k[0].toUpperCase() + k.slice(1), inputs[k], "exact match"))),
    h("div", { class: "row" }, field("Text in the event", text, "searched in the entries of the page shown (the API has no full-text index)")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: "Search" })),
  );
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = new URLSearchParams();
    n.set("log", sel.value);
    n.set("range", range.value);
    if (range.value === "custom") {
      if (since.value) n.set("since", isoOf(since.value));
      if (until.value) n.set("until", isoOf(until.value));
    }
    for (const k of FILTERS) if (inputs[k].value.trim()) n.set(k, inputs[k].value.trim());
    if (text.value.trim()) n.set("text", text.value.trim());
    n.set("limit", limit.value);
    location.hash = `#/search?${n}`;
  });
  return f;
}

async function chart(el, logPath, p) {
  const [t, l] = logPath.split("/");
  const range = p.get("range") || "24h";
  if (range === "custom" || range === "all") return;
  const groupBy = p.get("group_by") || "outcome";
  const stats = await optional("stats", `/v1/logs/${enc(t)}/${enc(l)}/stats${q({ from: new Date(Date.now() - RANGES[range] * 1000).toISOString(), bucket: BUCKET[range], group_by: groupBy, top: 8 })}`).catch(() => null);
  if (!stats) return; // no stats API on this server: no chart
  const plot = h("div", { class: "chart", role: "img", "aria-label": `Entries per ${stats.bucket} by ${groupBy}` });
  const by = h("select", { "aria-label": "Stack by" }, ["outcome", "action", "actor", "source"].map((g) => h("option", { value: g, selected: g === groupBy, text: g })));
  by.addEventListener("change", () => {
    p.set("group_by", by.value);
    p.delete("cursor");
    location.hash = `#/search?${p}`;
  });
  const total = stats.buckets.reduce((a, b) => a + b.total, 0);
  clear(el, h("div", { class: "card", id: "chart" },
    h("div", { class: "row spread" }, h("h2", { text: `Entries per ${stats.bucket}: ${total}` }), field("Stack by", by)),
    plot));
  stackedChart(plot, stats, Math.min(el.clientWidth - 32, 1200));
}

export async function searchView(main, _parts, p) {
  const logs = await readableLogs();
  if (!p.get("log") && logs.length) p.set("log", `${logs.find((l) => l.name !== "_system")?.tenant ?? logs[0].tenant}/${(logs.find((l) => l.name !== "_system") ?? logs[0]).name}`);
  const logPath = p.get("log");
  const chartBox = h("div");
  const results = h("section", { "aria-labelledby": "results-title", "aria-live": "polite" });
  clear(main, h("h1", { text: "Search" }), form(logs, p), chartBox, results);
  if (!logPath) return;
  const [t, l] = logPath.split("/");
  const limit = Number(p.get("limit") || 50);
  const cursor = p.get("cursor");
  const query = cursor ? { cursor, limit } : { ...apiQuery(p), limit };
  chart(chartBox, logPath, p);
  let page;
  try {
    page = await api(`/v1/logs/${enc(t)}/${enc(l)}/entries${q(query)}`);
  } catch (e) {
    clear(results, message("error", e.message));
    return;
  }
  const text = (p.get("text") || "").toLowerCase();
  const shown = text ? page.entries.filter((e) => e.entry.toLowerCase().includes(text)) : page.entries;
  const pageNo = Number(p.get("page") || 1);
  const next = new URLSearchParams(p);
  if (page.next_cursor) {
    next.set("cursor", page.next_cursor);
    next.set("page", String(pageNo + 1));
  }
  const first = new URLSearchParams(p);
  first.delete("cursor");
  first.delete("page");
  const rows = shown.map((e) => {
    const v = parsed(e);
    return h("tr", {},
      h("td", { "data-label": "#", class: "num" }, h("a", { href: `#/entry/${enc(t)}/${enc(l)}/${e.index}`, text: String(e.index), "aria-label": `entry ${e.index}` })),
      COLUMNS.map((c) => h("td", { "data-label": c, text: v[c] === undefined ? "" : String(v[c]), class: c === "outcome" && /fail|denied|error/i.test(String(v[c])) ? "bad" : null })));
  });
  clear(results,
    h("div", { class: "row spread" },
      h("h2", { id: "results-title", text: `Page ${pageNo}: ${shown.length} entr${shown.length === 1 ? "y" : "ies"}${text ? ` containing “${p.get("text")}” (of ${page.entries.length})` : ""}` }),
      h("div", { class: "actions" },
        h("span", { class: "muted", text: "Download this page:" }),
        ["json", "ndjson", "csv"].map((k) => h("button", { type: "button", onclick: () => exportAs(k, logPath, shown), text: k.toUpperCase() })),
        shown.length ? evidenceButton("Evidence bundle", `/v1/logs/${enc(t)}/${enc(l)}/evidence?${shown.map((e) => `index=${e.index}`).join("&")}`, `${t}_${l}-${shown[0].index}.evidence.json`, (path) => request(path).then((r) => r.text())) : null)),
    shown.length ? h("div", { class: "table-wrap" }, h("table", { class: "results" },
      h("thead", {}, h("tr", {}, ["#", ...COLUMNS].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows))) : h("p", { text: "No entries match." }),
    h("nav", { class: "pager", "aria-label": "Pages" },
      pageNo > 1 ? h("a", { href: `#/search?${first}`, text: "« First page" }) : null,
      pageNo > 1 ? h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); history.back(); }, text: "‹ Previous" }) : null,
      page.next_cursor ? h("a", { href: `#/search?${next}`, rel: "next", text: "Next page ›" }) : null),
  );
}
