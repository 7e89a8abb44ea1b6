"""Background integrity verification that fails closed.

A thread re-checks every log: new data as it lands (an incremental audit that
resumes from the last verified tree state) and the whole log from scratch
every ``full_interval`` seconds.  A log that fails is marked unhealthy, so it
refuses writes (HTTP 503 with the reason) until an operator clears it.
Running out of descriptors, memory or disk (ResourceExhaustedError) is no
finding: the log is checked again in the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ironlog.core.entry import now_us
from ironlog.core.tiles import TileBuilder
from ironlog.engine.audit import audit_log
from ironlog.engine.checks import beyond_head
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.errors import IronlogError, ResourceExhaustedError, VerificationError

log = logging.getLogger("ironlog.integrity")


@dataclass
class LogIntegrity:
    log: str
    verified_size: int = 0
    verified_us: int | None = None
    full_pass_us: int | None = None
    failure: str | None = None
    builder: TileBuilder | None = None
    next_full: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "log": self.log,
            "verified_size": self.verified_size,
            "verified_us": self.verified_us,
            "last_full_pass_us": self.full_pass_us,
            "failure": self.failure,
        }


class IntegrityChecker:
    def __init__(self, il: Ironlog, interval: float = 10.0, full_interval: float = 3600.0) -> None:
        self.il = il
        self.interval = interval
        self.full_interval = full_interval
        self._state: dict[str, LogIntegrity] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ironlog-integrity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_all()
            except Exception:  # keep checking; a bug here must not stop the monitor
                log.exception("integrity pass failed")
            self._stop.wait(self.interval)

    def check_all(self) -> None:
        """One pass over every log in service; a log that cannot even be opened
        is recorded as failed and never stops the pass over the others."""
        for info in self.il.list_logs():
            if self._stop.is_set():
                return
            if info.quarantined is not None or self._unchanged(info.tenant, info.name):
                continue
            lg: Log | IronlogError
            try:
                lg = self.il.log(info.tenant, info.name)
            except IronlogError as e:
                lg = e
            if isinstance(lg, ResourceExhaustedError):  # not a finding: the next pass retries
                log.warning("integrity check of %s postponed: %s", info.path, lg)
                continue
            if isinstance(lg, IronlogError):
                self._failed(info.path, str(lg))
                continue
            try:
                self.il.check_log_settings(info.tenant, info.name)
                self.check(info.path)
            except ResourceExhaustedError as e:
                log.warning("integrity check of %s postponed: %s", info.path, e)
            except IronlogError as e:
                self._failed(info.path, str(e))
            except Exception:  # isolate one log from the rest; never leak internals
                log.exception("integrity check of %s failed", info.path)
                self._failed(info.path, "the check failed (see the server log)")

    def _unchanged(self, tenant: str, name: str) -> bool:
        """A log closed by the LRU of open logs since its last check, that grew
        by nothing since (its size recorded in the control store), and whose
        full pass is not due: not reopened for nothing (it is checked again
        when it reopens, and at its next full pass)."""
        st = self._state.get(f"{tenant}/{name}")
        if st is None or st.failure is not None or st.builder is None:
            return False
        if time.monotonic() >= st.next_full or not self.il.released(tenant, name):
            return False
        return self.il.control.log_size(tenant, name) <= st.verified_size

    def _failed(self, path: str, reason: str) -> None:
        st = self._entry(path)
        if st.failure is None:
            log.error("integrity check of %s failed: %s", path, reason)
        st.failure = reason
        st.builder = None

    def _entry(self, path: str) -> LogIntegrity:
        with self._lock:
            st = self._state.get(path)
            if st is None:
                st = self._state[path] = LogIntegrity(path)
            return st

    def check(self, path: str, full: bool = False) -> LogIntegrity:
        st = self._entry(path)
        lg = self.il.log_by_path(path)
        if st.failure is not None and not full:
            return st  # stays failed until cleared
        full = full or st.builder is None or time.monotonic() >= st.next_full
        if not full and st.builder is not None and lg.head().size == st.builder.size:
            beyond = beyond_head(lg.store)  # rows slipped in past the head
            if beyond is not None:
                return self._fail(st, lg, f"head {path}: {beyond}")
            st.verified_us = now_us()
            return st
        report = audit_log(lg, resume=None if full else st.builder)
        if report.problem is not None:
            return self._fail(st, lg, str(report.problem))
        st.builder = report.builder
        st.verified_size = report.size
        st.verified_us = now_us()
        if full:
            st.full_pass_us = st.verified_us
            st.next_full = time.monotonic() + self.full_interval
        return st

    @staticmethod
    def _fail(st: LogIntegrity, lg: Log, problem: str) -> LogIntegrity:
        st.failure = problem
        st.builder = None
        lg.mark_unhealthy(f"integrity check failed: {problem}")
        return st

    def clear(self, path: str, force: bool = False) -> LogIntegrity:
        """Operator action: re-verify the whole log and lift the write refusal
        if it passes (or unconditionally with ``force``, which is recorded)."""
        st = self._entry(path)
        lg = self.il.log_by_path(path)
        st.failure = None
        st.builder = None
        st = self.check(path, full=True)
        if st.failure is not None and not force:
            raise VerificationError(f"log {path} still fails: {st.failure}")
        if force:
            log.warning("operator force-cleared integrity failure of %s", path)
            st.failure = None
        try:
            lg.check_head()
        except IronlogError as e:
            if not force:
                raise
            log.warning("head check still failing for %s after force clear: %s", path, e)
        lg.unhealthy = None
        return st

    def forget(self, path: str) -> None:
        """Drop a log's state (it was released from quarantine, or deleted)."""
        with self._lock:
            self._state.pop(path, None)

    def report(self, tenant: str | None = None) -> list[dict[str, object]]:
        out = []
        for info, lg in self.il.each_log(tenant, quarantined=True):
            item = self._entry(info.path).to_json()
            item["quarantined"] = info.quarantined
            if isinstance(lg, IronlogError):
                item["writable"] = False
                item["reason"] = str(lg)
            else:
                item["writable"] = lg.unhealthy is None
                item["reason"] = lg.unhealthy
            out.append(item)
        return out
