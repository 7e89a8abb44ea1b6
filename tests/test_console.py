"""The web console at /ui, driven in a real browser (Debian's Chromium through
Playwright; no browser is downloaded) against a real ``ironlog serve``.

Screenshots of every page go to the module's tmp output (printed at the end
of the module, ``-s`` to see the path)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from ironlog.core.note import CosignatureSigner
from ironlog.core.tlogproof import TlogProof
from ironlog.engine.instance import init_data_dir
from ironlog.service.console import CSP
from tests.conftest import BIN, ROOT, VECTORS
from tests.server import Server, run_server

sys.path.insert(0, str(ROOT / "scripts"))
import vendor_ui

HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
CHROMIUM = HEADLESS_SHELL if HEADLESS_SHELL.exists() else Path("/usr/lib/chromium/chromium")
ACTORS = ["alice", "bob", "carol"]
WITNESS_VKEY = CosignatureSigner.generate("w.example").vkey()


VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for this module, started and stopped here.

    Playwright's sync API runs its own asyncio loop in a greenlet for as long as
    it is started; left running (pytest-playwright's session-scoped fixtures), it
    breaks later modules that call ``asyncio.run()`` or compile code."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own (no storage shared between tests)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


class Site:
    def __init__(self, srv: Server, shots: Path) -> None:
        self.srv = srv
        self.url = srv.url
        self.shots = shots
        self._clients: dict[str, httpx.Client] = {}
        op = self.client(srv.operator)
        self.keys: dict[str, str] = {"operator": srv.operator}
        for tenant in ("acme", "other"):
            op.post("/v1/tenants", json={"name": tenant}).raise_for_status()
            r = op.post(f"/v1/tenants/{tenant}/keys", json={"scopes": ["admin"], "name": "boss"})
            r.raise_for_status()
            self.keys[tenant] = r.json()["key"]
        acme = self.client(self.keys["acme"])
        acme.post("/v1/tenants/acme/logs", json={"name": "app"}).raise_for_status()
        lines = []
        for i in range(60):
            outcome = "failure" if i % 5 == 0 else "success"
            event = {
                "actor": ACTORS[i % 3],
                "action": ["login", "read", "delete"][i % 3 if i % 2 else 1],
                "resource": f"doc/{i}",
                "outcome": outcome,
                "n": i,
                "note": "needle" if i in (7, 8) else "hay",
            }
            lines.append(json.dumps(event))
        r = acme.post(
            "/v1/logs/acme/app/entries",
            content="\n".join(lines) + "\n",
            headers={"Content-Type": "application/x-ndjson"},
        )
        r.raise_for_status()
        other = self.client(self.keys["other"])
        other.post("/v1/tenants/other/logs", json={"name": "secret"}).raise_for_status()
        other.post("/v1/logs/other/secret/entries", json={"actor": "x", "action": "y"})
        self.vkey = acme.get("/v1/logs/acme/app").json()["vkey"]

    def client(self, key: str) -> httpx.Client:
        if key not in self._clients:
            self._clients[key] = self.srv.client(key)
        return self._clients[key]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("console") / "data"
    init_data_dir(data)
    shots = tmp_path_factory.mktemp("screenshots")
    with run_server(data) as srv:
        s = Site(srv, shots)
        yield s
        s.close()
    print(f"\nconsole screenshots: {shots}")


@pytest.fixture
def csp_errors(page: Page) -> list[str]:
    """Console messages about the Content-Security-Policy (there must be none)."""
    seen: list[str] = []

    def on(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            seen.append(msg.text)

    page.on("console", on)
    page.on("pageerror", lambda e: seen.append(f"page error: {e}"))
    return seen


def sign_in(page: Page, site: Site, key: str) -> None:
    page.goto(site.url + "/ui")
    field = page.get_by_label("API key")
    expect(field).to_be_focused()  # keyboard first: type the key, press Enter
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Logs")).to_be_visible()


# --- serving ------------------------------------------------------------------------


def test_pages_are_served_with_a_strict_csp(site: Site) -> None:
    for path in ("/ui", "/ui/", "/ui/verify", "/ui/static/js/app.js"):
        r = httpx.get(site.url + path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP
    for page in ("index.html", "verify.html"):
        html = (vendor_ui.VENDOR.parent / page).read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
        assert "<style" not in html and " style=" not in html, "inline style"
        assert "http://" not in html and "https://" not in html, "a third-party URL"
    r = httpx.get(site.url + "/ui/static/js/app.js")
    assert r.headers["content-type"].startswith("text/javascript")
    licence = httpx.get(site.url + "/ui/static/vendor/uplot/LICENSE")
    assert licence.status_code == 200 and "MIT License" in licence.text
    for bad in ("../__init__.py", "js/../../__init__.py", ".hidden", "js/nope.js", "x.py"):
        r = httpx.get(site.url + "/ui/static/" + bad)
        assert r.status_code == 404, bad
        assert r.json()["error"]["code"] == "not_found"


def test_vendored_files_match_their_pins() -> None:
    assert vendor_ui.check() == []
    assert [p.name for p in vendor_ui.PINS] == ["uplot"]
    for pin in vendor_ui.PINS:
        assert pin.integrity.startswith("sha512-")
        assert "LICENSE" in pin.files  # the licence ships with the code


def test_static_files_are_installed(pure_python: str) -> None:
    """``pip install ironlog`` ships the console (package data), licence included."""
    where = "import ironlog, pathlib; print(pathlib.Path(ironlog.__file__).parent)"
    out = subprocess.run(
        [pure_python, "-c", where],
        capture_output=True,
        text=True,
        check=True,
    )
    static = Path(out.stdout.strip()) / "service" / "console" / "static"
    for f in ("index.html", "verify.html", "js/tlog.js", "css/console.css"):
        assert (static / f).is_file(), f
    for pin in vendor_ui.PINS:
        for path in pin.files:
            assert (static / "vendor" / pin.name / Path(path).name).is_file(), path


def test_whoami(site: Site) -> None:
    r = site.client(site.keys["acme"]).get("/v1/whoami")
    assert r.status_code == 200
    assert r.json() == {
        "key_id": site.keys["acme"].split("_")[1],
        "tenant": "acme",
        "scopes": ["admin"],
        "log": None,
        "operator": False,
    }
    assert site.client(site.keys["operator"]).get("/v1/whoami").json()["operator"] is True
    r = httpx.get(site.url + "/v1/whoami", headers={"Authorization": "Bearer ilk_nope_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"]


# --- in the browser -----------------------------------------------------------------


def test_sign_in_shows_the_logs(page: Page, site: Site, csp_errors: list[str]) -> None:
    page.goto(site.url + "/ui")
    page.get_by_label("API key").fill("ilk_0000_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    sign_in(page, site, site.keys["acme"])
    row = page.get_by_role("row").filter(has_text="acme/app")
    expect(row).to_contain_text("60")
    expect(row).to_contain_text("ago")  # last append
    expect(page.get_by_role("row").filter(has_text="acme/_system")).to_be_visible()
    # the key is in sessionStorage only: never in the URL, never a cookie
    assert site.keys["acme"] not in page.url
    assert page.evaluate("sessionStorage.getItem('ironlog.key')") == site.keys["acme"]
    assert page.evaluate("document.cookie") == ""
    assert page.context.cookies() == []
    # the per-minute sparkline, from the stats API: the 60 entries appended at start-up
    expect(page.locator("th.spark")).to_be_visible()
    spark = row.locator("td.spark")
    expect(spark.locator("canvas")).to_have_count(1)
    expect(spark).to_have_attribute("title", "60 entries in the last hour")
    # a point per minute of the hour, the quiet ones as zeros (the API leaves them out)
    expect(spark).to_have_attribute("data-buckets", re.compile("^6[01]$"))
    site.shot(page, "logs")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert csp_errors == []


def test_a_tenant_key_sees_only_its_tenant(page: Page, site: Site) -> None:
    sign_in(page, site, site.keys["other"])
    expect(page.get_by_role("row").filter(has_text="other/secret")).to_be_visible()
    expect(page.get_by_text("acme/app")).to_have_count(0)
    page.goto(site.url + "/ui#/search?log=acme/app")
    expect(page.get_by_role("alert")).to_contain_text("no such")
    expect(page.get_by_role("row").filter(has_text="doc/")).to_have_count(0)
    page.goto(site.url + "/ui#/entry/acme/app/1")
    expect(page.get_by_role("alert")).to_contain_text("no such")


def test_search_with_filters_and_paging(
    page: Page, site: Site, tmp_path: Path, csp_errors: list[str]
) -> None:
    sign_in(page, site, site.keys["acme"])
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Log").select_option("acme/app")
    page.get_by_label("Time range").select_option("1h")
    page.get_by_label("Actor", exact=True).fill("alice")
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("Page 1: 20 entries"))).to_be_visible()
    page.get_by_label("Outcome", exact=True).fill("success")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("Page 1: 16 entries"))).to_be_visible()
    rows = page.locator("table.results tbody tr")
    for text in rows.all_inner_texts():
        assert "alice" in text and "success" in text
    site.shot(page, "search")

    # paging keeps the filters
    page.get_by_label("Actor", exact=True).fill("")
    page.get_by_label("Outcome", exact=True).fill("failure")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("Page 1: 12 entries"))).to_be_visible()
    page.get_by_label("Per page").select_option("25")
    page.get_by_label("Outcome", exact=True).fill("success")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("Page 1: 25 entries"))).to_be_visible()
    first = rows.first.inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_role("heading", name=re.compile("Page 2: 23 entries"))).to_be_visible()
    assert rows.first.inner_text() != first
    for text in rows.all_inner_texts():
        assert "success" in text
    expect(page.get_by_label("Outcome", exact=True)).to_have_value("success")
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous").click()
    expect(page.get_by_role("heading", name=re.compile("Page 1: 25 entries"))).to_be_visible()

    # free text over the events shown
    page.get_by_label("Outcome", exact=True).fill("")
    page.get_by_label("Per page").select_option("100")
    page.get_by_label("Text in the event").fill("needle")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("2 entries containing"))).to_be_visible()

    # downloads: the rows shown, as CSV, NDJSON (exact bytes) and JSON
    with page.expect_download() as dl:
        page.get_by_role("button", name="CSV").click()
    csv = Path(dl.value.path()).read_text()
    assert csv.splitlines()[0] == "index,received_at,actor,action,resource,outcome,entry"
    assert len(csv.strip().splitlines()) == 3 and "doc/7" in csv
    with page.expect_download() as dl:
        page.get_by_role("button", name="NDJSON").click()
    stored = site.client(site.keys["acme"]).get(
        "/v1/logs/acme/app/entries/7", headers={"Accept": "application/octet-stream"}
    )
    assert Path(dl.value.path()).read_bytes().split(b"\n")[0] == stored.content
    with page.expect_download() as dl:
        page.get_by_role("button", name="JSON", exact=True).click()
    assert [e["index"] for e in json.loads(Path(dl.value.path()).read_text())] == [7, 8]
    # and the evidence bundle of the entries shown, from the server
    with page.expect_download() as dl:
        page.get_by_role("button", name="Evidence bundle").click()
    bundle = tmp_path / dl.value.suggested_filename
    dl.value.save_as(bundle)
    assert [e["index"] for e in json.loads(bundle.read_text())["entries"]] == [7, 8]
    _auditor_accepts(bundle, site.vkey)
    assert csp_errors == []


def _pin_and_verify(page: Page, site: Site, index: int) -> None:
    page.goto(site.url + f"/ui#/entry/acme/app/{index}")
    expect(page.get_by_label("Log verifier key")).to_have_value(site.vkey)
    page.get_by_role("button", name="Pin this key and verify").click()


def test_entry_is_verified_in_the_page(
    page: Page, site: Site, tmp_path: Path, csp_errors: list[str]
) -> None:
    sign_in(page, site, site.keys["acme"])
    page.get_by_role("link", name="Search").click()
    page.get_by_role("link", name="entry 5", exact=True).click()
    expect(page.get_by_role("heading", name="Entry 5 of acme/app")).to_be_visible()
    stored = site.client(site.keys["acme"]).get(
        "/v1/logs/acme/app/entries/5", headers={"Accept": "application/octet-stream"}
    )
    expect(page.get_by_label("exact stored bytes")).to_have_text(stored.content.decode())
    expect(page.get_by_label("pretty-printed entry")).to_contain_text('"actor": "carol"')
    page.get_by_role("button", name="Pin this key and verify").click()
    report = page.locator("#verification")
    expect(report.get_by_role("heading")).to_have_text("Verified")
    expect(report).to_contain_text("checkpoint signature: Ed25519 by the pinned key")
    expect(report).to_contain_text("inclusion proof:")
    expect(report).to_contain_text("leaf hash SHA-256(0x00 ||")
    site.shot(page, "entry")
    # the key stays pinned: the next entry is checked without asking
    page.goto(site.url + "/ui#/entry/acme/app/41")
    expect(page.locator("#verification").get_by_role("heading")).to_have_text("Verified")
    # the evidence bundle of the entry, from the server, checked offline by an auditor
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/evidence" in r.url else None)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Evidence bundle").click()
    assert asked == [site.url + "/v1/logs/acme/app/evidence?index=41"]
    assert dl.value.suggested_filename == "acme_app-41.evidence.json"
    bundle = tmp_path / dl.value.suggested_filename
    dl.value.save_as(bundle)
    assert [e["index"] for e in json.loads(bundle.read_text())["entries"]] == [41]
    _auditor_accepts(bundle, site.vkey)
    # any other refusal (here: not yet under a signed checkpoint) is shown as the
    # server gives it, and the button stays
    refusal = {"error": {"code": "not_found", "message": "entry 41 is not covered by a signed "
                         "checkpoint yet"}}  # fmt: skip
    page.route(re.compile(r".*/evidence\?.*"), lambda r: r.fulfill(status=404, json=refusal))
    page.get_by_role("button", name="Evidence bundle").click()
    expect(page.get_by_role("status").filter(has_text="signed checkpoint yet")).to_be_visible()
    expect(page.get_by_role("button", name="Evidence bundle")).to_be_visible()
    assert csp_errors == []


def _auditor_accepts(bundle: Path, vkey: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ironlog.evidence", "verify", str(bundle), "--vkey", vkey],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _tamper(route: Route, change: Any) -> None:
    if "octet-stream" in (route.request.headers.get("accept") or ""):
        route.continue_()
        return
    response = route.fetch()
    body = response.json()
    change(body)
    route.fulfill(response=response, body=json.dumps(body))


def _flip(b64: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_a_tampered_proof_is_named(page: Page, site: Site) -> None:
    sign_in(page, site, site.keys["acme"])
    _pin_and_verify(page, site, 2)
    expect(page.locator("#verification").get_by_role("heading")).to_have_text("Verified")

    def proof(body: dict[str, Any]) -> None:
        body["inclusion_proof"][1] = _flip(body["inclusion_proof"][1])

    page.route(re.compile(r".*/v1/logs/acme/app/entries/9$"), lambda r: _tamper(r, proof))
    page.goto(site.url + "/ui#/entry/acme/app/9")
    report = page.locator("#verification")
    expect(report.get_by_role("heading")).to_have_text("Verification FAILED")
    expect(report).to_contain_text(
        "inclusion proof: inclusion proof for index 9 does not lead to the checkpoint's root hash"
    )
    site.shot(page, "entry-tampered")

    def signature(body: dict[str, Any]) -> None:
        head, _, sig = body["checkpoint"].rpartition(" ")
        body["checkpoint"] = head + " " + _flip(sig.strip(), -1) + "\n"  # not the key ID

    page.unroute_all()
    page.route(re.compile(r".*/v1/logs/acme/app/entries/10$"), lambda r: _tamper(r, signature))
    page.goto(site.url + "/ui#/entry/acme/app/10")
    expect(report.get_by_role("heading")).to_have_text("Verification FAILED")
    expect(report).to_contain_text("checkpoint signature: signature by ironlog.localhost/acme/app")
    expect(report).to_contain_text("is invalid")


def test_verify_page_with_files(
    page: Page, site: Site, tmp_path: Path, csp_errors: list[str]
) -> None:
    acme = site.client(site.keys["acme"])
    got = acme.get("/v1/logs/acme/app/entries/12").json()
    raw = acme.get(
        "/v1/logs/acme/app/entries/12", headers={"Accept": "application/octet-stream"}
    ).content
    (tmp_path / "entry.json").write_bytes(raw)
    proof = TlogProof(
        12, tuple(base64.b64decode(h) for h in got["inclusion_proof"]), got["checkpoint"]
    )
    (tmp_path / "e.tlog-proof").write_text(proof.to_text())
    (tmp_path / "log.vkey").write_text(site.vkey + "\n")
    bundle = tmp_path / "evidence.json"
    out = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(site.srv.data), "evidence", "export", "acme/app",
         "--index", "3", "--index", "33", "--output", str(bundle)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr

    page.goto(site.url + "/ui/verify")
    expect(page.get_by_role("heading", name="Verify a proof in this browser")).to_be_visible()
    sent: list[str] = []
    page.route("**/*", lambda r: (sent.append(r.request.url), r.abort()))
    page.get_by_label("Entry file").set_input_files(tmp_path / "entry.json")
    page.get_by_label("Proof file").set_input_files(tmp_path / "e.tlog-proof")
    page.get_by_label("Verifier key file").set_input_files(tmp_path / "log.vkey")
    expect(page.get_by_label("Log verifier key")).to_have_value(re.compile("acme/app"))
    page.get_by_role("button", name="Verify").click()
    report = page.locator("#verification")
    expect(report.get_by_role("heading")).to_have_text("Verified (tlog-proof)")
    expect(report).to_contain_text("from entry 12 to the root")
    site.shot(page, "verify")

    # the same proof for different bytes (a newline added): failure, with the hint
    (tmp_path / "entry-nl.json").write_bytes(raw + b"\n")
    page.get_by_label("Entry file").set_input_files(tmp_path / "entry-nl.json")
    page.get_by_role("button", name="Verify").click()
    expect(report.get_by_role("heading")).to_have_text("Verification FAILED (tlog-proof)")
    expect(report).to_contain_text("does not lead to the checkpoint's root hash")
    expect(report).to_contain_text("ends with a newline")

    # an evidence bundle, against the key given, then with none (not pinned)
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Proof file").set_input_files(bundle)
    page.get_by_label("Log verifier key").fill(site.vkey)
    page.get_by_role("button", name="Verify").click()
    expect(report.get_by_role("heading")).to_have_text("Verified (evidence bundle)")
    expect(report).to_contain_text("2 entries: each is in the checkpoint's tree")
    page.get_by_label("Log verifier key").fill("")
    page.get_by_role("button", name="Verify").click()
    expect(report.get_by_role("heading")).to_contain_text("NOT verified against a key you gave")

    # a bundle whose entry was edited fails, naming the entry
    b = json.loads(bundle.read_text())
    b["entries"][1]["entry"] = b["entries"][1]["entry"].replace("doc/33", "doc/34")
    (tmp_path / "edited.json").write_text(json.dumps(b))
    page.get_by_label("Proof file").set_input_files(tmp_path / "edited.json")
    page.get_by_label("Log verifier key").fill(site.vkey)
    page.get_by_role("button", name="Verify").click()
    expect(report.get_by_role("heading")).to_have_text("Verification FAILED (evidence bundle)")
    expect(report).to_contain_text("entry 33: not in the checkpoint's tree")

    # another log's key: the checkpoint signature is what fails
    other = site.client(site.keys["other"]).get("/v1/logs/other/secret").json()["vkey"]
    page.get_by_label("Log verifier key").fill(other)
    page.get_by_role("button", name="Verify").click()
    expect(report).to_contain_text("checkpoint: log signature does not verify")
    assert sent == [], "verification must not send anything"
    assert csp_errors == []


def test_merkle_vectors_and_notes_in_the_browser(page: Page, site: Site, sumdb: Any) -> None:
    """The page's verifier gives every transparency-dev/merkle vector's
    wantErr, and opens Go's signed notes and the C2SP spec example."""
    vectors = {
        kind: [
            json.loads(p.read_text()) for p in sorted((VECTORS / "merkle" / kind).rglob("*.json"))
        ]
        for kind in ("inclusion", "consistency")
    }
    page.goto(site.url + "/ui/verify")
    got = page.evaluate(
        """async (vectors) => {
          const t = await import('/ui/static/js/tlog.js');
          const b = (s) => t.b64decode(s || '');
          const out = {inclusion: [], consistency: []};
          for (const v of vectors.inclusion) {
            let err = false;
            try { await t.verifyInclusion(v.leafIdx, v.treeSize, b(v.leafHash),
                                          (v.proof || []).map(b), b(v.root)); }
            catch (e) { if (!(e instanceof t.VerifyError)) throw e; err = true; }
            out.inclusion.push(err);
          }
          for (const v of vectors.consistency) {
            let err = false;
            try { await t.verifyConsistency(v.size1, v.size2, (v.proof || []).map(b),
                                            b(v.root1), b(v.root2)); }
            catch (e) { if (!(e instanceof t.VerifyError)) throw e; err = true; }
            out.consistency.push(err);
          }
          return out;
        }""",
        vectors,
    )
    for kind in ("inclusion", "consistency"):
        want = [v["wantErr"] for v in vectors[kind]]
        assert got[kind] == want, kind
    assert len(want) > 0 and sum(len(v) for v in vectors.values()) == 196

    last = sumdb["checkpoints"][-1]
    result = page.evaluate(
        """async ([vkey, note, inclusion]) => {
          const t = await import('/ui/static/js/tlog.js');
          const spec = await t.parseVkey(
            'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k');
          await t.openNote('This is an example message.\\n\\n\\u2014 example.com/foo ' +
            'Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\\n',
            [spec]);
          const k = await t.parseVkey(vkey);
          const cp = await t.openCheckpoint(note, [k]);
          let tampered = 'accepted';
          try { await t.openCheckpoint(note.replace(/\\n[0-9]+\\n/, '\\n1\\n'), [k]); }
          catch (e) { tampered = e.message; }
          let proofs = 0;
          for (const v of inclusion) {
            const leaf = await t.leafHash(t.utf8(v.entry));
            if (t.b64encode(leaf) !== v.leaf_hash) throw new Error('leaf hash ' + v.index);
            const path = (v.proof || []).map((p) => t.b64decode(p));
            await t.verifyInclusion(v.index, v.size, leaf, path, t.b64decode(v.root));
            proofs += 1;
          }
          return [String(cp.checkpoint.size), cp.checkpoint.origin, tampered, proofs];
        }""",
        [sumdb["verifier_key"], last["signed_note"], sumdb["inclusion"]],
    )
    assert result[:2] == [str(last["size"]), sumdb["origin"]]
    assert "is invalid" in result[2]
    assert result[3] == len(sumdb["inclusion"]) > 0


