"""Syslog and raw TCP/UDP listeners: ``--listen KIND:HOST:PORT=TENANT/LOG``.

Kinds: ``syslog-udp`` (RFC 5426), ``syslog-tcp`` (RFC 6587: octet counting or
LF framing, detected from a connection's first byte), ``syslog-tls``
(RFC 5425, optional client certificates) and ``ndjson-tcp`` (one JSON
object per line).  Messages become entries through :mod:`ironlog.core.syslog`;
one that does not parse is stored raw with ``parse_error``.

Back-pressure, not loss: each listener counts the entries it has handed to
its log's writer and not yet seen committed.  Above ``high_water`` it stops
reading from every TCP connection (the kernel's buffers, then the sender,
wait) until the count falls under ``low_water``; it does the same while the
log refuses writes.  UDP cannot wait: datagrams arriving then are dropped
and counted (``ironlog_listener_dropped_total``).

What a crash can lose (syslog has no application-level acknowledgement):
messages read from a socket but not yet committed — at most ``high_water``
entries per listener — plus whatever sat in kernel socket buffers; for UDP,
also everything the network or a full socket buffer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

from ironlog.core import syslog
from ironlog.core.entry import PreparedEntry, format_time, now_us, prepare_json, prepare_object
from ironlog.engine.log import Log, Outcome
from ironlog.errors import ConfigurationError, InvalidEntryError, IronlogError
from ironlog.service.limits import Limits, split_batch

log = logging.getLogger("ironlog.listen")

KINDS = ("syslog-udp", "syslog-tcp", "syslog-tls", "ndjson-tcp")
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds (or idle_timeout, if shorter)


@dataclass(frozen=True)
class ListenSpec:
    kind: str
    host: str
    port: int
    log: str  # TENANT/LOG
    cert: str | None = None  # syslog-tls: server certificate and key (PEM)
    key: str | None = None
    client_ca: str | None = None  # syslog-tls: require client certificates signed by this CA
    max_message: int = 16384  # bytes per message
    max_connections: int = 1000
    max_connections_per_peer: int = 100  # from one IP address
    idle_timeout: float = 300.0  # seconds without data before a connection is closed
    pressure_idle_timeout: float = 10.0  # ... once 90% of max_connections are open
    high_water: int = 50_000  # entries in flight before TCP reading pauses / UDP drops
    low_water: int = 10_000

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.host}:{self.port}"

    @property
    def tenant_log(self) -> tuple[str, str]:
        tenant, _, name = self.log.partition("/")
        return tenant, name

    @classmethod
    def parse(cls, text: str, **extra: Any) -> ListenSpec:
        """``KIND:HOST:PORT=TENANT/LOG`` (an IPv6 host in brackets)."""
        left, sep, target = text.rpartition("=")
        kind, _, hostport = left.partition(":")
        host, _, port = hostport.rpartition(":")
        if not sep or not host or not port:
            raise ConfigurationError(f"--listen {text!r}: expected KIND:HOST:PORT=TENANT/LOG")
        return cls.from_dict(
            {"kind": kind, "host": host.strip("[]"), "port": port, "log": target, **extra}
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ListenSpec:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigurationError(f"listener: unknown settings {', '.join(unknown)}")
        try:
            port = int(raw.get("port", -1))
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"listener port {raw.get('port')!r} is not a number") from e
        spec = cls(**{**raw, "port": port})
        spec.validate()
        return spec

    def validate(self) -> None:
        where = f"listener {self.kind}:{self.host}:{self.port}"
        if self.kind not in KINDS:
            raise ConfigurationError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"{where}: port must be 0..65535")
        tenant, name = self.tenant_log
        if not tenant or not name or "/" in name:
            raise ConfigurationError(f"{where}: the target must be TENANT/LOG")
        if self.kind == "syslog-tls" and not (self.cert and self.key):
            raise ConfigurationError(f"{where}: syslog-tls needs cert and key (or --tls-cert/-key)")
        for k in (
            "max_message",
            "max_connections",
            "max_connections_per_peer",
            "high_water",
            "low_water",
        ):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ConfigurationError(f"{where}: {k} must be a positive integer")
        if not self.low_water < self.high_water:
            raise ConfigurationError(f"{where}: low_water must be below high_water")
        for k in ("idle_timeout", "pressure_idle_timeout"):
            if not float(getattr(self, k)) > 0:
                raise ConfigurationError(f"{where}: {k} must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ListenerStats:
    """Hooks for metrics: every call takes the listener's name."""

    def messages(self, name: str, n: int) -> None: ...
    def parse_errors(self, name: str, n: int) -> None: ...
    def dropped(self, name: str, reason: str, n: int) -> None: ...
    def connection(self, name: str, event: str) -> None: ...
    def paused(self, name: str) -> None: ...


