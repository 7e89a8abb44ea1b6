"""Syslog and raw TCP/UDP listeners, with real clients: util-linux ``logger`` and
rsyslog forwarding over TCP (octet-counted) and TLS (client certificates)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlog.core import syslog
from tests.conftest import BIN
from tests.pki import CA
from tests.server import Server, _free_port, run_server

LOGGER = shutil.which("logger") or "/usr/bin/logger"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


# --- the parser ----------------------------------------------------------------


def test_rfc5424_examples() -> None:
    ev = syslog.parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"] \xef\xbb\xbfAn application event'
    )
    assert ev["facility"] == "local4" and ev["severity"] == "notice" and ev["pri"] == 165
    assert ev["hostname"] == "mymachine.example.com" and ev["app_name"] == "evntslog"
    assert ev["procid"] is None and ev["msgid"] == "ID47"
    assert ev["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert ev["message"] == "An application event" and ev["syslog"] == "rfc5424"
    esc = syslog.parse(b'<13>1 - - - - - [a b="q\\"\\]\\\\"] m')
    assert esc["structured_data"] == {"a": {"b": 'q"]\\'}} and esc["timestamp"] is None


def test_rfc3164_variants() -> None:
    ev = syslog.parse(b"<38>Nov  6 09:01:02 web-1 sshd[4242]: Accepted key for alice\n")
    assert (ev["facility"], ev["severity"], ev["hostname"]) == ("auth", "info", "web-1")
    assert (ev["app_name"], ev["procid"]) == ("sshd", "4242")
    assert ev["message"] == "Accepted key for alice" and ev["timestamp"] == "Nov  6 09:01:02"
    nohost = syslog.parse(b"<13>Nov 26 19:00:00 cron: tick")
    assert nohost["hostname"] is None and nohost["app_name"] == "cron"
    assert syslog.parse(b"<13>just text")["message"] == "just text"


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"hello", "no <PRI>"),
        (b"<192>x", "invalid PRI"),
        (b"<013>x", "invalid PRI"),
        (b"<13>1 not-a-time host app - - - m", "timestamp"),
        (b"<13>1 - h a p m [x y=unterminated", "SD-PARAM"),
        (b"<13>1 - h a p m [x", "SD-ELEMENT"),
    ],
)
def test_unparseable_is_kept_raw_with_reason(raw: bytes, reason: str) -> None:
    ev = syslog.parse(raw)
    assert ev["raw"] == raw.decode() and reason in ev["parse_error"]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises(raw: bytes) -> None:
    ev = syslog.parse(raw)
    assert "raw" in ev


# --- listeners: helpers --------------------------------------------------------------


def _cli(data: Path, *args: str) -> str:
    return subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _data(tmp: Path, *logs: str) -> Path:
    data = tmp / "data"
    _cli(data, "init")
    for lg in logs:
        _cli(data, "log", "create", lg)
    return data


def _entries(data: Path, log: str) -> list[dict[str, object]]:
    out = _cli(data, "query", log, "--format", "ndjson", "--limit", "1000000")
    return [json.loads(line)["entry"] for line in out.splitlines() if line]


def _wait_entries(data: Path, log: str, n: int, timeout: float = 30) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        got = _entries(data, log)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _metric(s: Server, name: str, **labels: str) -> float:
    text = httpx.get(f"{s.url}/metrics", headers={"Authorization": f"Bearer {s.operator}"}).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _closed_by_server(sock: socket.socket, timeout: float = 10) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError, OSError) as e:
        return not isinstance(e, TimeoutError)
    return True


# --- listeners with logger ---------------------------------------------------------------


def test_logger_over_udp_tcp_and_octet_counting(tmp_path: Path) -> None:
    data = _data(tmp_path, "acme/sys")
    port = _free_port()
    target = "=acme/sys"
    listen = [f"syslog-udp:127.0.0.1:{port}{target}", f"syslog-tcp:127.0.0.1:{port}{target}"]
    args = [a for spec in listen for a in ("--listen", spec)]
    with run_server(data, *args, "--workers", "2") as s:
        base = [LOGGER, "-n", "127.0.0.1", "-P", str(port)]
        subprocess.run([*base, "--udp", "--rfc5424", "-t", "app", "udp 5424"], check=True)
        subprocess.run([*base, "--udp", "--rfc3164", "-t", "app", "udp 3164"], check=True)
        files = {}
        for name in ("lf5424", "octet5424", "lf3164"):
            f = tmp_path / f"{name}.txt"
            f.write_text("".join(f"{name} line {i}\n" for i in range(200)))
            files[name] = str(f)
        subprocess.run([*base, "--tcp", "--rfc5424", "-t", "lf", "-f", files["lf5424"]], check=True)
        subprocess.run(
            [
                *base, "--tcp", "--octet-count", "--rfc5424", "-t", "oc",
                "--sd-id", "order@1", "--sd-param", 'k="v"', "-f", files["octet5424"],
            ],
            check=True,
        )  # fmt: skip
        subprocess.run(
            [*base, "--tcp", "--rfc3164", "-t", "old", "-f", files["lf3164"]], check=True
        )
        got = _wait_entries(data, "acme/sys", 602)
        assert len(got) == 602
        by_msg = {str(e["message"]): e for e in got}
        assert (
            by_msg["udp 5424"]["syslog"] == "rfc5424"
            and by_msg["udp 5424"]["source"] == "syslog-udp"
        )
        assert by_msg["udp 3164"]["syslog"] == "rfc3164" and by_msg["udp 3164"]["app_name"] == "app"
        for name, fmt, app in (
            ("lf5424", "rfc5424", "lf"),
            ("octet5424", "rfc5424", "oc"),
            ("lf3164", "rfc3164", "old"),
        ):
            mine = [e for e in got if str(e["message"]).startswith(name)]
            # in order per connection, all of them, parsed
            assert [e["message"] for e in mine] == [f"{name} line {i}" for i in range(200)]
            assert {e["syslog"] for e in mine} == {fmt} and {e["app_name"] for e in mine} == {app}
            assert all(e["source"] == "syslog-tcp" and "parse_error" not in e for e in mine)
        oc = by_msg["octet5424 line 7"]
        assert oc["structured_data"]["order@1"] == {"k": "v"}  # type: ignore[index]
        assert oc["facility"] == "user" and oc["severity"] == "notice"
        assert _metric(s, "ironlog_listener_messages_total") == 602


# --- rsyslog forwarding over TCP and TLS -------------------------------------------------------


RSYSLOG_CONF = """
global(workDirectory="{work}"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{inport}" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp"
         StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="ironlog.test" template="RSYSLOG_SyslogProtocol23Format")
}}
"""


def test_rsyslog_forwards_over_tcp_and_tls_with_client_certificates(tmp_path: Path) -> None:
    data = _data(tmp_path, "acme/fwd-tcp", "acme/fwd-tls")
    ca = CA(tmp_path)
    server_cert, server_key = ca.issue("ironlog.test")
    client_cert, client_key = ca.issue("rsyslog-client", client=True)
    tcp, tls, inport = _free_port(), _free_port(), _free_port()
    cfg = tmp_path / "ironlog.toml"
    cfg.write_text(
        f"""
