"""What a tenant admin cannot make the service do (SSRF through witness URLs,
stalling other tenants' witnessing), and what the operator can do to a tenant
and how the tenant sees it (the system log, the operator lock)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ironlog.core import note, tlogproof
from ironlog.engine.instance import Ironlog
from ironlog.store.base import Query
from tests.conftest import BIN
from tests.server import Server, run_server
from tests.test_client import tenant_log
from tests.test_witness import run_witness
from tests.test_witnessing import allow_witnesses

SECRET = "INTERNAL-ONLY-7f3a"  # what an internal service would answer


class _Internal(http.server.BaseHTTPRequestHandler):
    """An internal HTTP service: answers 500 with a secret, or redirects to another one."""

    hits: list[str]
    hosts: list[str]
    redirect_to: str | None

    def do_POST(self) -> None:
        self.hits.append(self.path)
        self.hosts.append(self.headers.get("Host", ""))
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = SECRET.encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def internal_service(
    redirect_to: str | None = None, hosts: list[str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Its URL and the paths it was asked for (the Host headers go to ``hosts``)."""
    hits: list[str] = []
    hosts = hosts if hosts is not None else []
    handler = type("H", (_Internal,), {"hits": hits, "hosts": hosts, "redirect_to": redirect_to})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def blackhole() -> Iterator[str]:
    """Accepts TCP connections (in the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


_clients: list[httpx.Client] = []


def stack_client(url: str, key: str) -> httpx.Client:
    """A client closed at the end of the test (see the autouse fixture)."""
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    _clients.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def _wkey(name: str) -> str:
    return note.CosignatureSigner.generate(name).vkey()


def _wait(fn: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not fn():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _status(c: httpx.Client, path: str) -> dict[str, dict[str, object]]:
    st: dict[str, dict[str, object]] = c.get(f"/v1/logs/{path}").json().get("witness_status", {})
    return st


# --- item 1: SSRF through witness URLs -------------------------------------------------


def test_witness_urls_to_internal_addresses_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(data) as s, internal_service() as (internal, hits):
        key = tenant_log(s, "ssrf")
        c = stack_client(s.url, key)
        url = "/v1/tenants/ssrf/logs/app/witnesses"
        one = {"witnesses": [{"url": "https://witness.example", "vkey": _wkey("w.example/a")}]}
        # Witnessing is off until the operator allows it for the tenant.
        r = c.put(url, json=one)
        assert r.status_code == 403 and "operator enables it" in r.text, r.text
        allow_witnesses(s, "ssrf")
        # The operator cannot set a tenant's witnesses (the tenant's trust anchor).
        with s.client(s.operator) as op:
            assert op.put(url, json=one).status_code == 403
        port = internal.rsplit(":", 1)[1]
        for bad, why in [
            (internal, "resolves to an address"),
            (f"http://localhost:{port}", "resolves to an address"),
            (f"http://[::1]:{port}", "resolves to an address"),
            (f"http://[::ffff:127.0.0.1]:{port}", "resolves to an address"),
            ("http://169.254.169.254/latest", "resolves to an address"),
            ("http://10.0.0.1", "resolves to an address"),
            ("http://0.0.0.0:80", "resolves to an address"),
            ("http://224.0.0.1", "resolves to an address"),
            ("http://2130706433", "resolves to an address"),  # 127.0.0.1 as one number
            ("http://user:pw@witness.example", "user name or password"),
            ("https://witness.example/?a=1", "query or a fragment"),
            ("https://witness.example/#x", "query or a fragment"),
            ("ftp://witness.example", "http(s)://"),
            ("http://", "http(s)://"),
        ]:
            conf = {"witnesses": [{"url": bad, "vkey": _wkey("w.example/a")}]}
            r = c.put(url, json=conf)
            assert r.status_code == 400 and why in r.json()["error"]["message"], (bad, r.text)
        assert c.get("/v1/logs/ssrf/app").json().get("witnesses") is None  # nothing was set
        time.sleep(1.5)  # a submission round would have reached the internal service by now
    assert hits == []


def test_allowlisted_witness_errors_are_not_echoed_and_checked_at_connect(tmp_path: Path) -> None:
    """The operator allow-lists 127.0.0.0/8: the tenant sees the status code of
    a failing witness but never its answer; redirects are not followed; and
    once the allow-list is gone, the stored URL is refused at connect time."""
    data = tmp_path / "data"
    hosts: list[str] = []
    with (
        internal_service() as (target, target_hits),
        internal_service(redirect_to=target + "/add-checkpoint") as (redirector, redirect_hits),
        internal_service(hosts=hosts) as (failing, failing_hits),
    ):
        by_name = failing.replace("127.0.0.1", "localhost")  # connected to as 127.0.0.1
        conf = {
            "witnesses": [
                {"url": by_name, "vkey": _wkey("w.test/failing")},
                {"url": redirector + "/sub", "vkey": _wkey("w.test/redirect")},
            ]
        }
        with run_server(data, "--witness-allow", "127.0.0.0/8") as s:
            key = tenant_log(s, "echo")
            allow_witnesses(s, "echo")
            c = stack_client(s.url, key)
            r = c.put("/v1/tenants/echo/logs/app/witnesses", json=conf)
            assert r.status_code == 200, r.text
            c.post("/v1/logs/echo/app/entries", json={"n": 1})
            _wait(lambda: len(_status(c, "echo/app")) == 2)
            st = _status(c, "echo/app")
            text = str(st)
            assert SECRET not in text
            assert st["w.test/failing"]["last_error"] == "the witness answered HTTP 500"
            assert st["w.test/redirect"]["last_error"] == "the witness answered HTTP 302"
            assert failing_hits and redirect_hits == ["/sub/add-checkpoint"]
            assert set(hosts) == {by_name.split("//")[1]}  # the name, in the Host header
            assert target_hits == []  # the redirect was not followed
        failing_hits.clear()
        redirect_hits.clear()
        # Without the allow-list the stored URLs are refused before any connection.
        with run_server(data, port=int(s.url.rsplit(":", 1)[1])) as s2:
            c = stack_client(s2.url, key)
            c.post("/v1/logs/echo/app/entries", json={"n": 2})
            _wait(
                lambda: all(
                    "does not allow" in str(v["last_error"])
                    for v in _status(c, "echo/app").values()
                )
            )
        assert failing_hits == [] and redirect_hits == [] and target_hits == []


def test_witness_allow_config_is_validated(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('witness_allow = ["not-a-network"]\n')
    out = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(tmp_path / "d"), "serve", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0 and "'not-a-network' is not an address or network" in out.stderr
    assert "Traceback" not in out.stderr


# --- item 10: one tenant's witnesses do not stall the others' ----------------------------


def _fast_tenant(s: Server, stack: contextlib.ExitStack, tmp: Path) -> tuple[httpx.Client, str]:
    """Tenant "zfast" (listed after the others) with a real witness on zfast/app."""
    key = tenant_log(s, "zfast")
    allow_witnesses(s, "zfast")
    c = stack_client(s.url, key)
    vkey = c.get("/v1/logs/zfast/app").json()["vkey"]
    (tmp / "wfast").mkdir()
    w = stack.enter_context(
        run_witness(tmp / "wfast", [f"{vkey.split('+')[0]}={vkey}"], "witness.test/fast")
    )
    r = c.put(
        "/v1/tenants/zfast/logs/app/witnesses", json={"witnesses": [{"url": w.url, "vkey": w.vkey}]}
    )
    assert r.status_code == 200, r.text
    return c, w.vkey


def _witnessed_appends(c: httpx.Client, n: int) -> list[float]:
    took = []
    for i in range(n):
        t0 = time.monotonic()
        r = c.post(
            "/v1/logs/zfast/app/entries",
            params={"witnessed": "true", "witness_timeout": "8"},
            json={"n": i},
        )
        took.append(time.monotonic() - t0)
        assert r.status_code == 201 and r.json()["witnessed"] is True, (i, took, r.text)
    return took


def test_blackhole_witnesses_of_one_tenant_do_not_delay_another(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(run_server(tmp_path / "data", "--witness-allow", "127.0.0.0/8"))
        hole = stack.enter_context(blackhole())
        key = tenant_log(s, "aslow", "one")
        allow_witnesses(s, "aslow")
        slow = stack_client(s.url, key)
        # Per log at most 16 witnesses, per tenant at most 32 over all logs: over is a 400.
        many = [{"url": f"{hole}/w{i}", "vkey": _wkey(f"hole.test/w{i}")} for i in range(33)]
        r = slow.put("/v1/tenants/aslow/logs/one/witnesses", json={"witnesses": many[:17]})
        assert r.status_code == 400 and "at most 16" in r.text, r.text
        for n, part in (("one", many[:16]), ("two", many[16:32])):
            if n == "two":
                assert slow.post("/v1/tenants/aslow/logs", json={"name": n}).status_code == 201
            r = slow.put(f"/v1/tenants/aslow/logs/{n}/witnesses", json={"witnesses": part})
            assert r.status_code == 200, r.text
            slow.post(f"/v1/logs/aslow/{n}/entries", json={"n": 0})
        assert slow.post("/v1/tenants/aslow/logs", json={"name": "three"}).status_code == 201
        r = slow.put("/v1/tenants/aslow/logs/three/witnesses", json={"witnesses": many[32:]})
        assert r.status_code == 400 and "at most 32 witnesses over all its logs" in r.text
        c, _ = _fast_tenant(s, stack, tmp_path)
        time.sleep(2.5)  # the slow tenant's submissions are now hanging on the blackhole
        took = _witnessed_appends(c, 3)
        assert max(took) < 6, took
        timeout = "the witness did not answer in time"
        _wait(lambda: timeout in [v["last_error"] for v in _status(slow, "aslow/one").values()])


def test_one_broken_log_does_not_stop_witnessing_of_others(tmp_path: Path) -> None:
    """A log whose stored witness settings cannot be read (someone edited the
    control database) is skipped and logged; the other logs are witnessed."""
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(run_server(tmp_path / "data", "--witness-allow", "127.0.0.0/8"))
        key = tenant_log(s, "abroken")
        allow_witnesses(s, "abroken")
        conf = {"witnesses": [{"url": "http://127.0.0.1:9/x", "vkey": _wkey("w.test/b")}]}
        with stack_client(s.url, key) as b:
            assert b.put("/v1/tenants/abroken/logs/app/witnesses", json=conf).status_code == 200
        with sqlite3.connect(tmp_path / "data" / "control.db") as con:
            con.execute(
                "UPDATE settings SET value='{\"witnesses\": 7}' WHERE key='witnesses:abroken/app'"
            )
        con.close()
        c, _ = _fast_tenant(s, stack, tmp_path)
        _witnessed_appends(c, 2)
        stack.pop_all().close()
    assert "witnessing: log abroken/app: IntegrityError: control.db: the witness policy" in s.output


# --- item 4: what the operator can do to a tenant, and what the tenant sees ----------------


def _system_events(c: httpx.Client, tenant: str) -> list[tuple[str, str]]:
    r = c.get(f"/v1/logs/{tenant}/_system/entries", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [
        (e["action"], e["actor"]) for e in (json.loads(x["entry"]) for x in r.json()["entries"])
    ]


def _cli(data: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"IRONLOG_API_KEY": key} if key else {})}
    return subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_operator_acts_are_in_the_tenant_system_log_and_lockable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(data) as s:
        op = stack_client(s.url, s.operator)
        opk = f"operator:{s.operator.split('_')[1]}"
        assert op.post("/v1/tenants", json={"name": "acme"}).status_code == 201
        r = op.post("/v1/tenants/acme/keys", json={"scopes": "admin"})
        admin, admin_id = r.json()["key"], r.json()["id"]
        tk = f"tenant:{admin_id}"
        a = stack_client(s.url, admin)
        # What the operator key may do to a tenant (each recorded) ...
        assert op.post("/v1/tenants/acme/logs", json={"name": "pay"}).status_code == 201
        assert op.post("/v1/tenants/acme/signing-keys/rotate").status_code == 201
        assert op.post("/v1/tenants/acme/witnessing", json={"enabled": True}).status_code == 200
        assert op.post("/v1/tenants/acme/disable").status_code == 200
        assert op.post("/v1/tenants/acme/enable").status_code == 200
        assert op.post("/v1/integrity/acme/pay/clear").status_code == 200
        # ... and what it may not: read entries, make a log public, set witnesses.
        assert op.get("/v1/logs/acme/pay/entries").status_code == 403
        assert op.get("/v1/logs/acme/_system/entries").status_code == 403
        r = op.post("/v1/tenants/acme/logs", json={"name": "pub", "public": True})
        assert r.status_code == 403, r.text
        assert op.post("/v1/tenants/acme/logs/pay/public", json={"public": True}).status_code == 403
        r = op.put("/v1/tenants/acme/logs/pay/witnesses", json={"witnesses": []})
        assert r.status_code == 403
        assert op.post("/v1/tenants/acme/operator-lock", json={"locked": True}).status_code == 403
        # The tenant sees every act, by whom.
        assert _system_events(a, "acme") == [
            ("tenant.create", opk),
            ("key.create", opk),
            ("log.create", opk),
            ("signing_key.add", opk),
            ("witnessing.enable", opk),
            ("tenant.disable", opk),
            ("tenant.enable", opk),
            ("integrity.clear", opk),
        ]
        # It is a log like any other: signed, provable, on the tiles endpoints ...
        info = a.get("/v1/logs/acme/_system").json()
        assert info["size"] == 8 and info["name"] == "_system"
        got = a.get("/v1/logs/acme/_system/entries/1").json()
        proof = tlogproof.TlogProof(
            1, tuple(note.b64decode(h) for h in got["inclusion_proof"]), got["checkpoint"]
        )
        proof.verify(got["entry"].encode(), note.Verifier.from_vkey(info["vkey"]))
        assert a.get("/logs/acme/_system/checkpoint").status_code == 200
        # ... but nobody appends to it, creates it, or binds a key to it for OTLP.
        for c in (a, op):
            r = c.post("/v1/logs/acme/_system/entries", json={"action": "forged"})
            assert r.status_code == 403, r.text
        r = a.post(
            "/v1/logs/acme/_system/entries",
            content=b'{"a":1}\n',
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 403
        assert a.post("/v1/tenants/acme/logs", json={"name": "_system"}).status_code == 400
        # A read key reads it; an append key cannot append to it.
        keys = {
            sc: a.post("/v1/tenants/acme/keys", json={"scopes": sc}).json()["key"]
            for sc in ("read", "append")
        }
        rd, ap = stack_client(s.url, keys["read"]), stack_client(s.url, keys["append"])
        assert [x for x, _ in _system_events(rd, "acme")][-2:] == ["key.create", "key.create"]
        assert ap.post("/v1/logs/acme/_system/entries", json={"a": 1}).status_code == 403
        assert ap.post("/v1/logs/acme/pay/entries", json={"a": 1}).status_code == 201
        r = a.post(
            "/v1/logs",
            json={"resourceLogs": []},
            headers={"X-Ironlog-Log": "_system"},
        )
        assert r.status_code == 403, r.text
        # The tenant locks the operator out of minting its keys.
        assert a.post("/v1/tenants/acme/operator-lock", json={"locked": True}).status_code == 200
        r = op.post("/v1/tenants/acme/keys", json={"scopes": "read"})
        assert r.status_code == 403 and "locked the operator out" in r.json()["error"]["message"]
        assert op.post(f"/v1/tenants/acme/keys/{admin_id}/rotate").status_code == 403
        r = _cli(data, "key", "create", "acme", "--scopes", "admin")
        assert (
            r.returncode == 1 and "locked the operator out" in r.stderr and "ilk_" not in r.stdout
        )
        r = a.post("/v1/tenants/acme/keys", json={"scopes": "read"})  # the tenant still can
        assert r.status_code == 201
        reader = r.json()["id"]
        # Recovery (a tenant that lost its admin keys): the operator unlocks on the
        # host, which the tenant sees; the CLI also locks as the tenant, over HTTP.
        r = _cli(data, "tenant", "operator-lock", "acme", "--unlock")
        assert r.returncode == 0, r.stderr
        assert op.post("/v1/tenants/acme/keys", json={"scopes": "read"}).status_code == 201
        r = _cli(data, "tenant", "operator-lock", "acme", "--url", s.url, key=admin)
        assert r.returncode == 0, r.stderr
        assert op.post("/v1/tenants/acme/keys", json={"scopes": "read"}).status_code == 403
        r = _cli(data, "tenant", "operator-lock", "acme", "--url", s.url, key=s.operator)
        assert r.returncode == 1 and "not the operator key" in r.stderr
        events = _system_events(a, "acme")[10:]
        assert events[0] == ("operator.lock", tk)
        assert events[1] == ("key.create", tk) and reader
        assert events[2:] == [
            ("operator.unlock", "host"),
            ("key.create", opk),
            ("operator.lock", tk),
        ]


def test_cli_witnesses_need_the_capability_and_an_allowed_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "init").returncode == 0
    assert _cli(data, "log", "create", "cli/app").returncode == 0
    w = f"{_wkey('w.test/cli')}=http://127.0.0.1:9"
    r = _cli(data, "log", "witnesses", "cli/app", "--witness", w)
    assert r.returncode == 1 and "ironlog tenant witnessing cli --enable" in r.stderr, r.stderr
    assert _cli(data, "tenant", "witnessing", "cli", "--enable").returncode == 0
    r = _cli(data, "log", "witnesses", "cli/app", "--witness", w)
    assert r.returncode == 1 and "resolves to an address the operator does not allow" in r.stderr
    assert "IRONLOG_WITNESS_ALLOW" in r.stderr  # says how to allow it
    assert "Traceback" not in r.stderr
    env_allow = {"IRONLOG_WITNESS_ALLOW": "127.0.0.0/8"}
    r = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "log", "witnesses", "cli/app", "--witness", w],
        capture_output=True, text=True, env={**os.environ, **env_allow}, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with Ironlog(data) as il:
        events = [json.loads(d) for _, d in il.log("cli", "_system").query(Query())]
    assert [(e["action"], e["actor"]) for e in events] == [
        ("tenant.create", "host"),
        ("log.create", "host"),
        ("witnessing.enable", "host"),
        ("witnesses.set", "host"),
    ]
    assert events[-1]["resource"] == "app" and events[-1]["witnesses"]["witnesses"][0]["url"]