class Sink:
    """Hands entries to a log's writer and tracks how many are in flight."""

    def __init__(
        self, spec: ListenSpec, lg: Log, stats: ListenerStats, limits: Limits | None = None
    ) -> None:
        self.spec = spec
        self.lg = lg
        self.stats = stats
        self.limits = limits or Limits()
        self.loop = asyncio.get_running_loop()
        self.pending = 0
        self.streams: set[StreamProtocol] = set()
        self.peers: dict[str, int] = {}  # open connections per peer address
        self.paused = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def blocked(self) -> bool:
        return self.pending >= self.spec.high_water or self.lg.unhealthy is not None

    def submit(self, entries: list[PreparedEntry]) -> None:
        for batch in split_batch(entries, self.limits):
            self._submit(batch)

    def _submit(self, entries: list[PreparedEntry]) -> None:
        n = len(entries)
        self.pending += n
        self._idle.clear()
        try:
            fut = self.lg.submit(entries, proofs=False)
        except IronlogError as e:
            self._settled(n, e)
            return
        fut.add_done_callback(lambda f: self.loop.call_soon_threadsafe(self._done, f, n))
        self.stats.messages(self.spec.name, n)
        if self.blocked:
            self._pause()

    def _done(self, fut: Future[Outcome], n: int) -> None:
        self._settled(n, fut.exception())

    def _settled(self, n: int, exc: BaseException | None) -> None:
        self.pending -= n
        if exc is not None:
            # Read from the network but refused by the log: count it, say why.
            self.stats.dropped(self.spec.name, "commit_failed", n)
            log.warning("%s: %d entries not stored: %s", self.spec.name, n, exc)
        if self.pending == 0:
            self._idle.set()
        if self.paused and self.pending <= self.spec.low_water:
            self._resume()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.stats.paused(self.spec.name)
            for s in self.streams:
                s.pause()
        if self._timer is None:  # the log may come back without a commit to tell us
            self._timer = self.loop.call_later(0.5, self._recheck)

    def _recheck(self) -> None:
        self._timer = None
        if self.paused and self.pending <= self.spec.low_water and self.lg.unhealthy is None:
            self._resume()
        elif self.paused:
            self._timer = self.loop.call_later(0.5, self._recheck)

    def _resume(self) -> None:
        self.paused = False
        for s in list(self.streams):
            s.resume()

    async def drained(self) -> None:
        await self._idle.wait()


def _peer(transport: asyncio.BaseTransport) -> tuple[str, str]:
    """(host:port, host) of the other end."""
    addr = transport.get_extra_info("peername")
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}", str(addr[0])
    return "?", "?"


def syslog_entry(
    frame: bytes, received: int, when: str, source: str, peer: str, extra: dict[str, Any]
) -> tuple[PreparedEntry, bool]:
    """One syslog frame as an entry; True if it did not parse."""
    ev = syslog.parse(frame)
    ev["peer"] = peer
    ev.update(extra)
    try:
        return prepare_object(ev, received, source, when), "parse_error" in ev
    except InvalidEntryError as e:  # e.g. escaping made it too big: keep what fits
        short = {
            "raw": ev["raw"][:4096],
            "parse_error": f"entry too large: {e}",
            "truncated": True,
            "peer": peer,
        }
        return prepare_object(short, received, source, when), True


