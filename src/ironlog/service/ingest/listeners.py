"""Syslog and raw TCP/UDP listeners: ``--listen KIND:HOST:PORT=TENANT/LOG``.

The running listeners of one process: their sockets (UDP, TCP, TLS), bound
here.  The rest is one module each:

- :mod:`~ironlog.service.ingest.specs`: what to listen on (``ListenSpec``);
- :mod:`~ironlog.service.ingest.framing`: RFC 6587 framing, pure;
- :mod:`~ironlog.service.ingest.protocols`: the asyncio protocols (connections,
  limits, frames to entries);
- :mod:`~ironlog.service.ingest.sink`: handing entries to the log's writer,
  with back-pressure, not loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ironlog.engine.log import Log
from ironlog.errors import ConfigurationError
from ironlog.service.ingest.protocols import DatagramProtocol, StreamProtocol
from ironlog.service.ingest.sink import ListenerStats, Sink
from ironlog.service.ingest.specs import ListenSpec
from ironlog.service.limits import Limits

log = logging.getLogger("ironlog.listen")

TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds (or idle_timeout, if shorter)


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
