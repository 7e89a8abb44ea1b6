"""uvicorn's HTTP protocol with the deadlines and the per-peer cap it lacks.

uvicorn times out idle keep-alive connections, but not a client that sends
its request line and headers (or its body) a byte at a time: such "slowloris"
connections stay open for ever and use up the server's connections.  This
protocol gives every request ``http_header_timeout`` seconds from its first
byte (or from the connection's start) to complete its headers, then
``http_body_timeout`` seconds to complete its body, and closes the
connection when a deadline passes.  A request line and headers over
``http_max_header_bytes`` are answered 431 (httptools itself would buffer
them without bound).  One peer address may hold at most
``http_max_connections_per_peer`` connections per worker; a further one is
answered 503 and closed.  The limits are the ``[limits]`` of the serve
configuration (:func:`ironlog.service.config.worker_config`).

With TLS the protocol only sees a connection once its handshake is done;
:func:`new_event_loop` (uvicorn's loop) gives a handshake
``http_header_timeout`` seconds, not the default 60.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ironlog.service.config import worker_config
from ironlog.service.limits import Limits

log = logging.getLogger("ironlog.http")


def _limits() -> Limits:
    return worker_config()[1].limits


class GuardedHttpProtocol(HttpToolsProtocol):
    peers: ClassVar[dict[str, int]] = {}  # open connections per peer address (this worker)

    _deadline: asyncio.TimerHandle | None = None
    _host: str | None = None
    _in_headers = True  # between a request's first byte (or the connection's start) and its body
    _header_bytes = 0

    # -- connections ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        lim = _limits()
        self._host = host = self.client[0] if self.client else "?"
        open_now = self.peers.get(host, 0) + 1
        self.peers[host] = open_now
        if open_now > lim.http_max_connections_per_peer:
            log.warning("refusing %s: %d connections open from it", host, open_now - 1)
            self._refuse(
                503,
                f"too many connections from {host} (at most {lim.http_max_connections_per_peer})",
            )
            return
        self._arm(lim.http_header_timeout, "request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        host = self._host
        if host is not None:
            self._host = None
            left = self.peers.get(host, 1) - 1
            if left > 0:
                self.peers[host] = left
            else:
                self.peers.pop(host, None)
        super().connection_lost(exc)

    # -- deadlines ---------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.warning("closing %s: %s not received within %g s", self._host, what, seconds)
        if what == "request headers" and (self.cycle is None or self.cycle.response_complete):
            self._refuse(408, f"{what} not received within {seconds:g} s")
        else:  # the application is reading the body: it sees a disconnect
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        reason = {
            408: b"Request Timeout",
            431: b"Request Header Fields Too Large",
            503: b"Service Unavailable",
        }[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()

    # -- parser callbacks ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # nothing more from a refused connection
            return
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            limit = _limits().http_max_header_bytes
            if self._header_bytes > limit:
                log.warning("closing %s: request headers over %d bytes", self._host, limit)
                self._refuse(431, f"request line and headers are over {limit} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._header_bytes = True, 0
        if self._deadline is None:  # a further request on a kept-alive connection
            self._arm(_limits().http_header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(_limits().http_body_timeout, "request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


class _GuardedLoop(uvloop.Loop):
    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None and kwargs.get("ssl_handshake_timeout") is None:
            kwargs["ssl_handshake_timeout"] = _limits().http_header_timeout
        return await super().create_server(*args, **kwargs)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop factory: uvloop, with TLS handshakes bounded like headers."""
    return _GuardedLoop()
