"""Library-level benchmarks of the log engine (sync mode, ~300-byte events).

Each figure is measured side by side with its baseline in the same run:
- batches: ironlog appends in batches of 1000 vs plain SQLite inserts of the
  same rows in the same batch sizes (WAL, synchronous=FULL, one transaction
  per batch);
- concurrent: 64 concurrent single-entry appenders (asyncio tasks) vs plain
  SQLite with one row per transaction from the same 64 tasks' worth of rows;
- verify: full audit rate; proof: inclusion-proof latency at 1M entries;
- memory: RSS while appending 5,000,000 entries.

Usage: python benchmarks/bench_engine.py [--entries N] [--memory-entries N]
                                         [--durability sync|interval:MS|off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cleanup, dump, percentile, prepared, rss_mb, stored_size, workdir

from ironlog.core.entry import PreparedEntry
from ironlog.engine.audit import audit_log
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.engine.log import Log
from ironlog.store.base import Durability

DURABILITY = Durability()  # --durability


def _open(d: Path, name: str) -> tuple[Ironlog, Log]:
    init_data_dir(d)
    il = Ironlog(d)
    il.create_log("bench", name, DURABILITY, create_tenant=True)
    return il, il.log("bench", name)


def prepare_all(n: int) -> tuple[list[PreparedEntry], float]:
    t0 = time.perf_counter()
    entries = [prepared(i) for i in range(n)]
    return entries, time.perf_counter() - t0


def bench_batches(d: Path, entries: list[PreparedEntry], batch: int = 1000) -> dict[str, Any]:
    """Appends of already-canonicalised entries (the caller's side: see prepare_us)."""
    n = len(entries)
    il, lg = _open(d / "ironlog", "batches")
    t0 = time.perf_counter()
    futures = [lg.submit(entries[s : s + batch], proofs=False) for s in range(0, n, batch)]
    for f in futures:
        f.result()
    ironlog_s = time.perf_counter() - t0
    size = lg.head().size
    il.close()

    # Baseline: plain SQLite, the same rows (bytes + the indexed columns), same batches.
    rows = [
        (i, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome)
        for i, e in enumerate(entries)
    ]
    con = sqlite3.connect(d / "plain.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(PLAIN_SCHEMA)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        con.execute("BEGIN")
        con.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?)", rows[start : start + batch])
        con.execute("COMMIT")
    plain_s = time.perf_counter() - t0
    con.close()
    return {
        "entries": size,
        "batch": batch,
        "ironlog_entries_per_s": round(size / ironlog_s),
        "plain_sqlite_entries_per_s": round(n / plain_s),
        "ratio_ironlog_to_plain": round((size / ironlog_s) / (n / plain_s), 3),
    }


PLAIN_SCHEMA = (
    "CREATE TABLE entries(idx INTEGER PRIMARY KEY, data BLOB, received_us INTEGER,"
    " actor TEXT, action TEXT, resource TEXT, outcome TEXT)"
)


def bench_concurrent(
    d: Path, pool: list[PreparedEntry], seconds: float = 5.0, tasks: int = 64
) -> dict[str, Any]:
    il, lg = _open(d / "ironlog-conc", "conc")
    latencies: list[float] = []
    count = 0

    async def appender(k: int, stop: float) -> None:
        nonlocal count
        i = k * 7919
        while time.perf_counter() < stop:
            e = pool[i % len(pool)]
            t = time.perf_counter()
            await lg.append_async(e)
            latencies.append(time.perf_counter() - t)
            count += 1
            i += 1

    async def run() -> float:
        await asyncio.gather(*(appender(k, time.perf_counter() + 0.5) for k in range(tasks)))
        latencies.clear()
        nonlocal count
        count = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(appender(k, t0 + seconds) for k in range(tasks)))
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    stats = lg.writer_stats()
    il.close()

    # Baseline: plain SQLite, one row per transaction (what a naive logger does).
    con = sqlite3.connect(d / "plain-conc.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(PLAIN_SCHEMA)
    plain = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < min(seconds, 3.0):
        e = pool[plain % len(pool)]
        con.execute(
            "INSERT INTO entries VALUES (?,?,?,?,?,?,?)",
            (plain, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome),
        )
        plain += 1
    plain_rate = plain / (time.perf_counter() - t0)
    con.close()
    return {
        "tasks": tasks,
        "appends": count,
        "ironlog_appends_per_s": round(count / elapsed),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_batch": round(stats.get("mean_batch", 0), 1),
        "plain_sqlite_row_per_txn_per_s": round(plain_rate),
        "ratio_ironlog_to_plain": round((count / elapsed) / plain_rate, 2),
    }


def bench_verify_and_proofs(d: Path) -> dict[str, Any]:
    il = Ironlog(d / "ironlog")
    lg = il.log("bench", "batches")
    report = audit_log(lg)
    assert report.ok, report.problem
    size = lg.head().size
    il.close()
    # Proofs from a fresh process state: cold caches first, then warm.
    il = Ironlog(d / "ironlog")
    lg = il.log("bench", "batches")
    rng = random.Random(1)
    cold = []
    for _ in range(200):
        i = rng.randrange(size)
        t = time.perf_counter()
        lg.inclusion_proof(i, size)
        cold.append(time.perf_counter() - t)
    warm = []
    for _ in range(2000):
        i = rng.randrange(size)
        t = time.perf_counter()
        lg.inclusion_proof(i, size)
        warm.append(time.perf_counter() - t)
    il.close()
    return {
        "verify_entries": report.entries,
        "verify_checkpoints": report.checkpoints,
        "verify_entries_per_s": round(report.entries / report.seconds),
        "proof_tree_size": size,
        "proof_first_200_mean_ms": round(sum(cold) / len(cold) * 1000, 3),
        "proof_p99_ms": round(percentile(cold + warm, 0.99) * 1000, 3),
        "proof_mean_ms": round(sum(cold + warm) / len(cold + warm) * 1000, 3),
    }


def bench_memory(d: Path, n: int, batch: int = 1000) -> dict[str, Any]:
    """Entries are made batch by batch here, so this rate includes making and
    canonicalising each event (~8 us) on the same two cores."""
    il, lg = _open(d / "ironlog-mem", "mem")
    samples = [(0, round(rss_mb(), 1))]
    t0 = time.perf_counter()
    pending = None
    for start in range(0, n, batch):
        fut = lg.submit([prepared(i) for i in range(start, min(n, start + batch))], proofs=False)
        if pending is not None:
            pending.result()
        pending = fut
        if start % 500_000 == 0:
            samples.append((start, round(rss_mb(), 1)))
    assert pending is not None
    pending.result()
    elapsed = time.perf_counter() - t0
    samples.append((n, round(rss_mb(), 1)))
    il.close()
    return {
        "entries": n,
        "entries_per_s": round(n / elapsed),
        "rss_mb_samples": samples,
        "rss_mb_max": max(s[1] for s in samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--memory-entries", type=int, default=5_000_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--only-memory", action="store_true", help="Run the memory phase alone.")
    ap.add_argument("--durability", default="sync", help="The logs' mode (default sync).")
    args = ap.parse_args()
    global DURABILITY
    DURABILITY = Durability.parse(args.durability)
    d = workdir()
    results: dict[str, Any] = {"event_bytes": stored_size(), "durability": str(DURABILITY)}
    if args.only_memory:
        try:
            results["memory"] = bench_memory(d, args.memory_entries)
        finally:
            cleanup(d)
        print(dump(results))
        return
    try:
        entries, prep_s = prepare_all(args.entries)
        results["prepare_us_per_entry"] = round(prep_s / len(entries) * 1e6, 2)
        results["batches"] = bench_batches(d, entries)
        print(dump({"batches": results["batches"]}), flush=True)
        results["verify_and_proofs"] = bench_verify_and_proofs(d)
        print(dump({"verify_and_proofs": results["verify_and_proofs"]}), flush=True)
        pool = entries[:100_000]
        del entries
        results["concurrent"] = bench_concurrent(d, pool, args.seconds)
        print(dump({"concurrent": results["concurrent"]}), flush=True)
        if args.memory_entries:
            # In a fresh process, so earlier phases' heap does not count.
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--only-memory",
                    "--memory-entries",
                    str(args.memory_entries),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results["memory"] = json.loads(out)["memory"]
            print(dump({"memory": results["memory"]}), flush=True)
    finally:
        cleanup(d)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "engine.json").write_text(dump(results))
    print(dump(results))


if __name__ == "__main__":
    main()
