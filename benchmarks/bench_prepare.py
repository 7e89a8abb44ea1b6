"""Micro-benchmark of turning request bytes into entries (``prepare_json`` and
``prepare_ndjson``): the part of the append path that runs before storage.

Three event shapes: the ~300-byte audit event of the other benchmarks, the
same with colons and quotes inside strings (URLs, times: the duplicate-key
pre-check cannot rule those out cheaply), and a 4 KiB nested event.

Usage: python benchmarks/bench_prepare.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import event

from ironlog.core.entry import now_us, prepare_json, prepare_ndjson


def _shapes() -> dict[str, bytes]:
    plain = json.dumps(event(1)).encode()
    tricky = dict(event(2), url="https://example.com:8443/a?b=c", note='he said "x": y')
    nested = {
        "actor": "alice",
        "details": [
            {"k": f"v{i}", "t": "12:30:00", "n": {"a": i, "b": [i, {"c": i}]}} for i in range(60)
        ],
    }
    return {
        "plain": plain,
        "colons": json.dumps(tricky).encode(),
        "nested-4k": json.dumps(nested).encode(),
    }


def _rate(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / rounds * 1e6  # microseconds per call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    now = now_us()
    for name, raw in _shapes().items():
        one = _rate(lambda raw=raw: prepare_json(raw, now, "bench"), args.rounds)
        body = b"\n".join([raw] * 1000)
        batch = _rate(
            lambda body=body: prepare_ndjson(body, now, "bench"), max(1, args.rounds // 500)
        )
        print(
            f"{name:10s} {len(raw):5d} B  prepare_json {one:7.1f} us   "
            f"prepare_ndjson x1000 {batch / 1000:7.1f} us/line"
        )


if __name__ == "__main__":
    main()
