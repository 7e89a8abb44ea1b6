"""The PostgreSQL driver's batch insert, measured side by side in one run on
one throwaway cluster (fsync and synchronous commit on):

- ironlog appends in batches of 1000 (sync durability) with the entries
  inserted by ``COPY`` and by ``executemany`` (store/postgres/logstore.py's
  ``USE_COPY``), and
- the baseline: plain ``COPY`` of the same rows into a bare table, one
  transaction per 1000.

Usage: python benchmarks/bench_postgres.py [--batches N]
(needs PostgreSQL installed: ``make sysdeps``; run as root or as a user who
may run initdb).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from ironlog.core.entry import prepare_object  # noqa: E402
from ironlog.core.note import Checkpoint, Signer  # noqa: E402
from ironlog.store.base import Durability, LogInfo  # noqa: E402
from ironlog.store.postgres import PostgresDriver  # noqa: E402
from ironlog.store.postgres import logstore as pg_logstore  # noqa: E402
from tests.pg import cluster  # noqa: E402

BATCH = 1000


def _entries(n: int, start: int) -> list:  # type: ignore[type-arg]
    return [
        prepare_object(
            {"actor": f"user{i % 97}", "action": "login", "resource": f"host/{i % 13}", "n": i},
            1_000_000 + i,
            "bench",
        )
        for i in range(start, start + n)
    ]


def bench_ironlog(url: str, name: str, batches: int, use_copy: bool) -> float:
    pg_logstore.USE_COPY = use_copy
    info = LogInfo("bench", name, f"bench/{name}", Durability("sync"), 1)
    driver = PostgresDriver(url)
    driver.create_log(info)
    store = driver.open_log(info)
    signer = Signer(info.origin, b"\x02" * 32)

    def sign(size: int, root: bytes) -> str:
        return Checkpoint(info.origin, size, root).sign(signer)

    work = [_entries(BATCH, b * BATCH) for b in range(batches)]
    t = time.perf_counter()
    for batch in work:
        store.append(batch, sign)
    elapsed = time.perf_counter() - t
    store.close()
    driver.close()
    return batches * BATCH / elapsed


def bench_plain_copy(url: str, batches: int) -> float:
    work = [_entries(BATCH, b * BATCH) for b in range(batches)]
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            "CREATE TABLE bare(idx BIGINT PRIMARY KEY, data BYTEA, received_us BIGINT,"
            " actor TEXT, action TEXT, resource TEXT, outcome TEXT)"
        )
        t = time.perf_counter()
        i = 0
        for batch in work:
            with con.transaction(), con.cursor() as cur, cur.copy("COPY bare FROM STDIN") as cp:
                for e in batch:
                    cp.write_row(
                        (i, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome)
                    )
                    i += 1
        elapsed = time.perf_counter() - t
    return batches * BATCH / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(), cluster(durable=True) as c:
        url = c.new_database()
        PostgresDriver(url, migrate=True).close()
        out: dict[str, float] = {}
        for rnd in range(2):  # alternate, twice: a warm cache favours neither
            for use_copy in (True, False):
                key = "copy" if use_copy else "executemany"
                rate = bench_ironlog(url, f"{key}{rnd}", args.batches, use_copy)
                out[f"ironlog_{key}_per_s"] = max(out.get(f"ironlog_{key}_per_s", 0.0), rate)
        out["plain_copy_per_s"] = bench_plain_copy(url, args.batches)
        out["copy_vs_executemany"] = out["ironlog_copy_per_s"] / out["ironlog_executemany_per_s"]
        out["ironlog_copy_vs_plain_copy"] = out["ironlog_copy_per_s"] / out["plain_copy_per_s"]
    print(json.dumps({k: round(v, 2) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
