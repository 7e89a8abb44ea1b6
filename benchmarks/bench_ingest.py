"""Ingest through the other front doors, against the real server (sync-mode logs).

- syslog-tcp: C connections each send N octet-counted RFC 5424 messages as
  fast as the socket takes them; the figure is messages/s from the first
  byte sent to the last message committed, and the log must hold all of them
  (no loss), in order per connection.
- syslog-udp: the same messages as datagrams, blasted; delivered/s and how
  many were lost (counted by the server, or never seen by it).
- OTLP/HTTP: wrk POSTs a protobuf ExportLogsServiceRequest of 1000 records.
- baseline in the same run: the same syslog entries appended through the
  library (``Log.append_batch`` in batches of 1000) — the engine's ceiling.
- logging handler: microseconds per ``logger.info`` call on the caller's
  thread with ``LogHandler`` attached, side by side with a ``NullHandler``
  logger, and the records/s its background thread delivers.

Usage: python benchmarks/bench_ingest.py [--messages 200000] [--connections 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import LUA, _wrk
from common import dump, free_port, server

from ironlog.client import LogHandler
from ironlog.core.entry import format_time, now_us
from ironlog.engine.instance import Ironlog
from ironlog.service.ingest.protocols import syslog_entry

MSG = (
    b"<86>1 2026-11-26T10:00:00.000000Z pay-gw-%d payments 4242 AUTH "
    b'[txn@32473 id="%d" amount="12.50" currency="KES"] payment authorized for '
    b"account 00%d by terminal POS-0042"
)


def frames(conn: int, n: int) -> bytes:
    out = []
    for i in range(n):
        m = MSG % (conn, i, i)
        out.append(b"%d %s" % (len(m), m))
    return b"".join(out)


def _size(data: Path, log: str) -> int:
    with Ironlog(data) as il:
        return il.log(*log.split("/")).head().size


def _wait_size(data: Path, log: str, n: int, timeout: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    last, stable = -1, time.monotonic()
    while True:
        size = _size(data, log)
        now = time.monotonic()
        if size >= n or now > deadline or (size == last and now - stable > 5):
            return size, now
        if size != last:
            last, stable = size, now
        time.sleep(0.05)


def bench_tcp(data: Path, port: int, conns: int, per_conn: int) -> dict[str, Any]:
    payloads = [frames(c, per_conn) for c in range(conns)]
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=s.sendall, args=(p,)) for s, p in zip(socks, payloads, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent_s = time.monotonic() - t0
    total = conns * per_conn
    size, t1 = _wait_size(data, "bench/tcp", total, 600)
    for s in socks:
        s.close()
    return {
        "connections": conns,
        "messages": total,
        "stored": size,
        "lost": total - size,
        "messages_per_s": round(size / (t1 - t0)),
        "client_send_seconds": round(sent_s, 2),
    }


def bench_udp(data: Path, port: int, n: int, rate: float | None) -> dict[str, Any]:
    """Send ``n`` datagrams, paced at ``rate``/s (None: as fast as possible)."""
    before = _size(data, "bench/udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        t0 = time.monotonic()
        for i in range(n):
            if rate and i % 50 == 0:
                ahead = t0 + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            u.sendto(MSG % (0, i, i), ("127.0.0.1", port))
        sent_s = time.monotonic() - t0
    size, t1 = _wait_size(data, "bench/udp", before + n, 120)
    stored = size - before
    return {
        "paced_at_per_s": rate,
        "sent": n,
        "stored": stored,
        "lost": n - stored,
        "loss_percent": round(100 * (n - stored) / n, 2),
        "client_send_per_s": round(n / sent_s),
        "stored_per_s": round(stored / (t1 - t0)),
    }


def bench_library(data: Path, total: int) -> dict[str, Any]:
    received = now_us()
    when = format_time(received)
    with Ironlog(data) as il:
        il.create_log("bench", "lib")
        lg = il.log("bench", "lib")
        t0 = time.monotonic()
        for start in range(0, total, 1000):
            batch = [
                syslog_entry(MSG % (0, i, i), received, when, "bench", "127.0.0.1:1", {})[0]
                for i in range(start, min(total, start + 1000))
            ]
            lg.append_batch(batch)
        dt = time.monotonic() - t0
    return {"messages": total, "messages_per_s": round(total / dt)}


def bench_otlp(tmp: Path, url: str, key: str, seconds: float) -> dict[str, Any]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(1000):
        rec = sl.log_records.add()
        rec.time_unix_nano = time.time_ns()
        rec.severity_text = "INFO"
        rec.body.string_value = f"payment {i} authorized"
        rec.attributes.add(key="actor", value={"string_value": f"user-{i}"})
    body = tmp / "otlp.bin"
    body.write_bytes(req.SerializeToString())
    script = tmp / "otlp.lua"
    lua = LUA % {"key": key, "ctype": "application/x-protobuf", "body": body}
    script.write_text(lua + 'wrk.headers["X-Ironlog-Log"] = "events"\n')
    r = _wrk(url + "/v1/logs", script, 8, seconds)
    r["records_per_s"] = r["requests_per_s"] * 1000
    return r


def bench_handler(url: str, key: str, calls: int, tmp: Path) -> dict[str, Any]:
    null = logging.getLogger("bench.null")
    null.propagate = False
    null.addHandler(logging.NullHandler())
    null.setLevel(logging.INFO)
    shipped = logging.getLogger("bench.ironlog")
    shipped.propagate = False
    shipped.setLevel(logging.INFO)
    h = LogHandler(url, key, "demo/events", spool_path=tmp / "h.spool", max_queue=calls + 1)
    shipped.addHandler(h)

    def per_call(lg: logging.Logger) -> tuple[float, float]:
        """(CPU time of the calling thread, wall time) per call, in µs.  The
        wall time also holds the GIL waits while the shipper thread works."""
        c0, t0 = time.thread_time(), time.perf_counter()
        for i in range(calls):
            lg.info("payment %d authorized", i, extra={"actor": "svc", "n": i})
        cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
        return cpu / calls * 1e6, wall / calls * 1e6

    base, base_wall = per_call(null)
    t0 = time.monotonic()
    cost, wall = per_call(shipped)
    assert h.shipper.flush(600)
    delivered_s = time.monotonic() - t0
    shipped.removeHandler(h)
    h.close()
    return {
        "calls": calls,
        "nullhandler_us_per_call": round(base, 2),
        "ironlog_handler_us_per_call": round(cost, 2),
        "added_us_per_call": round(cost - base, 2),
        "nullhandler_wall_us_per_call": round(base_wall, 2),
        "ironlog_handler_wall_us_per_call": round(wall, 2),
        "delivered": h.shipper.sent,
        "delivered_per_s": round(h.shipper.sent / delivered_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--handler-calls", type=int, default=100_000)
    ap.add_argument("--udp-rate", type=float, default=10_000, help="paced UDP send rate")
    ap.add_argument(
        "--only", choices=["tcp", "udp", "otlp", "handler"], action="append", help="repeatable"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ironlog-ingest-", dir=os.environ.get("IRONLOG_BENCH_DIR")))
    data = tmp / "data"
    ironlog = str(Path(sys.executable).parent / "ironlog")
    subprocess.run([ironlog, "--data", str(data), "init"], check=True, capture_output=True)
    for lg in ("bench/tcp", "bench/udp"):
        subprocess.run([ironlog, "--data", str(data), "log", "create", lg], check=True)
    tcp, udp = free_port(), free_port()
    results: dict[str, Any] = {"workers": args.workers, "durability": "sync"}
    try:
        listen = [
            "--listen", f"syslog-tcp:127.0.0.1:{tcp}=bench/tcp",
            "--listen", f"syslog-udp:127.0.0.1:{udp}=bench/udp",
        ]  # fmt: skip
        with server(data, args.workers, *listen) as (url, key):
            per = args.messages // args.connections
            only = set(args.only or ["tcp", "udp", "otlp", "handler"])
            if "tcp" in only:
                results["syslog_tcp"] = bench_tcp(data, tcp, args.connections, per)
            if "udp" in only:
                n = args.messages // 4
                results["syslog_udp_paced"] = bench_udp(data, udp, n, args.udp_rate)
                results["syslog_udp_blast"] = bench_udp(data, udp, n, None)
            if "otlp" in only and shutil.which("wrk"):
                results["otlp_protobuf_1000_records_8_connections"] = bench_otlp(
                    tmp, url, key, args.seconds
                )
            if "handler" in only:
                results["logging_handler"] = bench_handler(url, key, args.handler_calls, tmp)
        if "syslog_tcp" in results:
            results["library_append_batch_1000"] = bench_library(data, args.messages)
            lib = results["library_append_batch_1000"]["messages_per_s"]
            results["ratio_syslog_tcp_to_library"] = round(
                results["syslog_tcp"]["messages_per_s"] / lib, 2
            )
        if "logging_handler" in results:
            h = results["logging_handler"]
            results["ratio_handler_to_nullhandler"] = round(
                h["ironlog_handler_us_per_call"] / h["nullhandler_us_per_call"], 2
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(dump(results))
    print(dump(results))


if __name__ == "__main__":
    main()
