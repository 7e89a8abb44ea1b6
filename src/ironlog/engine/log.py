"""The log engine: the append path (validate, batch, commit, sign, receipts)
and the read path (entries, proofs, tiles).  Knows nothing of HTTP.

One writer thread per log and process holds a queue of pending appends and
has at most one commit in flight; while a commit runs new appends gather and
form the next batch (group commit, no fixed sleep).  A request is never split
across batches, so a batch request is all or nothing.

A checkpoint is signed only for a tree that is durable.  In ``sync`` mode
every commit is fsync'd, so each batch signs its checkpoint in its
transaction.  In ``interval`` and ``off`` modes a commit stores the tree
unsigned; the writer's periodic fsync then signs the size it just made
durable (``LogWriter._sync``).  Receipts of those modes carry the unsigned
root and size; the signed checkpoint follows (``Log.wait_signed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

from ironlog.core.entry import PreparedEntry
from ironlog.core.merkle import consistency_proof, inclusion_proof, leaf_hash, tree_root
from ironlog.core.note import Checkpoint, Signer, Verifier, open_checkpoint
from ironlog.core.tiles import (
    TILE_WIDTH,
    NodeReader,
    TileBuilder,
    encode_bundle,
    partial_tiles,
    tile_width_at,
)
from ironlog.core.tlogproof import TlogProof
from ironlog.engine.signing_keys import KeyRing
from ironlog.errors import (
    ConflictError,
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    NotFoundError,
    PermissionDeniedError,
)
from ironlog.store.base import DuplicateRequestError, Head, LogInfo, LogStore, Query

log = logging.getLogger("ironlog.engine")

MAX_BATCH_ENTRIES = 10_000
MAX_INDEX = 1 << 62
MAX_BATCH_BYTES = 32 << 20
OFF_SIGN_INTERVAL = 1.0  # seconds between fsync-and-sign rounds of an ``off`` log


@dataclass(frozen=True)
class Receipt:
    """What an append of one entry returns: enough to verify it offline.

    ``inclusion_proof`` leads to the tree (``size``, ``root``); ``checkpoint``
    is its signed note, or "" in the non-sync modes, where the tree is signed
    only once it is durable (fetch the signed checkpoint later)."""

    index: int
    leaf_hash: bytes
    entry: bytes
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]
    size: int
    root: bytes

    def tlog_proof(self) -> TlogProof:
        if not self.checkpoint:
            raise NotFoundError(f"entry {self.index} has no signed checkpoint yet")
        return TlogProof(self.index, self.inclusion_proof, self.checkpoint)


@dataclass(frozen=True)
class BatchReceipt:
    first_index: int
    count: int
    checkpoint: str  # "" until the tree is durable and signed (non-sync modes)
    size: int
    root: bytes


Outcome = BatchReceipt | list[Receipt]


@dataclass
class _Request:
    entries: Sequence[PreparedEntry]
    proofs: bool
    nbytes: int = 0
    idem_key: str | None = None
    future: Future[Outcome] | None = None  # for threads
    afuture: asyncio.Future[Outcome] | None = None  # for coroutines
    loop: asyncio.AbstractEventLoop | None = None


def _settle_async(items: list[tuple[asyncio.Future[Outcome], Outcome | BaseException]]) -> None:
    """Runs on the event loop: resolve a whole batch's waiters with one wake-up."""
    for fut, value in items:
        if fut.cancelled():
            continue
        if isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)


