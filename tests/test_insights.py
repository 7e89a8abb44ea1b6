"""The metrics API (stats, usage, quotas), per-tenant Prometheus counters and
evidence over HTTP, against a real ``ironlog serve`` with two workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN
from tests.server import Server, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**os.environ, "IRONLOG_METRICS_TENANTS": "2"}
    with run_server(tmp_path_factory.mktemp("ins") / "data", "--workers", "2", env=env) as s:
        yield s


def _err(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def _tenant(s: Server, name: str, log: str = "audit") -> str:
    """A tenant with an admin key and a log; returns the key."""
    with s.client(s.operator) as op:
        assert op.post("/v1/tenants", json={"name": name}).status_code == 201
        r = op.post(f"/v1/tenants/{name}/keys", json={"scopes": "append,read,admin"})
        assert r.status_code == 201, r.text
        key = str(r.json()["key"])
    with s.client(key) as c:
        r = c.post(f"/v1/tenants/{name}/logs", json={"name": log})
        assert r.status_code == 201, r.text
    return key


def _ndjson(events: list[dict[str, object]]) -> dict[str, object]:
    body = "\n".join(json.dumps(e) for e in events).encode()
    return {"content": body, "headers": {"Content-Type": "application/x-ndjson"}}


def cli(data: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (p.returncode == 0) == ok, (args, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return p


# --- stats ------------------------------------------------------------------------


def test_stats_counts_buckets_and_groups(server: Server) -> None:
    key = _tenant(server, "st")
    events = (
        [{"action": "create", "outcome": "success", "actor": "alice"}] * 6
        + [{"action": "delete", "outcome": "failure", "actor": "bob"}] * 3
        + [{"action": "update", "actor": "carol"}] * 2
        + [{"action": "login"}]
    )
    with server.client(key) as c:
        assert c.post("/v1/logs/st/audit/entries", **_ndjson(events)).status_code == 201
        r = c.get("/v1/logs/st/audit/stats")
        assert r.status_code == 200, r.text
        got = r.json()
        assert set(got) == {"log", "from", "to", "bucket", "group_by", "groups", "buckets"}
        assert got["log"] == "st/audit" and got["bucket"] == "1m" and got["group_by"] is None
        assert got["groups"] == [] and sum(b["total"] for b in got["buckets"]) == 12
        assert all(b["counts"] == {} for b in got["buckets"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", got["buckets"][0]["start"])

        r = c.get("/v1/logs/st/audit/stats", params={"group_by": "action", "top": 2})
        got = r.json()
        assert got["group_by"] == "action" and got["groups"] == ["create", "delete", "other"]
        merged: dict[str, int] = {}
        for b in got["buckets"]:
            assert sum(b["counts"].values()) == b["total"]
            for k, v in b["counts"].items():
                merged[k] = merged.get(k, 0) + v
        assert merged == {"create": 6, "delete": 3, "other": 3}

        got = c.get("/v1/logs/st/audit/stats", params={"group_by": "outcome"}).json()
        assert got["groups"] == ["success", "(none)", "failure"]
        got = c.get(
            "/v1/logs/st/audit/stats",
            params={"group_by": "source", "bucket": "1d", "from": "-2d", "to": "1s"},
        ).json()
        assert got["groups"] == ["http"] and len(got["buckets"]) in (1, 2)
        assert sum(b["counts"]["http"] for b in got["buckets"]) == 12

        # Appends after a query are counted by the next one (incremental catch-up).
        c.post("/v1/logs/st/audit/entries", json={"action": "create"})
        got = c.get("/v1/logs/st/audit/stats", params={"group_by": "actor", "bucket": "1h"})
        got = got.json()
        assert sum(b["total"] for b in got["buckets"]) == 13
        assert got["groups"][:3] == ["alice", "bob", "(none)"]

        # A range with nothing in it.
        got = c.get(
            "/v1/logs/st/audit/stats",
            params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"},
        ).json()
        assert got["buckets"] == [] and got["from"] == "2020-01-01T00:00:00Z"


def test_stats_bound_the_values_kept(server: Server) -> None:
    """A minute keeps at most 64 distinct values per field; the rest count as other."""
    key = _tenant(server, "sc")
    events = [{"actor": f"user-{i:03d}", "action": "a"} for i in range(100)]
    with server.client(key) as c:
        assert c.post("/v1/logs/sc/audit/entries", **_ndjson(events)).status_code == 201
        got = c.get("/v1/logs/sc/audit/stats", params={"group_by": "actor", "top": 100}).json()
    (bucket,) = got["buckets"]
    assert len(got["groups"]) == 65 and got["groups"][-1] == "other"
    assert bucket["total"] == 100 and bucket["counts"]["other"] == 36
    assert sum(bucket["counts"].values()) == 100


def test_stats_are_rebuilt_from_the_log(tmp_path: Path) -> None:
    """The aggregates are derived: deleted, they are made again from the log."""
    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.demo) as c:
        events = [{"action": "x" if i % 3 else "y"} for i in range(30)]
        assert c.post("/v1/logs/demo/events/entries", **_ndjson(events)).status_code == 201
        params = {"group_by": "action", "bucket": "1h"}
        before = c.get("/v1/logs/demo/events/stats", params=params).json()
        demo = s.demo
    assert before["groups"] == ["x", "y"] and before["buckets"][0]["total"] == 30
    derived = data / "derived" / "stats" / "demo"
    assert (derived / "events.db").exists()
    for f in derived.iterdir():
        f.unlink()
    with run_server(data) as s, s.client(demo) as c:
        after = c.get("/v1/logs/demo/events/stats", params=params).json()
    assert after["buckets"] == before["buckets"] and after["groups"] == before["groups"]


def test_stats_refuses_bad_input(server: Server) -> None:
    key = _tenant(server, "sb")
    other = _tenant(server, "sb2")
    stats = "/v1/logs/sb/audit/stats"
    with server.client(key) as c:
        for params, says in [
            ({"bucket": "2m"}, "bucket must be one of"),
            ({"from": "1h", "to": "2h"}, "from must be before to"),
            ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "before"),
            ({"from": "-30d", "bucket": "1m"}, "buckets of 1m"),
            ({"from": "-500d", "bucket": "1d"}, "at most 400 days"),
            ({"group_by": "resource"}, "group_by must be one of"),
            ({"top": 0}, "top must be between"),
            ({"top": 1000}, "top must be between"),
            ({"from": "yesterday"}, "cannot read time"),
            ({"since": "1h"}, "unknown query parameter"),
        ]:
            assert says in _err(c.get(stats, params=params), 400), params
        _err(c.get("/v1/logs/sb2/audit/stats"), 404)
        _err(c.get("/v1/logs/sb/nope/stats"), 404)
    with server.client(other) as c:
        _err(c.get(stats), 404)
    with server.client(server.operator) as op:
        _err(op.get(stats), 403)
    with server.client() as anon:
        _err(anon.get(stats), 401)


# --- usage and quotas ------------------------------------------------------------


def test_usage_per_day_and_log(server: Server) -> None:
    key = _tenant(server, "us")
    with server.client(key) as c:
        r = c.post("/v1/tenants/us/logs", json={"name": "second"})
        assert r.status_code == 201
        r1 = c.post("/v1/logs/us/audit/entries", **_ndjson([{"n": i} for i in range(4)]))
        r2 = c.post("/v1/logs/us/second/entries", json={"n": 1})
        assert r1.status_code == r2.status_code == 201
        sizes = [len(e["entry"]) for e in c.get("/v1/logs/us/audit/entries").json()["entries"]]
        got = c.get("/v1/tenants/us/usage").json()
        assert set(got) == {"tenant", "days", "quota"}
        assert got["tenant"] == "us" and got["quota"] == {"entries_per_day": None, "bytes": None}
        (day,) = got["days"]
        assert day["day"] == time.strftime("%Y-%m-%d", time.gmtime())
        assert day["logs"]["audit"] == {"entries": 4, "bytes": sum(sizes)}
        assert day["logs"]["second"]["entries"] == 1 and "_system" not in day["logs"]
        assert day["entries"] == 5
        assert day["bytes"] == sum(sizes) + day["logs"]["second"]["bytes"]
        old = c.get("/v1/tenants/us/usage", params={"from": "2020-01-01", "to": "2020-02-01"})
        assert old.json()["days"] == []
        _err(c.get("/v1/tenants/us/usage", params={"from": "-500d"}), 400)
        _err(c.get("/v1/tenants/us/usage", params={"from": "1h", "to": "2h"}), 400)
        _err(c.get("/v1/tenants/sb/usage"), 404)  # another tenant's
    with server.client(server.operator) as op:  # the operator sees it too (billing)
        assert op.get("/v1/tenants/us/usage").json()["days"][0]["entries"] == 5
        _err(op.get("/v1/tenants/nobody/usage"), 404)
    with server.client(server.demo) as demo:  # append/read key of another tenant
        _err(demo.get("/v1/tenants/us/usage"), 404)
    # The operator's CLI prints the same figures (for billing).
    printed = json.loads(cli(server.data, "tenant", "usage", "us").stdout)
    with server.client(key) as c:
        assert printed == c.get("/v1/tenants/us/usage").json()
    said = cli(server.data, "tenant", "usage", "us", "--from", "1h", "--to", "2h", ok=False)
    assert "--from must be before --to" in said.stderr
    said = cli(server.data, "tenant", "usage", "us", "--from", "500d", ok=False)
    assert "400 days" in said.stderr


def _size(c: httpx.Client, path: str) -> int:
    return int(c.get(f"/v1/logs/{path}").json()["size"])


def test_quotas_refuse_whole_requests(server: Server) -> None:
    key = _tenant(server, "qt")
    with server.client(key) as c:
        assert c.post("/v1/logs/qt/audit/entries", json={"n": 0}).status_code == 201
        # Only the operator sets quotas.
        _err(c.put("/v1/tenants/qt/quota", json={"entries_per_day": 3}), 403)
    with server.client(server.operator) as op:
        for body in [{"entries_per_day": -1}, {"bytes": "x"}, {"entries": 3}, [1]]:
            _err(op.put("/v1/tenants/qt/quota", json=body), 400)
        _err(op.put("/v1/tenants/nobody/quota", json={"bytes": 1}), 404)
        r = op.put("/v1/tenants/qt/quota", json={"entries_per_day": 3})
        assert r.status_code == 200 and r.json() == {"entries_per_day": 3, "bytes": None}
    time.sleep(2.2)  # every worker re-reads the quota within two seconds
    with server.client(key) as c:
        assert c.get("/v1/tenants/qt/quota").json() == {"entries_per_day": 3, "bytes": None}
        assert c.get("/v1/tenants/qt/usage").json()["quota"]["entries_per_day"] == 3
        # A batch that would go over is refused whole: nothing written.
        r = c.post("/v1/logs/qt/audit/entries", **_ndjson([{"n": i} for i in range(3)]))
        msg = _err(r, 429, "quota_exceeded")
        assert "nothing was appended" in msg and "used 1 of its 3" in msg
        assert 1 <= int(r.headers["retry-after"]) <= 86400
        assert _size(c, "qt/audit") == 1
        assert c.post("/v1/logs/qt/audit/entries", **_ndjson([{"n": 1}, {"n": 2}])).status_code
        assert _size(c, "qt/audit") == 3
        time.sleep(2.1)  # each worker counts the other's appends within two seconds
        for _ in range(4):  # whichever worker answers, its count includes the others'
            _err(c.post("/v1/logs/qt/audit/entries", json={"n": 9}), 429, "quota_exceeded")
        assert _size(c, "qt/audit") == 3
        stored = c.get("/v1/tenants/qt/usage").json()["days"][0]["bytes"]
    with server.client(server.operator) as op:
        r = op.put("/v1/tenants/qt/quota", json={"entries_per_day": None, "bytes": stored + 10})
        assert r.status_code == 200
    time.sleep(2.2)  # every worker re-reads the quota within two seconds
    with server.client(key) as c:
        msg = _err(
            c.post("/v1/logs/qt/audit/entries", json={"n": 4}), 507, "storage_quota_exceeded"
        )
        assert f"stores {stored} bytes" in msg and "nothing was appended" in msg
        assert _size(c, "qt/audit") == 3
        # Other tenants are not limited.
    with server.client(server.demo) as demo:
        assert demo.post("/v1/logs/demo/events/entries", json={"n": 1}).status_code == 201
    # The operator's CLI shows and changes it; bad values are refused with a message.
    out = cli(server.data, "tenant", "quota", "qt").stdout
    assert out.strip() == f"tenant qt: entries per day none, bytes {stored + 10}"
    bad = cli(server.data, "tenant", "quota", "qt", "--bytes", "lots", ok=False)
    assert "--bytes must be an integer" in bad.stderr
    cli(server.data, "tenant", "quota", "nobody", "--bytes", "1", ok=False)
    out = cli(server.data, "tenant", "quota", "qt", "--bytes", "none", "--entries-per-day", "100")
    assert out.stdout.strip() == "tenant qt: entries per day 100, bytes none"
    time.sleep(2.2)
    with server.client(key) as c:
        assert c.post("/v1/logs/qt/audit/entries", json={"n": 5}).status_code == 201
        # Every change is in the tenant's system log.
        acts = c.get("/v1/logs/qt/_system/entries", params={"action": "quota.set"}).json()
        assert len(acts["entries"]) == 3


# --- Prometheus ---------------------------------------------------------------------


def test_tenant_counters_are_bounded(server: Server) -> None:
    """IRONLOG_METRICS_TENANTS=2: demo and the tenant made after it are labelled,
    later ones count as tenant="other"; summed over both workers."""
    with server.client(server.operator) as op:
        before = _tenant_counts(op.get("/metrics").text)
    keys = {name: _tenant(server, name) for name in ("mx1", "mx2")}  # mx2: third at least
    with server.client(keys["mx1"]) as c:
        for i in range(5):
            assert c.post("/v1/logs/mx1/audit/entries", json={"i": i}).status_code == 201
    with server.client(keys["mx2"]) as c:
        assert c.post("/v1/logs/mx2/audit/entries", **_ndjson([{"i": 1}] * 7)).status_code == 201
    with server.client(server.operator) as op:
        text = op.get("/metrics").text
    after = _tenant_counts(text)
    labelled = set(after) - {"other"}
    assert len(labelled) <= 2 and "mx2" not in labelled
    grew = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    system = 0  # the tenants' system logs (their creation, keys, logs) count too
    for name, key in keys.items():
        with server.client(key) as c:
            system += _size(c, f"{name}/_system")
    assert sum(grew.values()) == 12 + system  # every append counted once, under some label
    assert grew["other"] >= 7 and set(grew) <= {"other", "mx1"}
    assert "ironlog_tenant_appended_bytes_total" in text


def _tenant_counts(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(
        r'^ironlog_tenant_appended_entries_total\{tenant="([^"]*)"\} (\S+)$', text, re.M
    ):
        out[m.group(1)] = float(m.group(2))
    return out


# --- evidence -------------------------------------------------------------------------


def test_evidence_over_http_is_the_cli_bundle(server: Server, tmp_path: Path) -> None:
    key = _tenant(server, "ev")
    with server.client(key) as c:
        for i in range(6):
            assert c.post("/v1/logs/ev/audit/entries", json={"i": i}).status_code == 201
        vkey = c.get("/v1/logs/ev/audit").json()["vkey"]
        r = c.get("/v1/logs/ev/audit/evidence", params=[("index", 1), ("index", 4)])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        http_bytes = r.content
        ranged = c.get("/v1/logs/ev/audit/evidence", params={"from": "1h"})
        assert [e["index"] for e in ranged.json()["entries"]] == list(range(6))
    out = tmp_path / "cli.json"
    cli(server.data, "evidence", "export", "ev/audit", "--index", "1", "--index", "4",
        "--output", str(out))  # fmt: skip
    # Byte for byte the same, but for the time of export.
    stamp = re.compile(rb'"exported_at": "[^"]*"')
    assert stamp.sub(b"", http_bytes) == stamp.sub(b"", out.read_bytes())
    assert [e["index"] for e in json.loads(http_bytes)["entries"]] == [1, 4]
    # The auditor's offline check, with the log's key pinned.
    got = tmp_path / "http.json"
    got.write_bytes(http_bytes)
    p = subprocess.run(
        [sys.executable, "-m", "ironlog.evidence", "verify", str(got), "--vkey", vkey],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_evidence_refuses_bad_selections(server: Server) -> None:
    key = _tenant(server, "eb")
    ev = "/v1/logs/eb/audit/evidence"
    with server.client(key) as c:
        assert c.post("/v1/logs/eb/audit/entries", json={"i": 0}).status_code == 201
        assert "no entries selected" in _err(c.get(ev), 400)
        assert "does not exist" in _err(c.get(ev, params={"index": 5}), 400)
        _err(c.get(ev, params={"index": -1}), 400)
        _err(c.get(ev, params={"index": "x"}), 400)
        _err(c.get(ev, params={"from": "last week"}), 400)
        assert "no entries selected" in _err(
            c.get(ev, params={"from": "2020-01-01", "to": "2020-01-02"}), 400
        )
        _err(c.get(ev, params={"size": 1}), 400)
        _err(c.get("/v1/logs/demo/events/evidence", params={"index": 0}), 404)
    with server.client(server.operator) as op:
        _err(op.get(ev, params={"index": 0}), 403)
    with server.client() as anon:
        _err(anon.get(ev, params={"index": 0}), 401)
