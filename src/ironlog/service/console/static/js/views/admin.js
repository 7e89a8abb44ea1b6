// Operators and tenant admins: tenants, logs, API keys, signing keys,
// integrity.  Every action is the ordinary API call; what the key may not
// do, the server refuses, and the page shows why.
import { api, enc, optional, q, session } from "../api.js";
import { clear, confirmButton, copy, field, fmtTime, h, message } from "../dom.js";

let flash = null; // a message that survives the re-render after an action

function act(fn, done) {
  return async () => {
    try {
      const m = await fn();
      flash = typeof m === "string" ? message("ok", m) : m || null;
    } catch (e) {
      flash = message("error", e.message);
    }
    await done();
  };
}

function secretBox(secret, what) {
  const b = h("button", { type: "button", text: "Copy" });
  b.addEventListener("click", () => copy(secret, b));
  return h("div", { class: "secret", role: "alert" },
    h("strong", { text: `${what}. Copy the secret now: it is shown only once.` }),
    h("div", { class: "row" }, h("code", { class: "mono", id: "new-secret", text: secret }), b));
}

function table(caption, cols, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only", text: caption }),
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, rows)));
}

function tenantsSection(tenants, selected, rerender) {
  const name = h("input", { type: "text", required: true, autocomplete: "off", pattern: "[a-z0-9][a-z0-9_.-]*" });
  const f = h("form", { class: "row" }, field("New tenant", name), h("button", { type: "submit", text: "Create tenant" }));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      await api("/v1/tenants", { method: "POST", body: { name: name.value.trim() } });
      return `Tenant ${name.value.trim()} created.`;
    }, rerender)();
  });
  const rows = tenants.map((t) => h("tr", {},
    h("th", { scope: "row" }, h("a", { href: `#/admin?tenant=${enc(t.name)}`, "aria-current": t.name === selected ? "true" : null, text: t.name })),
    h("td", { text: t.disabled ? "disabled" : "active", class: t.disabled ? "bad" : null }),
    h("td", { text: t.witnessing ? "allowed" : "not allowed" }),
    h("td", { text: t.operator_locked ? "locked" : "no" }),
    h("td", { class: "actions" },
      t.disabled
        ? h("button", { type: "button", onclick: act(() => api(`/v1/tenants/${enc(t.name)}/enable`, { method: "POST" }).then(() => `Tenant ${t.name} enabled.`), rerender), text: "Enable" })
        : confirmButton("Disable", "Really disable?", act(() => api(`/v1/tenants/${enc(t.name)}/disable`, { method: "POST" }).then(() => `Tenant ${t.name} disabled.`), rerender)),
      h("button", { type: "button", onclick: act(() => api(`/v1/tenants/${enc(t.name)}/witnessing`, { method: "POST", body: { enabled: !t.witnessing } }).then(() => `Witnessing ${t.witnessing ? "disallowed" : "allowed"} for ${t.name}.`), rerender), text: t.witnessing ? "Disallow witnesses" : "Allow witnesses" }))));
  return h("section", { class: "card", "aria-labelledby": "tenants-title" },
    h("h2", { id: "tenants-title", text: "Tenants" }),
    table("Tenants", ["Tenant", "State", "Witnesses", "Operator lock", "Actions"], rows), f);
}

