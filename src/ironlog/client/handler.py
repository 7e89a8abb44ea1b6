"""Ship Python log records to ironlog: a ``logging`` handler and a structlog processor.

Both are front ends of :class:`ironlog.client.shipper.Shipper`: the caller's
thread only takes the message and puts the record on a bounded in-memory
queue, a background thread sends batches, through a spool file when the
service cannot be reached (the delivery, the spool and what a crash can lose
are described there).  ``close()`` (run by ``logging.shutdown`` at exit)
flushes; whatever still cannot be sent stays in the spool for the next
handler using the same spool file.

Never shipped: records caused by the shipping itself (anything logged while
delivering, e.g. httpx's "HTTP Request: POST ..." at INFO, and the loggers of
the HTTP stack and of this SDK), which would otherwise feed on themselves.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import MutableMapping
from typing import Any

from ironlog.client.shipper import Shipper, delivering
from ironlog.core.names import LogRef

_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
_RESERVED = ("received_at", "source")

# Loggers whose records come from delivering records: the HTTP stack and this SDK.
SELF_LOGGERS = ("httpx", "httpcore", "h11", "h2", "hpack", "urllib3", "ironlog.client")
_own_names: dict[str, bool] = {}


def _self_logger(name: str) -> bool:
    own = _own_names.get(name)
    if own is None:
        own = any(name == p or name.startswith(p + ".") for p in SELF_LOGGERS)
        if len(_own_names) < 10_000:
            _own_names[name] = own
    return own


def _iso(ts: float) -> str:
    secs = int(ts)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        f"{t.tm_sec:02d}.{int((ts - secs) * 1e6):06d}Z"
    )


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
