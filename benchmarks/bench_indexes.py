"""How indexed query fields change append throughput as a log grows.

For each index setting, appends N ~300-byte entries in batches of 1000 (sync
mode) and prints entries/s for every 500,000.  Usage:
    python benchmarks/bench_indexes.py [--entries N] [--settings none action,outcome ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cleanup, dump, prepared, workdir

from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.store.base import parse_indexes

SEGMENT = 500_000


def run(setting: str, n: int, pool: list[Any]) -> dict[str, Any]:
    d = workdir()
    try:
        init_data_dir(d)
        il = Ironlog(d)
        il.create_log("b", "l", create_tenant=True, indexes=parse_indexes(setting))
        lg = il.log("b", "l")
        rates = []
        t0 = seg = time.perf_counter()
        pending = None
        for s in range(0, n, 1000):
            k = s % len(pool)
            fut = lg.submit(pool[k : k + 1000], proofs=False)
            if pending is not None:
                pending.result()
            pending = fut
            if (s + 1000) % SEGMENT == 0:
                pending.result()
                now = time.perf_counter()
                rates.append(round(SEGMENT / (now - seg)))
                seg = now
        if pending is not None:
            pending.result()
        total = round(n / (time.perf_counter() - t0))
        il.close()
        return {"indexes": setting, "per_500k_entries_per_s": rates, "overall_entries_per_s": total}
    finally:
        cleanup(d)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--settings", nargs="+", default=["none", "action,outcome", "actor"])
    args = ap.parse_args()
    # Field values repeat every 200,000 entries (9973 actors, ~200k resources).
    pool = [prepared(i) for i in range(200_000)]
    results = [run(s, args.entries, pool) for s in args.settings]
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "indexes.json").write_text(dump({"indexes": results}))
    print(dump({"indexes": results}))


if __name__ == "__main__":
    main()
