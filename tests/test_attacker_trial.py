"""An attacker trial of the issue 9 hardening: what each THREATS.md row tried
that did not hold, one regression test per finding."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ironlog.core.note import CosignatureSigner
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.errors import InvalidRequestError
from ironlog.store.base import Query
from tests.conftest import BIN
from tests.server import run_server


def _wkey() -> str:
    """A witness's cosignature/v1 verifier key."""
    return CosignatureSigner.generate("w.example/w1").vkey()


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        capture_output=True, text=True, env=dict(os.environ), timeout=60,
    )  # fmt: skip


def _system_actions(data: Path, tenant: str) -> list[tuple[str, str, str]]:
    with Ironlog(data, read_only=True) as il:
        events = [json.loads(d) for _, d in il.log(tenant, "_system").query(Query())]
    return [(e["action"], e["actor"], str(e.get("resource", ""))) for e in events]


def test_every_host_cli_act_on_a_tenant_is_in_its_system_log(tmp_path: Path) -> None:
    """The operator (host row): every CLI command that changes a tenant leaves
    a record the tenant can read; none acts unseen."""
    data = tmp_path / "data"
    assert _cli(data, "init").returncode == 0
    assert _cli(data, "log", "create", "acme/app").returncode == 0
    r = _cli(data, "key", "create", "acme", "--scopes", "read")
    assert r.returncode == 0, r.stderr
    key_id = r.stderr.split()[2]
    steps: list[tuple[tuple[str, ...], tuple[str, str, str]]] = [
        (("log", "public", "acme/app", "--on"), ("log.public", "host", "app")),
        (("log", "public", "acme/app", "--off"), ("log.public", "host", "app")),
        (("tenant", "disable", "acme"), ("tenant.disable", "host", "")),
        (("tenant", "enable", "acme"), ("tenant.enable", "host", "")),
        (("key", "rotate", "acme", key_id), ("key.rotate", "host", "")),
        (("key", "revoke", "acme", key_id), ("key.revoke", "host", key_id)),
        (("tenant", "witnessing", "acme", "--enable"), ("witnessing.enable", "host", "")),
        (("tenant", "rotate-key", "acme"), ("signing_key.add", "host", "")),
        (("log", "quarantine", "acme/app", "--reason", "x"), ("log.quarantine", "host", "app")),
        (("log", "release", "acme/app"), ("log.release", "host", "app")),
    ]
    for args, want in steps:
        before = len(_system_actions(data, "acme"))
        r = _cli(data, *args)
        assert r.returncode == 0, (args, r.stderr)
        after = _system_actions(data, "acme")
        assert len(after) == before + 1, (args, after[before:])
        got = after[-1]
        assert got[:2] == want[:2] and (not want[2] or got[2] == want[2]), (args, got)


def _tamper_control(data: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(data / "control.db")
    with con:
        con.execute(sql, args)
    con.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("witnesses:demo/events", "{not json"),
        ("witnesses:demo/events", '{"witnesses": 5}'),
        ("witnesses_from:demo/events", "x"),
        ("witnesses_from:demo/events", "-3"),
        ("witness_status:demo/events", "[1, 2"),
        ("witness_status:demo/events", "7"),
    ],
)
def test_tampered_witness_settings_in_control_db_are_named_not_500(
    tmp_path: Path, key: str, value: str
) -> None:
    """Someone with the database files edits a log's witness settings in
    control.db: every endpoint that reads them refuses with the reason (never
    a 500, not even on the unauthenticated checkpoint of a public log) and
    ``ironlog verify`` names it."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.demo) as c:
        assert c.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
        with s.client(s.operator) as op:
            admin = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"}).json()["key"]
        with s.client(admin) as a:
            r = a.post("/v1/tenants/demo/logs/events/public", json={"public": True})
            assert r.status_code == 200
            # a policy with witnesses, so that every setting is read
            _tamper_control(
                data, "INSERT OR REPLACE INTO settings VALUES (?, ?)",
                "witnesses:demo/events",
                json.dumps({"witnesses": [{"vkey": _wkey(), "url": "https://w.example/"}]}),
            )  # fmt: skip
            _tamper_control(data, "INSERT OR REPLACE INTO settings VALUES (?, ?)", key, value)
            time.sleep(1.2)  # past the open-log cache
            with s.client() as anon:
                answers = [
                    a.get("/v1/logs/demo/events"),
                    a.get("/v1/tenants/demo/logs"),
                    anon.get("/logs/demo/events/checkpoint"),
                    c.post("/v1/logs/demo/events/entries?witnessed=true&witness_timeout=1",
                           json={"b": 2}),
                ]  # fmt: skip
            for r in answers:
                assert r.status_code != 500, (r.request.url, r.text)
            named = [r for r in answers if "control.db" in r.text]
            assert named and all(r.status_code == 503 for r in named), [r.text for r in answers]
    r = _cli(data, "verify", "demo/events")
    assert r.returncode == 1 and "control.db" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "change",
    ["durability='bogus'", "indexes='bogus,actor'", "signed_size='abc'", "signed_size=-5"],
)
def test_one_log_row_edited_in_control_db_does_not_hide_the_others(
    tmp_path: Path, change: str
) -> None:
    """Someone with the database files breaks one log's row in control.db: that
    log is refused with a reason naming control.db, and every loop over logs
    (listings, /v1/integrity, verify --all) still reaches the others."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.demo) as c:
        demo = s.demo
        assert c.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
        with s.client(s.operator) as op:
            admin = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"}).json()["key"]
        with s.client(admin) as a:
            assert a.post("/v1/tenants/demo/logs", json={"name": "zz"}).status_code == 201
    _tamper_control(data, f"UPDATE logs SET {change} WHERE tenant='demo' AND name='events'")
    with run_server(data) as s, s.client(admin) as a, s.client(demo) as c:
        r = c.post("/v1/logs/demo/events/entries", json={"b": 2})
        assert r.status_code == 503 and "control.db" in r.text, r.text
        assert a.get("/v1/logs/demo/events").status_code == 503
        r = a.get("/v1/tenants/demo/logs")
        assert r.status_code == 200, r.text
        rows = {x["name"]: x for x in r.json()["logs"]}
        assert rows["zz"]["healthy"] and not rows["events"]["healthy"]
        assert "control.db" in rows["events"]["unhealthy_reason"]
        assert a.get("/v1/logs/demo/zz").status_code == 200

        def flagged() -> bool:
            r = a.get("/v1/integrity")
            assert r.status_code == 200, r.text
            by = {x["log"]: x for x in r.json()["logs"]}
            return "control.db" in str(by.get("demo/events", {}).get("failure"))

        deadline = time.monotonic() + 20
        while not flagged():
            assert time.monotonic() < deadline
            time.sleep(0.2)
    r = _cli(data, "verify", "--all")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "FAILED demo/events" in r.stderr and "control.db" in r.stderr
    assert "ok demo/zz" in r.stdout
    r = _cli(data, "log", "list")
    assert r.returncode == 0 and "demo/zz" in r.stdout and "control.db" in r.stdout, r.stderr