def test_operator_creates_and_revokes_a_key(page: Page, site: Site, csp_errors: list[str]) -> None:
    sign_in(page, site, site.keys["operator"])
    page.get_by_role("link", name="Manage").click()
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    page.get_by_role("link", name="acme", exact=True).click()
    expect(page.get_by_role("heading", name="API keys of acme")).to_be_visible()
    page.get_by_label("Key name").fill("auditor")
    page.get_by_label("append").uncheck()
    page.get_by_role("button", name="Create key").click()
    secret_box = page.locator("#new-secret")
    expect(secret_box).to_contain_text("ilk_")
    secret = secret_box.inner_text()
    expect(page.get_by_role("alert")).to_contain_text("shown only once")
    site.shot(page, "operator")
    who = httpx.get(site.url + "/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert who.json()["scopes"] == ["read"]
    key_id = secret.split("_")[1]
    row = page.get_by_role("row").filter(has_text=key_id)
    expect(row).to_contain_text("auditor")
    expect(row).to_contain_text("active")
    revoke = page.get_by_role("button", name=f"Revoke key {key_id}")
    revoke.click()
    expect(revoke).to_have_text("Really revoke?")
    revoke.click()
    expect(page.locator("#flash")).to_contain_text(f"Key {key_id} revoked.")
    expect(page.get_by_role("row").filter(has_text=key_id)).to_contain_text("revoked")
    expect(page.locator("#new-secret")).to_have_count(0)  # the secret is never shown again
    r = httpx.get(site.url + "/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401
    # what the operator may not do, the page shows as the server says it
    page.get_by_role("button", name="Rotate signing key").click()
    expect(page.locator("#flash")).to_contain_text("New signing key")
    assert csp_errors == []


def test_tenant_admin_manages_its_logs(page: Page, site: Site) -> None:
    sign_in(page, site, site.keys["other"])
    page.get_by_role("link", name="Manage").click()
    expect(page.get_by_role("heading", name="Logs of other")).to_be_visible()
    page.get_by_label("New log").fill("billing")
    page.get_by_role("button", name="Create log").click()
    expect(page.locator("#flash")).to_contain_text("Log other/billing created.")
    row = page.get_by_role("row").filter(has_text="billing")
    row.get_by_role("button", name="Make public").click()
    expect(page.locator("#flash")).to_contain_text("other/billing is now public")
    info = site.client(site.keys["other"]).get("/v1/logs/other/billing").json()
    assert info["public"] is True
    row = page.get_by_role("row").filter(has_text="billing")
    row.get_by_text("Witnesses…").click()
    row.get_by_role("button", name="Save witnesses").click()  # none: accepted
    expect(page.locator("#flash")).to_contain_text("Witnesses of other/billing saved.")
    # refused by the server (the operator did not allow witnesses): its reason is shown
    row = page.get_by_role("row").filter(has_text="billing")
    row.get_by_text("Witnesses…").click()
    policy = {"witnesses": [{"url": "https://w.example", "vkey": WITNESS_VKEY}]}
    row.get_by_label("Witness policy for billing (JSON)").fill(json.dumps(policy))
    row.get_by_role("button", name="Save witnesses").click()
    expect(page.get_by_role("alert")).to_contain_text("witness")
    expect(page.get_by_role("alert")).to_contain_text("the operator enables it")
    site.shot(page, "manage")
    # usage and quota, from the usage API: other/secret's one entry, today (UTC)
    section = page.get_by_role("region", name="Usage")
    expect(section).to_contain_text("Quota: no limit on entries per day, no limit on stored bytes.")
    usage = site.client(site.keys["other"]).get("/v1/tenants/other/usage").json()
    [day] = usage["days"]
    assert day["day"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert day["entries"] == 1 and day["logs"]["secret"]["entries"] == 1
    row = section.get_by_role("row").filter(has_text=day["day"])
    expect(row).to_have_text(re.compile(rf"{day['day']}\s*1\s*{day['bytes']}\s*secret: 1"))
    op = site.client(site.keys["operator"])
    quota = {"entries_per_day": 1000, "bytes": None}
    op.put("/v1/tenants/other/quota", json=quota).raise_for_status()
    try:
        page.reload()
        expect(section).to_contain_text("Quota: 1000 entries per day, no limit on stored bytes.")
        site.shot(page, "manage-usage")
    finally:
        op.put("/v1/tenants/other/quota", json={"entries_per_day": None, "bytes": None})


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length)
          && !el.getAttribute('aria-label') && !el.textContent.trim())
  .map((el) => el.outerHTML)"""


def test_every_control_is_labelled_and_keyboard_works(page: Page, site: Site) -> None:
    sign_in(page, site, site.keys["acme"])
    for where, heading in [
        ("#/logs", "Logs"),
        ("#/search?log=acme/app", "Search"),
        ("#/entry/acme/app/4", "Entry 4 of acme/app"),
        ("#/admin", "Manage acme"),
    ]:
        page.goto(site.url + "/ui" + where)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], where
    page.goto(site.url + "/ui/verify")
    assert page.evaluate(UNLABELLED) == []
    # search by keyboard alone: type a filter, Enter submits, Tab reaches the results
    page.goto(site.url + "/ui#/search?log=acme/app")
    page.get_by_label("Action", exact=True).focus()
    page.keyboard.type("delete")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Page 1: 10 entries"))).to_be_visible()
    page.get_by_role("link", name="entry 5", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Entry 5 of acme/app")).to_be_visible()


def test_charts_from_the_stats_api(page: Page, site: Site, csp_errors: list[str]) -> None:
    """The search page's chart, stacked by outcome then by action, drawn from
    the real stats API over the entries appended at start-up."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/stats?" in r.url else None)
    sign_in(page, site, site.keys["acme"])
    page.goto(site.url + "/ui#/search?log=acme/app&range=24h")
    chart = page.locator("#chart")
    expect(chart.get_by_role("heading")).to_have_text("Entries per 1h: 60")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".chart")).to_have_attribute("data-buckets", re.compile("^2[45]$"))
    legend = chart.locator(".u-legend")
    expect(legend).to_contain_text("success")
    expect(legend).to_contain_text("failure")
    url = asked[-1]
    assert "/v1/logs/acme/app/stats?" in url
    assert "group_by=outcome" in url and "bucket=1h" in url, url
    site.shot(page, "search-chart")
    page.get_by_label("Stack by").select_option("action")
    expect(legend).to_contain_text("delete")
    for action in ("login", "read", "delete"):
        expect(legend).to_contain_text(action)
    assert "group_by=action" in asked[-1]
    # the last hour, per minute: the busy minute and the quiet ones (zeros, not gaps)
    page.get_by_label("Time range").select_option("1h")
    page.get_by_role("button", name="Search").click()
    expect(chart.get_by_role("heading")).to_have_text("Entries per 1m: 60")
    expect(chart.locator(".chart")).to_have_attribute("data-buckets", re.compile("^6[01]$"))
    assert "bucket=1m" in asked[-1]
    assert csp_errors == []


