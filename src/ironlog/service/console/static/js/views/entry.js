// One entry: its exact stored bytes beside a pretty view, and its inclusion
// in a signed checkpoint verified in this page against the pinned log key.
import { api, enc, request } from "../api.js";
import { clear, copy, download, evidenceButton, field, h, message } from "../dom.js";
import { pin, pinned, unpin } from "../pins.js";
import { b64decode, parseVkey, verifyEntryProof } from "../tlog.js";

function tlogProofText(index, proof, checkpoint) {
  return `c2sp.org/tlog-proof@v1\nindex ${index}\n${proof.map((p) => `${p}\n`).join("")}\n${checkpoint}`;
}

function reportView(report) {
  const ok = report.passed;
  return h("div", { class: `report ${ok ? "ok" : "failed"}`, id: "verification", role: "status" },
    h("h3", { text: ok ? "Verified" : "Verification FAILED" }),
    h("ul", { class: "checks" }, report.lines.map((l) =>
      h("li", { class: l.ok === false ? "bad" : l.ok === null ? "muted" : "good" },
        h("span", { class: "mark", "aria-hidden": "true", text: l.ok === false ? "✗" : l.ok === null ? "•" : "✓" }),
        h("span", { class: "sr-only", text: l.ok === false ? "failed: " : l.ok === null ? "note: " : "passed: " }),
        l.text))));
}

async function verifyPanel(box, info, index, bytes, proofJson) {
  const origin = info.origin;
  const keys = pinned(origin);
  if (!keys.length) {
    const input = h("input", { type: "text", value: info.vkey, spellcheck: "false", class: "mono wide" });
    const out = h("div", { "aria-live": "polite" });
    const b = h("button", { type: "button", class: "primary", text: "Pin this key and verify" });
    b.addEventListener("click", async () => {
      try {
        await pin(origin, input.value);
        await verifyPanel(box, info, index, bytes, proofJson);
      } catch (e) {
        clear(out, message("error", e.message));
      }
    });
    clear(box,
      h("h2", { text: "Verify in this page" }),
      h("p", { text: `No key is pinned for ${origin} in this browser. Pin the log's verifier key once: later checks use the pinned key, whatever the server says. Compare it with the key you got from the log's owner (below is what the server says now).` }),
      field("Log verifier key", input), b, out);
    return;
  }
  const trusted = await Promise.all(keys.map(parseVkey));
  const report = await verifyEntryProof({
    entry: bytes,
    index: proofJson.index,
    proof: proofJson.inclusion_proof.map((p) => b64decode(p, "proof hash")),
    checkpoint: proofJson.checkpoint,
    keys: trusted,
    leaf: b64decode(proofJson.leaf_hash, "leaf hash"),
  });
  clear(box,
    h("h2", { text: "Verify in this page" }),
    h("p", { class: "muted", text: "Checked here with WebCrypto (SHA-256, Ed25519): the entry's exact bytes, the signed checkpoint against your pinned key, and the inclusion proof against the checkpoint's root." }),
    reportView(report),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => verifyPanel(box, info, index, bytes, proofJson), text: "Check again" }),
      h("button", { type: "button", onclick: () => { unpin(origin); verifyPanel(box, info, index, bytes, proofJson); }, text: "Forget the pinned key" })));
}

export async function entryView(main, parts) {
  const [t, l, i] = parts;
  const base = `/v1/logs/${enc(t)}/${enc(l)}`;
  const [info, proofJson, raw] = await Promise.all([
    api(base),
    api(`${base}/entries/${enc(i)}`),
    request(`${base}/entries/${enc(i)}`, { accept: "application/octet-stream" }).then((r) => r.arrayBuffer()),
  ]);
  const bytes = new Uint8Array(raw);
  const text = new TextDecoder().decode(bytes);
  let pretty;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    pretty = text;
  }
  const proofText = tlogProofText(proofJson.index, proofJson.inclusion_proof, proofJson.checkpoint);
  const copyRaw = h("button", { type: "button", text: "Copy bytes" });
  copyRaw.addEventListener("click", () => copy(text, copyRaw));
  const box = h("section", { class: "card", "aria-live": "polite" });
  clear(main,
    h("p", { class: "crumbs" }, h("a", { href: `#/search?log=${enc(`${t}/${l}`)}`, text: `${t}/${l}` }), ` › entry ${i}`),
    h("h1", { text: `Entry ${i} of ${t}/${l}` }),
    h("div", { class: "actions" },
      copyRaw,
      h("button", { type: "button", onclick: () => download(`${t}_${l}-${i}.json`, "application/json", bytes), text: "Download exact bytes" }),
      h("button", { type: "button", onclick: () => download(`${t}_${l}-${i}.tlog-proof`, "text/x.tlog-proof", proofText), text: "Download tlog-proof" }),
      evidenceButton("Evidence bundle", `${base}/evidence?index=${enc(i)}`, `${t}_${l}-${i}.evidence.json`, (path) => request(path).then((r) => r.text()))),
    h("div", { class: "split" },
      h("section", { class: "card" }, h("h2", { text: `Stored bytes (${bytes.length}, exact)` }), h("pre", { class: "raw", tabindex: "0", "aria-label": "exact stored bytes", text })),
      h("section", { class: "card" }, h("h2", { text: "Pretty" }), h("pre", { tabindex: "0", "aria-label": "pretty-printed entry", text: pretty }))),
    box,
  );
  await verifyPanel(box, info, i, bytes, proofJson);
}
