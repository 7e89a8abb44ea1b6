"""Ship Python log records to ironlog: a ``logging`` handler and a structlog processor.

The caller's thread only takes the message and puts the record on a bounded
in-memory queue.  A background thread sends batches (NDJSON, verified by
:class:`ironlog.client.Client`), each with its own idempotency key.  When the
service cannot be reached (or answers 5xx/429), the batch is written, with
its key, to a spool file and replayed, oldest first, with back-off: a batch
whose answer was lost is resent under the same key, so the server appends it
once.  A full queue spills records straight to the spool from the caller's
thread (rare, slower, never lost).  ``close()`` (run by ``logging.shutdown``
at exit) flushes; whatever still cannot be sent stays in the spool for the
next handler using the same spool file.

Lost on a crash of the *calling process*: records still in the in-memory
queue (at most ``flush_interval`` seconds' worth, or ``max_queue`` records).

Never shipped: records caused by the shipping itself (anything logged while
delivering, e.g. httpx's "HTTP Request: POST ..." at INFO, and the loggers of
the HTTP stack and of this SDK), which would otherwise feed on themselves.
An outage is reported on stderr once when it starts and once when delivery
works again.  The spool file is 0600 in a 0700 directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

from ironlog.client.flows import log_ref
from ironlog.client.http import Client
from ironlog.core.names import LogRef
from ironlog.errors import IronlogError, UnreachableError, VerificationError

_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
_RESERVED = ("received_at", "source")


def _iso(ts: float) -> str:
    secs = int(ts)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        f"{t.tm_sec:02d}.{int((ts - secs) * 1e6):06d}Z"
    )


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


# Loggers whose records come from delivering records: the HTTP stack and this SDK.
SELF_LOGGERS = ("httpx", "httpcore", "h11", "h2", "hpack", "urllib3", "ironlog.client")
_own_names: dict[str, bool] = {}
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


def _self_logger(name: str) -> bool:
    own = _own_names.get(name)
    if own is None:
        own = any(name == p or name.startswith(p + ".") for p in SELF_LOGGERS)
        if len(_own_names) < 10_000:
            _own_names[name] = own
    return own


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


class _RecordShipper(Shipper):
    def _event(self, item: Any) -> dict[str, Any]:
        record, msg, exc = item
        ev: dict[str, Any] = {
            "message": msg,
            "level": record.levelname,
            "logger": record.name,
            "time": _iso(record.created),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "process": record.process,
            "thread_name": record.threadName,
        }
        if exc:
            ev["exception"] = exc
        for k, v in record.__dict__.items():
            if k not in _RECORD_FIELDS and k not in ev:
                ev[("x_" + k) if k in _RESERVED else k] = v
        return ev


class LogHandler(logging.Handler):
    """``logging.Handler`` sending records to ``log`` (``tenant/log``) at ``url``.

    Non-blocking: ``emit`` only queues.  Each event holds message, level,
    logger, time, module, function, line, process, thread name, exception text
    and any ``extra=`` fields (so ``extra={"actor": "alice"}`` is queryable)."""

    def __init__(self, url: str, api_key: str, log: LogRef | str, **options: Any) -> None:
        super().__init__()
        self.shipper = _RecordShipper(url, api_key, log, **options)

    def handle(self, record: logging.LogRecord) -> bool:
        """Like ``Handler.handle`` without the handler lock: ``emit`` only appends
        to a thread-safe deque, and the caller's thread is what we keep cheap.
        Records caused by delivering records are dropped (see the module doc)."""
        if delivering() or _self_logger(record.name):
            return False
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            exc = None
            if record.exc_info:
                exc = "".join(traceback.format_exception(*record.exc_info))
            self.shipper.put((record, msg, exc))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.shipper.flush()

    def close(self) -> None:
        try:
            self.shipper.close()
        finally:
            super().close()


class StructlogProcessor:
    """A structlog processor shipping each event dict (a copy) and passing it on.

    structlog.configure(processors=[structlog.processors.add_log_level,
                                    StructlogProcessor(url, key, "acme/app"),
                                    structlog.processors.JSONRenderer()])
    """

    def __init__(self, url: str, api_key: str, log: LogRef | str, **options: Any) -> None:
        self.shipper = Shipper(url, api_key, log, **options)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if delivering():  # logged by the delivery itself: pass it on, never ship it
            return event_dict
        ev: dict[str, Any] = {("x_" + k) if k in _RESERVED else k: v for k, v in event_dict.items()}
        ev.setdefault("level", method_name)
        if "event" in ev and "message" not in ev:
            ev["message"] = ev["event"]
        self.shipper.put(ev)
        return event_dict

    def flush(self, timeout: float = 10.0) -> bool:
        return self.shipper.flush(timeout)

    def close(self) -> None:
        self.shipper.close()


__all__ = ["LogHandler", "Shipper", "StructlogProcessor"]