def test_without_the_newer_apis_their_parts_are_hidden(page: Page, site: Site) -> None:
    """Against a server without the stats and evidence routes (their 404s
    answered here by interception, with the body this server gives for a
    route it does not have), the sparkline column and the chart are hidden
    and the evidence button says so and goes."""
    missing = httpx.get(site.url + "/v1/logs/acme/app/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Not Found"

    def absent(route: Route) -> None:
        route.fulfill(status=404, json=missing.json())

    page.route(re.compile(r".*/v1/logs/[^/]+/[^/]+/(stats|evidence)\?.*"), absent)
    sign_in(page, site, site.keys["acme"])
    expect(page.get_by_role("row").filter(has_text="acme/app")).to_contain_text("60")
    expect(page.locator("th.spark")).to_be_hidden()
    expect(page.locator("td.spark canvas")).to_have_count(0)
    page.goto(site.url + "/ui#/search?log=acme/app&range=24h")
    expect(page.get_by_role("heading", name=re.compile("Page 1"))).to_be_visible()
    expect(page.locator("#chart")).to_have_count(0)
    page.goto(site.url + "/ui#/entry/acme/app/41")
    page.get_by_role("button", name="Evidence bundle").click()
    expect(page.get_by_role("status").filter(has_text="not available")).to_be_visible()
    expect(page.get_by_role("button", name="Evidence bundle")).to_have_count(0)


def test_usable_at_phone_width(page: Page, site: Site) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, site, site.keys["acme"])
    expect(page.get_by_text("acme/app")).to_be_visible()
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    site.shot(page, "phone-logs")
    page.goto(site.url + "/ui#/entry/acme/app/3")
    expect(page.get_by_role("heading", name="Entry 3 of acme/app")).to_be_visible()
    assert page.evaluate(overflow) <= 0
    site.shot(page, "phone-entry")
    page.goto(site.url + "/ui/verify")
    assert page.evaluate(overflow) <= 0


