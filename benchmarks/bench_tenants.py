"""Many tenants, many logs: what one instance holds open, and what errors.

Starts ``ironlog serve`` (one worker by default) with a descriptor limit
(``--nofile``, like systemd's ``LimitNOFILE``), then over HTTP:
- creates ``--tenants`` tenants with ``--logs`` logs each (operator key) and a
  tenant key for each (create rate);
- appends one event to every log in random order (first append to a cold
  log: p50/p99 latency);
- appends for ``--seconds`` spread over all logs, then the same time on one
  log (entries/s; ratio);
- reads the server's descriptors, threads and RSS from /proc, and counts
  every answer by status (any 5xx is a failure of the bound);
- checks ``/v1/integrity`` reports no failure.

Usage: python benchmarks/bench_tenants.py [--tenants 2000] [--logs 5]
       [--workers 1] [--nofile 4096] [--concurrency 16] [--seconds 10]
       [--max-open-logs N]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cleanup, dump, event, free_port, percentile

STATUS: collections.Counter[int] = collections.Counter()
ERRORS: collections.Counter[str] = collections.Counter()  # codes of the 5xx answers
_status_lock = threading.Lock()


def _count(status: int) -> None:
    with _status_lock:
        STATUS[status] += 1


class Server:
    def __init__(self, data: Path, workers: int, nofile: int, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ironlog = str(Path(sys.executable).parent / "ironlog")

        def limit() -> None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, min(hard, nofile)))

        cmd = [ironlog, "--data", str(data), "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "--workers", str(workers), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit,
        )
        assert self.proc.stdout is not None
        text = ""
        while "Append an event:" not in text:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("server did not start:\n" + text)
            text += line
        self.operator = text.split("operator key (manages tenants): ")[1].split()[0]
        threading.Thread(target=self._drain, daemon=True).start()
        for _ in range(200):
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def pids(self) -> list[int]:
        """The server process and all its descendants."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
        return out

    def resources(self) -> dict[str, Any]:
        per = []
        for pid in self.pids():
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                status = dict(
                    line.split(":", 1)
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                )
            except OSError:
                continue
            per.append(
                {
                    "pid": pid,
                    "fds": fds,
                    "threads": int(status["Threads"]),
                    "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
                }
            )
        return {
            "processes": per,
            "max_fds": max(p["fds"] for p in per),
            "max_threads": max(p["threads"] for p in per),
            "max_rss_mb": max(p["rss_mb"] for p in per),
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _run_all(
    concurrency: int, jobs: list[Callable[[httpx.Client], None]]
) -> tuple[float, list[float]]:
    """Run jobs on ``concurrency`` threads; (seconds, per-job latencies)."""
    local = threading.local()
    latencies: list[float] = []

    def go(job: Callable[[httpx.Client], None]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60)
        t = time.perf_counter()
        job(client)
        latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(go, jobs))
    return time.perf_counter() - start, latencies


