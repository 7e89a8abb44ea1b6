"""The background sender of :mod:`ironlog.client.handler`: a queue, a thread, a spool file.

The caller's thread only puts the record on a bounded in-memory queue.  A
background thread sends batches (NDJSON, verified by
:class:`ironlog.client.Client`), each with its own idempotency key.  When the
service cannot be reached (or answers 5xx/429), the batch is written, with
its key, to a spool file and replayed, oldest first, with back-off: a batch
whose answer was lost is resent under the same key, so the server appends it
once.  A full queue spills records straight to the spool from the caller's
thread (rare, slower, never lost).  ``close()`` flushes; whatever still cannot
be sent stays in the spool for the next shipper using the same spool file.

Lost on a crash of the *calling process*: records still in the in-memory
queue (at most ``flush_interval`` seconds' worth, or ``max_queue`` records).

An outage is reported on stderr once when it starts and once when delivery
works again.  The spool file is 0600 in a 0700 directory.  Whatever the
sending thread logs is marked (:func:`delivering`) so that the front ends
never ship it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ironlog.client.flows import log_ref
from ironlog.client.http import Client
from ironlog.core.names import LogRef
from ironlog.errors import IronlogError, UnreachableError, VerificationError


def _retryable(e: IronlogError) -> bool:
    status = getattr(e, "status", None)
    return (
        isinstance(e, UnreachableError)
        or status is None
        or status >= 500
        or status
        in (
            401,
            403,
            404,
            408,
            429,
        )
    )


def default_spool(log: str) -> Path:
    """``$XDG_STATE_HOME/ironlog/TENANT__LOG.spool`` (else ``~/.local/state/...``)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "ironlog" / (log.replace("/", "__") + ".spool")


_delivery = threading.local()


def delivering() -> bool:
    """True in a thread that is sending records (whatever it logs is not shipped)."""
    return getattr(_delivery, "depth", 0) > 0


@contextlib.contextmanager
def _delivering() -> Iterator[None]:
    _delivery.depth = getattr(_delivery, "depth", 0) + 1
    try:
        yield
    finally:
        _delivery.depth -= 1


def _private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 (existing ones are left alone)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        os.chmod(d, 0o700)


