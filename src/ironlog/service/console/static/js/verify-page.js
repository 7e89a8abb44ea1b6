// /ui/verify: everything is checked in the page; nothing is sent anywhere.
import { clear, h } from "./dom.js";
import { b64decode, parseVkey, utf8, verifyBundle, verifyEntryProof, verifyTlogProof, EVIDENCE_FORMAT, TLOG_PROOF_HEADER } from "./tlog.js";

const form = document.getElementById("verify-form");
const result = document.getElementById("result");
const fields = { entry: document.getElementById("entry"), proof: document.getElementById("proof"), vkey: document.getElementById("vkey") };
const fileBytes = {}; // exact bytes of files loaded into a field

async function load(name, file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  fileBytes[name] = bytes;
  fields[name].value = new TextDecoder().decode(bytes);
  fields[name].dataset.file = file.name;
}

for (const name of Object.keys(fields)) {
  const el = fields[name];
  document.getElementById(`${name}-file`).addEventListener("change", (ev) => {
    if (ev.target.files[0]) load(name, ev.target.files[0]);
  });
  el.addEventListener("input", () => {
    delete fileBytes[name];
  });
  el.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    el.classList.add("over");
  });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (ev) => {
    ev.preventDefault();
    el.classList.remove("over");
    if (ev.dataTransfer.files[0]) load(name, ev.dataTransfer.files[0]);
  });
}
form.addEventListener("reset", () => {
  for (const k of Object.keys(fileBytes)) delete fileBytes[k];
  result.replaceChildren();
});

function show(report, what) {
  const ok = report.passed;
  const pinnedNote = ok && !report.pinned;
  clear(result, h("div", { class: `report ${ok && !pinnedNote ? "ok" : ok ? "warn" : "failed"}`, id: "verification", role: "status" },
    h("h2", { text: !ok ? `Verification FAILED (${what})` : pinnedNote ? `Holds, but NOT verified against a key you gave (${what})` : `Verified (${what})` }),
    h("ul", { class: "checks" }, report.lines.map((l) =>
      h("li", { class: l.ok === false ? "bad" : l.ok === null ? "muted" : "good" },
        h("span", { class: "mark", "aria-hidden": "true", text: l.ok === false ? "✗" : l.ok === null ? "•" : "✓" }),
        h("span", { class: "sr-only", text: l.ok === false ? "failed: " : l.ok === null ? "note: " : "passed: " }),
        l.text)))));
}

function fail(text) {
  clear(result, h("div", { class: "report failed", id: "verification", role: "alert" }, h("h2", { text: "Cannot verify" }), h("p", { text })));
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const proofText = fields.proof.value;
  const vkeyText = fields.vkey.value.trim();
  const entry = fileBytes.entry || utf8(fields.entry.value);
  try {
    if (proofText.startsWith(TLOG_PROOF_HEADER)) {
      if (!vkeyText) return fail("A tlog-proof needs the log's verifier key.");
      if (!entry.length) return fail("A tlog-proof needs the entry it proves.");
      const key = await parseVkey(vkeyText);
      return show(await verifyTlogProof(fileBytes.proof || proofText, entry, [key]), "tlog-proof");
    }
    let obj;
    try {
      obj = JSON.parse(proofText);
    } catch {
      return fail("The proof is neither a c2sp.org/tlog-proof nor JSON.");
    }
    if (obj && obj.format === EVIDENCE_FORMAT) {
      const report = await verifyBundle(obj, vkeyText || null);
      if (fields.entry.value) {
        const text = new TextDecoder().decode(entry);
        const found = (obj.entries || []).find((e) => e.entry === text);
        if (found) report.ok(`the given entry is entry ${found.index} of the bundle`);
        else report.fail("the given entry is not one of the bundle's entries (byte for byte)");
      }
      return show(report, "evidence bundle");
    }
    if (obj && typeof obj.checkpoint === "string" && Array.isArray(obj.inclusion_proof)) {
      if (!vkeyText) return fail("Checking an entry needs the log's verifier key.");
      const key = await parseVkey(vkeyText);
      const bytes = fields.entry.value ? entry : utf8(obj.entry);
      const report = await verifyEntryProof({
        entry: bytes,
        index: obj.index,
        proof: obj.inclusion_proof.map((p) => b64decode(p, "proof hash")),
        checkpoint: obj.checkpoint,
        keys: [key],
      });
      return show(report, "entry and inclusion proof");
    }
    return fail(`Unknown proof format: expected a tlog-proof, an ${EVIDENCE_FORMAT} bundle, or entry JSON.`);
  } catch (e) {
    return fail(e.message);
  }
});
