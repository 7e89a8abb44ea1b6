"""A log in ``interval`` mode, through what users touch (HTTP, the SDK, the
CLI): receipts carry the entry, its index and an inclusion proof to an
unsigned root; the signed checkpoint follows once an fsync made the tree
durable, and only signed checkpoints are ever served.  (The power cut itself
is in tests/test_powerloss.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ironlog.client import AsyncClient, Client
from ironlog.core import merkle
from ironlog.core.evidence import verify_proof_file
from ironlog.core.note import Verifier, b64decode, open_checkpoint
from ironlog.errors import ForkError
from tests.server import Server, run_server
from tests.test_cli import run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("later") / "data") as s:
        yield s


@pytest.fixture(scope="module")
def key(server: Server) -> str:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.operator}"}
    ) as op:
        assert op.post("/v1/tenants", json={"name": "acme"}).status_code == 201
        k = str(
            op.post("/v1/tenants/acme/keys", json={"scopes": "append,read,admin"}).json()["key"]
        )
    with server.client(k) as c:
        r = c.post("/v1/tenants/acme/logs", json={"name": "pay", "durability": "interval:50"})
        assert r.status_code == 201, r.text
    return k


def test_http_receipt_has_an_unsigned_root_and_only_signed_checkpoints_are_served(
    server: Server, key: str
) -> None:
    with server.client(key) as c:
        info = c.get("/v1/logs/acme/pay").json()
        vkey = Verifier.from_vkey(info["vkey"])
        for i in range(5):
            body = c.post("/v1/logs/acme/pay/entries", json={"n": i}).json()
            # Not signed in the commit: the tree is not durable yet.
            assert body["checkpoint"] is None, body
            size, root = body["size"], b64decode(body["root"])
            assert size == i + 1
            merkle.verify_inclusion(
                body["index"],
                size,
                merkle.leaf_hash(body["entry"].encode()),
                [b64decode(h) for h in body["inclusion_proof"]],
                root,
            )
        batch = c.post(
            "/v1/logs/acme/pay/entries",
            content=b'{"n": 5}\n{"n": 6}\n',
            headers={"Content-Type": "application/x-ndjson"},
        ).json()
        assert batch["checkpoint"] is None and batch["size"] == 7 and batch["root"]
        # The entry's proof waits for the signed checkpoint that covers it.
        got = c.get("/v1/logs/acme/pay/entries/6").json()
        cp = open_checkpoint(got["checkpoint"], vkey).checkpoint
        assert cp.size == 7
        # A tlog-proof is always against a signed checkpoint.
        r = c.post(
            "/v1/logs/acme/pay/entries", json={"n": 7}, headers={"Accept": "text/x.tlog-proof"}
        )
        assert r.status_code == 201, r.text
        entry = c.get("/v1/logs/acme/pay/entries/7").json()["entry"].encode()
        assert verify_proof_file(r.content, entry, info["vkey"]).passed
        # /checkpoint and the tlog-tiles checkpoint: signed, of a durable tree.
        for path in ("/v1/logs/acme/pay/checkpoint", "/logs/acme/pay/checkpoint"):
            cp = open_checkpoint(c.get(path).text, vkey).checkpoint
            assert cp.size == 8
        assert c.get("/v1/logs/acme/pay").json()["signed_size"] == 8


def test_sdk_fetches_the_signed_checkpoint_later(server: Server, key: str, tmp_path: Path) -> None:
    with Client(server.url, key, state_file=tmp_path / "t.json", trust_on_first_use=True) as c:
        r = c.append("acme/pay", {"actor": "alice"})
        assert r.checkpoint is None and r.size == r.index + 1 and r.root
        s = c.signed(r)
        assert s.checkpoint is not None and s.checkpoint.checkpoint.size >= r.size
        assert s.entry == r.entry and s.index == r.index
        # The trusted state moved to the signed checkpoint.
        assert c.checkpoint("acme/pay").checkpoint.size >= r.size
        w = c.append("acme/pay", {"actor": "bob"}, wait_signed=True)
        assert w.checkpoint is not None and w.checkpoint.checkpoint.size > w.index
        b = c.append_many("acme/pay", [{"n": 1}, {"n": 2}])
        assert b.checkpoint is None and b.size == b.first_index + 2
        assert c.signed(b).checkpoint is not None
        # A receipt whose tree the signed log does not extend: its entries were lost.
        r2 = c.append("acme/pay", {"actor": "carol"})
        with pytest.raises(ForkError, match="were lost"):
            c.signed(dataclasses.replace(r2, root=bytes(32)))


def test_cli_append_and_proof_print_signed_checkpoints(server: Server, key: str) -> None:
    p = run(server.data, "append", "acme/pay", stdin=b'{"cli": 1}\n{"cli": 2}\n')
    text = p.stdout.split("\n", 1)[1]
    vkey = httpx.get(
        f"{server.url}/v1/logs/acme/pay", headers={"Authorization": f"Bearer {key}"}
    ).json()["vkey"]
    size = open_checkpoint(text, Verifier.from_vkey(vkey)).checkpoint.size
    proof = run(server.data, "proof", "acme/pay", "--index", str(size - 1)).stdout
    entry = httpx.get(
        f"{server.url}/v1/logs/acme/pay/entries/{size - 1}",
        headers={"Authorization": f"Bearer {key}"},
    ).json()["entry"]
    assert '"cli":2' in entry
    assert verify_proof_file(proof.encode(), entry.encode(), vkey).passed


def test_nothing_unsigned_is_served_before_the_fsync(server: Server, key: str) -> None:
    """interval:60000: for a minute after the appends nothing is durable, so no
    checkpoint, tile or bundle of those entries is served yet."""
    with server.client(key) as c:
        r = c.post("/v1/tenants/acme/logs", json={"name": "slow", "durability": "interval:60000"})
        assert r.status_code == 201, r.text
        for i in range(3):
            assert c.post("/v1/logs/acme/slow/entries", json={"n": i}).status_code == 201
        info = c.get("/v1/logs/acme/slow").json()
        assert (info["size"], info["signed_size"]) == (3, 0)
        for path in (
            "/v1/logs/acme/slow/checkpoint",
            "/logs/acme/slow/checkpoint",
            "/logs/acme/slow/tile/entries/000.p/3",
            "/logs/acme/slow/tile/0/000.p/3",
        ):
            got = c.get(path)
            assert got.status_code == 404, (path, got.status_code, got.text)
            assert got.json()["error"]["code"] == "not_found"


def test_async_sdk_fetches_the_signed_checkpoint_later(server: Server, key: str) -> None:
    async def run() -> None:
        async with AsyncClient(server.url, key, trust_on_first_use=True) as c:
            r = await c.append("acme/pay", {"actor": "dora"})
            assert r.checkpoint is None
            s = await c.signed(r)
            assert s.checkpoint is not None and s.checkpoint.checkpoint.size >= r.size
            w = await c.append("acme/pay", {"actor": "eve"}, wait_signed=True)
            assert w.checkpoint is not None
            b = await c.append_many("acme/pay", [{"n": 3}])
            assert (await c.signed(b)).checkpoint is not None
            with pytest.raises(ForkError, match="were lost"):
                await c.signed(dataclasses.replace(r, root=bytes(32)))

    asyncio.run(run())
