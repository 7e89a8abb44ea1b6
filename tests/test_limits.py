"""Limits per request and per peer: decompression and record bombs, stored-size
amplification, slow clients (slowloris) and connection hogs, over HTTP and on
the syslog listeners.  Played through raw sockets and HTTP against real servers."""

from __future__ import annotations

import gzip
import json
import select
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from ironlog.core.entry import prepare_object
from ironlog.service.limits import Limits, split_batch
from tests.conftest import BIN
from tests.pki import CA
from tests.server import Server, _free_port, run_server
from tests.test_client import tenant_log

PROTOBUF = "application/x-protobuf"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _otlp_key(s: Server, tenant: str) -> str:
    admin = tenant_log(s, tenant)
    with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {admin}"}) as c:
        r = c.post(f"/v1/tenants/{tenant}/keys", json={"scopes": "append", "log": "app"})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


def _size(s: Server, tenant: str) -> int:
    key = tenant_log(s, tenant)
    r = httpx.get(f"{s.url}/v1/logs/{tenant}/app", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return int(r.json()["size"])


def _otlp(
    s: Server, key: str, body: bytes, ctype: str = PROTOBUF, gz: bool = True
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": ctype}
    if gz:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body, 9)
    return httpx.post(f"{s.url}/v1/logs", content=body, headers=headers, timeout=120)


def _message(r: httpx.Response) -> str:
    if r.headers["content-type"].startswith(PROTOBUF):
        return Status.FromString(r.content).message
    return str(r.json()["message"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("limits") / "data") as s:
        yield s


# --- item 9: amplification ---------------------------------------------------------


def test_otlp_bombs_get_413_fast_store_nothing_and_keep_rss_small(server: Server) -> None:
    key = _otlp_key(server, "bomb")
    million = 1_000_000
    records = _ld(1, _ld(2, _ld(2, b"") * million))  # 1M empty LogRecords
    attributes = _ld(1, _ld(2, _ld(2, _ld(6, b"") * 2 * million)))  # one record, 2M attributes
    entity_keys = _ld(1, _ld(1, _ld(3, _ld(3, b"") * 2 * million)))  # 2M repeated strings
    json_records = (
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + b",".join([b"{}"] * million) + b"]}]}]}"
    )
    json_strings = b'{"x":[' + b",".join([b'"a"'] * 3 * million) + b"]}"  # 3M str objects
    assert len(gzip.compress(records, 9)) < 3000  # the 2 KB gzip bomb
    before = _peak_rss_kb(server.pid)
    for body, ctype, limit in (
        (records, PROTOBUF, "at most 10000 log records per request"),
        (attributes, PROTOBUF, "at most 1000000 OTLP objects per request"),
        (entity_keys, PROTOBUF, "at most 1000000 OTLP objects per request"),
        (json_records, "application/json", "at most 1000000 OTLP objects per request"),
        (json_strings, "application/json", "at most 1000000 OTLP objects per request"),
    ):
        t0 = time.monotonic()
        r = _otlp(server, key, body, ctype)
        assert r.status_code == 413, (ctype, r.status_code, r.content[:200])
        assert limit in _message(r)
        assert time.monotonic() - t0 < 10
    grown_mb = (_peak_rss_kb(server.pid) - before) / 1024
    assert grown_mb < 100, f"server peak RSS grew by {grown_mb:.0f} MB"
    assert _size(server, "bomb") == 0
    # right at the limits: a full batch of ordinary records is stored
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(10_000):
        rec = sl.log_records.add()
        rec.body.string_value = f"event {i}"
        for k in ("actor", "action", "outcome"):
            rec.attributes.add(key=k).value.string_value = f"{k}-{i % 7}"
    r = _otlp(server, key, req.SerializeToString())
    assert r.status_code == 200, _message(r)
    assert _size(server, "bomb") == 10_000


def test_otlp_request_cannot_store_more_than_the_batch_byte_limit(server: Server) -> None:
    """A 50 KB resource attribute is copied into every record's entry: 1,000 records
    would store 50 MB from a request of a few KB."""
    key = _otlp_key(server, "amplify")
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add(key="blob")
    kv.value.string_value = "x" * 50_000
    sl = rl.scope_logs.add()
    for i in range(1000):
        sl.log_records.add().body.string_value = str(i)
    raw = req.SerializeToString()
    assert len(gzip.compress(raw)) < 5000
    r = _otlp(server, key, raw)
    assert r.status_code == 413, r.content[:200]
    assert f"more than {32 << 20} bytes" in _message(r)
    assert _size(server, "amplify") == 0
    del sl.log_records[100:]
    r = _otlp(server, key, req.SerializeToString())
    assert r.status_code == 200, _message(r)
    assert _size(server, "amplify") == 100


def test_listener_batches_are_split_at_the_limits() -> None:
    entries = [prepare_object({"n": f"{i:03}", "pad": "x" * 100}, 0, "t") for i in range(23)]
    one = len(entries[0].data)
    lim = Limits(max_batch_records=5, max_batch_bytes=3 * one)
    batches = list(split_batch(entries, lim))
    assert [len(b) for b in batches] == [3] * 7 + [2]
    assert [e for b in batches for e in b] == entries
    batches = list(split_batch(entries, Limits(max_batch_records=5)))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]


# --- configured limits: NDJSON, OTLP, HTTP per peer, listeners -----------------------


def _init(tmp: Path, *logs: str) -> Path:
    data = tmp / "data"
    subprocess.run([str(BIN / "ironlog"), "--data", str(data), "init"], check=True)
    for lg in logs:
        subprocess.run([str(BIN / "ironlog"), "--data", str(data), "log", "create", lg], check=True)
    return data


def test_limits_are_configurable_and_bad_values_are_refused(tmp_path: Path) -> None:
    data = _init(tmp_path)
    bad = tmp_path / "bad.toml"
    for text, word in (
        ("[limits]\nmax_batch_records = 0\n", "max_batch_records must be a positive int"),
        ("[limits]\nhttp_header_timeout = 'x'\n", "http_header_timeout must be a positive"),
        ("[limits]\nmax_records = 5\n", "unknown settings max_records"),
        ("limits = 3\n", "limits must be a [limits] table"),
    ):
        bad.write_text(text)
        out = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "serve", "--config", str(bad)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode != 0 and word in out.stderr + out.stdout, out
        assert "Traceback" not in out.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nmax_batch_records = 5\nmax_decoded_bytes = 1000\n")
    with run_server(data, "--config", str(cfg)) as s:
        key = tenant_log(s, "conf")
        url = f"{s.url}/v1/logs/conf/app/entries"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        six = b"".join(b'{"n": %d}\n' % i for i in range(6))
        r = httpx.post(url, content=six, headers=headers)
        assert r.status_code == 413 and "at most 5 events per batch" in r.text, r.text
        assert r.json()["error"]["code"] == "too_large"
        r = httpx.post(url, content=six[: six.index(b'{"n": 5}')], headers=headers)
        assert r.status_code == 201, r.text
        otlp = _otlp_key(s, "conf")
        req = ExportLogsServiceRequest()
        sl = req.resource_logs.add().scope_logs.add()
        for _ in range(6):
            sl.log_records.add()
        r = _otlp(s, otlp, req.SerializeToString())
        assert r.status_code == 413 and "at most 5 log records" in _message(r)
        r = _otlp(s, otlp, _ld(1, b"x" * 2000))  # decompresses past 1000 bytes
        assert r.status_code == 413
        assert "decompressed body is larger than the limit of 1000 bytes" in _message(r)
        assert _size(s, "conf") == 5


# --- item 11: slow clients and connection hogs ------------------------------------------


def _watch_until_closed(
    socks: list[socket.socket], trickle: bytes | None, seconds: float
) -> dict[int, tuple[float, bytes]]:
    """Send ``trickle`` on each socket every 0.2 s; when and with what each was closed."""
    t0 = time.monotonic()
    closed: dict[int, tuple[float, bytes]] = {}
    got: dict[int, bytes] = {i: b"" for i in range(len(socks))}
    while len(closed) < len(socks) and time.monotonic() - t0 < seconds:
        open_ = [i for i in range(len(socks)) if i not in closed]
        if trickle:
            for i in open_:
                try:
                    socks[i].send(trickle)
                except OSError:
                    closed[i] = (time.monotonic() - t0, got[i])
        readable, _, _ = select.select([socks[i] for i in open_ if i not in closed], [], [], 0.2)
        for sock in readable:
            i = socks.index(sock)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            got[i] += data
            if not data:
                closed[i] = (time.monotonic() - t0, got[i])
    return closed


def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nhttp_header_timeout = 1.0\nhttp_body_timeout = 2.0\n")
    with run_server(tmp_path / "data", "--config", str(cfg)) as s:
        addr = ("127.0.0.1", int(s.url.rsplit(":", 1)[1]))
        slow = [socket.create_connection(addr) for _ in range(20)]
        for c in slow:
            c.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        silent = [socket.create_connection(addr) for _ in range(3)]  # connect, say nothing
        closed = _watch_until_closed(slow, b"X", 8)  # a header byte every 0.2 s
        closed_silent = _watch_until_closed(silent, None, 3)
        huge = socket.create_connection(addr)  # one header line without end
        huge.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 << 10))
        answer = _watch_until_closed([huge], None, 3)
        assert answer and answer[0][1].startswith(b"HTTP/1.1 431"), answer
        assert answer[0][0] < 0.9  # refused for its size, not its slowness
        assert len(closed) == 20, f"{20 - len(closed)} slowloris connections still open"
        assert max(t for t, _ in closed.values()) < 4
        assert all(b"408" in answer for _, answer in closed.values())
        assert len(closed_silent) == 3
        # a body sent a byte at a time is cut off after the body timeout
        body_conns = []
        for _ in range(3):
            c = socket.create_connection(addr)
            c.sendall(
                b"POST /v1/logs/demo/events/entries HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + s.demo.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            body_conns.append(c)
        closed = _watch_until_closed(body_conns, b" ", 10)
        assert len(closed) == 3, "slow-body connections still open"
        times = [t for t, _ in closed.values()]
        assert min(times) > 1.5 and max(times) < 5, times
        # a well-behaved client on a kept-alive connection is not affected
        with httpx.Client(base_url=s.url) as c:
            for _ in range(3):
                assert c.get("/healthz").status_code == 200
                time.sleep(0.6)
        r = httpx.get(f"{s.url}/v1/logs/demo/events", headers={"Authorization": f"Bearer {s.demo}"})
        assert r.json()["size"] == 0
    assert "closing 127.0.0.1: request headers not received within 1 s" in s.output
    for c in [*slow, *silent, *body_conns, huge]:
        c.close()


def test_tls_handshakes_are_bounded_like_headers(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    cert, key = ca.issue("127.0.0.1")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'tls_cert = "{cert}"\ntls_key = "{key}"\n[limits]\nhttp_header_timeout = 1.0\n')
    ctx = ssl.create_default_context(cafile=str(ca.path))
    with run_server(tmp_path / "data", "--config", str(cfg), scheme="https", verify=ctx) as s:
        addr = ("127.0.0.1", int(s.url.rsplit(":", 1)[1]))
        silent = [socket.create_connection(addr) for _ in range(5)]  # no ClientHello
        closed = _watch_until_closed(silent, None, 8)
        assert len(closed) == 5 and max(t for t, _ in closed.values()) < 4, closed
        with httpx.Client(base_url=s.url, verify=ctx) as c:
            assert c.get("/healthz").status_code == 200
        for c in silent:
            c.close()


def _from(source: str, addr: tuple[str, int]) -> socket.socket:
    """A TCP connection from another loopback address (Linux routes all of 127/8 to lo)."""
    return socket.create_connection(addr, timeout=5, source_address=(source, 0))


def test_one_peer_cannot_hold_every_connection(tmp_path: Path) -> None:
    data = _init(tmp_path, "acme/sys")
    tcp, tls = _free_port(), _free_port()
    cert, key = CA(tmp_path).issue("ironlog.test")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[limits]
http_max_connections_per_peer = 10

[[listen]]
kind = "syslog-tcp"
host = "127.0.0.1"
port = {tcp}
log = "acme/sys"
max_connections = 10
max_connections_per_peer = 4
pressure_idle_timeout = 0.5

[[listen]]
kind = "syslog-tls"
host = "127.0.0.1"
port = {tls}
log = "acme/sys"
cert = "{cert}"
key = "{key}"
idle_timeout = 1.0
"""
    )
    with run_server(data, "--config", str(cfg)) as s:
        # HTTP: the 11th connection from one address is refused, another address gets in
        http_addr = ("127.0.0.1", int(s.url.rsplit(":", 1)[1]))
        held = [socket.create_connection(http_addr) for _ in range(10)]
        time.sleep(0.2)
        with socket.create_connection(http_addr, timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer, answer
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert other.get(f"{s.url}/healthz").status_code == 200
        for c in held:
            c.close()
        time.sleep(0.2)
        assert httpx.get(f"{s.url}/healthz").status_code == 200  # freed again
        # syslog-tcp: one peer opening many idle connections holds at most 4
        addr = ("127.0.0.1", tcp)
        hog = [socket.create_connection(addr) for _ in range(30)]
        time.sleep(0.3)
        refused = _watch_until_closed(hog, None, 2)
        assert len(refused) == 26, len(refused)
        # three more peers fill the listener to its cap of 10 with idle connections
        crowd = [_from(f"127.0.0.{3 + i // 2}", addr) for i in range(6)]
        time.sleep(0.8)  # all idle longer than pressure_idle_timeout
        sender = _from("127.0.0.2", addr)
        sender.sendall(b"<13>1 - host app - - - from the second peer\n")
        sender.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 10
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < deadline:
            out = subprocess.run(
                [
                    str(BIN / "ironlog"),
                    "--data",
                    str(data),
                    "query",
                    "acme/sys",
                    "--format",
                    "ndjson",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            entries = [json.loads(line)["entry"] for line in out.splitlines() if line]
            found = [e for e in entries if e.get("message") == "from the second peer"]
            time.sleep(0.2)
        assert found and str(found[0]["peer"]).startswith("127.0.0.2:"), found
        evicted = _watch_until_closed(
            [c for i, c in enumerate(hog) if i not in refused] + crowd, None, 1
        )
        assert evicted, "no idle connection was closed to make room"
        # syslog-tls: a connection that never starts its handshake is closed in time
        silent = [socket.create_connection(("127.0.0.1", tls)) for _ in range(5)]
        closed = _watch_until_closed(silent, None, 6)
        assert len(closed) == 5 and max(t for t, _ in closed.values()) < 4, closed
        for c in [*hog, *crowd, sender, *silent]:
            c.close()
    assert "connections from 127.0.0.1 already open" in s.output
    assert "near its connection limit" in s.output