[[listen]]
kind = "syslog-tcp"
host = "127.0.0.1"
port = {tcp}
log = "acme/fwd-tcp"

[[listen]]
kind = "syslog-tls"
host = "127.0.0.1"
port = {tls}
log = "acme/fwd-tls"
cert = "{server_cert}"
key = "{server_key}"
client_ca = "{ca.path}"
"""
    )
    work = tmp_path / "rsyslog"
    work.mkdir()
    conf = work / "rsyslog.conf"
    conf.write_text(
        RSYSLOG_CONF.format(
            work=work, ca=ca.path, cert=client_cert, key=client_key, inport=inport, tcp=tcp, tls=tls
        )
    )
    with run_server(data, "--config", str(cfg)) as s:
        rsyslog = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", inport)) == 0:
                        break
                time.sleep(0.1)
            msgs = tmp_path / "msgs.txt"
            msgs.write_text("".join(f"forwarded {i}\n" for i in range(100)))
            subprocess.run(
                [LOGGER, "-n", "127.0.0.1", "-P", str(inport), "--tcp", "-t", "payments",
                 "-f", str(msgs)],
                check=True,
            )  # fmt: skip
            via_tcp = _wait_entries(data, "acme/fwd-tcp", 100)
            via_tls = _wait_entries(data, "acme/fwd-tls", 100)
        finally:
            rsyslog.terminate()
            out = rsyslog.communicate(timeout=20)[0]
        for got, source in ((via_tcp, "syslog-tcp"), (via_tls, "syslog-tls")):
            assert [e["message"] for e in got] == [f"forwarded {i}" for i in range(100)], out
            assert {e["app_name"] for e in got} == {"payments"}
            assert {e["syslog"] for e in got} == {"rfc5424"} and {e["source"] for e in got} == {
                source
            }
        assert {e["tls_client"] for e in via_tls} == {"rsyslog-client"}
        # Without a client certificate from the CA, the TLS listener refuses.
        ctx = ssl.create_default_context(cafile=str(ca.path))
        ctx.check_hostname = False
        assert _tls_refused(ctx, tls)
        (tmp_path / "other").mkdir()
        other = CA(tmp_path / "other", "other CA")
        bad_cert, bad_key = other.issue("mallory", client=True)
        ctx.load_cert_chain(str(bad_cert), str(bad_key))
        assert _tls_refused(ctx, tls)
        time.sleep(0.5)
        assert len(_entries(data, "acme/fwd-tls")) == 100
        assert httpx.get(f"{s.url}/healthz").status_code == 200


def _tls_refused(ctx: ssl.SSLContext, port: int) -> bool:
    """True if the server ends the TLS session (TLS 1.3 may finish the client's
    side of the handshake first, so the refusal shows on the first read)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="ironlog.test") as t,
        ):
            t.sendall(b"<13>1 - - - - - - sneaky\n")
            return t.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


