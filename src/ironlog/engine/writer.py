"""The group-commit writer: the single writer thread of one log in this process.

It holds a queue of pending requests and has at most one commit in flight;
while a commit runs new requests gather and form the next batch (group
commit, no fixed sleep).  A request is never split across batches, so a
batch request is all or nothing.

A request finishes itself: it knows how to answer its entries once they are
placed in a tree (a receipt per entry, or one for the batch: ``Answer``) and
how to settle its waiter (a thread's ``concurrent.futures.Future``, or a
coroutine's asyncio future on that coroutine's loop).  The writer only
places requests and wakes each event loop once per batch (measured: one
wake-up per waiter cost 15% of the writer's time).

Over 400 lines: the writer thread and the request it serves are one
mechanism (placing, committing, signing, draining when the LRU closes a log).

A checkpoint is signed only for a tree that is durable.  In ``sync`` mode
every commit is fsync'd, so each batch signs its checkpoint in its
transaction.  In ``interval`` and ``off`` modes a commit stores the tree
unsigned; the periodic fsync then signs the size it just made durable
(``LogWriter._sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ironlog.core.entry import PreparedEntry
from ironlog.core.merkle import leaf_hash
from ironlog.engine.idempotency import reused_key, same_events
from ironlog.errors import (
    IntegrityError,
    IronlogError,
    LogUnavailableError,
    ResourceExhaustedError,
    resource_exhausted,
)
from ironlog.store.base import DuplicateRequestError, Head

if TYPE_CHECKING:
    from ironlog.engine.log import Log

log = logging.getLogger("ironlog.engine")

MAX_BATCH_ENTRIES = 10_000
MAX_BATCH_BYTES = 32 << 20
OFF_SIGN_INTERVAL = 1.0  # seconds between fsync-and-sign rounds of an ``off`` log

T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

Answer = Callable[[int, Sequence[PreparedEntry], Head], T_co]
"""``answer(first, entries, head)``: what a request's waiter gets for ``entries``
appended at index ``first`` in the batch that made the tree ``head``."""


class Waiter(Protocol[T_contra]):
    """A future: ``concurrent.futures.Future`` or ``asyncio.Future``."""

    def set_result(self, result: T_contra, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


def _not_committed() -> LogUnavailableError:
    return LogUnavailableError("append was not committed")


class Request(ABC, Generic[T_co]):
    """An append waiting for the writer; it answers and settles itself."""

    __slots__ = ("_answer", "_outcome", "entries", "idem_key", "nbytes", "placed")

    loop: asyncio.AbstractEventLoop | None
    """The event loop ``finish`` must run on (None: any thread)."""

    def __init__(
        self, entries: Sequence[PreparedEntry], answer: Answer[T_co], idem_key: str | None
    ) -> None:
        self.entries = entries
        self.idem_key = idem_key
        self.nbytes = sum(len(e.data) for e in entries)
        self._answer = answer
        self._outcome: T_co | BaseException | None = None
        self.placed: tuple[int, Sequence[PreparedEntry], Head] | None = None

    def answer(self, first: int, entries: Sequence[PreparedEntry], head: Head) -> None:
        """Placed: its entries (``entries``, as stored) are at ``first`` in ``head``."""
        self.placed = (first, entries, head)
        try:
            self._outcome = self._answer(first, entries, head)
        except IronlogError as e:
            self._outcome = e

    def fail(self, error: BaseException) -> None:
        self._outcome = error

    def error(self) -> BaseException:
        """Why it was not placed (it failed, or was never committed)."""
        out = self._outcome
        return out if isinstance(out, BaseException) else _not_committed()

    def settle(self, waiter: Waiter[T_co]) -> None:
        out = self._outcome
        if out is None:
            waiter.set_exception(_not_committed())
        elif isinstance(out, BaseException):
            waiter.set_exception(out)
        else:
            waiter.set_result(out)

    @abstractmethod
    def finish(self) -> None:
        """Settle the waiter (on ``loop``, if it has one)."""


class ThreadRequest(Request[T_co]):
    """Waited for by a thread: ``future``."""

    __slots__ = ("future",)
    loop = None

    def __init__(
        self, entries: Sequence[PreparedEntry], answer: Answer[T_co], idem_key: str | None
    ) -> None:
        super().__init__(entries, answer, idem_key)
        self.future: Future[T_co] = Future()

    def finish(self) -> None:
        self.settle(self.future)


class AsyncRequest(Request[T_co]):
    """Awaited by a coroutine on the running loop: ``future``."""

    __slots__ = ("future", "loop")

    def __init__(
        self, entries: Sequence[PreparedEntry], answer: Answer[T_co], idem_key: str | None
    ) -> None:
        super().__init__(entries, answer, idem_key)
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[T_co] = self.loop.create_future()

    def finish(self) -> None:
        if not self.future.cancelled():
            self.settle(self.future)


def _finish_all(requests: list[Request[object]]) -> None:
    """Runs on an event loop: settle a whole batch's waiters with one wake-up."""
    for r in requests:
        r.finish()


