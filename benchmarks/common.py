"""Shared helpers for the benchmarks (not part of the package)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from ironlog.core.entry import PreparedEntry, now_us, prepare_object

ACTIONS = ["payment.authorize", "payment.capture", "refund.create", "login", "key.rotate"]


def event(i: int) -> dict[str, Any]:
    """A ~300-byte audit event once stored (with received_at and source)."""
    return {
        "actor": f"user-{i % 9973}",
        "action": ACTIONS[i % len(ACTIONS)],
        "resource": f"acct/{(i * 7919) % 1000003:07d}",
        "outcome": "success" if i % 17 else "failure",
        "amount": (i % 100000) / 100,
        "currency": "KES",
        "terminal": f"POS-{i % 512:04d}",
        "ip": f"10.{i % 256}.{(i >> 8) % 256}.{(i >> 16) % 256}",
        "meta": {"merchant": "ACME Mobile Money", "region": "eu-west-1", "n": i},
    }


def prepared(i: int) -> PreparedEntry:
    return prepare_object(event(i), now_us(), "bench")


def stored_size() -> int:
    return len(prepared(0).data)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workdir() -> Path:
    base = Path(os.environ.get("IRONLOG_BENCH_DIR", tempfile.gettempdir()))
    d = Path(tempfile.mkdtemp(prefix="ironlog-bench-", dir=base))
    return d


def cleanup(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def dump(results: dict[str, Any]) -> str:
    return msgspec.json.format(msgspec.json.encode(results), indent=2).decode()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(data: Path, workers: int, *args: str) -> Iterator[tuple[str, str]]:
    """``ironlog serve`` on a free port: yields (url, demo key).

    Background integrity checks run once a day: off for a benchmark.
    """
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ironlog = str(Path(sys.executable).parent / "ironlog")
    cmd = [ironlog, "--data", str(data), "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "IRONLOG_VERIFY_INTERVAL": "86400"},
    )
    try:
        assert proc.stdout is not None
        text = ""
        while "Append an event:" not in text:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("server did not start:\n" + text)
            text += line
        key = text.split("demo tenant key (append, read): ")[1].split()[0]
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)