def _post(client: httpx.Client, url: str, key: str, body: Any) -> httpx.Response | None:
    """The answer (counted by status); None when the connection failed
    (counted as status 0: a server out of descriptors resets connections)."""
    try:
        r = client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
    except httpx.TransportError:
        _count(0)
        return None
    _count(r.status_code)
    if r.status_code >= 500:
        with _status_lock:
            try:
                ERRORS[r.json()["error"]["code"]] += 1
            except (ValueError, KeyError, TypeError):
                ERRORS["?"] += 1
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tenants", type=int, default=2000)
    p.add_argument("--logs", type=int, default=5, help="logs per tenant")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--nofile", type=int, default=4096)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--max-open-logs", type=int, default=None, help="serve --max-open-logs (default: its own)"
    )
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ironlog-bench-tenants-"))
    extra = () if args.max_open_logs is None else ("--max-open-logs", str(args.max_open_logs))
    srv = Server(tmp / "data", args.workers, args.nofile, extra)
    results: dict[str, Any] = {"args": vars(args)}
    keys: dict[str, str] = {}
    try:
        op, url = srv.operator, srv.url
        tenants = [f"t{i:05d}" for i in range(args.tenants)]

        def make_tenant(t: str) -> Callable[[httpx.Client], None]:
            def job(c: httpx.Client) -> None:
                _post(c, f"{url}/v1/tenants", op, {"name": t})
                r = _post(
                    c, f"{url}/v1/tenants/{t}/keys", op, {"scopes": ["append", "read"], "name": "b"}
                )
                if r is not None and r.status_code in (200, 201):
                    keys[t] = r.json()["key"]

            return job

        secs, _ = _run_all(args.concurrency, [make_tenant(t) for t in tenants])
        results["tenants_per_s"] = round(len(tenants) / secs, 1)

        logs = [(t, f"l{j}") for t in tenants for j in range(args.logs)]

        def make_log(t: str, name: str) -> Callable[[httpx.Client], None]:
            def job(c: httpx.Client) -> None:
                _post(c, f"{url}/v1/tenants/{t}/logs", op, {"name": name})

            return job

        secs, _ = _run_all(args.concurrency, [make_log(t, n) for t, n in logs])
        results["logs"] = len(logs)
        results["logs_created_per_s"] = round(len(logs) / secs, 1)
        results["after_create"] = srv.resources()

        def append(t: str, name: str, i: int) -> Callable[[httpx.Client], None]:
            def job(c: httpx.Client) -> None:
                key = keys.get(t)
                if key is not None:
                    _post(c, f"{url}/v1/logs/{t}/{name}/entries", key, event(i))

            return job

        order = logs[:]
        random.Random(1).shuffle(order)
        secs, lat = _run_all(args.concurrency, [append(t, n, i) for i, (t, n) in enumerate(order)])
        results["first_append"] = {
            "per_s": round(len(order) / secs, 1),
            "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        }
        results["after_first_appends"] = srv.resources()

        def steady(pick: Callable[[int], tuple[str, str]]) -> float:
            n, stop = 0, time.perf_counter() + args.seconds
            jobs_done = 0
            start = time.perf_counter()
            while time.perf_counter() < stop:
                batch = [append(*pick(n + k), n + k) for k in range(args.concurrency * 8)]
                _run_all(args.concurrency, batch)
                n += len(batch)
                jobs_done += len(batch)
            return jobs_done / (time.perf_counter() - start)

        rng = random.Random(2)
        spread = steady(lambda i: logs[rng.randrange(len(logs))])
        one = steady(lambda i: logs[0])
        results["steady"] = {
            "spread_per_s": round(spread, 1),
            "one_log_per_s": round(one, 1),
            "ratio_spread_to_one": round(spread / one, 3),
        }
        results["at_end"] = srv.resources()
        with httpx.Client(timeout=300) as c:
            t = time.perf_counter()
            try:
                r = c.get(f"{url}/v1/integrity", headers={"Authorization": f"Bearer {op}"})
            except httpx.TransportError as e:
                _count(0)
                results["integrity_failures"] = f"no answer: {type(e).__name__}"
            else:
                _count(r.status_code)
                results["integrity_report_s"] = round(time.perf_counter() - t, 2)
                body = r.json() if r.status_code == 200 else {}
                rows = body.get("logs", body) if isinstance(body, dict) else body
                failed = [x for x in rows if isinstance(x, dict) and x.get("failure")]
                results["integrity_status"] = r.status_code
                results["integrity_failures"] = len(failed)
                results["unwritable_logs"] = sum(
                    1 for x in rows if isinstance(x, dict) and x.get("writable") is False
                )
        results["after_integrity"] = srv.resources()
        results["answers"] = {str(k): v for k, v in sorted(STATUS.items())}
        results["5xx"] = sum(v for k, v in STATUS.items() if k >= 500)
        results["connection_errors"] = STATUS.get(0, 0)
        results["5xx_codes"] = dict(ERRORS)
    finally:
        srv.stop()
        cleanup(tmp)
    print(dump(results))


if __name__ == "__main__":
    main()
