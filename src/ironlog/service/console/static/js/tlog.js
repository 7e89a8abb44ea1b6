// Verification in the browser, byte for byte as ironlog.core does it:
// RFC 6962 / RFC 9162 Merkle proofs (merkle.py), C2SP signed notes and
// checkpoints (note.py), cosignature/v1, c2sp.org/tlog-proof (tlogproof.py)
// and ironlog-evidence/v1 bundles (evidence.py).  WebCrypto only: SHA-256
// and Ed25519.  Pure: no network, no DOM.

const enc = new TextEncoder();
const HASH_SIZE = 32;
const ALG_ED25519 = 1;
const ALG_COSIGNATURE_V1 = 4;
const SIG_PREFIX = "\u2014 ";
const MAX_SIGNATURES = 100;
export const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
export const EVIDENCE_FORMAT = "ironlog-evidence/v1";

export class VerifyError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerifyError";
  }
}

export function utf8(text) {
  return enc.encode(text);
}

export function b64decode(text, what = "base64") {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new VerifyError(`${what} is not valid base64`);
  }
  let bin;
  try {
    bin = atob(text);
  } catch {
    throw new VerifyError(`${what} is not valid base64`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (b64encode(out) !== text) throw new VerifyError(`${what} is not canonical base64`);
  return out;
}

export function b64encode(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function checkHash(name, value) {
  if (value.length !== HASH_SIZE) {
    throw new VerifyError(`${name} is ${value.length} bytes, not ${HASH_SIZE}`);
  }
}

function big(n, what) {
  if (typeof n === "bigint") return n;
  if (!Number.isSafeInteger(n)) throw new VerifyError(`${what} is not an integer`);
  return BigInt(n);
}

// RFC 9162 2.1.3.2: the root an inclusion proof leads to.
export async function rootFromInclusionProof(index, size, leaf, proof) {
  let fn = big(index, "index");
  let sn = big(size, "tree size");
  if (fn < 0n || sn < 0n) throw new VerifyError("negative index or size");
  if (fn >= sn) throw new VerifyError(`index ${fn} is not below tree size ${sn}`);
  checkHash("leaf hash", leaf);
  sn -= 1n;
  let r = leaf;
  for (const p of proof) {
    checkHash("proof hash", p);
    if (sn === 0n) throw new VerifyError("inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      if (!(fn & 1n)) {
        while (fn && !(fn & 1n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("inclusion proof is too short");
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  checkHash("root", root);
  const got = await rootFromInclusionProof(index, size, leaf, proof);
  if (!equal(got, root)) {
    throw new VerifyError(
      `inclusion proof for index ${index} does not lead to the checkpoint's root hash`,
    );
  }
}

// RFC 9162 2.1.4.2 with the edge rules of FORMATS.md.
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  let s1 = big(size1, "size1");
  let s2 = big(size2, "size2");
  if (s1 < 0n || s2 < 0n) throw new VerifyError("negative tree size");
  if (s2 < s1) throw new VerifyError(`size1 ${s1} is greater than size2 ${s2}`);
  if (s1 === 0n) throw new VerifyError("consistency from an empty tree proves nothing");
  if (s1 === s2) {
    if (proof.length) throw new VerifyError("equal sizes need an empty proof");
    if (!equal(root1, root2)) throw new VerifyError(`two different roots for tree size ${s1}`);
    return;
  }
  checkHash("root1", root1);
  checkHash("root2", root2);
  if (!proof.length) throw new VerifyError("empty consistency proof");
  for (const p of proof) checkHash("proof hash", p);
  const path = [...proof];
  if ((s1 & (s1 - 1n)) === 0n) path.unshift(root1);
  let fn = s1 - 1n;
  let sn = s2 - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerifyError("consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1n)) {
        while (fn && !(fn & 1n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("consistency proof is too short");
  if (!equal(fr, root1)) {
    throw new VerifyError(`consistency proof does not lead to the root of size ${s1}`);
  }
  if (!equal(sr, root2)) {
    throw new VerifyError(`consistency proof does not lead to the root of size ${s2}`);
  }
}

// --- signed notes (c2sp.org/signed-note) ---------------------------------------

function checkName(name) {
  if (!name || /[\s+]/u.test(name)) throw new VerifyError("invalid key name");
}

export async function keyId(name, alg, pub) {
  const h = await sha256(concat(utf8(name), Uint8Array.of(0x0a, alg), pub));
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

// A verifier key string: name+hexid+base64(alg || public key).
export async function parseVkey(text) {
  const parts = text.trim().split("+");
  if (parts.length < 3) throw new VerifyError("a verifier key is name+hexid+base64key");
  const [name, hexId] = parts;
  const b64 = parts.slice(2).join("+");
  checkName(name);
  const raw = b64decode(b64, "verifier key");
  if (raw.length !== 33 || (raw[0] !== ALG_ED25519 && raw[0] !== ALG_COSIGNATURE_V1)) {
    throw new VerifyError("verifier key is not an Ed25519 or cosignature/v1 key");
  }
  const pub = raw.slice(1);
  const id = await keyId(name, raw[0], pub);
  if (!/^[0-9a-f]{8}$/.test(hexId) || parseInt(hexId, 16) !== id) {
    throw new VerifyError("verifier key ID does not match the key");
  }
  return { name, keyId: id, alg: raw[0], pub, vkey: text.trim() };
}

async function ed25519Verify(pub, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new VerifyError("this browser cannot verify Ed25519 signatures (WebCrypto)");
  }
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

function textOf(data, what) {
  if (typeof data === "string") return data;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new VerifyError(`${what} is not valid UTF-8`);
  }
}

function checkText(text) {
  if (!text.endsWith("\n")) throw new VerifyError("note text must end with a newline");
  for (const c of text) {
    const o = c.codePointAt(0);
    if ((o < 0x20 && c !== "\n") || o === 0x7f) {
      throw new VerifyError("note text contains a control character");
    }
  }
}

export function parseNote(data) {
  const s = textOf(data, "note");
  const split = s.lastIndexOf("\n\n");
  if (split < 0) throw new VerifyError("note has no signature block");
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  checkText(text);
  if (!block.endsWith("\n")) throw new VerifyError("note signature block must end with a newline");
  const signatures = [];
  for (const line of block.slice(0, -1).split("\n")) {
    if (!line.startsWith(SIG_PREFIX)) {
      throw new VerifyError(`malformed signature line ${JSON.stringify(line.slice(0, 80))}`);
    }
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(" ");
    if (sp < 0 || rest.indexOf(" ", sp + 1) >= 0) throw new VerifyError("malformed signature line");
    const name = rest.slice(0, sp);
    checkName(name);
    const raw = b64decode(rest.slice(sp + 1), "signature");
    if (raw.length < 5) throw new VerifyError("signature is too short");
    const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
    signatures.push({ name, keyId: id, blob: raw.slice(4) });
    if (signatures.length > MAX_SIGNATURES) {
      throw new VerifyError(`note has more than ${MAX_SIGNATURES} signatures`);
    }
  }
  if (!signatures.length) throw new VerifyError("note has no signatures");
  return { text, signatures };
}

// Verify a note against trusted keys: unknown signers are ignored, a known
// key whose signature fails rejects the note, at least one must have signed.
export async function openNote(data, verifiers) {
  const note = parseNote(data);
  const msg = utf8(note.text);
  const good = [];
  for (const sig of note.signatures) {
    const v = verifiers.find(
      (k) => k.alg === ALG_ED25519 && k.name === sig.name && k.keyId === sig.keyId,
    );
    if (!v) continue;
    if (!(await ed25519Verify(v.pub, sig.blob, msg))) {
      const id = sig.keyId.toString(16).padStart(8, "0");
      throw new VerifyError(`signature by ${sig.name} (${id}) is invalid`);
    }
    if (!good.includes(v)) good.push(v);
  }
  if (!good.length) throw new VerifyError("note has no signature from a trusted key");
  return { note, signers: good };
}

function parseDecimal(text, what) {
  if (!/^(0|[1-9][0-9]*)$/.test(text)) {
    throw new VerifyError(`${what} must be decimal without leading zeros`);
  }
  return BigInt(text);
}

export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new VerifyError("checkpoint must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new VerifyError("checkpoint needs origin, size and root lines");
  const [origin, sizeText, rootText, ...ext] = lines;
  if (!origin || /[\s+]/u.test(origin)) {
    throw new VerifyError("checkpoint origin must be non-empty, without spaces or '+'");
  }
  const size = parseDecimal(sizeText, "checkpoint size");
  if (size >= 1n << 63n) throw new VerifyError("checkpoint size out of range");
  const root = b64decode(rootText, "checkpoint root");
  if (root.length !== HASH_SIZE) throw new VerifyError("checkpoint root must be 32 bytes");
  if (ext.some((e) => !e)) throw new VerifyError("checkpoint extension lines must be non-empty");
  return { origin, size, root, extensions: ext };
}

// A signed checkpoint against the log's key(s); its origin must be the key name.
export async function openCheckpoint(data, verifiers) {
  const { note, signers } = await openNote(data, verifiers);
  const checkpoint = parseCheckpoint(note.text);
  if (signers.some((v) => v.name !== checkpoint.origin)) {
    throw new VerifyError(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not the key name`);
  }
  return { checkpoint, note, signers };
}

// --- cosignature/v1 -------------------------------------------------------------

async function verifyCosignature(body, sig, v) {
  if (sig.blob.length !== 72) throw new VerifyError("cosignature is not 72 bytes");
  const ts = new DataView(sig.blob.buffer, sig.blob.byteOffset, 8).getBigUint64(0);
  const msg = utf8(`cosignature/v1\ntime ${ts}\n${body}`);
  if (!(await ed25519Verify(v.pub, sig.blob.slice(8), msg))) {
    throw new VerifyError(`cosignature by ${v.name} is invalid`);
  }
  return ts;
}

// The witnesses (cosignature/v1 keys) whose cosignatures on the note verify.
export async function cosigners(note, witnesses) {
  const got = [];
  for (const sig of note.signatures) {
    const w = witnesses.find(
      (k) => k.alg === ALG_COSIGNATURE_V1 && k.name === sig.name && k.keyId === sig.keyId,
    );
    if (!w || got.includes(w)) continue;
    await verifyCosignature(note.text, sig, w);
    got.push(w);
  }
  return got;
}

// --- c2sp.org/tlog-proof ----------------------------------------------------------

export function parseTlogProof(data) {
  const s = textOf(data, "tlog-proof");
  const at = s.indexOf("\n\n");
  if (at < 0) throw new VerifyError("tlog-proof has no empty line before the checkpoint");
  const lines = s.slice(0, at).split("\n");
  const checkpoint = s.slice(at + 2);
  if (lines[0] !== TLOG_PROOF_HEADER) {
    throw new VerifyError(`tlog-proof must start with ${JSON.stringify(TLOG_PROOF_HEADER)}`);
  }
  let i = 1;
  if (i < lines.length && lines[i].startsWith("extra ")) {
    b64decode(lines[i].slice(6), "extra");
    i += 1;
  }
  if (i >= lines.length || !lines[i].startsWith("index ")) {
    throw new VerifyError("tlog-proof has no index line");
  }
  const index = parseDecimal(lines[i].slice(6), "tlog-proof index");
  const proof = lines.slice(i + 1).map((line) => {
    const h = b64decode(line, "proof hash");
    checkHash("proof hash", h);
    return h;
  });
  parseNote(checkpoint);
  return { index, proof, checkpoint };
}

// --- reports -------------------------------------------------------------------------

// What was checked, line by line: {ok: true|false|null (a caveat), text}.
export class Report {
  constructor() {
    this.lines = [];
    this.unpinned = [];
  }
  ok(text) {
    this.lines.push({ ok: true, text });
  }
  fail(text) {
    this.lines.push({ ok: false, text });
  }
  note(text) {
    this.lines.push({ ok: null, text });
  }
  get passed() {
    return this.lines.length > 0 && this.lines.every((l) => l.ok !== false);
  }
  get pinned() {
    return this.unpinned.length === 0;
  }
}

// One entry (its exact bytes), an inclusion proof and a signed checkpoint,
// against the pinned log key(s): what the entry page and a tlog-proof check.
export async function verifyEntryProof({ entry, index, proof, checkpoint, keys, leaf = null }) {
  const r = new Report();
  try {
    const lh = await leafHash(entry);
    if (leaf && !equal(leaf, lh)) {
      r.fail("leaf hash: the server's leaf hash is not SHA-256(0x00 || the entry's bytes)");
    } else {
      r.ok(`leaf hash SHA-256(0x00 || ${entry.length} entry bytes) = ${b64encode(lh)}`);
    }
    let cp;
    try {
      cp = await openCheckpoint(checkpoint, keys);
    } catch (e) {
      r.fail(`checkpoint signature: ${e.message} (pinned: ${keys.map((k) => k.vkey).join(", ")})`);
      return r;
    }
    const c = cp.checkpoint;
    const ids = cp.signers.map((k) => `${k.name}+${k.keyId.toString(16).padStart(8, "0")}`);
    r.ok(`checkpoint signature: Ed25519 by the pinned key ${ids.join(", ")} (tree size ${c.size})`);
    try {
      await verifyInclusion(index, c.size, lh, proof, c.root);
      r.ok(`inclusion proof: ${proof.length} hashes lead from entry ${index} to the root ${b64encode(c.root)}`);
    } catch (e) {
      r.fail(`inclusion proof: ${e.message}`);
    }
  } catch (e) {
    r.fail(e.message);
  }
  return r;
}

// A c2sp.org/tlog-proof file against the entry's exact bytes.
export async function verifyTlogProof(proofText, entry, keys) {
  let p;
  try {
    p = parseTlogProof(proofText);
  } catch (e) {
    const r = new Report();
    r.fail(`tlog-proof: ${e.message}`);
    return r;
  }
  const r = await verifyEntryProof({ entry, index: p.index, proof: p.proof, checkpoint: p.checkpoint, keys });
  if (!r.passed && entry.length && (entry[entry.length - 1] === 0x0a || entry[entry.length - 1] === 0x0d)) {
    r.note("the entry ends with a newline: the stored entry most likely does not; use its exact bytes");
  }
  return r;
}

function str(obj, key) {
  const v = obj[key];
  if (typeof v !== "string") throw new VerifyError(`evidence field ${JSON.stringify(key)} must be a string`);
  return v;
}

function hashes(v, what) {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new VerifyError(`${what} must be a list of base64 hashes`);
  }
  return v.map((x) => b64decode(x, what));
}

// An ironlog-evidence/v1 bundle, as ironlog.core.evidence.verify_bundle does
// it (quorum counting; nested witness groups are counted as k of n).
// Without `vkey`, the file's own log key is used and the result is unpinned.
export async function verifyBundle(bundle, vkey = null, witnessVkeys = null) {
  const r = new Report();
  try {
    if (!bundle || typeof bundle !== "object" || bundle.format !== EVIDENCE_FORMAT) {
      throw new VerifyError(`not an ${EVIDENCE_FORMAT} file`);
    }
    let logKey;
    if (vkey) {
      logKey = await parseVkey(vkey);
    } else {
      logKey = await parseVkey(str(bundle, "log_vkey"));
      r.note("log key taken from the file itself, not independently pinned");
      r.unpinned.push("log key");
    }
    const fileWitnesses = (bundle.witnesses || []).filter((w) => w && typeof w === "object").map((w) => str(w, "vkey"));
    const need = Number(bundle.quorum || 0);
    let witnesses;
    if (witnessVkeys && witnessVkeys.length) {
      witnesses = await Promise.all(witnessVkeys.map(parseVkey));
    } else {
      witnesses = await Promise.all(fileWitnesses.map(parseVkey));
      if (need && fileWitnesses.length) {
        r.note("witness keys taken from the file itself, not independently pinned");
        r.unpinned.push("witness keys");
      }
    }
    let cp;
    try {
      cp = await openCheckpoint(str(bundle, "checkpoint"), [logKey]);
      r.ok(`checkpoint: signed by the log key ${logKey.name} (size ${cp.checkpoint.size})`);
    } catch (e) {
      r.fail(`checkpoint: log signature does not verify with ${logKey.vkey}: ${e.message}`);
      return r;
    }
    if (need) {
      let got = [];
      try {
        got = await cosigners(cp.note, witnesses);
      } catch (e) {
        r.fail(`checkpoint: a witness cosignature is invalid: ${e.message}`);
      }
      const names = got.map((w) => w.name).join(", ") || "none";
      if (got.length >= need) {
        r.ok(`checkpoint: cosigned by ${got.length} of ${witnesses.length} witnesses (${names}); the quorum ${need} holds`);
      } else {
        r.fail(`checkpoint: cosigned by ${got.length} witnesses (${names}); quorum ${need} not met`);
      }
    } else {
      r.note("no witness quorum required: the log operator alone vouches for this checkpoint");
    }
    const { size, root } = cp.checkpoint;
    if (!Array.isArray(bundle.entries)) throw new VerifyError("entries must be a list");
    let bad = 0;
    for (const item of bundle.entries) {
      if (!item || typeof item !== "object" || !Number.isInteger(item.index)) {
        throw new VerifyError("each entry needs an integer index");
      }
      const data = utf8(str(item, "entry"));
      try {
        await verifyInclusion(item.index, size, await leafHash(data), hashes(item.inclusion_proof, "inclusion proof"), root);
      } catch (e) {
        bad += 1;
        r.fail(`entry ${item.index}: not in the checkpoint's tree: ${e.message}`);
      }
    }
    if (bundle.entries.length && !bad) {
      r.ok(`${bundle.entries.length} entries: each is in the checkpoint's tree (inclusion proofs)`);
    }
    if (typeof bundle.latest_checkpoint === "string") {
      let latest = null;
      try {
        latest = await openCheckpoint(bundle.latest_checkpoint, [logKey]);
        r.ok(`newest checkpoint: signed by the log key ${logKey.name} (size ${latest.checkpoint.size})`);
      } catch (e) {
        r.fail(`newest checkpoint: log signature does not verify with ${logKey.vkey}: ${e.message}`);
      }
      if (latest) {
        const n = latest.checkpoint.size;
        try {
          if (size !== 0n) {
            if (n < size) throw new VerifyError(`the newest checkpoint (${n}) is smaller than the checkpoint (${size})`);
            await verifyConsistency(size, n, hashes(bundle.consistency_proof, "consistency proof"), root, latest.checkpoint.root);
          }
          r.ok(`newest checkpoint (size ${n}) is consistent with the checkpoint (size ${size}): nothing in it was removed or changed`);
        } catch (e) {
          r.fail(`newest checkpoint is not consistent with the checkpoint: ${e.message}`);
        }
      }
    } else {
      r.note("no newest checkpoint in the file: consistency not shown");
    }
  } catch (e) {
    r.fail(`malformed evidence: ${e.message}`);
  }
  return r;
}
