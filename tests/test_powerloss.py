"""Power cuts, simulated by a VFS that drops unsynced writes (tests/powerloss.py).

In ``interval`` mode a cut may lose the entries acknowledged in the last
interval, as documented, but never a tree the log signed: every checkpoint
ever handed out (receipts, checkpoint reads) still holds after the cut and
after the log regrew other entries at the lost indexes.  In ``sync`` mode
nothing acknowledged is lost.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ironlog.core import merkle
from ironlog.core.entry import now_us, prepare_json
from ironlog.core.note import CosignatureSigner, SignedCheckpoint, open_checkpoint
from ironlog.core.policy import parse_policy
from ironlog.core.receipts import Receipt
from ironlog.engine.audit import audit_log
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.engine.log import Log
from ironlog.errors import NotFoundError
from ironlog.service.cosigning import Witnessing
from ironlog.service.outbound import OutboundPolicy
from ironlog.store.base import Durability
from ironlog.store.sqlite import SqliteDriver
from tests.powerloss import PowerLossVFS


@pytest.fixture
def vfs() -> Iterator[PowerLossVFS]:
    v = PowerLossVFS()
    yield v
    v.close()


def _open(data_dir: Path, vfs: PowerLossVFS) -> Ironlog:
    return Ironlog(data_dir, SqliteDriver(data_dir, vfs.connect, vfs.fsync))


def _event(i: int) -> bytes:
    return json.dumps({"actor": f"u{i % 7}", "action": "pay", "n": i}).encode()


class HandedOut:
    """Every signed checkpoint the log gave anyone, by size."""

    def __init__(self, lg: Log) -> None:
        self.verifiers = lg.verifiers
        self.by_size: dict[int, SignedCheckpoint] = {}

    def add(self, note: str) -> None:
        if not note:
            return
        cp = open_checkpoint(note, self.verifiers)
        old = self.by_size.setdefault(cp.checkpoint.size, cp)
        assert old.checkpoint.root == cp.checkpoint.root, "two roots signed for one size"

    def add_latest(self, lg: Log) -> None:
        with contextlib.suppress(NotFoundError):
            self.add(lg.checkpoint())

    def receipts(self, receipts: list[Receipt]) -> None:
        for r in receipts:
            self.add(r.checkpoint)

    def check(self, lg: Log) -> None:
        """Each is a tree the log holds: same root at its size, and the log's
        latest signed checkpoint is consistent with it (verified proof)."""
        assert self.by_size, "no checkpoint was handed out: the test proves nothing"
        latest = open_checkpoint(lg.checkpoint(), lg.verifiers).checkpoint
        for size, cp in sorted(self.by_size.items()):
            assert size <= latest.size, (
                f"a checkpoint of size {size} was signed, the log now has {latest.size} signed"
            )
            assert lg.root(size) == cp.checkpoint.root, f"the tree of size {size} changed"
            if size < latest.size:
                merkle.verify_consistency(
                    size,
                    latest.size,
                    lg.consistency_proof(size, latest.size),
                    cp.checkpoint.root,
                    latest.root,
                )


def _append(lg: Log, first: int, count: int) -> list[Receipt]:
    """One request, one commit: ``count`` entries with their receipts."""
    out = lg.submit([prepare_json(_event(first + i), now_us(), "t") for i in range(count)], True)
    res = out.result()
    assert isinstance(res, list)
    return res


def _append_and_wait_for_fsync(lg: Log, first: int, count: int) -> list[Receipt]:
    """Append, then wait for the fsync that follows within the interval: the
    next append then has a whole interval before it is durable."""
    before = lg.store.stats()["fsyncs"]
    out = _append(lg, first, count)
    deadline = time.monotonic() + 5
    while lg.store.stats()["fsyncs"] == before:
        assert time.monotonic() < deadline, "no fsync happened"
        time.sleep(0.002)
    return out


def _cut(il: Ironlog, vfs: PowerLossVFS) -> None:
    vfs.cut()
    il.close()  # nothing it writes now reaches the disk
    vfs.restore()


def _interval_run_then_cut(data_dir: Path, vfs: PowerLossVFS) -> tuple[HandedOut, int]:
    """Appends in interval:50 mode, collecting every checkpoint handed out,
    then a cut right after a fresh batch; returns them and the entries acked."""
    il = _open(data_dir, vfs)
    il.create_log("acme", "pay", Durability.parse("interval:50"), create_tenant=True)
    lg = il.log("acme", "pay")
    handed = HandedOut(lg)
    n = 0
    for _ in range(12):  # appends over several intervals: several fsyncs, several signatures
        for _ in range(10):
            handed.receipts(_append(lg, n, 3))
            n += 3
        handed.add_latest(lg)
        time.sleep(0.02)
    # Right after an fsync, a last batch: acknowledged, not durable for ~50 ms.
    handed.receipts(_append_and_wait_for_fsync(lg, n, 1))
    n += 1
    tail = _append(lg, n, 40)
    n += 40
    handed.receipts(tail)
    handed.add_latest(lg)
    assert all(r.size == n for r in tail)
    _cut(il, vfs)
    return handed, n


def test_interval_power_cut_never_contradicts_a_signed_checkpoint(
    tmp_path: Path, vfs: PowerLossVFS
) -> None:
    for attempt in range(3):  # a stalled test thread may let the fsync catch the last batch
        data_dir = tmp_path / f"data{attempt}"
        init_data_dir(data_dir)
        handed, acked = _interval_run_then_cut(data_dir, vfs)
        with _open(data_dir, vfs) as il2:
            lg2 = il2.log("acme", "pay")
            assert lg2.unhealthy is None
            size = lg2.head().size
            # The durable head is signed again if its signature was lost with the cut.
            assert lg2.wait_signed(size, 5) is not None
            handed.check(lg2)
            assert audit_log(lg2).ok
            # The log regrows other entries at the lost indexes...
            regrown = _append(lg2, 10_000, 60)
            assert regrown[0].index == size
            assert lg2.wait_signed(size + 60, 5) is not None
            handed.receipts(regrown)
            # ...and still agrees with every checkpoint it ever signed.
            handed.check(lg2)
            assert audit_log(lg2).ok
        if size <= acked - 40:
            break
    else:
        pytest.fail("the cut never lost the unsynced batch: the test proved nothing")


def test_interval_receipts_carry_an_unsigned_root_then_a_signed_checkpoint(
    data_dir: Path, vfs: PowerLossVFS
) -> None:
    with _open(data_dir, vfs) as il:
        il.create_log("acme", "pay", Durability.parse("interval:50"), create_tenant=True)
        lg = il.log("acme", "pay")
        _append_and_wait_for_fsync(lg, 0, 5)
        (r,) = _append(lg, 5, 1)
        assert r.checkpoint == "" and r.size == 6
        merkle.verify_inclusion(r.index, r.size, r.leaf_hash, r.inclusion_proof, r.root)
        with pytest.raises(NotFoundError):
            r.tlog_proof()
        signed = lg.signed_receipt(r)
        assert signed is not None and signed.size >= 6
        cp = open_checkpoint(signed.checkpoint, lg.verifiers).checkpoint
        assert (cp.size, cp.root) == (signed.size, signed.root)
        signed.tlog_proof().verify(r.entry, lg.verifier)


def test_sync_power_cut_loses_nothing_acknowledged(data_dir: Path, vfs: PowerLossVFS) -> None:
    il = _open(data_dir, vfs)
    il.create_log("acme", "pay", create_tenant=True)
    lg = il.log("acme", "pay")
    handed = HandedOut(lg)
    acked: list[Receipt] = []
    for i in range(20):
        acked += _append(lg, len(acked), 1 + i % 4)
    handed.receipts(acked)
    assert all(r.checkpoint for r in acked)  # sync mode signs in the commit, as before
    _cut(il, vfs)

    with _open(data_dir, vfs) as il2:
        lg2 = il2.log("acme", "pay")
        assert lg2.unhealthy is None
        assert lg2.head().size == len(acked)
        for r in acked:
            assert lg2.entry(r.index) == r.entry
        handed.check(lg2)
        assert audit_log(lg2).ok


def test_the_model_drops_what_was_not_synced(tmp_path: Path, vfs: PowerLossVFS) -> None:
    """The VFS itself: unsynced writes and never-synced new files vanish."""
    db = tmp_path / "x.db"
    con = vfs.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t(x)")
    vfs.fsync(Path(str(db) + "-wal"))
    con.execute("INSERT INTO t VALUES (1)")  # committed, never synced
    vfs.cut()
    con.close()
    vfs.restore()
    con = vfs.connect(db)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    con.close()
    other = vfs.connect(tmp_path / "new.db")
    other.execute("PRAGMA synchronous=OFF")
    other.execute("CREATE TABLE t(x)")
    vfs.cut()
    other.close()
    vfs.restore()
    assert not (tmp_path / "new.db").exists()


def test_witnesses_only_get_checkpoints_that_survive_a_cut(
    data_dir: Path, vfs: PowerLossVFS
) -> None:
    """What the service submits to witnesses is a tree the log still holds
    after a power cut (a witness would otherwise see a fork)."""
    il = _open(data_dir, vfs)
    # 1 s: the last batch cannot become durable before the cut
    il.create_log("acme", "pay", Durability.parse("interval:1000"), create_tenant=True)
    lg = il.log("acme", "pay")
    witness = CosignatureSigner.generate("witness.test/w1")
    # a loopback address the operator allowed: the mock transport answers for it
    url = "http://127.0.0.1:9"
    policy = parse_policy({"witnesses": [{"url": url, "vkey": witness.vkey()}]})
    posted: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(request.content.decode().split("\n\n", 1)[1])
        return httpx.Response(503)

    w = Witnessing(il, outbound=OutboundPolicy.parse(["127.0.0.0/8"]))
    w._http.close()
    w._http = httpx.Client(transport=httpx.MockTransport(answer))
    try:
        _append_and_wait_for_fsync(lg, 0, 10)
        _append(lg, 10, 20)  # acknowledged, not durable yet
        w.submit(lg, policy)
    finally:
        w.stop()
    assert posted, "nothing was submitted"
    handed = HandedOut(lg)
    for text in posted:
        handed.add(text)
    _cut(il, vfs)
    with _open(data_dir, vfs) as il2:
        lg2 = il2.log("acme", "pay")
        assert lg2.head().size < 30, "the cut did not lose the unsynced batch"
        assert lg2.wait_signed(lg2.head().size, 5) is not None
        handed.check(lg2)


def test_a_log_smaller_than_a_checkpoint_it_signed_refuses_writes(data_dir: Path) -> None:
    """The database files rolled back behind a checkpoint they still hold."""
    db = data_dir / "logs" / "acme" / "pay.db"
    with Ironlog(data_dir) as il:
        il.create_log("acme", "pay", create_tenant=True)
        lg = il.log("acme", "pay")
        for i in range(3):
            lg.append(prepare_json(_event(i), now_us(), "t"))
    old = db.read_bytes()
    with Ironlog(data_dir) as il:
        lg = il.log("acme", "pay")
        lg.append(prepare_json(_event(3), now_us(), "t"))
        note = lg.checkpoint()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(old)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO checkpoints VALUES (4, ?, 0)", (note,))
    con.commit()
    con.close()
    with Ironlog(data_dir) as il:
        lg = il.log("acme", "pay")
        assert lg.unhealthy is not None
        # caught by the stored checkpoint beyond the head, or (first) by the
        # signed size the control store recorded
        assert "checkpoint of size 4" in lg.unhealthy and "3 entries" in lg.unhealthy
