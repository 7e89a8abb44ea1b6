"""CPU time per request of the HTTP layer, in process: no sockets, no uvicorn.

Builds the app with ``create_app(il, config)`` over a fresh data directory
(one tenant, one log with durability off, one key with read and append) and
drives it with raw ASGI calls on one event loop (handlers that run in a
thread still do: the CPU time counted is the whole process's).  For each
request kind, ``--rounds`` rounds of ``--requests`` requests; the figure is
the CPU time of a round over its requests, in microseconds, min and median:

- ``append``: POST .../entries, one JSON event;
- ``log``: GET /v1/logs/{tenant}/{log};
- ``entries``: GET .../entries?limit=10;
- ``inclusion``: GET .../proof/inclusion?index=I (the latest checkpoint).

``--src PATH`` measures another checkout instead (``PATH/src`` first on
``sys.path``; it must have the same dependencies).  ``--against PATH`` runs
this checkout and PATH in two subprocesses at once, a round of one then a
round of the other (``--rounds`` x ``--repeat`` rounds each), so that both
see the same load of the machine, and prints them side by side
(``--sequential``: whole runs one after the other, ``--repeat`` times each).

Usage: python benchmarks/bench_http_cpu.py [--rounds 7] [--requests 300]
       [--against /work/before] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("append", "log", "entries", "inclusion")
EVENT = json.dumps(
    {
        "actor": "user-42",
        "action": "payment.capture",
        "resource": "acct/0001234",
        "outcome": "success",
        "amount": 12.5,
        "currency": "KES",
        "meta": {"merchant": "ACME Mobile Money", "region": "eu-west-1"},
    }
).encode()


def _app(data: Path) -> tuple[Any, str]:
    """The app over a fresh data directory, and a key with read and append."""
    from ironlog.engine.api_keys import KeyManager
    from ironlog.engine.instance import Ironlog, init_data_dir
    from ironlog.service.http.app import create_app
    from ironlog.store.base import Durability

    init_data_dir(data)
    il = Ironlog(data)
    il.create_log("bench", "events", Durability(mode="off"), create_tenant=True)
    key, _ = KeyManager(il.control).create("bench", ("read", "append"))
    params = inspect.signature(create_app).parameters
    if "config" in params:  # after the split: one ServeConfig
        from ironlog.service.config import ServeConfig

        app = create_app(il, ServeConfig(verify_interval=0))
    else:  # before it: keyword arguments
        app = create_app(il, verify_interval=0)
    return app, key


class _Client:
    """Raw ASGI calls: a scope, the body in one message, the answer collected."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.headers = [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {key}".encode()),
        ]

    async def call(
        self, method: str, path: str, query: str = "", body: bytes = b"", ctype: str = ""
    ) -> tuple[int, bytes]:
        headers = list(self.headers)
        if body:
            headers += [(b"content-type", ctype.encode()), (b"content-length", b"%d" % len(body))]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        sent = False
        status = 0
        out: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # a client that stays: no disconnect
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(out)


def _requests(c: _Client) -> dict[str, Callable[[], Any]]:
    base = "/v1/logs/bench/events"
    return {
        "append": lambda: c.call("POST", f"{base}/entries", body=EVENT, ctype="application/json"),
        "log": lambda: c.call("GET", base),
        "entries": lambda: c.call("GET", f"{base}/entries", "limit=10"),
        "inclusion": lambda: c.call("GET", f"{base}/proof/inclusion", "index=5"),
    }