class LogWriter:
    """The single writer of one log in this process."""

    def __init__(self, owner: Log) -> None:
        self._log = owner
        self._store = owner.store
        self._cond = threading.Condition()
        self._queue: deque[Request[object]] = deque()
        self._closing = False
        durability = owner.info.durability
        self._interval: float | None = None
        if durability.mode == "interval":
            self._interval = durability.interval_ms / 1000
        elif durability.mode == "off":
            self._interval = OFF_SIGN_INTERVAL
        self._last_sync = time.monotonic()
        # A tree left unsigned (by a crash, say) is signed at the first fsync.
        self._dirty = not owner.signs_at_commit and not owner.head_is_signed()
        self._committed = 0  # the tree size of the last batch committed here
        self.batch_sizes: deque[int] = deque(maxlen=1024)
        self.commit_seconds: deque[float] = deque(maxlen=1024)
        self._thread = threading.Thread(
            target=self._run, name=f"ironlog-writer-{owner.info.path}", daemon=True
        )
        self._thread.start()

    def depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    def offer(self, req: Request[object]) -> bool:
        """Queue ``req``; False if this writer is closing (being drained)."""
        with self._cond:
            if self._closing:
                return False
            self._queue.append(req)
            self._cond.notify()
            return True

    def submit(self, req: Request[object]) -> None:
        with self._cond:
            if self._closing:
                raise LogUnavailableError(f"log {self._log.info.path} is closed")
            self._queue.append(req)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def poke(self) -> None:
        """Ask for an fsync (and the signature that follows) within the interval."""
        with self._cond:
            if not self._closing and self._interval is not None:
                self._dirty = True
                self._cond.notify()

    def _take(self) -> list[Request[object]] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                timeout = None
                if self._dirty and self._interval is not None:
                    timeout = max(0.0, self._last_sync + self._interval - time.monotonic())
                    if timeout == 0.0:
                        return []
                self._cond.wait(timeout)
                if (
                    not self._queue
                    and self._dirty
                    and self._interval is not None
                    and time.monotonic() >= self._last_sync + self._interval
                ):
                    return []
            batch = [self._queue.popleft()]
            count, nbytes = len(batch[0].entries), batch[0].nbytes
            while self._queue:
                nxt = self._queue[0]
                if (
                    count + len(nxt.entries) > MAX_BATCH_ENTRIES
                    or nbytes + nxt.nbytes > MAX_BATCH_BYTES
                ):
                    break
                batch.append(self._queue.popleft())
                count += len(nxt.entries)
                nbytes += nxt.nbytes
            return batch

    def _sync(self) -> None:
        """fsync, then sign the tree that the fsync made durable (read before
        it); the stored signature is made durable by the next round."""
        head: Head | None = None
        try:
            head = self._store.head()
            self._store.sync()
            self._log.note_size(self._committed)  # durable now
        except OSError as e:  # an fsync failure is a durability failure: fail closed
            head = None
            self._log.mark_unhealthy(f"fsync failed: {e}")
        except IronlogError as e:
            head = None
            log.error("sync of %s failed: %s", self._log.info.path, e)
            if isinstance(e, ResourceExhaustedError):  # out of descriptors: retry next round
                self._last_sync = time.monotonic()
                return
        self._last_sync = time.monotonic()
        self._dirty = False
        if head is None or head.size == 0 or head.checkpoint:
            return  # nothing new to sign
        if self._log.sign_durable(head):
            self._dirty = True

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                # Twice: the tree, then its signature (a few more if descriptors ran out).
                for _ in range(4):
                    if not self._dirty:
                        break
                    self._sync()
                return
            if not batch:  # interval mode: time to fsync
                self._sync()
                continue
            self._commit(batch)

    def _commit(self, batch: list[Request[object]]) -> None:
        # Requests repeating an idempotency key of this batch are placed where
        # the first one's entries go: nothing is appended twice.
        first_by_key: dict[str, Request[object]] = {}
        followers: list[tuple[Request[object], Request[object]]] = []
        unique: list[Request[object]] = []
        for r in batch:
            if r.idem_key is not None and r.idem_key in first_by_key:
                first = first_by_key[r.idem_key]
                if same_events([e.data for e in first.entries], r.entries):
                    followers.append((r, first))
                else:
                    r.fail(reused_key(r.idem_key))
                continue
            if r.idem_key is not None:
                first_by_key[r.idem_key] = r
            unique.append(r)
        self._commit_unique(unique)
        for r, first in followers:
            if first.placed is not None:
                r.answer(*first.placed)
            else:
                r.fail(first.error())
        self._finish(batch)

    def _commit_unique(self, batch: list[Request[object]]) -> None:
        """Commit once (twice if some idempotency keys turn out to be used)."""
        pending = batch
        for _ in range(2):
            try:
                self._commit_once(pending)
                return
            except DuplicateRequestError as dup:
                used = set(dup.keys)
                for r in pending:
                    if r.idem_key in used:
                        self._replay(r)
                pending = [r for r in pending if r.idem_key not in used]
                if not pending:
                    return

    def _commit_once(self, batch: list[Request[object]]) -> None:
        entries = [e for r in batch for e in r.entries]
        idem: list[tuple[str, int, int]] = []
        offset = 0
        for r in batch:
            if r.idem_key is not None:
                idem.append((r.idem_key, offset, len(r.entries)))
            offset += len(r.entries)
        lg = self._log
        started = time.perf_counter()
        try:
            lg.check_writable()
            result = self._store.append(entries, lg.sign if lg.signs_at_commit else None, idem)
        except DuplicateRequestError:
            raise
        except IronlogError as e:
            if isinstance(e, IntegrityError):  # stored data contradicts the head
                lg.mark_unhealthy(str(e))
            for r in batch:
                r.fail(e)
            return
        except Exception as e:  # never let the writer die; never leak internals
            failure: LogUnavailableError | None = resource_exhausted(e, f"append to {lg.info.path}")
            if failure is None:
                log.exception("append to %s failed", lg.info.path)
                failure = LogUnavailableError(f"append to {lg.info.path} failed")
            for r in batch:
                r.fail(failure)
            return
        elapsed = time.perf_counter() - started
        self._committed = result.head.size
        if lg.info.durability.mode == "sync":  # durable now (interval: at the fsync)
            lg.note_size(result.head.size)
        self.commit_seconds.append(elapsed)
        self.batch_sizes.append(len(entries))
        for observer in lg.commit_observers:
            observer(lg.info, len(entries), sum(len(e.data) for e in entries), elapsed)
        if self._interval is not None:
            self._dirty = True
            if time.monotonic() - self._last_sync >= self._interval:
                self._sync()
        head = result.head
        index = result.first_index
        for r in batch:
            r.answer(index, r.entries, head)
            index += len(r.entries)

    def _replay(self, req: Request[object]) -> None:
        """Answer ``req`` as the request that used its idempotency key was
        answered: from the entries stored then (a ConflictError if ``req``
        holds other events: a key reused, not a retry)."""
        key = req.idem_key
        done = self._store.idempotent(key) if key is not None else None
        if key is None or done is None:
            req.fail(LogUnavailableError("idempotency record vanished"))
            return
        try:
            stored = self._store.entries(done.first_index, done.first_index + done.count)
            if not same_events(stored, req.entries):
                req.fail(reused_key(key))
                return
            head = Head(
                done.size, self._log.root(done.size), self._store.checkpoint(done.size) or ""
            )
        except IronlogError as e:
            req.fail(e)
            return
        req.answer(done.first_index, [PreparedEntry(d, leaf_hash(d), 0) for d in stored], head)

    @staticmethod
    def _finish(batch: list[Request[object]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Request[object]]] = {}
        for r in batch:
            if r.loop is None:
                r.finish()
            else:
                by_loop.setdefault(r.loop, []).append(r)
        for loop, requests in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
                loop.call_soon_threadsafe(_finish_all, requests)
