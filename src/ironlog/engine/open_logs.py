"""The logs of this process that hold resources, in an LRU with a cap.

An open log holds its store's descriptors (SQLite connections, the WAL and
lock files) and its writer thread.  ``OpenLogs`` keeps at most ``cap`` of
them (a soft cap: see below) and releases the least recently used ones, and
any idle for ``idle_seconds``, on its own closer thread: never on a request's
or a writer's thread, so that releasing a log (which drains its writer) can
never wait on the thread that asked for it.

Releasing (``Log.release``) drains the writer first: every queued append is
committed and answered, none is lost.  The ``Log`` object itself stays valid:
its store reopens on demand, re-registering here (``Log.on_open``), and
``Ironlog.log`` runs the head check again on a log that was released.

A log used within the last ``min_idle`` seconds is never released (a request
may be reading it); the cap may then be exceeded briefly.

One writer thread per open log, bounded by the cap, rather than a pool of
writers shared by all logs: each log keeps its own group commit and its
fsync/sign timer, and with a cap of N open logs there are at most N writer
threads (measured in benchmarks/bench_tenants.py).
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ironlog.engine.log import Log

log = logging.getLogger("ironlog.engine")

DEFAULT_MAX_OPEN_LOGS = 256
DEFAULT_IDLE_SECONDS = 300.0
MIN_IDLE_SECONDS = 0.5
# Descriptors an open log holds at most, about (database, WAL and shared-memory
# files of its writer and of a few reader connections, its lock file), and
# those kept for everything else (sockets, the control store, listeners).
FDS_PER_LOG = 10
FDS_RESERVED = 256
TICK_SECONDS = 5.0

Key = tuple[str, str]


def fitting_cap(cap: int) -> int:
    """``cap``, lowered if this process's descriptor limit cannot hold that
    many open logs (FDS_PER_LOG each, FDS_RESERVED kept for the rest)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    fits = max(1, (soft - FDS_RESERVED) // FDS_PER_LOG)
    if fits < cap:
        why = "the descriptor limit is"
        log.warning("at most %d logs open at once instead of %d: %s %d", fits, cap, why, soft)
    return min(cap, fits)


class OpenLogs:
    def __init__(
        self,
        cap: int = DEFAULT_MAX_OPEN_LOGS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        min_idle: float = MIN_IDLE_SECONDS,
    ) -> None:
        if cap < 1:
            raise ValueError("the cap of open logs must be at least 1")
        self.cap = cap
        self.idle_seconds = idle_seconds
        self.min_idle = min_idle
        self._lru: OrderedDict[Key, Log] = OrderedDict()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.evictions = 0  # released for the cap
        self.idle_closed = 0  # released for idleness
        # observers: on_release(reason) with reason "cap" or "idle"
        self.release_observers: list[Callable[[str], None]] = []
        # observers: tick(open logs, queued appends), at least every TICK_SECONDS
        self.tick_observers: list[Callable[[int, int], None]] = []

    def __len__(self) -> int:
        with self._cond:
            return len(self._lru)

    def touch(self, lg: Log) -> None:
        """``lg`` is in use (it holds, or is about to hold, resources): most
        recently used.  Never blocks on another log; safe from any thread."""
        key = (lg.info.tenant, lg.info.name)
        with self._cond:
            if self._stopping:
                return
            self._lru[key] = lg
            self._lru.move_to_end(key)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ironlog-open-logs", daemon=True
                )
                self._thread.start()
            if len(self._lru) > self.cap:
                self._cond.notify()

    def discard(self, lg: Log) -> None:
        """Forget ``lg`` (closed for good by its owner)."""
        key = (lg.info.tenant, lg.info.name)
        with self._cond:
            if self._lru.get(key) is lg:
                del self._lru[key]

    def _victims(self) -> tuple[list[Log], list[Log], float]:
        """(over the cap, idle too long, seconds until the next look)."""
        now = time.monotonic()
        over: list[Log] = []
        idle: list[Log] = []
        wait = self.idle_seconds
        for key, lg in list(self._lru.items()):
            age = now - lg.last_used
            if len(self._lru) > self.cap and age >= self.min_idle:
                del self._lru[key]
                over.append(lg)
            elif age >= self.idle_seconds:
                del self._lru[key]
                idle.append(lg)
            else:  # in LRU order: the rest were used more recently
                limit = self.min_idle if len(self._lru) > self.cap else self.idle_seconds
                wait = min(wait, limit - age)
                break
        return over, idle, max(wait, 0.01)

    def stats(self) -> tuple[int, int]:
        """(logs open, appends queued for their writers)."""
        with self._cond:
            logs = list(self._lru.values())
        return len(logs), sum(lg.queue_depth() for lg in logs)

    def _tick(self) -> None:
        if self.tick_observers:
            n, queued = self.stats()
            for observer in self.tick_observers:
                observer(n, queued)

    def _run(self) -> None:
        next_tick = 0.0
        while True:
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + TICK_SECONDS
            with self._cond:
                if self._stopping:
                    return
                over, idle, wait = self._victims()
                if not over and not idle:
                    self._cond.wait(min(wait, TICK_SECONDS))
                    continue
            for reason, logs in (("cap", over), ("idle", idle)):
                for lg in logs:
                    self._release(lg, reason)

    def _release(self, lg: Log, reason: str) -> None:
        try:
            lg.release()
        except Exception:  # one log must never stop the closer
            log.exception("closing idle log %s failed", lg.info.path)
            return
        if reason == "cap":
            self.evictions += 1
        else:
            self.idle_closed += 1
        for observer in self.release_observers:
            observer(reason)

    def stop(self) -> list[Log]:
        """Stop the closer thread; the logs still open (for their owner to close)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
            logs = list(self._lru.values())
            self._lru.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        return logs
