"""The HTTP service, end to end against a real ``ironlog serve`` process."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironlog.core import merkle, note, tiles, tlogproof
from tests.pki import CA
from tests.server import Server, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("srv") / "data") as s:
        yield s


def _err(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    return str(body["error"]["message"])


def _tenant_with_key(s: Server, name: str, scopes: str = "append,read,admin") -> str:
    with s.client(s.operator) as op:
        r = op.post("/v1/tenants", json={"name": name})
        assert r.status_code in (201, 409), r.text
        r = op.post(f"/v1/tenants/{name}/keys", json={"scopes": scopes, "name": "t"})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        assert "secret_hash" not in r.json()
        return str(key)


def test_health_and_auth(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        _err(c.get("/v1/logs/demo/events"), 401, "unauthenticated")
        _err(c.get("/v1/logs/demo/events", headers={"Authorization": "Bearer nope"}), 401)
        _err(c.get("/v1/logs/demo/events", headers={"X-API-Key": server.demo[:-2] + "xx"}), 401)
        assert c.get("/v1/logs/demo/events", headers={"X-API-Key": server.demo}).status_code == 200
        _err(c.get("/no/such/path"), 404, "not_found")
        assert c.get("/schema/openapi.json").json()["info"]["title"] == "ironlog"


def test_receipts_verify_with_pure_core(server: Server) -> None:
    with server.client(server.demo) as c:
        info = c.get("/v1/logs/demo/events").json()
        vkey = note.Verifier.from_vkey(info["vkey"])
        assert info["origin"] == "ironlog.localhost/demo/events"
        for i in range(20):
            r = c.post("/v1/logs/demo/events/entries", json={"actor": "alice", "n": i})
            assert r.status_code == 201, r.text
            rec = r.json()
            cp = note.open_checkpoint(rec["checkpoint"], vkey).checkpoint
            entry = rec["entry"].encode()
            assert json.loads(entry)["n"] == i and json.loads(entry)["source"] == "http"
            proof = [note.b64decode(h) for h in rec["inclusion_proof"]]
            merkle.verify_inclusion(rec["index"], cp.size, merkle.leaf_hash(entry), proof, cp.root)
            assert note.b64decode(rec["leaf_hash"]) == merkle.leaf_hash(entry)
        r = c.post(
            "/v1/logs/demo/events/entries",
            json={"actor": "bob"},
            headers={"Accept": "text/x.tlog-proof"},
        )
        assert r.status_code == 201 and r.headers["content-type"].startswith("text/x.tlog-proof")
        p = tlogproof.parse_tlog_proof(r.text)
        entry = c.get(f"/v1/logs/demo/events/entries/{p.index}").json()["entry"].encode()
        p.verify(entry, vkey)


def test_ndjson_batch_all_or_nothing(server: Server) -> None:
    key = _tenant_with_key(server, "batchco")
    with server.client(key) as c:
        assert c.post("/v1/tenants/batchco/logs", json={"name": "b"}).status_code == 201
        body = b"".join(json.dumps({"n": i}).encode() + b"\n" for i in range(500))
        h = {"Content-Type": "application/x-ndjson"}
        r = c.post("/v1/logs/batchco/b/entries", content=body, headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["first_index"] == 0 and r.json()["count"] == 500
        bad = body + b"[1]\n" + body
        msg = _err(
            c.post("/v1/logs/batchco/b/entries", content=bad, headers=h), 400, "invalid_entry"
        )
        assert "line 501" in msg and "nothing was appended" in msg
        assert c.get("/v1/logs/batchco/b").json()["size"] == 500
        for raw, code in [
            (b"not json", 400),
            (b"{" * 10, 400),
            (json.dumps({"a": "x" * 70000}).encode(), 400),
        ]:
            _err(
                c.post(
                    "/v1/logs/batchco/b/entries",
                    content=raw,
                    headers={"Content-Type": "application/json"},
                ),
                code,
            )
        _err(
            c.post(
                "/v1/logs/batchco/b/entries", content=b"{}", headers={"Content-Type": "text/plain"}
            ),
            415,
        )
        big = b'{"a":"' + b"x" * (17 << 20) + b'"}'
        _err(
            c.post(
                "/v1/logs/batchco/b/entries",
                content=big,
                headers={"Content-Type": "application/json"},
            ),
            413,
        )
        assert c.get("/v1/logs/batchco/b").json()["size"] == 500


def test_tiles_match_independent_rebuild(server: Server) -> None:
    key = _tenant_with_key(server, "tileco")
    with server.client(key) as c:
        c.post("/v1/tenants/tileco/logs", json={"name": "t"})
        lines = [json.dumps({"n": i}).encode() + b"\n" for i in range(700)]
        for part in (lines[:300], lines[300:]):  # checkpoints at 300 and 700
            r = c.post(
                "/v1/logs/tileco/t/entries",
                content=b"".join(part),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert r.status_code == 201
        entries = []
        params: dict[str, str | int] = {"limit": 300}
        while True:
            page = c.get("/v1/logs/tileco/t/entries", params=params).json()
            entries += [e["entry"].encode() for e in page["entries"]]
            if page["next_cursor"] is None:
                break
            params = {"cursor": page["next_cursor"], "limit": 300}
        assert len(entries) == 700
        builder = tiles.TileBuilder()
        want = dict(
            (ref.path(), data) for ref, data in builder.add([merkle.leaf_hash(e) for e in entries])
        )
        want.update((ref.path(), data) for ref, data in builder.partials())
        for path, data in want.items():
            r = c.get(f"/logs/tileco/t/{path}")
            assert r.status_code == 200 and r.content == data, path
            assert ("immutable" in r.headers["cache-control"]) == (".p/" not in path)
        bundle = c.get("/logs/tileco/t/tile/entries/002.p/188").content
        assert tiles.decode_bundle(bundle) == entries[512:700]
        assert (
            tiles.decode_bundle(c.get("/logs/tileco/t/tile/entries/000").content) == entries[:256]
        )
        _err(c.get("/logs/tileco/t/tile/0/002.p/189"), 404)
        _err(c.get("/logs/tileco/t/tile/0/003"), 404)
        _err(c.get("/logs/tileco/t/tile/0/5"), 404)
        cp = c.get("/logs/tileco/t/checkpoint").text
        vkey = note.Verifier.from_vkey(c.get("/v1/logs/tileco/t").json()["vkey"])
        assert note.open_checkpoint(cp, vkey).checkpoint.root == builder.root()
        cons = c.get("/v1/logs/tileco/t/proof/consistency", params={"from_size": 300}).json()
        old = note.open_checkpoint(cons["from_checkpoint"], vkey).checkpoint
        merkle.verify_consistency(
            300, 700, [note.b64decode(h) for h in cons["proof"]], old.root, builder.root()
        )
        inc = c.get("/v1/logs/tileco/t/proof/inclusion", params={"index": 5, "size": 700}).json()
        merkle.verify_inclusion(
            5,
            700,
            merkle.leaf_hash(entries[5]),
            [note.b64decode(h) for h in inc["inclusion_proof"]],
            builder.root(),
        )
        _err(c.get("/v1/logs/tileco/t/proof/inclusion", params={"index": 700}), 400)
        # An entry outside the tree asked for is the caller's error, whatever the size.
        for size in (0, 5):
            r = c.get("/v1/logs/tileco/t/proof/inclusion", params={"index": 5, "size": size})
            _err(r, 400)


def test_tenant_isolation_and_scopes(server: Server) -> None:
    a = _tenant_with_key(server, "alpha")
    b = _tenant_with_key(server, "beta")
    with server.client(a) as ca, server.client(b) as cb:
        assert ca.post("/v1/tenants/alpha/logs", json={"name": "l"}).status_code == 201
        assert ca.post("/v1/logs/alpha/l/entries", json={"secret": 1}).status_code == 201
        for path in [
            "/v1/logs/alpha/l",
            "/v1/logs/alpha/l/entries",
            "/v1/logs/alpha/l/entries/0",
            "/v1/logs/alpha/l/checkpoint",
            "/logs/alpha/l/checkpoint",
            "/logs/alpha/l/tile/0/000.p/1",
            "/v1/tenants/alpha/keys",
            "/v1/tenants/alpha/logs",
        ]:
            _err(cb.get(path), 404)
        _err(cb.post("/v1/logs/alpha/l/entries", json={"x": 1}), 404)
        _err(cb.post("/v1/tenants/alpha/logs", json={"name": "x"}), 404)
        _err(cb.post("/v1/tenants", json={"name": "gamma"}), 403)
        r = ca.post("/v1/tenants/alpha/keys", json={"scopes": "read"})
        reader = r.json()["key"]
        with server.client(reader) as cr:
            _err(cr.post("/v1/logs/alpha/l/entries", json={"x": 1}), 403, "forbidden")
            assert cr.get("/v1/logs/alpha/l/entries").status_code == 200
            _err(cr.post("/v1/tenants/alpha/keys", json={"scopes": "admin"}), 403)
        _err(ca.post("/v1/tenants/alpha/keys", json={"scopes": "root"}), 400)
        _err(ca.post("/v1/tenants/alpha/keys", json={"scopes": "read", "extra": 1}), 400)


def test_rotation_and_revocation(server: Server) -> None:
    admin = _tenant_with_key(server, "rotco")
    with server.client(admin) as c:
        c.post("/v1/tenants/rotco/logs", json={"name": "l"})
        r = c.post("/v1/tenants/rotco/keys", json={"scopes": "append", "name": "ingest"})
        old, old_id = r.json()["key"], r.json()["id"]
        r = c.post(f"/v1/tenants/rotco/keys/{old_id}/rotate", json={})
        new = r.json()["key"]
        assert r.json()["replaces"] == old_id and r.json()["scopes"] == ["append"]
        for k in (old, new):  # overlap: both work
            with server.client(k) as ck:
                assert ck.post("/v1/logs/rotco/l/entries", json={"k": 1}).status_code == 201
        assert c.delete(f"/v1/tenants/rotco/keys/{old_id}").status_code == 200
        with server.client(old) as ck:
            assert "revoked" in _err(ck.post("/v1/logs/rotco/l/entries", json={"k": 1}), 401)
        with server.client(new) as ck:
            assert ck.post("/v1/logs/rotco/l/entries", json={"k": 2}).status_code == 201
        ids = {k["id"]: k for k in c.get("/v1/tenants/rotco/keys").json()["keys"]}
        assert ids[old_id]["revoked_us"] is not None
        r = c.post("/v1/tenants/rotco/keys", json={"scopes": "read", "expires_in": 1})
        short = r.json()["key"]
        time.sleep(1.2)
        with server.client(short) as ck:
            assert "expired" in _err(ck.get("/v1/logs/rotco/l"), 401)
    with server.client(server.operator) as op:
        assert op.post("/v1/tenants/rotco/disable").status_code == 200
        with server.client(admin) as c:
            assert "disabled" in _err(c.get("/v1/logs/rotco/l"), 401)
        assert op.post("/v1/tenants/rotco/enable").status_code == 200


def test_secrets_never_in_server_output(server: Server) -> None:
    # The server runs with access logs off; its data dir holds only hashes of keys.
    raw = (server.data / "control.db").read_bytes()
    secret = server.demo[len("ilk_") + 17 :]
    assert len(secret) >= 40
    assert server.demo.encode() not in raw and secret.encode() not in raw


def test_idempotency_key_over_http(server: Server) -> None:
    with server.client(server.demo) as c:
        h = {"Idempotency-Key": "order-42"}
        r1 = c.post("/v1/logs/demo/events/entries", json={"order": 42}, headers=h)
        size = c.get("/v1/logs/demo/events").json()["size"]
        r2 = c.post("/v1/logs/demo/events/entries", json={"order": 42}, headers=h)
        assert r1.status_code == r2.status_code == 201
        assert r1.json() == r2.json()
        assert c.get("/v1/logs/demo/events").json()["size"] == size
        _err(
            c.post("/v1/logs/demo/events/entries", json={}, headers={"Idempotency-Key": "x" * 300}),
            400,
        )


def test_one_idempotency_key_in_one_batch_over_http(server: Server) -> None:
    """A JSON append and an NDJSON batch with the same Idempotency-Key and
    event, committed in one batch (both wait while another process holds the
    log's writer lock): each gets a 201 of its own kind, one entry appended."""
    key = _tenant_with_key(server, "idemco")
    url = "/v1/logs/idemco/b/entries"
    with server.client(key) as c:
        assert c.post("/v1/tenants/idemco/logs", json={"name": "b"}).status_code == 201
        assert c.post(url, json={"n": 0}).status_code == 201
        answers: dict[str, httpx.Response] = {}

        def post(name: str, **kw: Any) -> None:
            with server.client(key) as own:
                answers[name] = own.post(url, **kw)

        fd = os.open(server.data / "logs" / "idemco" / "b.db.lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process appending would
        try:
            blocked = threading.Thread(target=post, args=("blocked",), kwargs={"json": {"n": 1}})
            blocked.start()
            time.sleep(1.0)  # the writer took it and waits for the lock
            h = {"Idempotency-Key": "order-7"}
            nd = {**h, "Content-Type": "application/x-ndjson"}
            posts = [
                threading.Thread(
                    target=post, args=("one",), kwargs={"json": {"o": 7}, "headers": h}
                ),
                threading.Thread(
                    target=post, args=("batch",), kwargs={"content": b'{"o": 7}\n', "headers": nd}
                ),
            ]
            for t in posts:
                t.start()
            time.sleep(1.0)  # both wait behind the blocked commit
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        for t in [blocked, *posts]:
            t.join(30)
        assert answers["blocked"].status_code == 201, answers["blocked"].text
        one, batch = answers["one"], answers["batch"]
        assert one.status_code == 201 and batch.status_code == 201, (one.text, batch.text)
        assert batch.json()["first_index"] == one.json()["index"] == 2
        assert batch.json()["count"] == 1
        assert c.get("/v1/logs/idemco/b").json()["size"] == 3


def _wait(fn: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_integrity_gate_fails_closed(server: Server) -> None:
    key = _tenant_with_key(server, "gateco")
    with server.client(key) as c, server.client(server.operator) as op:
        c.post("/v1/tenants/gateco/logs", json={"name": "g"})
        body = b"".join(json.dumps({"n": i}).encode() + b"\n" for i in range(600))
        c.post(
            "/v1/logs/gateco/g/entries",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )

        def state() -> dict[str, object]:
            logs = c.get("/v1/integrity").json()["logs"]
            # only this tenant's logs (its system log and g)
            assert [x["log"] for x in logs] == ["gateco/_system", "gateco/g"]
            return dict(logs[1])

        _wait(lambda: state()["verified_size"] == 600 and state()["last_full_pass_us"])
        db = server.data / "logs" / "gateco" / "g.db"
        con = sqlite3.connect(db)
        original = con.execute("SELECT data FROM tiles WHERE level=0 AND idx=1").fetchone()[0]
        con.execute("UPDATE tiles SET data=? WHERE level=0 AND idx=1", (b"\x00" * len(original),))
        con.commit()
        _wait(lambda: state()["failure"] is not None)
        st = state()
        assert "tile/0/001" in str(st["failure"]) and st["writable"] is False
        msg = _err(c.post("/v1/logs/gateco/g/entries", json={"x": 1}), 503, "integrity_failure")
        assert "integrity check failed" in msg and "tile/0/001" in msg
        assert c.get("/v1/logs/gateco/g/entries/3").status_code == 200  # reads still work
        _err(c.post("/v1/integrity/gateco/g/clear"), 403)
        _err(op.post("/v1/integrity/gateco/g/clear"), 422)
        _err(c.post("/v1/logs/gateco/g/entries", json={"x": 1}), 503)
        con.execute("UPDATE tiles SET data=? WHERE level=0 AND idx=1", (original,))
        con.commit()
        con.close()
        r = op.post("/v1/integrity/gateco/g/clear")
        assert r.status_code == 200 and r.json()["failure"] is None, r.text
        assert c.post("/v1/logs/gateco/g/entries", json={"x": 1}).status_code == 201
        all_logs = op.get("/v1/integrity").json()["logs"]
        assert {"gateco/g", "demo/events"} <= {x["log"] for x in all_logs}


def test_metrics(server: Server) -> None:
    with server.client(server.demo) as c:
        for i in range(3):
            c.post("/v1/logs/demo/events/entries", json={"m": i})
        c.post(
            "/v1/logs/demo/events/entries",
            content=b"[]",
            headers={"Content-Type": "application/json"},
        )
        _err(c.get("/metrics"), 403)
    with server.client(server.operator) as op:
        text = op.get("/metrics").text
    assert 'ironlog_appended_entries_total{log="events",tenant="demo"}' in text
    assert "ironlog_appended_bytes_total" in text
    assert "ironlog_batch_entries_bucket" in text and "ironlog_commit_seconds_bucket" in text
    assert 'ironlog_errors_total{code="invalid_entry"}' in text
    assert "ironlog_rate_limited_total" in text or "ironlog_rate_limited" in text


def test_rate_limit(tmp_path: Path) -> None:
    cfg = tmp_path / "ironlog.toml"
    cfg.write_text("rate_limit = 5\nrate_burst = 5\n")
    with run_server(tmp_path / "data", "--config", str(cfg)) as s, s.client(s.demo) as c:
        codes = [c.get("/v1/logs/demo/events").status_code for _ in range(12)]
        c.post("/v1/logs/demo/events/entries", json={"card": "4111-SECRET-BODY"})
        c.post("/v1/logs/demo/events/entries", content=b"{bad json SECRET-BODY")
        assert codes[:5] == [200] * 5 and 429 in codes
        r = c.get("/v1/logs/demo/events")
        _err(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        time.sleep(1.1)
        assert c.get("/v1/logs/demo/events").status_code == 200
        with s.client(s.operator) as op:
            assert 'ironlog_rate_limited_total{tenant="demo"}' in op.get("/metrics").text
    # The service's own output: no secrets, no event bodies.
    assert s.output, "the server printed nothing after start-up"
    assert "SECRET-BODY" not in s.output and s.demo[20:] not in s.output


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and its CA (returned as the cert to trust)."""
    ca = CA(tmp)
    cert, key = ca.issue("127.0.0.1")
    chain = tmp / "chain.pem"
    chain.write_bytes(cert.read_bytes() + ca.path.read_bytes())
    return chain, key


def test_tls_and_two_workers_share_one_log(tmp_path: Path) -> None:
    import concurrent.futures

    cert, key = _self_signed(tmp_path)
    cfg = tmp_path / "ironlog.toml"
    cfg.write_text(f'workers = 2\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    ctx = ssl.create_default_context(cafile=str(cert))
    with run_server(tmp_path / "data", "--config", str(cfg), scheme="https", verify=ctx) as s:
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(s.url.replace("https", "http") + "/healthz", timeout=2)

        def worker(k: int) -> list[int]:
            with httpx.Client(
                base_url=s.url,
                verify=ctx,
                timeout=30,
                headers={"Authorization": f"Bearer {s.demo}"},
            ) as c:
                out = []
                for i in range(40):
                    r = c.post("/v1/logs/demo/events/entries", json={"w": k, "i": i})
                    assert r.status_code == 201, r.text
                    out.append(r.json()["index"])
                return out

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            indexes = [i for part in pool.map(worker, range(8)) for i in part]
        assert sorted(indexes) == list(range(320))
        with httpx.Client(
            base_url=s.url, verify=ctx, headers={"Authorization": f"Bearer {s.operator}"}
        ) as op:
            text = op.get("/metrics").text
            assert 'ironlog_appended_entries_total{log="events",tenant="demo"} 320.0' in text
    from ironlog.engine.audit import audit_log
    from ironlog.engine.instance import Ironlog

    with Ironlog(tmp_path / "data") as il:
        report = audit_log(il.log("demo", "events"))
        assert report.ok and report.size == 320


def test_out_of_range_numbers_are_4xx(server: Server) -> None:
    huge = "491622961511362592768"  # found by schemathesis: overflowed SQLite's integers
    with server.client(server.demo) as c:
        for path, params in [
            (f"/v1/logs/demo/events/entries/{huge}", {}),
            ("/v1/logs/demo/events/proof/inclusion", {"index": huge}),
            ("/v1/logs/demo/events/proof/inclusion", {"index": 0, "size": huge}),
            ("/v1/logs/demo/events/proof/consistency", {"from_size": huge}),
            ("/v1/logs/demo/events/entries", {"from_index": huge}),
            ("/v1/logs/demo/events/entries", {"cursor": huge}),
            ("/v1/logs/demo/events/entries", {"since": "99999999999999999d"}),
            (f"/logs/demo/events/tile/0/x{'9' * 3}/x{'9' * 3}/x999/x999/x999/x999/x999/999", {}),
            (f"/logs/demo/events/tile/entries/x{'9' * 3}/x999/x999/x999/x999/x999/x999/999", {}),
        ]:
            r = c.get(path, params=params)
            assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)


def test_public_log_tiles_need_no_key(server: Server) -> None:
    key = _tenant_with_key(server, "openco")
    with server.client(key) as c, server.client() as anon:
        r = c.post("/v1/tenants/openco/logs", json={"name": "pub", "public": True})
        assert r.status_code == 201 and r.json()["public"] is True
        c.post("/v1/tenants/openco/logs", json={"name": "priv"})
        for name in ("pub", "priv"):
            c.post(f"/v1/logs/openco/{name}/entries", json={"x": 1})
        assert anon.get("/logs/openco/pub/checkpoint").status_code == 200
        assert anon.get("/logs/openco/pub/tile/0/000.p/1").status_code == 200
        assert len(anon.get("/logs/openco/pub/tile/entries/000.p/1").content) > 2
        _err(anon.get("/v1/logs/openco/pub/entries"), 401)  # the API itself still needs a key
        _err(anon.get("/logs/openco/priv/checkpoint"), 401)
        _err(anon.get("/logs/openco/nope/checkpoint"), 401)
        assert (
            c.post("/v1/tenants/openco/logs/pub/public", json={"public": False}).status_code == 200
        )
        _err(anon.get("/logs/openco/pub/checkpoint"), 401)
        _err(c.post("/v1/tenants/openco/logs/nope/public", json={"public": True}), 404)
