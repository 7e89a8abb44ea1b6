"""The asyncio side of the listeners: one protocol per TCP/TLS connection, one per
UDP socket.  Framing is :mod:`ironlog.service.ingest.framing`'s; messages become
entries through :mod:`ironlog.core.syslog` (one that does not parse is stored
raw with ``parse_error``), or, for ``ndjson-tcp``, one JSON object per line.

What a crash can lose (syslog has no application-level acknowledgement):
messages read from a socket but not yet committed — at most ``high_water``
entries per listener — plus whatever sat in kernel socket buffers; for UDP,
also everything the network or a full socket buffer dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from ironlog.core import syslog
from ironlog.core.entry import PreparedEntry, format_time, now_us, prepare_json, prepare_object
from ironlog.errors import InvalidEntryError
from ironlog.service.ingest.framing import FrameDecoder, Framing
from ironlog.service.ingest.sink import Sink

log = logging.getLogger("ironlog.listen")


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
        framing: Framing | None = "lf" if self.spec.kind == "ndjson-tcp" else None  # or detected
        self.frames = FrameDecoder(self.spec.max_message, framing)
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
        if self.frames.pending and not self.closed:
            self._leftover("connection lost mid-message")
        self.closed = True

    def eof_received(self) -> bool:
        last = self.frames.end()  # LF framing: a last line without its newline
        if last:
            self._handle(last)
        if self.frames.pending:
            self._leftover("connection closed mid-frame")
            self.frames.discard()
        return False

    def _close(self, reason: str) -> None:
        """Garbage, oversized or idle input: log why, close this connection only."""
        if self.closed:
            return
        log.warning("%s: closing %s: %s", self.spec.name, self.peer, reason)
        self.sink.stats.dropped(self.spec.name, "connection_closed", 1)
        self.closed = True
        if self.frames.pending:
            self._leftover(reason)
            self.frames.discard()
        assert self.transport is not None
        self.transport.abort()
        self._forget()

    def _leftover(self, reason: str) -> None:
        """A partial message is still stored (raw, with the reason), never dropped."""
        if self.spec.kind == "ndjson-tcp":
            return  # not an event; the reason was logged
        pending = self.frames.pending
        data = syslog.decode(pending[:4096])[0]
        ev = {"raw": data, "parse_error": reason, "peer": self.peer, **self.extra}
        if len(pending) > 4096:
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
        frames = self.frames.feed(data)
        if frames:
            self._handle(frames)
        if self.frames.error is not None:
            self._close(self.frames.error)

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
