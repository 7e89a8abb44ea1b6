"""Run every benchmark; figures go to stdout and benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for script in [
        "bench_engine.py",
        "bench_indexes.py",
        "bench_http.py",
        "bench_ingest.py",
        "bench_stats.py",
    ]:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