function logsSection(tenant, logs, tenantAdmin, rerender) {
  const name = h("input", { type: "text", required: true, autocomplete: "off" });
  const dur = h("select", {}, ["sync", "interval:100", "off"].map((d) => h("option", { value: d, text: d })));
  const idx = h("input", { type: "text", value: "none", autocomplete: "off" });
  const pub = h("input", { type: "checkbox" });
  const f = h("form", { class: "row" },
    field("New log", name), field("Durability", dur), field("Indexes", idx, "none, or e.g. actor,action"),
    tenantAdmin ? h("div", { class: "field check" }, pub, h("label", { for: (pub.id = `pub-${tenant}`), text: "public (tiles without a key)" })) : null,
    h("button", { type: "submit", text: "Create log" }));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      const body = { name: name.value.trim(), durability: dur.value, indexes: idx.value.split(",").map((s) => s.trim()).filter(Boolean) };
      if (pub.checked) body.public = true;
      await api(`/v1/tenants/${enc(tenant)}/logs`, { method: "POST", body });
      return `Log ${tenant}/${body.name} created.`;
    }, rerender)();
  });
  const rows = logs.map((lg) => {
    const wit = h("textarea", { rows: 4, class: "mono", spellcheck: "false" });
    wit.value = JSON.stringify(lg.witnesses || { witnesses: [] }, null, 2);
    const witForm = tenantAdmin && lg.name !== "_system" ? h("details", {}, h("summary", { text: "Witnesses…" }),
      field(`Witness policy for ${lg.name} (JSON)`, wit, '{"witnesses": [{"vkey", "url"}], "policy": {"quorum": K, "members": [names or groups]}}; without policy every witness must cosign'),
      h("button", { type: "button", onclick: act(async () => {
        let policy;
        try { policy = JSON.parse(wit.value); } catch { throw new Error("the witness policy is not valid JSON"); }
        await api(`/v1/tenants/${enc(tenant)}/logs/${enc(lg.name)}/witnesses`, { method: "PUT", body: policy });
        return `Witnesses of ${tenant}/${lg.name} saved.`;
      }, rerender), text: "Save witnesses" })) : null;
    return h("tr", {},
      h("th", { scope: "row", text: lg.name }),
      h("td", { class: "num", text: String(lg.size ?? "—") }),
      h("td", { text: lg.durability }),
      h("td", { text: lg.public ? "public" : "private" }),
      h("td", {}, lg.quarantined ? h("span", { class: "bad", text: `quarantined: ${lg.quarantined}` }) : lg.healthy === false ? h("span", { class: "bad", text: lg.unhealthy_reason || "unhealthy" }) : "ok"),
      h("td", { class: "actions" },
        tenantAdmin && lg.name !== "_system"
          ? h("button", { type: "button", onclick: act(() => api(`/v1/tenants/${enc(tenant)}/logs/${enc(lg.name)}/public`, { method: "POST", body: { public: !lg.public } }).then(() => `${tenant}/${lg.name} is now ${lg.public ? "private" : "public"}.`), rerender), text: lg.public ? "Make private" : "Make public" })
          : null,
        witForm));
  });
  return h("section", { class: "card", "aria-labelledby": "logs-title" },
    h("h2", { id: "logs-title", text: `Logs of ${tenant}` }),
    table("Logs", ["Log", "Size", "Durability", "Visibility", "Health", "Actions"], rows), f);
}

function keysSection(tenant, keys, rerender) {
  const name = h("input", { type: "text", autocomplete: "off" });
  const scopes = ["append", "read", "admin"].map((s) => h("input", { type: "checkbox", value: s, id: `scope-${s}`, checked: s !== "admin" }));
  const log = h("input", { type: "text", autocomplete: "off" });
  const expires = h("input", { type: "number", min: "60", step: "1", inputmode: "numeric" });
  const f = h("form", { class: "row" },
    field("Key name", name),
    h("fieldset", { class: "field" }, h("legend", { text: "Scopes" }),
      scopes.map((c) => h("span", { class: "check" }, c, h("label", { for: c.id, text: c.value })))),
    field("Bound to log (optional)", log),
    field("Expires in (seconds, optional)", expires),
    h("button", { type: "submit", text: "Create key" }));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      const body = { name: name.value.trim(), scopes: scopes.filter((c) => c.checked).map((c) => c.value) };
      if (log.value.trim()) body.log = log.value.trim();
      if (expires.value) body.expires_in = Number(expires.value);
      const r = await api(`/v1/tenants/${enc(tenant)}/keys`, { method: "POST", body });
      return secretBox(r.key, `Key ${r.id} created`);
    }, rerender)();
  });
  const rows = keys.map((k) => h("tr", { class: k.revoked_us ? "muted" : null },
    h("th", { scope: "row" }, h("code", { text: k.id })),
    h("td", { text: k.name || "—" }),
    h("td", { text: k.scopes.join(", ") }),
    h("td", { text: k.log || "all logs" }),
    h("td", { text: fmtTime(k.created_us) }),
    h("td", { text: k.revoked_us ? `revoked ${fmtTime(k.revoked_us)}` : k.expires_us ? `expires ${fmtTime(k.expires_us)}` : "active" }),
    h("td", { class: "actions" }, k.revoked_us ? null : [
      h("button", { type: "button", "aria-label": `Rotate key ${k.id}`, onclick: act(async () => {
        const r = await api(`/v1/tenants/${enc(tenant)}/keys/${enc(k.id)}/rotate`, { method: "POST", body: {} });
        return secretBox(r.key, `Key ${k.id} rotated: the new key is ${r.id}`);
      }, rerender), text: "Rotate" }),
      (() => {
        const b = confirmButton("Revoke", "Really revoke?", act(() => api(`/v1/tenants/${enc(tenant)}/keys/${enc(k.id)}`, { method: "DELETE" }).then(() => `Key ${k.id} revoked.`), rerender));
        b.setAttribute("aria-label", `Revoke key ${k.id}`);
        return b;
      })(),
    ])));
  return h("section", { class: "card", "aria-labelledby": "keys-title" },
    h("h2", { id: "keys-title", text: `API keys of ${tenant}` }),
    table("API keys", ["Key id", "Name", "Scopes", "Log", "Created", "State", "Actions"], rows), f);
}