def test_search_between_two_local_times(browser: Browser, site: Site) -> None:
    """An absolute range is typed in the browser's local time (here UTC+05:30)
    and sent as RFC 3339 UTC."""
    context = browser.new_context(timezone_id="Asia/Kolkata", viewport=VIEWPORT)
    page = context.new_page()
    try:
        sign_in(page, site, site.keys["acme"])
        ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
        now = dt.datetime.now(ist)

        def local(t: dt.datetime) -> str:
            return t.strftime("%Y-%m-%dT%H:%M")

        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/entries?" in r.url else None)
        page.goto(site.url + "/ui#/search?log=acme/app")
        page.get_by_label("Time range").select_option("custom")
        page.get_by_label("From (local time)").fill(local(now - dt.timedelta(hours=2)))
        page.get_by_label("To (local time)").fill(local(now + dt.timedelta(hours=1)))
        page.get_by_label("Outcome", exact=True).fill("failure")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("heading", name=re.compile("Page 1: 12 entries"))).to_be_visible()
        since = (now - dt.timedelta(hours=2)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
        assert f"since={since}" in asked[-1].replace("%3A", ":"), asked[-1]
        page.get_by_label("From (local time)").fill(local(now - dt.timedelta(days=3)))
        page.get_by_label("To (local time)").fill(local(now - dt.timedelta(days=2)))
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No entries match.")).to_be_visible()
        # the range survives a reload (it is in the URL fragment), in local time
        page.reload()
        expect(page.get_by_label("From (local time)")).to_have_value(
            local(now - dt.timedelta(days=3))
        )
    finally:
        context.close()


def _wait(cond: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_integrity_failure_shown_and_cleared(page: Page, site: Site) -> None:
    """A tile changed on disk: the tenant sees the failure on its Logs page;
    the operator's clear is refused while the log is still broken (the
    server's reason shown) and accepted once it is repaired."""
    op = site.client(site.keys["operator"])
    op.post("/v1/tenants", json={"name": "dented"}).raise_for_status()
    key = op.post("/v1/tenants/dented/keys", json={"scopes": ["admin"]}).json()["key"]
    c = site.client(key)
    c.post("/v1/tenants/dented/logs", json={"name": "d"}).raise_for_status()
    body = "".join(json.dumps({"n": i}) + "\n" for i in range(300))
    headers = {"Content-Type": "application/x-ndjson"}
    c.post("/v1/logs/dented/d/entries", content=body, headers=headers).raise_for_status()

    def state() -> dict[str, Any]:
        rows = c.get("/v1/integrity").json()["logs"]
        return next(r for r in rows if r["log"] == "dented/d")

    _wait(lambda: state()["verified_size"] == 300 and state()["last_full_pass_us"])
    con = sqlite3.connect(site.srv.data / "logs" / "dented" / "d.db")
    try:
        sql = "SELECT data FROM tiles WHERE level=0 AND idx=0"
        original = con.execute(sql).fetchone()[0]
        update = "UPDATE tiles SET data=? WHERE level=0 AND idx=0"
        con.execute(update, (b"\x00" * len(original),))
        con.commit()
        _wait(lambda: state()["failure"] is not None)

        sign_in(page, site, key)
        expect(page.get_by_role("row").filter(has_text="dented/d")).to_contain_text("FAILED")
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, site, site.keys["operator"])
        page.goto(site.url + "/ui#/admin?tenant=dented")
        report = page.get_by_role("region", name="Integrity report")
        row = report.get_by_role("row").filter(has_text="dented/d")
        expect(row).to_contain_text("tile/0/000")
        clear = row.get_by_role("button", name="Clear")
        clear.click()
        clear.click()
        expect(page.get_by_role("alert")).to_be_visible()  # still broken: refused, reason shown
        site.shot(page, "integrity")
        con.execute(update, (original,))
        con.commit()
    finally:
        con.close()
    row = page.get_by_role("region", name="Integrity report").get_by_role("row")
    clear = row.filter(has_text="dented/d").get_by_role("button", name="Clear")
    clear.click()
    clear.click()
    expect(page.locator("#flash")).to_contain_text("Integrity failure of dented/d cleared.")
    assert state()["failure"] is None


def test_the_csp_blocks_inline_code(page: Page, site: Site, csp_errors: list[str]) -> None:
    """The policy is enforced by the browser (and a violation is what the
    other tests would see on the console): inline script and style are refused."""
    page.goto(site.url + "/ui")
    expect(page.get_by_label("API key")).to_be_visible()
    page.evaluate(
        """() => {
          const s = document.createElement('script');
          s.textContent = 'window.injected = true';
          document.body.append(s);
          document.body.setAttribute('style', 'background: red');
        }"""
    )
    for _ in range(50):  # console events arrive while Playwright runs
        if len(csp_errors) >= 2:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.injected") is None
    assert any("script-src" in e for e in csp_errors)
    assert any("style-src" in e for e in csp_errors)
