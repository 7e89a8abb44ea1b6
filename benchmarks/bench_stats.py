"""The metrics API's aggregates and the quota check (engine level, sync mode).

- build: a log of N entries (default 1,000,000, ~300 bytes each, received
  evenly over the last 24 hours), appended in batches of 1000;
- catch_up: aggregating all of them the first time (what the first stats
  query after a restart of an old data directory pays once);
- query: a 24 h / 1 m bucket query (ungrouped, by action, by actor): the
  first after the catch-up and the median of repeated ones (goal < 100 ms);
- append_cost: append rate with nothing reading the aggregates vs with a
  reader catching up and querying every second (a console open on the log),
  interleaved, same run; the aggregates are not on the append path, so the
  cost is the reader competing for the CPU and the disk;
- quota: the check on the append path (ns per call, quota set), and the
  single-append rate with a quota set vs none, interleaved, same run (with a
  quota, each worker re-reads the tenant's usage every second: a catch-up of
  the entries appended meanwhile, in a thread of the same process).

Before each timed round the aggregates are brought up to date, so a round
pays for its own entries only.  On a loaded machine the wall times vary a
lot from run to run; the CPU times (``*_cpu_*``) are steadier.

Usage: python benchmarks/bench_stats.py [--entries N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cleanup, dump, event, workdir

from ironlog.core.entry import PreparedEntry, now_us, prepare_object
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.engine.log import Log
from ironlog.engine.quotas import Quota, QuotaGuard, set_tenant_quota
from ironlog.engine.stats import LogStats, StatsBook

DAY_US = 86_400_000_000
BATCH = 1000


def entries(n: int, start_us: int, span_us: int, offset: int = 0) -> list[PreparedEntry]:
    step = span_us / max(1, n)
    return [prepare_object(event(offset + i), start_us + int(i * step), "bench") for i in range(n)]


def append_all(lg: Log, items: list[PreparedEntry]) -> float:
    """Entries per second."""
    t0 = time.perf_counter()
    futures = [lg.submit(items[s : s + BATCH], proofs=False) for s in range(0, len(items), BATCH)]
    for f in futures:
        f.result()
    return len(items) / (time.perf_counter() - t0)


def timed(fn: Any) -> tuple[float, float]:
    """(wall ms, CPU ms of this process): on a loaded machine the CPU time
    says what the query costs, the wall time what a caller waited."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def bench(d: Path, n: int, rounds: int) -> dict[str, Any]:
    init_data_dir(d)
    il = Ironlog(d)
    il.create_log("bench", "big", create_tenant=True)
    lg = il.log("bench", "big")
    now = now_us()
    prep_s = append_s = 0.0
    chunk = 100_000  # prepared and appended a part at a time (memory)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        t0 = time.perf_counter()
        items = entries(k, now - DAY_US + s * DAY_US // n, k * DAY_US // n, s)
        prep_s += time.perf_counter() - t0
        append_s += k / append_all(lg, items)
    rate = n / append_s
    out: dict[str, Any] = {
        "entries": n,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "build": {"prepare_s": round(prep_s, 1), "append_per_s": round(rate)},
    }

    book = StatsBook(d)
    st = book.of(lg.store, lg.info)
    t0, c0 = time.perf_counter(), time.process_time()
    added = st.catch_up()
    took = time.perf_counter() - t0
    out["catch_up"] = {
        "entries": added,
        "seconds": round(took, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),
        "entries_per_s": round(added / took),
        "file_mb": round(
            sum(p.stat().st_size for p in st.path.parent.glob(st.path.name + "*")) / 2**20, 1
        ),
    }
    end = now_us()
    queries: dict[str, Any] = {}
    for group in (None, "action", "actor"):

        def q(g: str | None = group) -> None:
            st.query(end - DAY_US, end, "1m", g, 10)

        first = timed(q)
        again = [timed(q) for _ in range(20)]
        queries[group or "ungrouped"] = {
            "first_ms": round(first[0], 1),
            "median_ms": round(statistics.median(w for w, _ in again), 1),
            "max_ms": round(max(w for w, _ in again), 1),
            "first_cpu_ms": round(first[1], 1),
            "median_cpu_ms": round(statistics.median(c for _, c in again), 1),
        }
    res = st.query(end - DAY_US, end, "1m", "action", 10)
    queries["buckets"] = len(res.buckets)
    queries["total"] = sum(b.total for b in res.buckets)
    out["query_24h_1m"] = queries

    out["append_cost"] = append_cost(lg, st, rounds)
    out["quota"] = quota_cost(il, lg, book, rounds)
    book.close()
    il.close()
    return out


def append_cost(lg: Log, st: LogStats, rounds: int, per_round: int = 50_000) -> dict[str, Any]:
    plain: list[float] = []
    read: list[float] = []
    offset = 10_000_000
    for _ in range(rounds):
        for reading in (False, True):
            items = entries(per_round, now_us(), 1_000_000, offset)
            offset += per_round
            st.catch_up()  # each round pays for its own entries only
            stop = threading.Event()

            def reader(stop: threading.Event = stop) -> None:
                while not stop.wait(1.0):
                    e = now_us()
                    st.query(e - DAY_US, e, "1m", "action", 10)

            t = threading.Thread(target=reader)
            if reading:
                t.start()
            rate = append_all(lg, items)
            stop.set()
            if reading:
                t.join()
            (read if reading else plain).append(rate)
    p, r = statistics.mean(plain), statistics.mean(read)
    return {
        "no_reader_per_s": round(p),
        "reader_every_1s_per_s": round(r),
        "ratio": round(r / p, 3),
    }


def quota_cost(
    il: Ironlog, lg: Log, book: StatsBook, rounds: int, per_round: int = 20_000
) -> dict[str, Any]:
    guard = QuotaGuard(il.control, book, lambda t: [(lg.store, lg.info)])
    set_tenant_quota(il, "bench", Quota(entries_per_day=10**12, bytes=10**15))
    guard.check(lg.info, 1, 300)  # reads the quota and the usage once
    calls = 200_000
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        guard.check(lg.info, 1, 300)
    per_call_ns = (time.perf_counter() - t0) / calls * 1e9
    per_call_cpu_ns = (time.process_time() - c0) / calls * 1e9
    # Single-entry appends (the path the check is on), with and without it.
    free: list[float] = []
    checked: list[float] = []
    offset = 50_000_000
    for _ in range(rounds):
        for on in (False, True):
            if on:
                lg.append_checks.append(guard.check)
            items = entries(per_round, now_us(), 1_000_000, offset)
            offset += per_round
            book.of(lg.store, lg.info).catch_up()  # each round pays for its own entries only
            t0 = time.perf_counter()
            futures = [lg.submit([e], proofs=False) for e in items]
            for f in futures:
                f.result()
            rate = per_round / (time.perf_counter() - t0)
            (checked if on else free).append(rate)
            if on:
                lg.append_checks.remove(guard.check)
    f, c = statistics.mean(free), statistics.mean(checked)
    return {
        "check_ns_per_call": round(per_call_ns),
        "check_cpu_ns_per_call": round(per_call_cpu_ns),
        "single_appends_no_quota_per_s": round(f),
        "single_appends_quota_per_s": round(c),
        "ratio": round(c / f, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    d = workdir()
    try:
        print(dump(bench(d, args.entries, args.rounds)))
    finally:
        cleanup(d)


if __name__ == "__main__":
    main()