class LogWriter:
    """The single writer of one log in this process."""

    def __init__(self, owner: Log) -> None:
        self._log = owner
        self._store = owner.store
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
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

    def submit(self, req: _Request) -> None:
        req.nbytes = sum(len(e.data) for e in req.entries)
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

    def _take(self) -> list[_Request] | None:
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
                while self._dirty:  # at most twice: the tree, then its signature
                    self._sync()
                return
            if not batch:  # interval mode: time to fsync
                self._sync()
                continue
            self._commit(batch)

    def _commit(self, batch: list[_Request]) -> None:
        # Requests repeating an idempotency key of this batch wait for the first.
        first_by_key: dict[str, _Request] = {}
        followers: list[tuple[_Request, _Request]] = []
        unique: list[_Request] = []
        refused: list[tuple[_Request, Outcome | BaseException]] = []
        for r in batch:
            if r.idem_key is not None and r.idem_key in first_by_key:
                first = first_by_key[r.idem_key]
                if not same_events([e.data for e in first.entries], r.entries):
                    refused.append((r, _reused_key(r.idem_key)))
                    continue
                followers.append((r, first))
                continue
            if r.idem_key is not None:
                first_by_key[r.idem_key] = r
            unique.append(r)
        outcomes = self._commit_unique(unique)
        by_request = {id(r): o for r, o in zip(unique, outcomes, strict=True)}
        self._answer(
            unique + [f for f, _ in followers] + [r for r, _ in refused],
            outcomes + [by_request[id(first)] for _, first in followers] + [o for _, o in refused],
        )

    def _commit_unique(self, batch: list[_Request]) -> list[Outcome | BaseException]:
        """Commit once (twice if some idempotency keys turn out to be used)."""
        done: dict[int, Outcome | BaseException] = {}
        pending = batch
        for _ in range(2):
            try:
                outs = self._commit_once(pending)
            except DuplicateRequestError as dup:
                used = set(dup.keys)
                for r in pending:
                    if r.idem_key in used:
                        done[id(r)] = self._log.replay(r.idem_key, r.proofs, r.entries)
                pending = [r for r in pending if r.idem_key not in used]
                if not pending:
                    break
                continue
            done.update(zip((id(r) for r in pending), outs, strict=True))
            break
        return [done.get(id(r), LogUnavailableError("append was not committed")) for r in batch]

    def _commit_once(self, batch: list[_Request]) -> list[Outcome | BaseException]:
        entries = [e for r in batch for e in r.entries]
        idem: list[tuple[str, int, int]] = []
        offset = 0
        for r in batch:
            if r.idem_key is not None:
                idem.append((r.idem_key, offset, len(r.entries)))
            offset += len(r.entries)
        started = time.perf_counter()
        try:
            self._log.check_writable()
            sign = self._log.sign if self._log.signs_at_commit else None
            result = self._store.append(entries, sign, idem)
        except DuplicateRequestError:
            raise
        except IronlogError as e:
            if isinstance(e, IntegrityError):  # stored data contradicts the head
                self._log.mark_unhealthy(str(e))
            return [e] * len(batch)
        except Exception:  # never let the writer die; never leak internals
            log.exception("append to %s failed", self._log.info.path)
            return [LogUnavailableError(f"append to {self._log.info.path} failed")] * len(batch)
        elapsed = time.perf_counter() - started
        self._committed = result.head.size
        if self._log.info.durability.mode == "sync":  # durable now (interval: at the fsync)
            self._log.note_size(result.head.size)
        self.commit_seconds.append(elapsed)
        self.batch_sizes.append(len(entries))
        for observer in self._log.commit_observers:
            observer(self._log.info, len(entries), sum(len(e.data) for e in entries), elapsed)
        if self._interval is not None:
            self._dirty = True
            if time.monotonic() - self._last_sync >= self._interval:
                self._sync()
        head = result.head
        index = result.first_index
        outcomes: list[Outcome | BaseException] = []
        for r in batch:
            try:
                outcomes.append(self._log.outcome(index, r.entries, head, r.proofs))
            except IronlogError as e:
                outcomes.append(e)
            index += len(r.entries)
        return outcomes

    @staticmethod
    def _answer(batch: list[_Request], outcomes: Sequence[Outcome | BaseException]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[Outcome], Outcome | BaseException]],
        ] = {}
        for r, value in zip(batch, outcomes, strict=True):
            if r.afuture is not None and r.loop is not None:
                by_loop.setdefault(r.loop, []).append((r.afuture, value))
            elif r.future is not None:
                if isinstance(value, BaseException):
                    r.future.set_exception(value)
                else:
                    r.future.set_result(value)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
                loop.call_soon_threadsafe(_settle_async, items)