class StreamProtocol(asyncio.Protocol):
    """One TCP (or TLS) connection of a syslog-tcp/-tls or ndjson-tcp listener."""

    def __init__(self, sink: Sink, conns: set[StreamProtocol]) -> None:
        self.sink = sink
        self.spec = sink.spec
        self.conns = conns
        self.buf = bytearray()
        self.mode: str | None = "lf" if self.spec.kind == "ndjson-tcp" else None
        self.transport: asyncio.Transport | None = None
        self.peer = self.host = "?"
        self.counted = False
        self.extra: dict[str, Any] = {}
        self.paused = False
        self.closed = False
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.peer, self.host = _peer(transport)
        stats, name = self.sink.stats, self.spec.name
        refusal = self._admit()
        if refusal:
            stats.connection(name, "rejected")
            log.warning("%s: refusing %s: %s", name, self.peer, refusal)
            self.closed = True
            transport.abort()
            return
        cert = transport.get_extra_info("peercert")
        if cert:
            subject = dict(x[0] for x in cert.get("subject", ()))
            self.extra["tls_client"] = str(subject.get("commonName", ""))
        self.conns.add(self)
        self.sink.streams.add(self)
        self.sink.peers[self.host] = self.sink.peers.get(self.host, 0) + 1
        self.counted = True
        stats.connection(name, "opened")
        self.last = self.sink.loop.time()
        self.timer = self.sink.loop.call_later(self.spec.idle_timeout, self._idle_check)
        if self.sink.paused:
            self.pause()

    def _admit(self) -> str | None:
        """Why this connection is refused, or None: one peer may not hold more than
        max_connections_per_peer; near max_connections, idle connections go first."""
        spec, peers = self.spec, self.sink.peers
        if peers.get(self.host, 0) >= spec.max_connections_per_peer:
            return f"{spec.max_connections_per_peer} connections from {self.host} already open"
        if len(self.conns) >= 0.9 * spec.max_connections:
            self._close_idle(spec.pressure_idle_timeout)
        if len(self.conns) >= spec.max_connections:
            return f"{len(self.conns)} connections open"
        return None

    def _close_idle(self, idle_for: float) -> None:
        """Under connection pressure: close those idle for ``idle_for`` seconds, most
        idle first, until under 90% of max_connections (paused ones are not idle)."""
        now = self.sink.loop.time()
        idle = sorted(
            (c for c in self.conns if not c.paused and now - c.last >= idle_for),
            key=lambda c: c.last,
        )
        for c in idle:
            if len(self.conns) < 0.9 * self.spec.max_connections:
                break
            c._close(f"idle for {now - c.last:.1f} s with the listener near its connection limit")

    def _forget(self) -> None:
        if self.counted:
            self.counted = False
            self.conns.discard(self)
            self.sink.streams.discard(self)
            left = self.sink.peers.get(self.host, 1) - 1
            if left > 0:
                self.sink.peers[self.host] = left
            else:
                self.sink.peers.pop(self.host, None)
            self.sink.stats.connection(self.spec.name, "closed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self.timer is not None:
            self.timer.cancel()
        if self.buf and not self.closed:
            self._leftover("connection lost mid-message")
        self.closed = True

    def eof_received(self) -> bool:
        if self.buf:
            if self.mode == "lf":
                self._handle([bytes(self.buf)])  # a last line without its newline
            else:
                self._leftover("connection closed mid-frame")
            self.buf.clear()
        return False

    def _close(self, reason: str) -> None:
        """Garbage, oversized or idle input: log why, close this connection only."""
        if self.closed:
            return
        log.warning("%s: closing %s: %s", self.spec.name, self.peer, reason)
        self.sink.stats.dropped(self.spec.name, "connection_closed", 1)
        self.closed = True
        if self.buf:
            self._leftover(reason)
            self.buf.clear()
        assert self.transport is not None
        self.transport.abort()
        self._forget()

    def _leftover(self, reason: str) -> None:
        """A partial message is still stored (raw, with the reason), never dropped."""
        if self.spec.kind == "ndjson-tcp":
            return  # not an event; the reason was logged
        data = syslog.decode(bytes(self.buf[:4096]))[0]
        ev = {"raw": data, "parse_error": reason, "peer": self.peer, **self.extra}
        if len(self.buf) > 4096:
            ev["truncated"] = True
        self.sink.submit([prepare_object(ev, now_us(), self.spec.kind)])
        self.sink.stats.parse_errors(self.spec.name, 1)

    def _idle_check(self) -> None:
        self.timer = None
        if self.closed:
            return
        idle = self.sink.loop.time() - self.last
        if self.paused or idle < self.spec.idle_timeout:
            wait = self.spec.idle_timeout - (0 if self.paused else idle)
            self.timer = self.sink.loop.call_later(max(wait, 0.1), self._idle_check)
            return
        self._close(f"idle for {self.spec.idle_timeout:g} s")

    def pause(self) -> None:
        if not self.paused and not self.closed and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.last = self.sink.loop.time()
            self.transport.resume_reading()

    # -- data ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last = self.sink.loop.time()
        self.buf += data
        if self.mode is None:
            first = self.buf[:1]
            if first.isdigit():
                self.mode = "octet"
            elif first == b"<":
                self.mode = "lf"
            else:
                self._close("not syslog: a frame starts with a digit (octet count) or '<'")
                return
        frames = self._octet_frames() if self.mode == "octet" else self._lf_frames()
        if frames:
            self._handle(frames)

    def _lf_frames(self) -> list[bytes]:
        buf = self.buf
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > self.spec.max_message:
                self._close(f"a line is longer than {self.spec.max_message} bytes")
            return []
        chunk = bytes(buf[:end])
        del buf[: end + 1]
        if len(buf) > self.spec.max_message:
            self._close(f"a line is longer than {self.spec.max_message} bytes")
        frames = [f for f in chunk.split(b"\n") if f.strip(b"\r")]
        if any(len(f) > self.spec.max_message for f in frames):
            self._close(f"a line is longer than {self.spec.max_message} bytes")
            return [f for f in frames if len(f) <= self.spec.max_message]
        return frames

    def _octet_frames(self) -> list[bytes]:
        buf, pos, frames = self.buf, 0, []
        limit = self.spec.max_message
        while pos < len(buf):
            sp = buf.find(b" ", pos, pos + 8)
            if sp < 0:
                if len(buf) - pos >= 8 or not buf[pos:].isdigit():
                    self._close("malformed octet-counting frame length")
                break
            digits = bytes(buf[pos:sp])
            if not digits.isdigit() or digits[:1] == b"0":
                self._close("malformed octet-counting frame length")
                break
            n = int(digits)
            if n > limit:
                self._close(f"a frame of {n} bytes exceeds the limit of {limit}")
                break
            if sp + 1 + n > len(buf):
                break
            frames.append(bytes(buf[sp + 1 : sp + 1 + n]))
            pos = sp + 1 + n
        del buf[:pos]
        return frames

    def _handle(self, frames: list[bytes]) -> None:
        received = now_us()
        when = format_time(received)
        name = self.spec.name
        if self.spec.kind == "ndjson-tcp":
            entries = []
            for f in frames:
                try:
                    entries.append(prepare_json(f, received, "ndjson-tcp", when))
                except InvalidEntryError as e:
                    self.sink.submit(entries)
                    self._close(f"invalid NDJSON line: {str(e)[:200]}")
                    return
            self.sink.submit(entries)
            return
        out, bad = [], 0
        for f in frames:
            entry, failed = syslog_entry(f, received, when, self.spec.kind, self.peer, self.extra)
            out.append(entry)
            bad += failed
        if bad:
            self.sink.stats.parse_errors(name, bad)
        self.sink.submit(out)


class DatagramProtocol(asyncio.DatagramProtocol):
    """syslog-udp: one message per datagram; batched per event-loop turn."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.spec = sink.spec
        self.batch: list[tuple[bytes, str]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        name = self.spec.name
        if len(data) > self.spec.max_message:
            self.sink.stats.dropped(name, "oversized", 1)
            return
        if self.sink.blocked:
            self.sink.stats.dropped(name, "queue_full", 1)
            return
        if not self.batch:
            self.sink.loop.call_soon(self._flush)
        self.batch.append((data, f"{addr[0]}:{addr[1]}"))

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        received = now_us()
        when = format_time(received)
        out, bad = [], 0
        for data, peer in batch:
            entry, failed = syslog_entry(data, received, when, "syslog-udp", peer, {})
            out.append(entry)
            bad += failed
        if bad:
            self.sink.stats.parse_errors(self.spec.name, bad)
        self.sink.submit(out)


def _tls_context(spec: ListenSpec) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(spec.cert), str(spec.key))
        if spec.client_ca:
            ctx.load_verify_locations(spec.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(f"{spec.name}: cannot load TLS files: {e}") from e
    return ctx


class Listeners:
    """The running listeners of one process."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.closers: list[Callable[[], None]] = []
        self.sinks: list[Sink] = []
        self.conns: list[set[StreamProtocol]] = []

    async def start(
        self, specs: list[ListenSpec], get_log: Callable[[str, str], Log], stats: ListenerStats
    ) -> None:
        loop = asyncio.get_running_loop()
        for spec in specs:
            sink = Sink(spec, get_log(*spec.tenant_log), stats, self.limits)
            self.sinks.append(sink)
            if spec.kind == "syslog-udp":
                family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
                transport, _ = await loop.create_datagram_endpoint(
                    lambda sink=sink: DatagramProtocol(sink),  # type: ignore[misc]
                    local_addr=(spec.host, spec.port),
                    family=family,
                    reuse_port=True,
                )
                _grow_rcvbuf(transport.get_extra_info("socket"))
                self.closers.append(transport.close)
                continue
            conns: set[StreamProtocol] = set()
            self.conns.append(conns)
            tls: dict[str, Any] = {}
            if spec.kind == "syslog-tls":  # a handshake is bounded in time, as headers are
                timeout = min(spec.idle_timeout, TLS_HANDSHAKE_TIMEOUT)
                tls = {"ssl": _tls_context(spec), "ssl_handshake_timeout": timeout}
            server = await loop.create_server(
                lambda sink=sink, conns=conns: StreamProtocol(sink, conns),  # type: ignore[misc]
                spec.host,
                spec.port,
                reuse_port=True,
                backlog=1024,
                **tls,
            )
            self.closers.append(server.close)
            log.info("listening: %s -> %s", spec.name, spec.log)

    async def stop(self, timeout: float = 10.0) -> None:
        for close in self.closers:
            close()
        for conns in self.conns:
            for c in list(conns):
                if c.transport is not None:
                    c.transport.close()
        for sink in self.sinks:
            try:
                await asyncio.wait_for(sink.drained(), timeout)
            except TimeoutError:
                log.warning("%s: %d entries still in flight", sink.spec.name, sink.pending)


def _grow_rcvbuf(sock: socket.socket | None) -> None:
    """A bigger kernel buffer rides out bursts (the kernel caps it at rmem_max)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)


def check_bindable(spec: ListenSpec) -> None:
    """Fail fast, before workers start, if the address cannot be bound."""
    family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    kind = socket.SOCK_DGRAM if spec.kind == "syslog-udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((spec.host, spec.port))
        except OSError as e:
            raise ConfigurationError(f"{spec.name}: cannot bind: {e.strerror}") from e
