"""The real server over HTTP on 127.0.0.1, driven by wrk (Debian package).

Starts ``ironlog serve --workers 2`` (sync durability) on a fresh data
directory, then:
- single events: 64 connections POSTing one JSON event each;
- NDJSON batches of 1000 events from 16 connections.
Checks afterwards that the log holds exactly the acknowledged entries.

Usage: python benchmarks/bench_http.py [--seconds 10] [--workers 2]
(``make bench`` installs wrk with apt-get when it is missing.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dump, event, server

LUA = """
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.headers["Content-Type"] = "%(ctype)s"
local f = io.open("%(body)s", "rb")
wrk.body = f:read("*a")
f:close()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(url: str, script: Path, conns: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m:
            v = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            lat[f"p{p}_ms"] = round(v, 2)
    return {
        "requests": reqs,
        "requests_per_s": round(rps),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        **lat,
    }


def _run(tmp: Path, url: str, key: str, seconds: float) -> dict[str, Any]:
    single = tmp / "single.json"
    single.write_bytes(json.dumps(event(1)).encode())
    batch = tmp / "batch.ndjson"
    batch.write_bytes(b"".join(json.dumps(event(i)).encode() + b"\n" for i in range(1000)))
    s1 = tmp / "single.lua"
    s1.write_text(LUA % {"key": key, "ctype": "application/json", "body": single})
    s2 = tmp / "batch.lua"
    s2.write_text(LUA % {"key": key, "ctype": "application/x-ndjson", "body": batch})
    target = url + "/v1/logs/demo/events/entries"
    results: dict[str, Any] = {"seconds": seconds}
    results["single_64_connections"] = _wrk(target, s1, 64, seconds)
    r = _wrk(target, s2, 16, seconds)
    r["events_per_s"] = r["requests_per_s"] * 1000
    results["ndjson_batches_of_1000_16_connections"] = r
    size = httpx.get(
        url + "/v1/logs/demo/events", headers={"Authorization": f"Bearer {key}"}
    ).json()["size"]
    ok = (
        results["single_64_connections"]["requests"]
        - results["single_64_connections"]["non_2xx"]
        + 1000 * (r["requests"] - r["non_2xx"])
    )
    # wrk stops counting at its deadline; requests still in flight may land after it.
    results["log_size_after"] = size
    results["acknowledged_by_wrk"] = ok
    assert size >= ok, (size, ok)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="ironlog-http-", dir=os.environ.get("IRONLOG_BENCH_DIR")))
    try:
        with server(tmp / "data", args.workers) as (url, key):
            results = _run(tmp, url, key, args.seconds)
            results["workers"] = args.workers
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "http.json").write_text(dump(results))
    print(dump(results))


if __name__ == "__main__":
    main()
