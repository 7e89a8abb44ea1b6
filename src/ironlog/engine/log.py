"""The log engine: one log of one tenant.  ``Log`` is its write side (the
append path: validate, queue, receipts; signing; health) on top of its read
side (``LogReader``, engine/reader.py: entries, proofs, tiles).  Knows
nothing of HTTP.

Appends go to the log's group-commit writer (engine/writer.py), one thread
per log and process.  A checkpoint is signed only for a tree that is
durable: in ``sync`` mode in each commit; in ``interval`` and ``off`` modes by
the writer's periodic fsync.  Receipts of those modes carry the unsigned
root and size; the signed checkpoint follows (``Log.wait_signed``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

from ironlog.core.entry import PreparedEntry
from ironlog.core.note import Checkpoint, Signer, Verifier
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.engine import checks
from ironlog.engine.idempotency import check_key
from ironlog.engine.reader import LogReader
from ironlog.engine.signing_keys import KeyRing
from ironlog.engine.writer import (
    OFF_SIGN_INTERVAL,
    Answer,
    AsyncRequest,
    LogWriter,
    ThreadRequest,
)
from ironlog.errors import (
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    PermissionDeniedError,
)
from ironlog.store.base import Head, LogInfo, LogStore

log = logging.getLogger("ironlog.engine")

T = TypeVar("T")


Outcome = BatchReceipt | list[Receipt]


class Log(LogReader):
    """One log of one tenant: appends, reads, proofs and its integrity state."""

    SIZE_RECORD_SECONDS = 1.0

    def __init__(
        self,
        info: LogInfo,
        store: LogStore,
        signer: Signer | KeyRing,
        *,
        known_size: int = 0,
        record_size: Callable[[int], None] | None = None,
    ) -> None:
        """``known_size``: the largest signed size recorded outside the log's
        own storage (the control store); a smaller head means the log's file
        was rolled back.  ``record_size`` records a new one, called off the
        hot path: at most every SIZE_RECORD_SECONDS after a commit, and on close."""
        super().__init__(info, store)
        self.opened_at = time.monotonic()
        self.known_size = known_size
        self._record_size = record_size
        self._recorded_at = -1e9
        self._unrecorded: int | None = None
        self.keys = (
            signer if isinstance(signer, KeyRing) else KeyRing.static(signer.for_name(info.origin))
        )
        self._writer: LogWriter | None = None
        self._writer_lock = threading.Lock()
        # Released (its writer drained, its store closed) by the LRU of open
        # logs, engine/open_logs.py; on_open(log) when it holds resources again.
        self.released = False
        self.on_open: Callable[[Log], None] | None = None
        self._used = time.monotonic()
        store.on_connect = self._connected  # type: ignore[attr-defined]
        # sync mode signs in the commit; the others once an fsync made a tree durable
        self.signs_at_commit = info.durability.mode == "sync"
        self._signed = threading.Condition()
        self._closed = False
        self.service_only = False  # a tenant's system log: no door may append to it
        # observer(info, entries, bytes, seconds) after every committed batch
        self.commit_observers: list[Callable[[LogInfo, int, int, float], None]] = []
        # check(info, entries, bytes) before any append but the service's (quotas)
        self.append_checks: list[Callable[[LogInfo, int, int], None]] = []
        try:
            self.check_head()
        except IntegrityError as e:
            self.unhealthy = str(e)
            log.error("log %s refused for writing: %s", info.path, e)
        else:
            self._note_size_on_open()

    def _note_size_on_open(self) -> None:
        """Record the size found on open, once it is durable (never in ``off``
        mode: a power cut may take back what it holds)."""
        mode = self.info.durability.mode
        size = self.store.head().size
        if self._record_size is None or mode == "off" or size <= self.known_size:
            return
        if mode == "interval":
            try:
                self.store.sync()
            except OSError:
                return
        self.note_size(size, now=True)

    def note_size(self, size: int, now: bool = False) -> None:
        """Record the signed size in the control store, at most once per
        SIZE_RECORD_SECONDS (and when ``now``): a synchronous control-store
        write per commit would cost the append path an fsync."""
        if self._record_size is None or size <= self.known_size:
            return
        self._unrecorded = size
        if now or time.monotonic() - self._recorded_at >= self.SIZE_RECORD_SECONDS:
            self._flush_size()

    def _flush_size(self) -> None:
        size, self._unrecorded = self._unrecorded, None
        if size is None or self._record_size is None:
            return
        self._recorded_at = time.monotonic()
        try:
            self._record_size(size)
            self.known_size = max(self.known_size, size)
        except IronlogError as e:  # the entries are durable; only the cross-check lags
            log.warning("could not record the size of %s: %s", self.info.path, e)

    # -- integrity -------------------------------------------------------------
    def check_head(self) -> None:
        """The root recomputed from stored tiles must equal the head's, and the
        latest signed checkpoint (the head's, or an older one while the head
        awaits its signature) must be of a tree the log holds (engine/checks.py)."""
        checks.check_head(self)

    def check_writable(self) -> None:
        if self.unhealthy is not None:
            raise IntegrityError(f"log {self.info.path} refuses writes: {self.unhealthy}")

    def check_appendable(self) -> None:
        """What a door checks before it reads a request: writable, and not service-only."""
        if self.service_only:
            raise PermissionDeniedError(
                f"log {self.info.path} is written by the service only (its system log)"
            )
        self.check_writable()

    # -- writing ---------------------------------------------------------------
    @property
    def verifier(self) -> Verifier:
        """The newest active signing key (what new verifiers should pin)."""
        return self.keys.primary()

    @property
    def verifiers(self) -> list[Verifier]:
        """Every key this log's checkpoints were ever signed with."""
        return self.keys.verifiers()

    def sign(self, size: int, root: bytes) -> str:
        """Every active key signs (old and new, during a key rotation)."""
        return Checkpoint(self.info.origin, size, root).sign(*self.keys.signers())

    def head_is_signed(self) -> bool:
        head = self.store.head()
        return head.size == 0 or bool(head.checkpoint)

    def sign_durable(self, head: Head) -> bool:
        """Sign and store the checkpoint of ``head``, a tree an fsync made durable."""
        try:
            self.store.add_checkpoint(head.size, head.root, self.sign(head.size, head.root))
        except Exception:  # the next fsync round tries again; never kill the writer
            log.exception("signing %s at size %d failed", self.info.path, head.size)
            return False
        with self._signed:
            self._signed.notify_all()
        return True

    def sign_delay(self) -> float:
        """How long after its commit a tree is signed at most (0 in sync mode)."""
        d = self.info.durability
        if d.mode == "interval":
            return d.interval_ms / 1000
        return 0.0 if d.mode == "sync" else OFF_SIGN_INTERVAL

    def wait_signed(self, min_size: int, timeout: float) -> tuple[int, str] | None:
        """The newest signed checkpoint once its size reaches ``min_size``
        (None if that takes longer than ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        poked = False
        while True:
            got = self.latest_signed()
            if got is not None and got[0] >= min_size:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not (poked or self.signs_at_commit or self._closed or self.unhealthy):
                poked = True  # after a restart, say, nothing may be pending
                with contextlib.suppress(LogUnavailableError):
                    self._writer_().poke()
            with self._signed:
                self._signed.wait(min(remaining, 0.05))

    def _writer_(self) -> LogWriter:
        w = self._writer
        if w is not None:
            return w
        with self._writer_lock:  # waits for a release in progress
            if self._writer is None:
                if self._closed:
                    raise LogUnavailableError(f"log {self.info.path} is closed")
                self._writer = LogWriter(self)
                self._connected()
            return self._writer

    def _submit(self, req: ThreadRequest[T] | AsyncRequest[T]) -> None:
        """Hand ``req`` to the writer; one being drained by a release refuses
        it, and the next writer (after the release) takes it."""
        while not self._writer_().offer(req):
            with self._writer_lock:
                pass

    @property
    def last_used(self) -> float:
        """When this log was last asked for, read or written (monotonic)."""
        return max(self._used, getattr(self.store, "last_used", 0.0))

    def touch(self) -> None:
        self._used = time.monotonic()

    def _connected(self) -> None:
        self.touch()
        if self.on_open is not None:
            self.on_open(self)

    def release(self) -> None:
        """Give back this log's resources: drain its writer (every queued
        append is committed and answered), record its size, close its store
        and drop its caches.  It stays usable: its store reopens on demand."""
        with self._writer_lock:
            w = self._writer
            if w is not None:
                w.close()
                self._writer = None
            self.released = True
            self._flush_size()
            self.store.close()
            self.drop_caches()

    def reopened(self) -> None:
        """After a release: check the head again before the log is used."""
        if not self.released:
            return
        try:
            self.check_head()  # out of descriptors: raised, and checked next time
        except IntegrityError as e:
            self.mark_unhealthy(str(e))
        self.released = False

    def _check_request(
        self, entries: Sequence[PreparedEntry], idempotency_key: str | None, service: bool
    ) -> None:
        if not service:
            self.check_appendable()
        if not entries:
            raise InvalidRequestError("nothing to append")
        check_key(idempotency_key)
        if service:
            self.check_writable()
        for check in self.append_checks:  # raises to refuse the whole request
            check(self.info, len(entries), sum(len(e.data) for e in entries))

    def _queue(
        self,
        entries: Sequence[PreparedEntry],
        answer: Answer[T],
        idempotency_key: str | None = None,
        service: bool = False,
    ) -> Future[T]:
        """Queue an append for a thread; the future resolves once its batch is durable."""
        self._check_request(entries, idempotency_key, service)
        req = ThreadRequest(entries, answer, idempotency_key)
        self._submit(req)
        return req.future

    async def _queue_async(
        self, entries: Sequence[PreparedEntry], answer: Answer[T], idempotency_key: str | None
    ) -> T:
        self._check_request(entries, idempotency_key, False)
        req = AsyncRequest(entries, answer, idempotency_key)
        self._submit(req)
        return await req.future

    def receipts(self, first: int, entries: Sequence[PreparedEntry], head: Head) -> list[Receipt]:
        """A receipt per entry of ``entries``, appended at ``first`` in the batch
        that made the tree ``head`` (signed, or not yet: its checkpoint is then "")."""
        size, checkpoint, root = head.size, head.checkpoint, head.root
        out = []
        for i, e in enumerate(entries):
            proof = tuple(self.proof_at(first + i, size))
            out.append(Receipt(first + i, e.leaf, e.data, checkpoint, proof, size, root))
        return out

    def batch_receipt(
        self, first: int, entries: Sequence[PreparedEntry], head: Head
    ) -> BatchReceipt:
        """One receipt for all of ``entries`` (see ``receipts``)."""
        return BatchReceipt(first, len(entries), head.checkpoint, head.size, head.root)

    def rebase(self, receipt: Receipt, size: int, checkpoint: str) -> Receipt:
        """``receipt`` with its proof to the (signed) tree of ``size``."""
        proof = tuple(self.inclusion_proof(receipt.index, size))
        return replace(
            receipt, checkpoint=checkpoint, inclusion_proof=proof, size=size, root=self.root(size)
        )

    def signed_receipt(self, receipt: Receipt) -> Receipt | None:
        """``receipt`` re-based on a signed checkpoint, waiting for one for as
        long as signing may take (None if none came in that time)."""
        if receipt.checkpoint:
            return receipt
        got = self.wait_signed(receipt.index + 1, self.sign_delay() + 2.0)
        return self.rebase(receipt, *got) if got is not None else None

    def submit(
        self,
        entries: Sequence[PreparedEntry],
        proofs: bool,
        idempotency_key: str | None = None,
    ) -> Future[Outcome]:
        """Queue an append; the future resolves once its batch is durable.  A
        repeated ``idempotency_key`` appends nothing and gets the original answer."""
        answer: Answer[Outcome] = self.receipts if proofs else self.batch_receipt
        return self._queue(entries, answer, idempotency_key)

    async def submit_async(
        self,
        entries: Sequence[PreparedEntry],
        proofs: bool,
        idempotency_key: str | None = None,
    ) -> Outcome:
        answer: Answer[Outcome] = self.receipts if proofs else self.batch_receipt
        return await self._queue_async(entries, answer, idempotency_key)

    def append_service(self, entry: PreparedEntry) -> Receipt:
        """Append as the service itself: the only way into a service-only log."""
        return self._queue([entry], self.receipts, service=True).result()[0]

    def append_batch(self, entries: Sequence[PreparedEntry]) -> BatchReceipt:
        """Append all or nothing; answered after the batch is durable."""
        return self._queue(entries, self.batch_receipt).result()

    def append(self, entry: PreparedEntry) -> Receipt:
        return self._queue([entry], self.receipts).result()[0]

    async def append_async(
        self, entry: PreparedEntry, idempotency_key: str | None = None
    ) -> Receipt:
        return (await self._queue_async([entry], self.receipts, idempotency_key))[0]

    async def append_batch_async(
        self, entries: Sequence[PreparedEntry], idempotency_key: str | None = None
    ) -> BatchReceipt:
        return await self._queue_async(entries, self.batch_receipt, idempotency_key)

    def queue_depth(self) -> int:
        w = self._writer
        return 0 if w is None else w.depth()

    def writer_stats(self) -> dict[str, float]:
        w = self._writer
        if w is None or not w.batch_sizes:
            return {}
        return {
            "batches_recent": len(w.batch_sizes),
            "mean_batch": sum(w.batch_sizes) / len(w.batch_sizes),
            "mean_commit_ms": 1000 * sum(w.commit_seconds) / len(w.commit_seconds),
        }

    def close(self) -> None:
        with self._writer_lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._flush_size()
            self.store.close()
