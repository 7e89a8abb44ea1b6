// Every log the key can read: size, last append, activity, integrity,
// witnesses and signing keys.
import { api, enc, optional, q, session } from "../api.js";
import { sparkline } from "../charts.js";
import { ago, clear, fmtTime, h } from "../dom.js";
import { pinned } from "../pins.js";

export async function readableLogs() {
  const w = session.who;
  const tenants = w.operator ? (await api("/v1/tenants")).tenants.map((t) => t.name) : [w.tenant];
  const out = [];
  for (const t of tenants) {
    const { logs } = await api(`/v1/tenants/${enc(t)}/logs`);
    out.push(...logs);
  }
  return out;
}

async function lastAppend(lg) {
  if (!lg.size || session.who.operator) return null;
  try {
    const r = await api(`/v1/logs/${enc(lg.tenant)}/${enc(lg.name)}/entries${q({ from_index: lg.size - 1, limit: 1 })}`);
    const e = r.entries[0];
    return e ? JSON.parse(e.entry).received_at || null : null;
  } catch {
    return null;
  }
}

function integrityCell(rep) {
  if (!rep) return h("span", { class: "muted", text: "not checked yet" });
  if (rep.quarantined) return h("span", { class: "bad", text: `quarantined: ${rep.quarantined}` });
  if (rep.failure) return h("span", { class: "bad", text: `FAILED: ${rep.failure}` });
  return h("span", { class: "good", text: `ok to ${rep.verified_size} · checked ${fmtTime(rep.verified_us)}` });
}

function witnessCell(lg) {
  if (!lg.witnesses) return h("span", { class: "muted", text: "none" });
  const n = (lg.witnesses.witnesses || []).length;
  const st = lg.witness_status || {};
  const last = st.size !== undefined ? ` · cosigned to ${st.size}` : "";
  return h("span", { text: `${n} witness${n === 1 ? "" : "es"}${last}` });
}

function keysCell(lg) {
  return h(
    "ul",
    { class: "plain" },
    (lg.vkeys || []).map((k) =>
      h(
        "li",
        {},
        h("code", { text: k.fingerprint }),
        ` ${k.kind}, from ${fmtTime(k.valid_from_us)}`,
        k.retired_us ? h("span", { class: "muted", text: ` · retired ${fmtTime(k.retired_us)}` }) : null,
      ),
    ),
  );
}

function noStats(main) {
  main.querySelector("table.logs")?.classList.add("no-stats");
}

export async function logsView(main) {
  const logs = await readableLogs();
  let integrity = {};
  try {
    integrity = Object.fromEntries((await api("/v1/integrity")).logs.map((r) => [r.log, r]));
  } catch {
    /* a key without read scope: no report */
  }
  const canRead = !session.who.operator;
  const rows = logs.map((lg) => {
    const path = `${lg.tenant}/${lg.name}`;
    const last = h("td", { "data-label": "Last append", text: "…" });
    const spark = h("td", { "data-label": "Per minute (1 h)", class: "spark" });
    const row = h(
      "tr",
      {},
      h("th", { scope: "row", "data-label": "Log" },
        canRead ? h("a", { href: `#/search?log=${enc(path)}`, text: path }) : path,
        lg.public ? h("span", { class: "tag", text: "public" }) : null,
        lg.healthy === false ? h("span", { class: "tag bad", text: "unhealthy" }) : null,
      ),
      h("td", { "data-label": "Size", class: "num", text: `${lg.size ?? "—"}${lg.signed_size !== undefined && lg.signed_size !== lg.size ? ` (signed ${lg.signed_size})` : ""}` }),
      last,
      spark,
      h("td", { "data-label": "Integrity" }, integrityCell(integrity[path])),
      h("td", { "data-label": "Witnesses" }, witnessCell(lg)),
      h("td", { "data-label": "Signing keys" }, keysCell(lg),
        lg.origin && pinned(lg.origin).length ? h("span", { class: "tag good", text: "key pinned" }) : null),
    );
    lastAppend(lg).then((t) => clear(last, t ? h("time", { datetime: t, title: t, text: ago(t) }) : "—"));
    if (canRead) {
      optional("stats", `/v1/logs/${enc(lg.tenant)}/${enc(lg.name)}/stats${q({ from: new Date(Date.now() - 3600e3).toISOString(), bucket: "1m" })}`)
        .then((s) => (s ? sparkline(spark, s) : noStats(main)))
        .catch((e) => clear(spark, h("span", { class: "muted", title: e.message, text: "—" })));
    }
    return row;
  });
  clear(
    main,
    h("h1", { text: "Logs" }),
    logs.length ? null : h("p", { text: "This key cannot read any log." }),
    h("div", { class: "table-wrap" },
      h("table", { class: canRead ? "logs" : "logs no-stats" },
        h("caption", { class: "sr-only", text: "Logs this key can read" }),
        h("thead", {}, h("tr", {}, ["Log", "Size", "Last append", "Per minute (1 h)", "Integrity", "Witnesses", "Signing keys"].map((t) => h("th", { scope: "col", class: t.startsWith("Per") ? "spark" : null, text: t })))),
        h("tbody", {}, rows),
      ),
    ),
  );
}