def _open_private(path: Path, mode: str) -> IO[str]:
    """Open (creating it 0600) a file that holds records; fix a looser mode."""
    flags = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+": os.O_RDWR}[mode]
    fd = os.open(path, flags, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _say(text: str) -> None:
    """A line on stderr (never through ``logging``: that would come back here)."""
    with contextlib.suppress(Exception):
        print(f"ironlog shipper: {text}", file=sys.stderr, flush=True)


class Shipper:
    """The background sender both front ends share."""

    def __init__(
        self,
        url: str,
        api_key: str,
        log: LogRef | str,
        *,
        spool_path: Path | str | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        vkey: str | None = None,
        state_file: Path | str | None = None,
        verify: bool | str = True,
    ) -> None:
        self.log = str(log_ref(log))  # a misspelt log name fails here, not at every delivery
        self.url = url
        self.spool_path = Path(spool_path) if spool_path else default_spool(self.log)
        _private_dir(self.spool_path.parent)
        if spool_path is None:  # our own directory: private even if made looser before
            os.chmod(self.spool_path.parent, 0o700)
        self._outage = False
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self._client = Client(
            url,
            api_key,
            vkeys={self.log: vkey} if vkey else None,
            trust_on_first_use=vkey is None,
            state_file=state_file,
            timeout=timeout,
            verify=verify,
        )
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = False
        self._closed = False
        self._retry_at = 0.0
        self._failures = 0
        self.sent = 0  # records acknowledged by the service
        self.spooled = 0  # records that went through the spool file
        self.rejected = 0  # records the service refused as invalid (kept in *.rejected)
        self._thread = threading.Thread(target=self._run, name="ironlog-shipper", daemon=True)
        self._thread.start()

    # -- caller's thread ---------------------------------------------------------
    def put(self, item: Any) -> None:
        if self._closed:  # no sender any more: straight to the spool, never lost
            self._spool([self._event(item)])
            return
        q = self._queue
        if len(q) >= self.max_queue:
            self._spool([self._event(item)])  # bounded memory, nothing lost
            return
        q.append(item)
        if len(q) >= self.batch_size and not self._wake.is_set():
            self._wake.set()  # set() takes a lock: only when the sender sleeps

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued and what the spool holds.  True once both are
        empty; False on timeout or when the service cannot be reached (the
        records are then safe in the spool).  After close(), at once (nothing
        sends any more; logging.shutdown() calls it again at exit)."""
        if self._closed:
            return not self._queue and not self._spool_size()
        deadline = time.monotonic() + timeout
        self._retry_at = 0.0
        while time.monotonic() < deadline:
            self._idle.clear()
            self._wake.set()
            if not self._idle.wait(max(0.0, deadline - time.monotonic())):
                break
            if self._queue:
                continue
            if not self._spool_size():
                return True
            if self._retry_at > time.monotonic():
                return False
        return False

    def close(self, timeout: float = 10.0) -> None:
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        # Whatever is still queued survives in the spool.
        rest = [self._event(self._queue.popleft()) for _ in range(len(self._queue))]
        if rest:
            self._spool(rest)
        with _delivering():
            self._client.close()

    # -- background thread -------------------------------------------------------------
    def _event(self, item: Any) -> dict[str, Any]:
        return dict(item)

    def _run(self) -> None:
        with _delivering():  # whatever this thread logs is never shipped
            while not self._stop:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                try:
                    self._cycle()
                except Exception as e:  # never let the shipper thread die
                    _say(f"{type(e).__name__}: {e}")
                self._idle.set()

    def _cycle(self) -> None:
        while self._queue:
            batch: list[dict[str, Any]] = []
            while self._queue and len(batch) < self.batch_size:
                batch.append(self._event(self._queue.popleft()))
            key = uuid.uuid4().hex
            backlog = self._spool_size() or time.monotonic() < self._retry_at
            if backlog or not self._send(batch, key):
                self._spool(batch, key)
        if self._spool_size() and time.monotonic() >= self._retry_at:
            self._replay()

    def _send(self, events: list[dict[str, Any]], key: str) -> bool:
        """True if the batch is done with (sent, or refused as invalid and set aside)."""
        try:
            self._client.append_many(self.log, events, idempotency_key=key)
        except VerificationError as e:
            # Appended, but the answer did not verify: report loudly, never resend.
            _say(f"receipt did not verify: {e}")
            self.sent += len(events)
            return True
        except IronlogError as e:
            if _retryable(e):
                self._failures += 1
                self._retry_at = time.monotonic() + min(30.0, 0.25 * 2 ** min(self._failures, 7))
                self._outage_starts(e)
                return False
            self._reject(events, key, e)
            return True
        self._failures = 0
        self.sent += len(events)
        self._outage_ends()
        return True

    def _outage_starts(self, e: IronlogError) -> None:
        if not self._outage:
            self._outage = True
            _say(
                f"cannot deliver to {self.url} (log {self.log}): {e}; records are kept in "
                f"{self.spool_path} and resent, in order, once it answers"
            )

    def _outage_ends(self) -> None:
        if self._outage:
            self._outage = False
            _say(f"delivering to {self.url} (log {self.log}) again; spooled records follow")

    # -- the spool file ------------------------------------------------------------------
    def _spool_size(self) -> int:
        try:
            return self.spool_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _spool(self, events: list[dict[str, Any]], key: str | None = None) -> None:
        line = json.dumps({"key": key or uuid.uuid4().hex, "events": events}, default=str)
        with _open_private(self.spool_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.spooled += len(events)

    def _replay(self) -> None:
        with _open_private(self.spool_path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            lines = [ln for ln in f.read().split("\n") if ln.strip()]
            done = 0
            for ln in lines:
                try:
                    item = json.loads(ln)
                    events, key = list(item["events"]), str(item["key"])
                except (ValueError, KeyError, TypeError):
                    done += 1  # a torn last line from a crash mid-write: nothing to send
                    continue
                if not self._send(events, key):
                    break
                done += 1
            rest = lines[done:]
            f.seek(0)
            f.truncate()
            if rest:
                f.write("\n".join(rest) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _reject(self, events: list[dict[str, Any]], key: str, e: IronlogError) -> None:
        self.rejected += len(events)
        _say(f"{len(events)} records refused: {e}")
        path = self.spool_path.with_suffix(".rejected")
        with _open_private(path, "a") as f:
            f.write(json.dumps({"key": key, "error": str(e), "events": events}, default=str))
            f.write("\n")


__all__ = ["Shipper", "default_spool", "delivering"]