# --- bad input, limits, back-pressure ------------------------------------------------------


def test_garbage_oversized_half_open_and_connection_limits(tmp_path: Path) -> None:
    data = _data(tmp_path, "acme/bad", "acme/json")
    tcp, nd = _free_port(), _free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[[listen]]
kind = "syslog-tcp"
host = "127.0.0.1"
port = {tcp}
log = "acme/bad"
max_message = 1000
max_connections = 3
idle_timeout = 1.0

[[listen]]
kind = "ndjson-tcp"
host = "127.0.0.1"
port = {nd}
log = "acme/json"
"""
    )
    with run_server(data, "--config", str(cfg)) as s:
        addr = ("127.0.0.1", tcp)
        with socket.create_connection(addr) as c:  # not syslog at all
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert _closed_by_server(c)
        with socket.create_connection(addr) as c:  # a frame over the limit
            c.sendall(b"5000 <13>1 - - - - - - " + b"x" * 100)
            assert _closed_by_server(c)
        with socket.create_connection(addr) as c:  # a line over the limit
            c.sendall(b"<13>" + b"y" * 2000)
            assert _closed_by_server(c)
        with socket.create_connection(addr) as c:  # half-open: part of a frame, then silence
            c.sendall(b"<13>1 - host app - - - complete\n<13>1 - host app - - - half")
            t0 = time.monotonic()
            assert _closed_by_server(c)
            assert 0.8 < time.monotonic() - t0 < 8
        with socket.create_connection(addr) as c:  # last line without a newline, then EOF
            c.sendall(b"<13>Nov 26 19:00:00 h app: no newline at the end")
            c.shutdown(socket.SHUT_WR)
            assert _closed_by_server(c)
        conns = [socket.create_connection(addr) for _ in range(3)]
        time.sleep(0.3)
        try:
            with socket.create_connection(addr) as extra:
                assert _closed_by_server(extra, 5)
        finally:
            for c in conns:
                c.close()
        with socket.create_connection(("127.0.0.1", nd)) as c:
            c.sendall(b'{"n": 1}\n{"n": 2}\n{not json}\n{"n": 3}\n')
            assert _closed_by_server(c)
        got = _wait_entries(data, "acme/bad", 5)
        bad = [e for e in got if "parse_error" in e]
        assert [e.get("message") for e in got if "parse_error" not in e] == [
            "complete",
            "no newline at the end",
        ]
        reasons = " | ".join(str(e["parse_error"]) for e in bad)
        assert "idle" in reasons and "longer than 1000" in reasons, reasons
        assert any(str(e["raw"]).startswith("<13>1 - host app - - - half") for e in bad)
        assert [e["n"] for e in _wait_entries(data, "acme/json", 2)] == [1, 2]
        assert httpx.get(f"{s.url}/healthz").status_code == 200
        name = f"syslog-tcp:127.0.0.1:{tcp}"
        assert (
            _metric(s, "ironlog_listener_connections_total", listener=name, event="rejected") == 1
        )
        assert (
            _metric(s, "ironlog_listener_dropped_total", listener=name, reason="connection_closed")
            >= 4
        )
    assert "closing 127.0.0.1" in s.output and "not syslog" in s.output
    assert "y" * 50 not in s.output  # reasons, never bodies


def test_back_pressure_tcp_waits_udp_counts_drops(tmp_path: Path) -> None:
    data = _data(tmp_path, "acme/bp", "acme/udp")
    port = _free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "".join(
            f"""
