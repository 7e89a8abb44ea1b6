"""The Python SDK against a real server: verified receipts, paging, trusted state,
rollback and fork detection, and the verifying part in a clean virtualenv."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ironlog.client import AsyncClient, Client, verify_entry
from ironlog.errors import (
    AuthenticationError,
    ConflictError,
    ForkError,
    InvalidEntryError,
    NotFoundError,
    RollbackError,
    UnreachableError,
    VerificationError,
)
from tests.server import Server, run_server


def tenant_log(s: Server, tenant: str, log: str = "app", scopes: str = "append,read,admin") -> str:
    """A tenant with one log and a key; returns the key."""
    with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {s.operator}"}) as op:
        assert op.post("/v1/tenants", json={"name": tenant}).status_code in (201, 409)
        key = str(op.post(f"/v1/tenants/{tenant}/keys", json={"scopes": scopes}).json()["key"])
    with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.post(f"/v1/tenants/{tenant}/logs", json={"name": log}).status_code in (201, 409)
    return key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("cli") / "data") as s:
        yield s


def test_client_appends_queries_and_verifies(server: Server, tmp_path: Path) -> None:
    key = tenant_log(server, "sdk")
    state = tmp_path / "trust.json"
    vkey = httpx.get(
        f"{server.url}/v1/logs/sdk/app", headers={"Authorization": f"Bearer {key}"}
    ).json()["vkey"]
    with Client(server.url, key, state_file=state, vkeys={"sdk/app": vkey}) as c:
        r = c.append("sdk/app", {"actor": "alice", "action": "login", "n": 0})
        assert r.index == 0 and r.event["actor"] == "alice" and r.checkpoint.checkpoint.size == 1
        b = c.append_many("sdk/app", [{"actor": "bob", "n": i} for i in range(1, 8)])
        assert (b.first_index, b.count, b.checkpoint.checkpoint.size) == (1, 7, 8)
        again = c.append_many("sdk/app", [{"actor": "bob", "n": 99}], idempotency_key="k1")
        assert again == c.append_many("sdk/app", [{"actor": "bob", "n": 99}], idempotency_key="k1")
        with pytest.raises(ConflictError, match="idempotency key 'k1' was used"):
            c.append_many("sdk/app", [{"actor": "x"}], idempotency_key="k1")  # not a retry
        got = [e.event["n"] for e in c.query("sdk/app", page_size=3)]
        assert got == [0, 1, 2, 3, 4, 5, 6, 7, 99]
        assert [e.index for e in c.query("sdk/app", actor="alice")] == [0]
        assert c.entry("sdk/app", 4).event["n"] == 4
        assert c.checkpoint("sdk/app").checkpoint.size == 9
        assert len(c.consistency_proof("sdk/app", 1, 8)) > 0
        with pytest.raises(VerificationError, match="no checkpoint of size 3"):
            c.consistency_proof("sdk/app", 3, 8)
        proof, cp = c.inclusion_proof("sdk/app", 2, 8)
        assert cp.checkpoint.size == 8
        verify_entry(cp, 2, c.entry("sdk/app", 2).entry, proof)
        with pytest.raises(InvalidEntryError):
            c.append("sdk/app", {"received_at": "now"})
        with pytest.raises(NotFoundError):
            c.entry("sdk/app", 500)
        with pytest.raises(VerificationError, match="no verifier key is pinned for log sdk/nope"):
            c.append("sdk/nope", {"a": 1})  # refused before sending: nothing could verify it
    with Client(server.url, key, trust_on_first_use=True) as c, pytest.raises(NotFoundError):
        c.append("sdk/nope", {"a": 1})
    saved = json.loads(state.read_text())["logs"]["sdk/app"]
    assert saved["vkey"] == vkey and "\n9\n" in saved["checkpoint"]
    # A new client pins from the state file alone; a different key is refused.
    with Client(server.url, key, state_file=state) as c:
        assert c.append("sdk/app", {"n": 10}).index == 9
    other = vkey.split("+")[0] + "+00000000+" + vkey.split("+")[2]
    with pytest.raises(Exception, match="verifier key"):
        Client(server.url, key, state_file=state, vkeys={"sdk/app": other}).checkpoint("sdk/app")
    # No pinned key and no trust-on-first-use: refuse rather than trust.
    with (
        Client(server.url, key) as c,
        pytest.raises(VerificationError, match="no verifier key is pinned"),
    ):
        c.append("sdk/app", {"n": 11})
    bad = Client(server.url, "ilk_wrong", trust_on_first_use=True)
    with bad, pytest.raises(AuthenticationError):
        bad.checkpoint("sdk/app")
    down = Client("http://127.0.0.1:9", key, trust_on_first_use=True)
    with down, pytest.raises(UnreachableError):
        down.checkpoint("sdk/app")


def test_receipt_from_a_lying_server_is_refused(server: Server) -> None:
    """A transport that alters the stored entry in the receipt: the SDK refuses it."""
    key = tenant_log(server, "liar")

    def handler(request: httpx.Request) -> httpx.Response:
        real = httpx.request(
            request.method, str(request.url), headers=request.headers, content=request.content
        )
        if request.method == "POST":
            body = real.json()
            body["entry"] = body["entry"].replace("alice", "mallory")
            body.pop("leaf_hash")
            return httpx.Response(real.status_code, json=body)
        return httpx.Response(real.status_code, content=real.content, headers=real.headers)

    with (
        Client(
            server.url, key, trust_on_first_use=True, transport=httpx.MockTransport(handler)
        ) as c,
        pytest.raises(VerificationError, match="inclusion proof"),
    ):
        c.append("liar/app", {"actor": "alice"})


def test_async_client(server: Server, tmp_path: Path) -> None:
    key = tenant_log(server, "asdk")

    async def main() -> list[int]:
        async with AsyncClient(
            server.url, key, trust_on_first_use=True, state_file=tmp_path / "t.json"
        ) as c:
            rs = await asyncio.gather(*(c.append("asdk/app", {"n": i}) for i in range(20)))
            assert sorted(r.index for r in rs) == list(range(20))
            await c.append_many("asdk/app", [{"n": 20}, {"n": 21}])
            assert (await c.checkpoint("asdk/app")).checkpoint.size == 22
            assert (await c.entry("asdk/app", 21)).event["n"] == 21
            sizes = sorted({r.checkpoint.checkpoint.size for r in rs})
            assert await c.consistency_proof("asdk/app", sizes[0], 22)
            _, cp = await c.inclusion_proof("asdk/app", 4)
            assert cp.checkpoint.size == 22
            return [e.index async for e in c.query("asdk/app", page_size=5)]

    assert asyncio.run(main()) == list(range(22))


def _snapshot(db: Path, to: Path) -> None:
    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def _restore(snapshot: Path, db: Path) -> None:
    """An operator puts back an older copy of a log (``<data>/logs/<t>/<l>.db``)
    and, holding the host, also rewinds the size the control store recorded
    for it (which alone would refuse the log: tests/test_store_integrity.py);
    only clients and witnesses can catch this."""
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copy(snapshot, db)
    control = sqlite3.connect(db.parent.parent.parent / "control.db")
    with control:
        control.execute(
            "UPDATE logs SET signed_size = 0 WHERE tenant = ? AND name = ?",
            (db.parent.name, db.stem),
        )
    control.close()


def test_rollback_and_fork_are_detected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    state = tmp_path / "trust.json"
    snap = tmp_path / "snap.db"
    db = data / "logs" / "rb" / "app.db"
    with run_server(data) as s:
        key = tenant_log(s, "rb")
        with Client(s.url, key, trust_on_first_use=True, state_file=state) as c:
            c.append_many("rb/app", [{"n": i} for i in range(3)])
            _snapshot(db, snap)
            c.append_many("rb/app", [{"n": i} for i in range(3, 6)])
            assert c.checkpoint("rb/app").checkpoint.size == 6
        port = int(s.url.rsplit(":", 1)[1])
    _restore(snap, db)  # the operator serves an older copy of the log
    with run_server(data, port=port) as s, Client(s.url, key, state_file=state) as c:
        with pytest.raises(RollbackError) as rb:
            c.checkpoint("rb/app")
        assert "size 3" in str(rb.value) and "size 6" in str(rb.value)
        # ... and then writes a different history over it.
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}) as h:
            body = b"".join(b'{"evil":%d}\n' % i for i in range(3))
            ndjson = {"Content-Type": "application/x-ndjson"}
            h.post("/v1/logs/rb/app/entries", content=body, headers=ndjson)
            with pytest.raises(ForkError, match="size 6"):
                c.checkpoint("rb/app")
            h.post("/v1/logs/rb/app/entries", content=body, headers=ndjson)
        with pytest.raises(ForkError, match="not consistent") as fk:
            c.checkpoint("rb/app")
        assert "size 9" in str(fk.value) and "size 6" in str(fk.value)
    # The trusted state did not move.
    assert "\n6\n" in json.loads(state.read_text())["logs"]["rb/app"]["checkpoint"]


@pytest.mark.slow
def test_verifying_parts_need_only_the_pure_core(
    server: Server, tmp_path: Path, pure_python: str
) -> None:
    """A clean virtualenv with ``pip install ironlog`` (no extras): a receipt
    from the server verifies; the HTTP client is simply not there."""
    key = tenant_log(server, "pure")
    with Client(server.url, key, trust_on_first_use=True) as c:
        r = c.append("pure/app", {"actor": "alice"})
        vkey = c.log_info("pure/app")["vkey"]
    receipt = {
        "entry": r.entry.decode(),
        "index": r.index,
        "proof": [p.hex() for p in r.inclusion_proof],
        "checkpoint": r.checkpoint.text(),
        "vkey": vkey,
    }
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    script = """
import json, sys
from ironlog.client import TrustStore, LogTrust, verify_entry
r = json.load(open(sys.argv[1]))
t = LogTrust("pure/app", TrustStore(), r["vkey"])
cp = t.open(r["checkpoint"])
verify_entry(cp, r["index"], r["entry"].encode(), [bytes.fromhex(p) for p in r["proof"]])
try:
    verify_entry(cp, r["index"], r["entry"].replace("alice", "bob").encode(),
                 [bytes.fromhex(p) for p in r["proof"]])
    print("tampered entry verified")
