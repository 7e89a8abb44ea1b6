"""Shared helpers for the benchmarks (not part of the package)."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from ironlog.entry import PreparedEntry, now_us, prepare_object

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