[[listen]]
kind = "{kind}"
host = "127.0.0.1"
port = {port}
log = "{log}"
high_water = {high}
low_water = {low}
"""
            # UDP: two datagrams in flight already count as a full queue, so
            # drops show even where commits are very fast.
            for kind, log, high, low in (
                ("syslog-tcp", "acme/bp", 20, 5),
                ("syslog-udp", "acme/udp", 2, 1),
            )
        )
    )
    n = 5000
    with run_server(data, "--config", str(cfg)) as s:
        frames = b"".join(
            b"%d %s" % (len(m), m) for m in (b"<14>1 - h app - - - msg %d" % i for i in range(n))
        )
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(frames)
            c.shutdown(socket.SHUT_WR)
            assert _closed_by_server(c, 60)
        got = _wait_entries(data, "acme/bp", n, 60)
        assert [e["message"] for e in got] == [f"msg {i}" for i in range(n)]  # none lost
        name = f"syslog-tcp:127.0.0.1:{port}"
        assert _metric(s, "ironlog_listener_paused_total", listener=name) > 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for i in range(n):
                u.sendto(b"<14>1 - h app - - - udp %d" % i, ("127.0.0.1", port))
        time.sleep(2)
        stored = len(_entries(data, "acme/udp"))
        dropped = _metric(
            s,
            "ironlog_listener_dropped_total",
            listener=f"syslog-udp:127.0.0.1:{port}",
            reason="queue_full",
        )
        assert stored > 0 and dropped > 0 and stored + dropped <= n


def test_listen_option_errors_are_clear(tmp_path: Path) -> None:
    data = _data(tmp_path, "acme/x")
    for spec, msg in (
        ("syslog-tcp:127.0.0.1=acme/x", "KIND:HOST:PORT"),
        ("smtp:127.0.0.1:2525=acme/x", "kind must be one of"),
        ("syslog-tcp:127.0.0.1:5514=acme/nope", "does not exist"),
        ("syslog-tls:127.0.0.1:5514=acme/x", "needs cert and key"),
    ):
        r = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "serve", "--listen", spec],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode != 0 and msg in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "serve", "--listen",
             f"syslog-tcp:127.0.0.1:{port}=acme/x"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode != 0 and re.search(r"cannot bind", r.stderr), r.stderr


_SD_TEXT = st.text(alphabet='ab"]\\= x', max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 200),
    st.sampled_from(["-", "2026-11-26T10:00:00.5Z", "2026-11-26T10:00:00+02:00", "bad"]),
    st.lists(st.tuples(st.sampled_from(["a", "b@1", "x y"]), _SD_TEXT), max_size=3),
    st.text(max_size=20),
)
def test_fast_path_agrees_with_the_careful_parser(
    pri: int, ts: str, params: list[tuple[str, str]], msg: str
) -> None:
    """The one-regex fast path for RFC 5424 gives exactly what the
    field-by-field parser gives (which also explains failures)."""
    sd = "".join(f'[{k} p="{v}"]' for k, v in params) or "-"
    raw = f"<{pri}>1 {ts} host app 42 ID {sd} {msg}".encode()
    fast = syslog.parse(raw)
    orig = syslog._fast5424
    try:
        syslog._fast5424 = lambda text: None  # type: ignore[assignment]
        careful = syslog.parse(raw)
    finally:
        syslog._fast5424 = orig  # type: ignore[assignment]
    assert fast == careful


def test_listen_tables_of_the_wrong_type_are_refused_clearly(tmp_path: Path) -> None:
    """A ``[[listen]]`` setting of the wrong type is named, before anything starts:
    never a traceback, never a listener that fails later."""
    data = _data(tmp_path, "acme/x")
    base = {"kind": '"syslog-tcp"', "host": '"127.0.0.1"', "port": "5514", "log": '"acme/x"'}
    for key, value, msg in (
        ("log", "5", "the target must be TENANT/LOG"),
        ("log", '"acme"', "the target must be TENANT/LOG"),
        ("host", "5", "host must be a string"),
        ("idle_timeout", '"5"', "idle_timeout must be a number"),
        ("pressure_idle_timeout", "true", "pressure_idle_timeout must be a number"),
        ("client_ca", "1", "client_ca must be a string or absent"),
    ):
        table = {**base, key: value}
        cfg = tmp_path / "c.toml"
        cfg.write_text("[[listen]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()))
        r = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "serve", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode != 0 and msg in r.stderr, (key, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
