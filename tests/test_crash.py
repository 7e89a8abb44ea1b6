"""Crash test: a child appends under load and reports every acknowledged
index; it is SIGKILLed at random moments, many times.  After each restart
every acknowledged entry is there with identical bytes, the full audit
passes, and the new checkpoint is consistent with every earlier one."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ironlog.core import merkle, note
from ironlog.engine.audit import audit_log
from ironlog.engine.instance import Ironlog
from ironlog.store.base import Durability

CHILD = r"""
import sys, json, threading, os
from ironlog.engine.instance import Ironlog
from ironlog.core.entry import prepare_json, now_us
il = Ironlog(sys.argv[1]); lg = il.log("acme", sys.argv[2])
out_lock = threading.Lock()
def report(idx, data):
    with out_lock:
        os.write(1, b"%d %s\n" % (idx, data.hex().encode()))
def single(k):
    i = 0
    while True:
        r = lg.append(prepare_json(json.dumps({"w": k, "i": i}), now_us(), "crash"))
        report(r.index, r.entry); i += 1
def batches():
    i = 0
    while True:
        es = [prepare_json(json.dumps({"b": i, "j": j, "pad": "x" * 200}), now_us(), "crash")
              for j in range(50)]
        r = lg.append_batch(es)
        for j, e in enumerate(es):
            report(r.first_index + j, e.data)
        i += 1
os.write(1, b"ready\n")
for k in range(8):
    threading.Thread(target=single, args=(k,), daemon=True).start()
threading.Thread(target=batches, daemon=True).start()
threading.Event().wait()
"""


def _cycle(data: Path, log: str, rng: random.Random) -> dict[int, bytes]:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), log],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert p.stdout is not None
    stdout = p.stdout
    first = stdout.readline()
    if first != b"ready\n":
        p.kill()
        p.wait()
        stdout.close()
        pytest.fail(f"child did not start: {first!r}")
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stdout.read(65536), b"")))
    reader.start()  # keep the pipe drained so the child never blocks on it
    deadline = time.monotonic() + 30  # a loaded machine may take a while to the first ack
    while not chunks and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.05, 0.6))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    reader.join(timeout=30)
    stdout.close()
    out = b"".join(chunks)
    acked: dict[int, bytes] = {}
    for line in out.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 2 and parts[1]:
            acked[int(parts[0])] = bytes.fromhex(parts[1].decode())
    return acked


def _crash_cycles(data: Path, log: str, durability: str, cycles: int) -> None:
    rng = random.Random(20261124)
    with Ironlog(data) as il:
        il.create_log("acme", log, Durability.parse(durability), create_tenant=True)
        verifier = il.log("acme", log).verifier
    all_acked: dict[int, bytes] = {}
    seen: list[tuple[int, bytes]] = []  # (size, root) of every head seen after a restart
    for _ in range(cycles):
        acked = _cycle(data, log, rng)
        assert acked, "the child acknowledged nothing before it was killed"
        all_acked.update(acked)
        with Ironlog(data) as il:
            lg = il.log("acme", log)
            assert lg.unhealthy is None, lg.unhealthy
            head = lg.head()
            # interval mode: a head the kill left unsigned is signed after an fsync
            signed = lg.wait_signed(head.size, 5)
            assert signed is not None and signed[0] == head.size
            cp = note.open_checkpoint(signed[1], verifier).checkpoint
            assert max(all_acked) < head.size
            for idx, entry in all_acked.items():
                assert lg.entry(idx) == entry, f"acknowledged entry {idx} changed or vanished"
            report = audit_log(lg)
            assert report.ok, report.problem
            for size, root in seen:
                proof = lg.consistency_proof(size, head.size)
                merkle.verify_consistency(size, head.size, proof, root, cp.root)
            seen.append((head.size, cp.root))
    assert len(all_acked) > cycles * 10


@pytest.mark.slow
def test_sigkill_sync_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    from ironlog.engine.instance import init_data_dir

    init_data_dir(data)
    _crash_cycles(data, "pay", "sync", cycles=12)


@pytest.mark.slow
def test_sigkill_interval_mode(tmp_path: Path) -> None:
    """A process crash loses nothing even in interval mode (the OS still holds
    the writes); the N ms bound is about power loss, see docs/durability.md."""
    data = tmp_path / "data"
    from ironlog.engine.instance import init_data_dir

    init_data_dir(data)
    _crash_cycles(data, "pay", "interval:20", cycles=5)
