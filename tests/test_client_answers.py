"""The SDK against a server that answers wrongly: every malformed answer (not
JSON, a missing field, a wrong type, a receipt or proof that does not verify)
is an ironlog error, never a KeyError/TypeError/ValueError, and both drivers
(``Client``, ``AsyncClient``) behave the same.  The server is a small honest
log behind ``httpx.MockTransport`` whose answers a test spoils one at a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironlog.client import AsyncClient, BatchReceipt, Client, Receipt
from ironlog.core.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    tree_root,
)
from ironlog.core.names import LogRef
from ironlog.core.note import Checkpoint, Signer, b64encode
from ironlog.errors import (
    FormatError,
    InvalidRequestError,
    IronlogError,
    NotFoundError,
    VerificationError,
)

LOG = "acme/pay"
BASE = "/v1/logs/acme/pay"
Spoil = Callable[[str, Any], Any]  # (what the answer is, its body) -> the body sent


@dataclass
class FakeLog:
    """An honest log (sync durability unless ``unsigned``), answering as the service does."""

    signer: Signer = field(default_factory=lambda: Signer.generate("fake.example/acme/pay"))
    leaves: list[bytes] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    unsigned: bool = False
    spoil: Spoil = lambda kind, body: body
    requests: list[str] = field(default_factory=list)

    def node(self, height: int, index: int) -> bytes:
        return root_from_leaves(self.leaves[index << height : (index + 1) << height])

    def root(self, size: int) -> bytes:
        return tree_root(size, self.node)

    def checkpoint(self, size: int | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return Checkpoint(self.signer.name, size, self.root(size)).sign(self.signer)

    def append(self, events: list[bytes]) -> int:
        first = len(self.entries)
        self.entries += events
        self.leaves += [leaf_hash(e) for e in events]
        return first

    def tree(self) -> dict[str, Any]:
        size = len(self.leaves)
        signed = None if self.unsigned else self.checkpoint()
        return {"size": size, "root": b64encode(self.root(size)), "checkpoint": signed}

    def proof(self, index: int, size: int) -> list[str]:
        return [b64encode(h) for h in inclusion_proof(index, size, self.node)]

    def answer(self, request: httpx.Request) -> tuple[str, Any]:
        path, q = request.url.path, request.url.params
        if path == BASE:
            return "info", {"log": LOG, "vkey": self.signer.vkey(), "size": len(self.leaves)}
        if path == f"{BASE}/checkpoint":
            return "checkpoint", self.checkpoint()
        if path == f"{BASE}/entries" and request.method == "POST":
            if request.headers.get("content-type") == "application/x-ndjson":
                events = request.content.splitlines()
                first = self.append(events)
                return "batch", {"first_index": first, "count": len(events), **self.tree()}
            index = self.append([request.content])
            return "receipt", {
                "index": index,
                "leaf_hash": b64encode(self.leaves[index]),
                "entry": self.entries[index].decode(),
                "inclusion_proof": self.proof(index, len(self.leaves)),
                **self.tree(),
            }
        if path == f"{BASE}/entries":
            start = int(q.get("cursor", q.get("from_index", "0")))
            limit = int(q["limit"])
            rows = list(enumerate(self.entries))[start : start + limit]
            more = start + limit < len(self.entries)
            return "page", {
                "entries": [{"index": i, "entry": e.decode()} for i, e in rows],
                "next_cursor": str(start + limit) if more else None,
            }
        if path.startswith(f"{BASE}/entries/"):
            index, size = int(path.rsplit("/", 1)[1]), len(self.leaves)
            return "entry", {
                "index": index,
                "entry": self.entries[index].decode(),
                "leaf_hash": b64encode(self.leaves[index]),
                "checkpoint": self.checkpoint(size),
                "inclusion_proof": self.proof(index, size),
            }
        if path == f"{BASE}/proof/inclusion":
            index, size = int(q["index"]), int(q.get("size", len(self.leaves)))
            return "inclusion", {
                "index": index,
                "size": size,
                "inclusion_proof": self.proof(index, size),
                "checkpoint": self.checkpoint(size),
            }
        if path == f"{BASE}/proof/consistency":
            m, n = int(q["from_size"]), int(q["to_size"])
            return "consistency", {
                "proof": [b64encode(h) for h in consistency_proof(m, n, self.node)],
                "from_checkpoint": self.checkpoint(m),
                "to_checkpoint": self.checkpoint(n),
            }
        return "missing", None

    def handle(self, request: httpx.Request) -> httpx.Response:
        kind, body = self.answer(request)
        self.requests.append(kind)
        if kind == "missing":
            error = {"code": "not_found", "message": "no such thing"}
            return httpx.Response(404, json={"error": error})
        body = self.spoil(kind, body)
        status = 201 if request.method == "POST" else 200
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)


def run(driver: str, fake: FakeLog, op: Callable[[Any], Any], **options: Any) -> Any:
    """``op(client)`` through the sync or the async driver; async iterators
    and coroutines are awaited, so one ``op`` serves both."""
    transport = httpx.MockTransport(fake.handle)
    options.setdefault("vkeys", {LOG: fake.signer.vkey()})
    if driver == "sync":
        with Client("http://fake", "ilk_x", transport=transport, **options) as c:
            out = op(c)
            return list(out) if hasattr(out, "__next__") else out

    async def main() -> Any:
        async with AsyncClient("http://fake", "ilk_x", transport=transport, **options) as c:
            out = op(c)
            if hasattr(out, "__anext__"):
                return [e async for e in out]
            return await out

    return asyncio.run(main())


DRIVERS = ["sync", "async"]


def _seeded(n: int = 5, **kw: Any) -> FakeLog:
    fake = FakeLog(**kw)
    fake.append([json.dumps({"n": i}).encode() for i in range(n)])
    return fake


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_honest_log_verifies_through_both_drivers(driver: str) -> None:
    fake = _seeded()
    r = run(driver, fake, lambda c: c.append(LOG, {"n": 5}))
    assert isinstance(r, Receipt) and (r.index, r.event, r.log) == (5, {"n": 5}, LOG)
    assert r.checkpoint.checkpoint.size == 6
    b = run(driver, fake, lambda c: c.append_many(LOG, [{"n": 6}, {"n": 7}]))
    assert isinstance(b, BatchReceipt) and (b.first_index, b.count, b.size) == (6, 2, 8)
    got = run(driver, fake, lambda c: c.query(LOG, page_size=3))
    assert [e.event["n"] for e in got] == list(range(8))
    assert run(driver, fake, lambda c: c.entry(LOG, 3)).event == {"n": 3}
    assert run(driver, fake, lambda c: c.checkpoint(LOG)).checkpoint.size == 8
    assert run(driver, fake, lambda c: c.consistency_proof(LOG, 2, 8))
    proof, cp = run(driver, fake, lambda c: c.inclusion_proof(LOG, 1, 8))
    assert cp.checkpoint.size == 8 and proof
    info = run(driver, fake, lambda c: c.log_info(LOG), trust_on_first_use=True, vkeys=None)
    assert info["vkey"] == fake.signer.vkey()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_log_ref_names_the_log_as_tenant_slash_log_does(driver: str) -> None:
    fake = _seeded()
    ref = LogRef("acme", "pay")
    r = run(driver, fake, lambda c: c.append(ref, {"n": 5}))
    assert r.log == LOG and r.index == 5
    assert run(driver, fake, lambda c: c.checkpoint(ref)).checkpoint.size == 6
    assert [e.index for e in run(driver, fake, lambda c: c.query(ref))] == list(range(6))
    run(driver, fake, lambda c: c.append(ref, {"n": 6}), vkeys={ref: fake.signer.vkey()})
    with pytest.raises(InvalidRequestError, match="TENANT/LOG"):
        run(driver, fake, lambda c: c.append("acme", {"n": 6}))


@pytest.mark.parametrize("driver", DRIVERS)
def test_signed_waits_for_the_signed_checkpoint(driver: str) -> None:
    fake = _seeded(unsigned=True)
    r = run(driver, fake, lambda c: c.append(LOG, {"n": 5}, wait_signed=True))
    assert r.checkpoint is not None and r.checkpoint.checkpoint.size == 6


def _drop(key: str) -> Spoil:
    return lambda kind, body: {k: v for k, v in body.items() if k != key}


def _set(key: str, value: Any) -> Spoil:
    return lambda kind, body: {**body, key: value}


def _entries(value: Any) -> Spoil:
    return _set("entries", value)


APPEND = ("append", lambda c: c.append(LOG, {"n": 5}))
BATCH = ("batch", lambda c: c.append_many(LOG, [{"n": 5}, {"n": 6}]))
QUERY = ("page", lambda c: c.query(LOG))
ENTRY = ("entry", lambda c: c.entry(LOG, 2))
CHECKPOINT = ("checkpoint", lambda c: c.checkpoint(LOG))
CONSISTENCY = ("consistency", lambda c: c.consistency_proof(LOG, 2, 5))
INCLUSION = ("inclusion", lambda c: c.inclusion_proof(LOG, 1, 5))
INFO = ("info", lambda c: c.log_info(LOG))

# (what is asked, which answer is spoiled and how, the error it must raise)
CASES: dict[str, tuple[tuple[str, Any], str, Spoil, type[IronlogError]]] = {
    "receipt not JSON": (APPEND, "receipt", lambda k, b: b"<html>oops</html>", FormatError),
    "receipt a JSON list": (APPEND, "receipt", lambda k, b: [b], FormatError),
    "receipt without index": (APPEND, "receipt", _drop("index"), FormatError),
    "receipt index a word": (APPEND, "receipt", _set("index", "five"), FormatError),
    "receipt index a string": (APPEND, "receipt", _set("index", "5"), FormatError),
    "receipt index a float": (APPEND, "receipt", _set("index", 5.5), FormatError),
    "receipt entry an object": (APPEND, "receipt", _set("entry", {"n": 5}), FormatError),
    "receipt proof a string": (APPEND, "receipt", _set("inclusion_proof", "AA=="), FormatError),
    "receipt checkpoint a number": (APPEND, "receipt", _set("checkpoint", 5), FormatError),
    "receipt leaf hash a number": (APPEND, "receipt", _set("leaf_hash", 7), FormatError),
    "receipt of another entry": (
        APPEND,
        "receipt",
        _set("entry", '{"n":666}'),
        VerificationError,
    ),
    "receipt at another index": (APPEND, "receipt", _set("index", 3), VerificationError),
    "batch not JSON": (BATCH, "batch", lambda k, b: b"", FormatError),
    "batch without first index": (BATCH, "batch", _drop("first_index"), FormatError),
    "batch count null": (BATCH, "batch", _set("count", None), FormatError),
    "batch count a list": (BATCH, "batch", _set("count", []), FormatError),
    "batch beyond its tree": (BATCH, "batch", _set("count", 50), VerificationError),
    "page not JSON": (QUERY, "page", lambda k, b: b"{", FormatError),
    "page without entries": (QUERY, "page", _drop("entries"), FormatError),
    "page entries a number": (QUERY, "page", _entries(5), FormatError),
    "page entry a number": (QUERY, "page", _entries([5]), FormatError),
    "page entry index a word": (
        QUERY,
        "page",
        _entries([{"index": "x", "entry": "{}"}]),
        FormatError,
    ),
    "page entry without entry": (QUERY, "page", _entries([{"index": 0}]), FormatError),
    "page cursor a number": (QUERY, "page", _set("next_cursor", 7), FormatError),
    "entry without checkpoint": (ENTRY, "entry", _drop("checkpoint"), FormatError),
    "entry checkpoint null": (ENTRY, "entry", _set("checkpoint", None), FormatError),
    "entry not JSON": (ENTRY, "entry", lambda k, b: b"\xff\xfe", FormatError),
    "entry of another event": (ENTRY, "entry", _set("entry", '{"n":9}'), VerificationError),
    "checkpoint garbage": (CHECKPOINT, "checkpoint", lambda k, b: "hello\n", FormatError),
    "checkpoint not UTF-8": (CHECKPOINT, "checkpoint", lambda k, b: b"\xff\n\xfe", FormatError),
    "checkpoint of another key": (
        CHECKPOINT,
        "checkpoint",
        lambda k, b: Checkpoint("fake.example/acme/pay", 5, b"\0" * 32).sign(
            Signer.generate("fake.example/acme/pay")
        ),
        VerificationError,
    ),
    "consistency without proof": (CONSISTENCY, "consistency", _drop("proof"), FormatError),
    "consistency proof entries numbers": (
        CONSISTENCY,
        "consistency",
        _set("proof", [1, 2]),
        FormatError,
    ),
    "consistency checkpoint a number": (
        CONSISTENCY,
        "consistency",
        _set("to_checkpoint", 5),
        FormatError,
    ),
    "consistency that does not prove": (
        CONSISTENCY,
        "consistency",
        _set("proof", [b64encode(b"\1" * 32)]),
        VerificationError,
    ),
    "inclusion without checkpoint": (INCLUSION, "inclusion", _drop("checkpoint"), FormatError),
    "inclusion proof null": (INCLUSION, "inclusion", _set("inclusion_proof", None), FormatError),
    "info a JSON string": (INFO, "info", lambda k, b: json.dumps("x").encode(), FormatError),
    "check's consistency without proof": (APPEND, "consistency", _drop("proof"), FormatError),
}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_answer_is_an_ironlog_error(driver: str, case: str, tmp_path: Path) -> None:
    (_, op), spoiled, spoil, error = CASES[case]
    fake = _seeded()
    fake.spoil = lambda kind, body: spoil(kind, body) if kind == spoiled else body
    state = tmp_path / "trust.json"
    if case.startswith("check's"):  # trust size 5, then the receipt of size 6 needs 5 -> 6
        run(driver, fake, CHECKPOINT[1], state_file=state)
    with pytest.raises(error):
        run(driver, fake, op, state_file=state)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    "spoil",
    [
        lambda k, b: {k: v for k, v in b.items() if k != "vkey"},
        lambda k, b: {**b, "vkey": 5},
        lambda k, b: {**b, "vkey": "not a key"},
        lambda k, b: b"not json",
    ],
    ids=["no vkey", "vkey a number", "vkey not a key", "not JSON"],
)
def test_a_malformed_log_description_is_refused_before_trusting_it(
    driver: str, spoil: Spoil
) -> None:
    fake = _seeded()
    fake.spoil = lambda kind, body: spoil(kind, body) if kind == "info" else body
    with pytest.raises(FormatError):
        run(driver, fake, APPEND[1], vkeys=None, trust_on_first_use=True)
    assert "receipt" not in fake.requests  # nothing appended that could not be verified


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"error": {"code": "not_found", "message": "gone"}}, NotFoundError),
        (500, b"<html>", IronlogError),
        (400, {"error": "flat"}, IronlogError),
        (400, [1, 2], IronlogError),
    ],
)
def test_an_error_answer_is_the_error_its_code_names(
    driver: str, status: int, body: Any, error: type[IronlogError]
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    fake = _seeded()
    fake.handle = handle  # type: ignore[method-assign]
    with pytest.raises(error) as got:
        run(driver, fake, CHECKPOINT[1])
    assert getattr(got.value, "status", None) == status


def test_both_drivers_return_the_checked_checkpoint() -> None:
    """The sync ``_check`` returned the checkpoint and the async one None: one
    core now, so ``inclusion_proof`` answers the same through both."""
    fake = _seeded()
    sync = run("sync", fake, INCLUSION[1])
    asyn = run("async", fake, INCLUSION[1])
    assert sync[0] == asyn[0] and sync[1].text() == asyn[1].text()