async def _measure(rounds: int, n: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="ironlog-bench-cpu-")) / "data"
    try:
        app, key = _app(data)
        c = _Client(app, key)
        reqs = _requests(c)
        expect = {"append": 201}
        for _ in range(200):  # a log to read (and warm every path once)
            status, text = await reqs["append"]()
            assert status == 201, (status, text)
        results: dict[str, Any] = {}
        for kind in kinds:
            for _ in range(max(20, n // 10)):  # warm-up
                status, text = await reqs[kind]()
                assert status == expect.get(kind, 200), (kind, status, text[:300])
            per: list[float] = []
            for _ in range(rounds):
                t0 = time.process_time()
                for _ in range(n):
                    await reqs[kind]()
                per.append((time.process_time() - t0) / n * 1e6)
            results[kind] = {"min": min(per), "median": statistics.median(per), "rounds": per}
        return results
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


async def _serve(kinds: tuple[str, ...]) -> None:
    """Rounds on demand: reads "KIND N" lines, answers each with the CPU µs
    per request of N such requests (``--against`` interleaves two of these)."""
    data = Path(tempfile.mkdtemp(prefix="ironlog-bench-cpu-")) / "data"
    try:
        app, key = _app(data)
        reqs = _requests(_Client(app, key))
        for _ in range(200):
            status, text = await reqs["append"]()
            assert status == 201, (status, text)
        for kind in kinds:
            for _ in range(50):
                status, text = await reqs[kind]()
                assert status == (201 if kind == "append" else 200), (kind, status, text[:300])
        print("ready", flush=True)
        for line in sys.stdin:
            kind, n = line.split()
            t0 = time.process_time()
            for _ in range(int(n)):
                await reqs[kind]()
            print((time.process_time() - t0) / int(n) * 1e6, flush=True)
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


def _interleaved(srcs: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both checkouts at once, a round of one then a round of the other, so
    that both see the same load of the machine."""
    procs = []
    for src in srcs:
        cmd = [sys.executable, __file__, "--kinds", ",".join(args.kinds), "--serve", "--src", src]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(p)
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        per: list[dict[str, list[float]]] = [{k: [] for k in args.kinds} for _ in procs]
        for _ in range(args.rounds * args.repeat):
            for kind in args.kinds:
                for i, p in enumerate(procs):
                    assert p.stdin is not None and p.stdout is not None
                    p.stdin.write(f"{kind} {args.requests}\n")
                    p.stdin.flush()
                    per[i][kind].append(float(p.stdout.readline()))
        return [
            {k: {"min": min(v), "median": statistics.median(v), "rounds": v} for k, v in r.items()}
            for r in per
        ]
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait()


def _child(src: str | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--rounds", str(args.rounds), "--requests", str(args.requests)]
    cmd += ["--kinds", ",".join(args.kinds), "--raw"]
    if src is not None:
        cmd += ["--src", src]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _best(runs: list[dict[str, Any]], kinds: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return {
        k: {
            "min": min(r[k]["min"] for r in runs),
            "median": statistics.median(r[k]["median"] for r in runs),
        }
        for k in kinds
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=300, help="requests per round")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ",".join(KINDS))
    ap.add_argument("--src", help="measure the checkout at PATH (PATH/src on sys.path)")
    ap.add_argument("--against", help="measure this checkout and PATH, side by side")
    ap.add_argument("--repeat", type=int, default=2, help="with --against: runs of each")
    ap.add_argument("--json", help="write the figures there")
    ap.add_argument(
        "--sequential",
        action="store_true",
        help="with --against: whole runs one after the other, not round by round",
    )
    ap.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.kinds = tuple(k for k in args.kinds.split(",") if k)
    if unknown := set(args.kinds) - set(KINDS):
        ap.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    if args.against:
        here: list[dict[str, Any]] = []
        there: list[dict[str, Any]] = []
        if args.sequential:
            for _ in range(args.repeat):  # alternately, so both see the same machine load
                there.append(_child(str(Path(args.against).resolve()), args))
                here.append(_child(str(ROOT), args))
        else:
            got = _interleaved([str(Path(args.against).resolve()), str(ROOT)], args)
            there, here = [got[0]], [got[1]]
        a, b = _best(there, args.kinds), _best(here, args.kinds)
        rounds = args.rounds * (1 if args.sequential else args.repeat)
        print(f"CPU µs per request (min / median of {rounds} rounds x {args.requests})")
        print(f"{'':10} {'against':>17} {'this checkout':>17} {'change (min)':>13}")
        for k in args.kinds:
            ratio = (b[k]["min"] / a[k]["min"] - 1) * 100
            print(
                f"{k:10} {a[k]['min']:8.0f} /{a[k]['median']:7.0f} "
                f"{b[k]['min']:8.0f} /{b[k]['median']:7.0f} {ratio:+12.1f}%"
            )
        if args.json:
            Path(args.json).write_text(json.dumps({"against": a, "this": b}, indent=2))
        return
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve() / "src"))
    import ironlog

    where = str(Path(ironlog.__file__).resolve())
    if args.src and not where.startswith(str(Path(args.src).resolve())):
        sys.exit(f"ironlog came from {where}, not {args.src}")
    if args.serve:
        asyncio.run(_serve(args.kinds))
        return
    results = asyncio.run(_measure(args.rounds, args.requests, args.kinds))
    if args.raw:
        print(json.dumps(results))
        return
    print(f"{where}: CPU µs per request (min / median of {args.rounds} x {args.requests})")
    for k, r in results.items():
        print(f"{k:10} {r['min']:8.0f} / {r['median']:7.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("IRONLOG_LOG_LEVEL", "warning")
    main()