@pytest.mark.parametrize(
    "change", ["public_key=randomblob(32)", "ref=randomblob(61)", "kind='bogus'"]
)
def test_a_signing_key_row_edited_in_control_db_is_refused_not_500(
    tmp_path: Path, change: str
) -> None:
    """Someone with the database files edits a tenant's signing key in
    control.db: its logs are refused with the reason (503), not a 500."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.demo) as c:
        demo = s.demo
        assert c.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
    _tamper_control(data, f"UPDATE signing_keys SET {change} WHERE tenant='demo'")
    with run_server(data) as s, s.client(demo) as c:
        answers = [
            c.post("/v1/logs/demo/events/entries", json={"b": 2}),
            c.get("/v1/logs/demo/events"),
            c.get("/v1/logs/demo/events/entries/0"),
            c.get("/logs/demo/events/checkpoint"),
        ]
    for r in answers:
        assert r.status_code == 503 and "signing key" in r.text, (r.request.url, r.text)
    r = _cli(data, "verify", "--all")
    assert r.returncode == 1 and "FAILED demo/events" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_cosignature_forged_in_control_db_is_not_served(tmp_path: Path) -> None:
    """Someone with the database files adds a cosignature row for a log's
    witness: the server never serves a checkpoint as witnessed on its word;
    only cosignatures that verify with the witness's key count."""
    data = tmp_path / "data"
    w = CosignatureSigner.generate("w.example/w1")
    with run_server(data) as s, s.client(s.demo) as c:
        assert c.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
        text = c.get("/logs/demo/events/checkpoint").text
        policy = {"witnesses": [{"vkey": w.vkey(), "url": "https://w.example/"}]}
        forged = w.cosign("another body\n", 1_700_000_000).line()
        _tamper_control(
            data, "INSERT OR REPLACE INTO settings VALUES (?, ?)",
            "witnesses:demo/events", json.dumps(policy),
        )  # fmt: skip
        _tamper_control(
            data, "INSERT INTO cosignatures VALUES ('demo', 'events', 1, ?, ?, ?)",
            w.name, text, forged,
        )  # fmt: skip
        time.sleep(1.2)
        r = c.get("/logs/demo/events/checkpoint")
        assert forged.strip() not in r.text, r.text
        assert r.status_code == 404 and "no witnessed checkpoint" in r.text, r.text
        # a real cosignature of that checkpoint does count
        from ironlog.core.note import parse_note

        body = parse_note(text).text
        good = w.cosign(body, 1_700_000_001).line()
        _tamper_control(data, "UPDATE cosignatures SET line=?", good)
        r = c.get("/logs/demo/events/checkpoint")
        assert r.status_code == 200 and r.text == text + good, r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    ],
)
def test_witness_urls_embedding_an_internal_ipv4_are_refused(tmp_path: Path, url: str) -> None:
    """A tenant admin (SSRF): an IPv6 address that carries an internal IPv4
    address (6to4, Teredo) is refused like the IPv4 address itself."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.operator) as op:
        assert op.post("/v1/tenants/demo/witnessing", json={"enabled": True}).status_code == 200
        admin = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"}).json()["key"]
        with s.client(admin) as a:
            r = a.put(
                "/v1/tenants/demo/logs/events/witnesses",
                json={"witnesses": [{"vkey": _wkey(), "url": url}]},
            )
    assert r.status_code == 400 and "does not allow" in r.text, r.text


def test_an_idempotency_key_reused_for_other_events_is_a_conflict(tmp_path: Path) -> None:
    """A tenant's appender reuses an idempotency key for a different event:
    it is told 409 (nothing appended), not 201 with the first request's
    receipt, which would silently drop the second event.  A true retry still
    gets the original receipt."""
    data = tmp_path / "data"
    url = "/v1/logs/demo/events/entries"
    with run_server(data) as s, s.client(s.demo) as c:
        first = c.post(url, json={"a": 1}, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 201
        again = c.post(url, json={"a": 1}, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 201 and again.json()["index"] == first.json()["index"]
        other = c.post(url, json={"a": 2}, headers={"Idempotency-Key": "k1"})
        assert other.status_code == 409, other.text
        assert "idempotency key" in other.json()["error"]["message"]
        nd = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "k2"}
        assert c.post(url, content=b'{"a":1}\n{"b":2}\n', headers=nd).status_code == 201
        r = c.post(url, content=b'{"a":1}\n', headers=nd)  # fewer events
        assert r.status_code == 409, r.text
        r = c.post(url, content=b'{"a":1}\n{"b":2}\n', headers=nd)
        assert r.status_code == 201, r.text
        assert c.get("/v1/logs/demo/events").json()["size"] == 3


def test_quarantining_a_tenants_system_log_is_recorded_in_it(tmp_path: Path) -> None:
    """The operator takes a healthy system log out of service and puts it back:
    the tenant sees both acts in it afterwards (only a broken system log,
    which can record nothing, is quarantined unrecorded)."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.operator) as op:
        admin = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"}).json()["key"]
        r = op.post("/v1/integrity/demo/_system/quarantine", json={"reason": "maintenance"})
        assert r.status_code == 200, r.text
        assert op.post("/v1/integrity/demo/_system/release").status_code == 200
        with s.client(admin) as a:
            time.sleep(1.2)
            r = a.get("/v1/logs/demo/_system/entries", params={"limit": 1000})
            assert r.status_code == 200, r.text
            acts = [json.loads(e["entry"]) for e in r.json()["entries"]]
    tail = [(e["action"], e.get("resource"), e["actor"].split(":")[0]) for e in acts[-2:]]
    assert tail == [
        ("log.quarantine", "_system", "operator"),
        ("log.release", "_system", "operator"),
    ], acts