except Exception as e:
    print("tampered:", type(e).__name__)
for mod in ("httpx", "litestar", "click"):
    try:
        __import__(mod)
        print("has", mod)
    except ImportError:
        pass
print("verified")
"""
    out = subprocess.run(
        [pure_python, "-c", script, str(tmp_path / "receipt.json")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert out.split() == ["tampered:", "VerificationError", "verified"], out


def test_no_pinned_key_refuses_before_appending(server: Server, tmp_path: Path) -> None:
    """Without vkeys= or trust_on_first_use the client cannot verify a receipt:
    it must say so before sending, not after the entry was appended (a retry
    with the key would then store the event twice)."""
    key = tenant_log(server, "nopin")

    def size() -> int:
        with Client(server.url, key, trust_on_first_use=True) as c:
            return int(c.log_info("nopin/app")["size"])

    before = size()
    with Client(server.url, key, state_file=tmp_path / "t.json") as c:
        with pytest.raises(VerificationError, match="no verifier key is pinned"):
            c.append("nopin/app", {"actor": "alice"})
        with pytest.raises(VerificationError, match="no verifier key is pinned"):
            c.append_many("nopin/app", [{"actor": "bob"}])

    async def run_async() -> None:
        async with AsyncClient(server.url, key) as ac:
            with pytest.raises(VerificationError, match="no verifier key is pinned"):
                await ac.append("nopin/app", {"actor": "carol"})
            with pytest.raises(VerificationError, match="no verifier key is pinned"):
                await ac.append_many("nopin/app", [{"actor": "dave"}])

    asyncio.run(run_async())
    assert size() == before
