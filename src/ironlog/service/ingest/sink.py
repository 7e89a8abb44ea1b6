"""Where a listener's entries go: its log's writer, with back-pressure, not loss.

Each listener counts the entries it has handed to its log's writer and not yet
seen committed.  Above ``high_water`` it stops reading from every TCP
connection (the kernel's buffers, then the sender, wait) until the count falls
under ``low_water``; it does the same while the log refuses writes.  UDP cannot
wait: datagrams arriving then are dropped and counted
(``ironlog_listener_dropped_total``).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Protocol

from ironlog.core.entry import PreparedEntry
from ironlog.engine.log import Log, Outcome
from ironlog.errors import IronlogError
from ironlog.service.ingest.specs import ListenSpec
from ironlog.service.limits import Limits, split_batch

log = logging.getLogger("ironlog.listen")


class ListenerStats:
    """Hooks for metrics: every call takes the listener's name."""

    def messages(self, name: str, n: int) -> None: ...
    def parse_errors(self, name: str, n: int) -> None: ...
    def dropped(self, name: str, reason: str, n: int) -> None: ...
    def connection(self, name: str, event: str) -> None: ...
    def paused(self, name: str) -> None: ...


class Stream(Protocol):
    """A connection whose reading the sink pauses and resumes."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...


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
        self.streams: set[Stream] = set()
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