def test_a_tenant_cannot_create_logs_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant admin creating logs without end (each one holds files and open
    descriptors for the life of the process, for every tenant to run out of)
    is stopped at MAX_TENANT_LOGS, with nothing left behind by the refusal;
    other tenants are not counted against it."""
    from ironlog.engine import instance

    monkeypatch.setattr(instance, "MAX_TENANT_LOGS", 4)
    init_data_dir(tmp_path / "d")
    with Ironlog(tmp_path / "d") as il:
        il.create_log("acme", "l0", create_tenant=True)  # with acme/_system: 2
        il.create_log("acme", "l1")
        il.create_log("acme", "l2")
        with pytest.raises(InvalidRequestError, match="at most 4 logs"):
            il.create_log("acme", "l3")
        assert [i.name for i in il.list_logs("acme")] == ["_system", "l0", "l1", "l2"]
        assert not (tmp_path / "d" / "logs" / "acme" / "l3.db").exists()
        il.create_log("other", "l0", create_tenant=True)


def test_a_tenant_cannot_pile_up_active_signing_keys(tmp_path: Path) -> None:
    """A tenant admin rotating its signing key without ever retiring one would
    make every checkpoint of its logs carry (and every commit compute) one
    signature per key: at most MAX_ACTIVE_SIGNING_KEYS are active at once."""
    from ironlog.engine.signing_keys import MAX_ACTIVE_SIGNING_KEYS

    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.operator) as op:
        admin = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"}).json()["key"]
        with s.client(admin) as a:
            for _ in range(MAX_ACTIVE_SIGNING_KEYS - 1):
                assert a.post("/v1/tenants/demo/signing-keys/rotate").status_code == 201
            r = a.post("/v1/tenants/demo/signing-keys/rotate")
            assert r.status_code == 400 and "retire one first" in r.text, r.text
            keys = a.get("/v1/tenants/demo/signing-keys").json()["keys"]
            assert len(keys) == MAX_ACTIVE_SIGNING_KEYS
            fp = keys[0]["fingerprint"]
            assert a.post(f"/v1/tenants/demo/signing-keys/{fp}/retire").status_code == 200
            assert a.post("/v1/tenants/demo/signing-keys/rotate").status_code == 201
        time.sleep(1.5)  # logs pick up key changes within a second
        with s.client(s.demo) as c:
            r = c.post("/v1/logs/demo/events/entries", json={"a": 1})
            assert r.status_code == 201
            assert r.json()["checkpoint"].count("— ") == MAX_ACTIVE_SIGNING_KEYS