def beyond_head(store: LogStore) -> str | None:
    """What the store holds beyond its head's tree size (entries, checkpoints,
    tiles), if anything: one snapshot, a few indexed look-ups."""
    ext = store.extents()
    size = ext.head_size
    if ext.last_entry is not None and ext.last_entry >= size:
        return f"entry {ext.last_entry} lies beyond the tree size {size}"
    if ext.last_checkpoint is not None and ext.last_checkpoint > size:
        return f"a checkpoint of size {ext.last_checkpoint} lies beyond the tree size {size}"
    for level, (index, width) in sorted(ext.last_tiles.items()):
        if width > tile_width_at(level, index, size):
            return f"tile {level}/{index} (width {width}) lies beyond the tree size {size}"
    return None


class Log:
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
        self.info = info
        self.store = store
        self.opened_at = time.monotonic()
        self.known_size = known_size
        self._record_size = record_size
        self._recorded_at = -1e9
        self._unrecorded: int | None = None
        self._tree_size = 0
        self.keys = (
            signer if isinstance(signer, KeyRing) else KeyRing.static(signer.for_name(info.origin))
        )
        self._nodes = NodeReader(store.tile)
        self._nodes_lock = threading.Lock()
        self._writer: LogWriter | None = None
        self._writer_lock = threading.Lock()
        # sync mode signs in the commit; the others once an fsync made a tree durable
        self.signs_at_commit = info.durability.mode == "sync"
        self._signed = threading.Condition()
        self._closed = False
        self.unhealthy: str | None = None
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
        awaits its signature) must be of a tree the log holds."""
        where = f"log {self.info.path}"
        known_size = self.known_size  # these only grow, after the head did:
        latest = self.store.latest_checkpoint()  # read them before the head
        head = self.store.head()
        if head.size < known_size:
            raise IntegrityError(
                f"{where}: rolled back: it had signed a checkpoint of size {known_size} "
                f"but its database holds {head.size} entries (restored from an older copy?)"
            )
        problem = beyond_head(self.store)
        if problem is not None:
            raise IntegrityError(f"{where}: {problem}")
        if head.size == 0:
            if head.checkpoint or self.store.checkpoint(0) is not None:
                raise IntegrityError(f"{where}: head is empty but a checkpoint exists")
            if latest is not None:
                raise IntegrityError(f"{where}: the log is empty but signed checkpoints exist")
            return
        if head.checkpoint:
            if self.store.checkpoint(head.size) != head.checkpoint:
                raise IntegrityError(f"{where}: head does not match the stored checkpoint")
            if latest is None or latest[0] <= head.size:
                latest = (head.size, head.checkpoint)  # signed since latest was read
        if latest is not None and latest[0] > head.size:
            raise IntegrityError(
                f"{where}: a checkpoint of size {latest[0]} was signed but the log has "
                f"only {head.size} entries"
            )
        partial = [self.store.tile(lv, ix) or b"" for lv, ix in partial_tiles(head.size)]
        try:
            root = TileBuilder(head.size, partial).root()
        except IronlogError as e:
            raise IntegrityError(f"{where}: stored tiles are inconsistent: {e}") from e
        if latest is not None:
            self._check_signed(where, head, root, *latest)
        if root != head.root:
            raise IntegrityError(f"{where}: root rebuilt from stored tiles differs from the head")
        last_full = head.size - head.size % TILE_WIDTH
        tail = self.store.entries(last_full, head.size)
        if len(tail) != head.size - last_full:
            raise IntegrityError(f"{where}: entries are missing below the tree size {head.size}")
        level0 = partial[0][: len(tail) * 32] if partial else b""
        if b"".join(leaf_hash(e) for e in tail) != level0:
            raise IntegrityError(f"{where}: latest entries do not match their tile")

    def _check_signed(self, where: str, head: Head, root: bytes, size: int, note: str) -> None:
        """The latest signed checkpoint verifies and is the tree of its size."""
        try:
            cp = open_checkpoint(note, self.verifiers).checkpoint
        except IronlogError as e:
            raise IntegrityError(f"{where}: last checkpoint does not verify: {e}") from e
        if cp.size != size:
            raise IntegrityError(f"{where}: checkpoint stored under size {size} says {cp.size}")
        if size == head.size:
            if cp.root != head.root:
                raise IntegrityError(f"{where}: head differs from its signed checkpoint")
            signed_root = root
        else:
            try:
                signed_root = self.root(size)
            except IronlogError as e:
                raise IntegrityError(f"{where}: stored tiles are inconsistent: {e}") from e
        if signed_root != cp.root:
            raise IntegrityError(
                f"{where}: root recomputed from stored tiles differs from the signed "
                f"checkpoint at size {cp.size}"
            )

    def mark_unhealthy(self, reason: str) -> None:
        self.unhealthy = reason
        log.error("log %s refused for writing: %s", self.info.path, reason)

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

    def latest_signed(self) -> tuple[int, str] | None:
        """(size, note) of the newest signed checkpoint: of a durable tree."""
        head = self.store.head()
        if head.checkpoint:
            return head.size, head.checkpoint
        if head.size == 0:
            return None
        return self.store.latest_checkpoint()

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
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = LogWriter(self)
        return self._writer

    def _request(
        self,
        entries: Sequence[PreparedEntry],
        proofs: bool,
        idempotency_key: str | None,
        service: bool = False,
    ) -> _Request:
        if not service:
            self.check_appendable()
        if not entries:
            raise InvalidRequestError("nothing to append")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
            raise InvalidRequestError("an idempotency key is 1 to 255 characters")
        if service:
            self.check_writable()
        for check in self.append_checks:  # raises to refuse the whole request
            check(self.info, len(entries), sum(len(e.data) for e in entries))
        return _Request(entries, proofs, idem_key=idempotency_key)

    def outcome(
        self,
        first: int,
        entries: Sequence[PreparedEntry] | Sequence[bytes],
        head: Head,
        proofs: bool,
    ) -> Outcome:
        """The receipt(s) for ``entries`` appended at ``first`` in the batch that
        made the tree ``head`` (signed, or not yet: its checkpoint is then "")."""
        size, checkpoint = head.size, head.checkpoint
        if not proofs:
            return BatchReceipt(first, len(entries), checkpoint, size, head.root)
        out = []
        for i, e in enumerate(entries):
            if isinstance(e, bytes):
                data, leaf = e, leaf_hash(e)
            else:
                assert isinstance(e, PreparedEntry)
                data, leaf = e.data, e.leaf
            proof = tuple(self.proof_at(first + i, size))
            out.append(Receipt(first + i, leaf, data, checkpoint, proof, size, head.root))
        return out

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

    def replay(
        self, key: str | None, proofs: bool, again: Sequence[PreparedEntry] | None = None
    ) -> Outcome | BaseException:
        """The original answer to the request that used idempotency ``key``;
        a ConflictError if ``again`` (the repeated request's entries) holds
        other events than that request did (a key reused, not a retry)."""
        done = self.store.idempotent(key) if key is not None else None
        if key is None or done is None:
            return LogUnavailableError("idempotency record vanished")
        try:
            entries = self.store.entries(done.first_index, done.first_index + done.count)
            if again is not None and not same_events(entries, again):
                return _reused_key(key)
            head = Head(done.size, self.root(done.size), self.store.checkpoint(done.size) or "")
            return self.outcome(done.first_index, entries, head, proofs)
        except IronlogError as e:
            return e

    def submit(
        self,
        entries: Sequence[PreparedEntry],
        proofs: bool,
        idempotency_key: str | None = None,
    ) -> Future[Outcome]:
        """Queue an append; the future resolves once its batch is durable.  A
        repeated ``idempotency_key`` appends nothing and gets the original answer."""
        req = self._request(entries, proofs, idempotency_key)
        req.future = Future()
        self._writer_().submit(req)
        return req.future

    async def submit_async(
        self,
        entries: Sequence[PreparedEntry],
        proofs: bool,
        idempotency_key: str | None = None,
    ) -> Outcome:
        req = self._request(entries, proofs, idempotency_key)
        req.loop = asyncio.get_running_loop()
        req.afuture = req.loop.create_future()
        self._writer_().submit(req)
        return await req.afuture

    def append_service(self, entry: PreparedEntry) -> Receipt:
        """Append as the service itself: the only way into a service-only log."""
        req = self._request([entry], True, None, service=True)
        req.future = Future()
        self._writer_().submit(req)
        res = req.future.result()
        assert isinstance(res, list)
        return res[0]

    def append_batch(self, entries: Sequence[PreparedEntry]) -> BatchReceipt:
        """Append all or nothing; answered after the batch is durable."""
        res = self.submit(entries, proofs=False).result()
        assert isinstance(res, BatchReceipt)
        return res

    def append(self, entry: PreparedEntry) -> Receipt:
        res = self.submit([entry], proofs=True).result()
        assert isinstance(res, list)
        return res[0]

    async def append_async(
        self, entry: PreparedEntry, idempotency_key: str | None = None
    ) -> Receipt:
        res = await self.submit_async([entry], True, idempotency_key)
        assert isinstance(res, list)
        return res[0]

    async def append_batch_async(
        self, entries: Sequence[PreparedEntry], idempotency_key: str | None = None
    ) -> BatchReceipt:
        res = await self.submit_async(entries, False, idempotency_key)
        assert isinstance(res, BatchReceipt)
        return res

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
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._flush_size()
        self.store.close()

    # -- reading ---------------------------------------------------------------
    def head(self) -> Head:
        return self.store.head()

    @staticmethod
    def _bounded(**values: int | None) -> None:
        """Indexes and sizes must fit the store's 63-bit integers."""
        for name, v in values.items():
            if v is not None and not 0 <= v < MAX_INDEX:
                raise InvalidRequestError(f"{name} must be between 0 and {MAX_INDEX - 1}")

    def _size(self, size: int | None) -> int:
        self._bounded(size=size)
        current = self.store.head().size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise InvalidRequestError(f"tree size {size} is not between 0 and {current}")
        return size

    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint of ``size``, or the latest one: never of a
        tree that is not durable yet."""
        self._bounded(size=size)
        if size is None:
            got = self.latest_signed()
            if got is None:
                raise NotFoundError(f"log {self.info.path} has no signed checkpoint yet")
            return got[1]
        note = self.store.checkpoint(size)
        if note is None:
            raise NotFoundError(f"no checkpoint was signed at size {size}")
        return note

    def _node(self, height: int, index: int) -> bytes:
        with self._nodes_lock:
            return self._nodes.node(height, index)

    def root(self, size: int) -> bytes:
        return tree_root(size, self._node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        self._bounded(index=index)
        size = self._size(size)
        if not 0 <= index < size:
            raise InvalidRequestError(f"index {index} is not below tree size {size}")
        return self.proof_at(index, size)

    def proof_at(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof for a size known to exist (no head look-up)."""
        return inclusion_proof(index, size, self._node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        self._bounded(size1=size1)
        size2 = self._size(size2)
        if not 1 <= size1 <= size2:
            raise InvalidRequestError(f"need 1 <= from ({size1}) <= to ({size2})")
        return consistency_proof(size1, size2, self._node)

    def tlog_proof(self, index: int, size: int | None = None) -> TlogProof:
        """An offline proof of entry ``index`` against the signed checkpoint of
        ``size`` (default: the latest, waiting for one that covers the entry
        for as long as signing may take)."""
        if size is None:
            self._bounded(index=index)
            got = self.latest_signed()
            if (got is None or got[0] <= index) and index < self.store.head().size:
                got = self.wait_signed(index + 1, self.sign_delay() + 2.0)
                if got is None:
                    raise NotFoundError(f"entry {index} is not covered by a signed checkpoint yet")
            size = got[0] if got is not None else 0
        size = self._size(size)
        note = self.checkpoint(size)
        return TlogProof(index, tuple(self.inclusion_proof(index, size)), note)

    def entry(self, index: int) -> bytes:
        self._bounded(index=index)
        got = self.store.entries(index, index + 1)
        if not got:
            raise NotFoundError(f"log {self.info.path} has no entry {index}")
        return self._checked(index, got[0])

    def _checked(self, index: int, data: bytes) -> bytes:
        """An entry read from storage, checked against its leaf hash in the
        tree (level-0 tiles, memoised): altered bytes or a row beyond the
        signed tree are never served as the log's."""
        try:
            if index >= self._tree_size and index >= self._head_size():
                raise IntegrityError(
                    f"entry {index} lies beyond the tree's {self._tree_size} entries"
                )
            if self._node(0, index) != leaf_hash(data):
                raise IntegrityError(f"entry {index} does not match its leaf hash in the tree")
        except IronlogError as e:
            reason = f"{e}" if isinstance(e, IntegrityError) else f"entry {index}: {e}"
            self.mark_unhealthy(f"read check failed: {reason}")
            raise IntegrityError(f"log {self.info.path}: {reason}") from e
        return data

    def query(self, q: Query) -> Iterator[tuple[int, bytes]]:
        """Matching entries, each checked against its leaf hash (see _checked)."""
        self._bounded(from_index=q.from_index, limit=q.limit)
        for name in ("since_us", "until_us"):
            v = getattr(q, name)
            if v is not None and not -MAX_INDEX < v < MAX_INDEX:
                raise InvalidRequestError(f"{name} is out of range")
        return ((index, self._checked(index, data)) for index, data in self.store.query(q))

    def _head_size(self) -> int:
        """The committed tree size, re-read (a cache of it is ``_tree_size``)."""
        self._tree_size = self.store.head().size
        return self._tree_size

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        self._bounded(level=level, index=index)
        """Exactly the tile ``tile/<level>/<index>[.p/<width>]`` (NotFoundError if absent)."""
        data = self.store.tile(level, index)
        if data is None or len(data) < width * 32:
            raise NotFoundError(f"no tile {level}/{index} of width {width}")
        # A partial's hashes never change, so a grown tile serves any narrower width.
        return data[: width * 32]

    def bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        self._bounded(index=index)
        start = index * TILE_WIDTH
        got = self.store.entries(start, start + width)
        if len(got) < width:
            raise NotFoundError(f"no entry bundle {index} of width {width}")
        return encode_bundle(got)


def _event(data: bytes) -> object:
    """An entry's event as the client sent it: without the time the server added."""
    obj = json.loads(data)
    if isinstance(obj, dict):
        obj.pop("received_at", None)
    return obj


def same_events(stored: Sequence[bytes], again: Sequence[PreparedEntry]) -> bool:
    """Do ``again`` (a repeated request's entries) carry the events of ``stored``?"""
    if len(stored) != len(again):
        return False
    try:
        return all(_event(a) == _event(b.data) for a, b in zip(stored, again, strict=True))
    except ValueError:
        return False


def _reused_key(key: str) -> ConflictError:
    return ConflictError(
        f"idempotency key {key[:64]!r} was used for a request with other events: "
        "nothing was appended (a retry must repeat the same events)"
    )