function signingSection(tenant, keys, rerender) {
  const rows = keys.map((k) => h("tr", { class: k.retired_us ? "muted" : null },
    h("th", { scope: "row" }, h("code", { text: k.fingerprint })),
    h("td", { text: k.kind }),
    h("td", { text: fmtTime(k.created_us) }),
    h("td", { text: k.retired_us ? `retired ${fmtTime(k.retired_us)}` : "signing" }),
    h("td", { class: "actions" }, k.retired_us ? null
      : confirmButton("Retire", "Really retire?", act(() => api(`/v1/tenants/${enc(tenant)}/signing-keys/${enc(k.fingerprint)}/retire`, { method: "POST" }).then(() => `Signing key ${k.fingerprint} retired.`), rerender)))));
  return h("section", { class: "card", "aria-labelledby": "sk-title" },
    h("h2", { id: "sk-title", text: `Checkpoint signing keys of ${tenant}` }),
    h("p", { class: "muted", text: "Rotating adds a new key; old and new both sign until the old one is retired. Verifiers must pin the new key before the old one is retired." }),
    table("Signing keys", ["Fingerprint", "Kind", "Created", "State", "Actions"], rows),
    h("button", { type: "button", onclick: act(() => api(`/v1/tenants/${enc(tenant)}/signing-keys/rotate`, { method: "POST" }).then((r) => `New signing key ${r.fingerprint}.`), rerender), text: "Rotate signing key" }));
}

function integritySection(report, operator, rerender) {
  const rows = report.map((r) => {
    const [t, ...rest] = r.log.split("/");
    const name = rest.join("/");
    return h("tr", {},
      h("th", { scope: "row", text: r.log }),
      h("td", { class: "num", text: String(r.verified_size) }),
      h("td", { text: fmtTime(r.verified_us) }),
      h("td", { text: fmtTime(r.last_full_pass_us) }),
      h("td", { class: r.failure || r.quarantined ? "bad" : "good", text: r.quarantined ? `quarantined: ${r.quarantined}` : r.failure || "ok" }),
      h("td", { class: "actions" }, operator && r.failure
        ? confirmButton("Clear", "Clear after review?", act(() => api(`/v1/integrity/${enc(t)}/${enc(name)}/clear`, { method: "POST" }).then(() => `Integrity failure of ${r.log} cleared.`), rerender), "")
        : null));
  });
  return h("section", { class: "card", "aria-labelledby": "int-title" },
    h("h2", { id: "int-title", text: "Integrity report" }),
    h("p", { class: "muted", text: "The background audit re-hashes every log and checks it against its signed checkpoints. A failure stays until an operator clears it after review." }),
    table("Integrity", ["Log", "Verified size", "Last check", "Last full pass", "State", "Actions"], rows));
}

function usageSection(usage) {
  const rows = usage.days.map((d) => h("tr", {},
    h("th", { scope: "row", text: d.day }), h("td", { class: "num", text: String(d.entries) }), h("td", { class: "num", text: String(d.bytes) }),
    h("td", { text: Object.entries(d.logs).map(([n, v]) => `${n}: ${v.entries}`).join(", ") })));
  const qt = usage.quota || {};
  return h("section", { class: "card", "aria-labelledby": "usage-title" },
    h("h2", { id: "usage-title", text: "Usage" }),
    h("p", { class: "muted", text: `Quota: ${qt.entries_per_day ?? "no limit on"} entries per day, ${qt.bytes ?? "no limit on"} stored bytes.` }),
    table("Usage per day", ["Day", "Entries", "Bytes", "Per log"], rows));
}

export async function adminView(main, _parts, params) {
  const w = session.who;
  const rerender = () => adminView(main, _parts, params);
  const sections = [];
  let tenant = w.tenant;
  if (w.operator) {
    const { tenants } = await api("/v1/tenants");
    tenant = params.get("tenant") || (tenants[0] && tenants[0].name);
    sections.push(tenantsSection(tenants, tenant, rerender));
  }
  if (tenant) {
    const base = `/v1/tenants/${enc(tenant)}`;
    const [logs, keys, sk] = await Promise.all([api(`${base}/logs`), api(`${base}/keys`), api(`${base}/signing-keys`)]);
    sections.push(logsSection(tenant, logs.logs, !w.operator, rerender));
    sections.push(keysSection(tenant, keys.keys, rerender));
    sections.push(signingSection(tenant, sk.keys, rerender));
    if (!w.operator) {
      const usage = await optional("usage", `${base}/usage${q({})}`).catch(() => null);
      if (usage) sections.push(usageSection(usage));
    }
  }
  try {
    const rep = (await api("/v1/integrity")).logs.filter((r) => w.operator || r.log.startsWith(`${tenant}/`));
    sections.push(integritySection(rep, w.operator, rerender));
  } catch {
    /* no report for this key */
  }
  const m = flash;
  flash = null;
  clear(main, h("h1", { text: w.operator ? "Operator" : `Manage ${tenant}` }), h("div", { "aria-live": "polite", id: "flash" }, m), sections);
}
