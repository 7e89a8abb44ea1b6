"""The library's append and read paths: group commit, receipts, durability
modes, integrity on open, several processes appending to one log."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ironlog.core import merkle, note
from ironlog.core.entry import now_us, prepare_json
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.core.tiles import TILE_WIDTH
from ironlog.engine.audit import audit_log
from ironlog.engine.instance import Ironlog
from ironlog.errors import (
    ConflictError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
)
from ironlog.store.base import Durability, Query


def ev(i: int, **kw: object) -> bytes:
    return json.dumps({"actor": f"u{i % 5}", "action": "login", "n": i, **kw}).encode()


def test_receipts_verify_with_pure_core(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    vkey = note.Verifier.from_vkey(lg.verifier.vkey())
    receipts = [lg.append(prepare_json(ev(i), now_us(), "test")) for i in range(300)]
    for r in receipts:
        cp = note.open_checkpoint(r.checkpoint, vkey).checkpoint
        assert cp.origin == "ironlog.localhost/acme/pay"
        merkle.verify_inclusion(
            r.index, cp.size, merkle.leaf_hash(r.entry), r.inclusion_proof, cp.root
        )
        r.tlog_proof().verify(r.entry, vkey)
    assert [r.index for r in receipts] == list(range(300))
    # Older checkpoints are consistent with the newest.
    head = lg.head()
    for r in receipts[::37]:
        cp = note.parse_checkpoint(note.parse_note(r.checkpoint).text)
        merkle.verify_consistency(
            cp.size, head.size, lg.consistency_proof(cp.size), cp.root, head.root
        )


def test_group_commit_batches_concurrent_appends(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")

    async def run() -> list[int]:
        async def one(i: int) -> int:
            return (await lg.append_async(prepare_json(ev(i), now_us(), "t"))).index

        return await asyncio.gather(*(one(i) for i in range(2000)))

    indexes = asyncio.run(run())
    assert sorted(indexes) == list(range(2000))
    stats = lg.writer_stats()
    assert stats["mean_batch"] > 2, stats  # appends were grouped
    assert lg.store.stats()["batches"] < 2000
    assert audit_log(lg).ok


def test_batch_is_all_or_nothing_and_reads(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    lg.append_batch([prepare_json(ev(i), now_us(), "t") for i in range(700)])
    assert lg.head().size == 700
    assert len(lg.tile(0, 0)) == 8192 and len(lg.tile(0, 2, 188)) == 188 * 32
    assert lg.tile(0, 1, 10) == lg.tile(0, 1)[:320]
    with pytest.raises(NotFoundError):
        lg.tile(0, 2, 189)
    with pytest.raises(NotFoundError):
        lg.tile(0, 3)
    bundle = lg.bundle(1)
    assert bundle.count(b'"action":"login"') == TILE_WIDTH
    with pytest.raises(NotFoundError):
        lg.bundle(2)
    assert lg.bundle(2, 188).count(b"login") == 188
    with pytest.raises(InvalidRequestError):
        lg.inclusion_proof(700)
    with pytest.raises(InvalidRequestError):
        lg.consistency_proof(5, 701)
    with pytest.raises(NotFoundError):
        lg.checkpoint(5)
    assert lg.entry(3).startswith(b'{"action":"login","actor":"u3"')


def test_durability_modes(il: Ironlog) -> None:
    il.create_log("t", "sync", create_tenant=True)
    il.create_log("t", "iv", Durability.parse("interval:50"))
    il.create_log("t", "off", Durability.parse("off"))
    iv = il.log("t", "iv")
    for i in range(20):
        iv.append(prepare_json(ev(i), now_us(), "t"))
    # fsync happens at most every 50 ms, and within ~50 ms of the last commit
    assert iv.store.stats()["fsyncs"] <= 3
    time.sleep(0.3)
    assert iv.store.stats()["fsyncs"] >= 1
    before = iv.store.stats()["fsyncs"]
    time.sleep(0.2)
    assert iv.store.stats()["fsyncs"] == before  # nothing dirty, no fsync
    assert iv.store.stats()["durability"] == "interval:50"
    for name in ("sync", "off"):
        lg = il.log("t", name)
        lg.append(prepare_json(ev(1), now_us(), "t"))
        assert lg.store.stats()["durability"] == name
    with pytest.raises(InvalidRequestError):
        Durability.parse("interval:0")
    with pytest.raises(InvalidRequestError):
        Durability.parse("sometimes")


def test_names_and_conflicts(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    with pytest.raises(ConflictError):
        il.create_log("acme", "pay")
    with pytest.raises(NotFoundError):
        il.create_log("nobody", "pay")
    for bad in ("../x", "A", "", "a/b", "-x", "x" * 64):
        with pytest.raises(InvalidRequestError):
            il.create_log("acme", bad)
    with pytest.raises(NotFoundError):
        il.log("acme", "nope")


def test_head_check_refuses_writes(data_dir: Path) -> None:
    import sqlite3

    with Ironlog(data_dir) as il:
        il.create_log("acme", "pay", create_tenant=True)
        il.log("acme", "pay").append_batch([prepare_json(ev(i), now_us(), "t") for i in range(300)])
    db = data_dir / "logs" / "acme" / "pay.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE tiles SET data = zeroblob(length(data)) WHERE level = 0 AND idx = 1")
    con.commit()
    con.close()
    with Ironlog(data_dir) as il:
        lg = il.log("acme", "pay")
        assert lg.unhealthy and "root recomputed from stored tiles" in lg.unhealthy
        with pytest.raises(IntegrityError, match="refuses writes"):
            lg.append(prepare_json(ev(1), now_us(), "t"))
        assert lg.head().size == 300  # reads still work


def test_concurrent_threads_one_tree(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(100):
                if i % 10 == 0:
                    lg.append_batch(
                        [prepare_json(ev(k * 1000 + i + j), now_us(), "t") for j in range(7)]
                    )
                else:
                    lg.append(prepare_json(ev(k * 1000 + i), now_us(), "t"))
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert lg.head().size == 8 * (90 + 10 * 7)
    assert audit_log(lg).ok


CHILD = r"""
import sys, json
from ironlog.engine.instance import Ironlog
from ironlog.core.entry import prepare_json, now_us
il = Ironlog(sys.argv[1]); lg = il.log("acme", "pay")
for i in range(int(sys.argv[3])):
    e = prepare_json(json.dumps({"w": sys.argv[2], "i": i}), now_us(), "t")
    if i % 5 == 0:
        e2 = prepare_json(json.dumps({"w": sys.argv[2], "i": i, "b": 1}), now_us(), "t")
        lg.append_batch([e, e2])
    else:
        lg.append(e)
il.close()
"""


def test_two_processes_append_to_one_log(data_dir: Path) -> None:
    with Ironlog(data_dir) as il:
        il.create_log("acme", "pay", create_tenant=True)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), w, "400"]) for w in "ab"]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Ironlog(data_dir) as il:
        lg = il.log("acme", "pay")
        assert lg.unhealthy is None
        assert lg.head().size == 2 * (400 + 80)
        report = audit_log(lg)
        assert report.ok, report.problem
        assert report.checkpoints > 100
        rows = [json.loads(d) for _, d in lg.query(Query())]
        assert len({(o["w"], o["i"], o.get("b")) for o in rows}) == 960


def test_idempotency_keys(il: Ironlog) -> None:
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    r1 = lg.submit([prepare_json(ev(1), now_us(), "t")], True, "k-1").result()
    lg.append(prepare_json(ev(2), now_us(), "t"))
    again = lg.submit([prepare_json(ev(1), now_us(), "t")], True, "k-1").result()
    assert again == r1  # the original receipt, byte for byte, nothing appended
    with pytest.raises(ConflictError, match="was used for a request with other events"):
        lg.submit([prepare_json(ev(1, retry=True), now_us(), "t")], True, "k-1").result()
    assert lg.head().size == 2
    b1 = lg.submit([prepare_json(ev(i), now_us(), "t") for i in range(5)], False, "batch").result()
    b2 = lg.submit([prepare_json(ev(i), now_us(), "t") for i in range(5)], False, "batch").result()
    assert b1 == b2 and lg.head().size == 7

    async def race() -> list[object]:
        return list(
            await asyncio.gather(
                *(
                    lg.submit_async([prepare_json(ev(9), now_us(), "t")], True, "same")
                    for _ in range(20)
                )
            )
        )

    results = asyncio.run(race())
    assert all(r == results[0] for r in results)
    assert lg.head().size == 8
    assert audit_log(lg).ok


def _blocked_by_another_writer(il: Ironlog, tenant: str, name: str) -> int:
    """Take the log's writer lock as another process appending would: the
    writer's next commit waits for it (release with fcntl.flock(fd, LOCK_UN))."""
    fd = os.open(il.data_dir / "logs" / tenant / f"{name}.db.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_one_key_twice_in_one_batch_answers_each_request_in_its_kind(il: Ironlog) -> None:
    """A single append and a batch append with the same idempotency key and
    the same event, committed in one batch: the batch gets a BatchReceipt (not
    the single append's receipts), both naming the one entry appended."""
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    lg.append(prepare_json(ev(0), now_us(), "t"))
    fd = _blocked_by_another_writer(il, "acme", "pay")
    try:
        first = lg.submit([prepare_json(ev(1), now_us(), "t")], False)
        time.sleep(0.2)  # the writer took it and waits for the lock
        one = lg.submit([prepare_json(ev(2), now_us(), "t")], True, "k")
        many = lg.submit([prepare_json(ev(2), now_us(), "t")], False, "k")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert isinstance(first.result(10), BatchReceipt)
    receipts, batch = one.result(10), many.result(10)
    assert isinstance(receipts, list) and isinstance(receipts[0], Receipt)
    assert isinstance(batch, BatchReceipt)
    assert (batch.first_index, batch.count, batch.size) == (receipts[0].index, 1, 3)
    assert lg.head().size == 3 and lg.entry(2) == receipts[0].entry
    assert audit_log(lg).ok


def test_one_key_twice_in_one_batch_async(il: Ironlog) -> None:
    """The same through the coroutine API (what the HTTP door calls): neither
    caller gets an answer of the other kind or an error."""
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    lg.append(prepare_json(ev(0), now_us(), "t"))

    async def run() -> tuple[Receipt, BatchReceipt]:
        fd = _blocked_by_another_writer(il, "acme", "pay")
        try:
            first = asyncio.ensure_future(
                lg.append_batch_async([prepare_json(ev(1), now_us(), "t")])
            )
            await asyncio.sleep(0.2)  # the writer took it and waits for the lock
            one = asyncio.ensure_future(lg.append_async(prepare_json(ev(2), now_us(), "t"), "k"))
            many = asyncio.ensure_future(
                lg.append_batch_async([prepare_json(ev(2), now_us(), "t")], "k")
            )
            await asyncio.sleep(0.05)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        await first
        return await one, await many

    receipt, batch = asyncio.run(run())
    assert isinstance(receipt, Receipt) and isinstance(batch, BatchReceipt)
    assert (batch.first_index, batch.count) == (receipt.index, 1) == (2, 1)
    assert lg.head().size == 3
