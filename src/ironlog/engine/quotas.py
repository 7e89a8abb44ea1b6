"""Per-tenant quotas (entries per UTC day, stored entry bytes) and the check
that refuses appends over them, before anything is written.

The operator sets a tenant's quota (``PUT /v1/tenants/T/quota``, ``ironlog
tenant quota T``); it is a control.db setting, recorded in the tenant's
system log.  What a tenant has used comes from the derived statistics
(:mod:`ironlog.engine.stats`) over its logs (not its system log, which is the
service's), re-read in the background every ``USAGE_SECONDS`` and counted up
in between by the requests this process lets through: so the check on the
append path is a few dict look-ups, and appends made meanwhile by other
processes are seen within that time, two seconds at most (a tenant can
overshoot its quota by what other workers append in that time).
A request is refused whole (429 for entries per day, with Retry-After until
midnight UTC; 507 for bytes), never in part.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ironlog.core.entry import now_us
from ironlog.core.numparse import MAX_INT
from ironlog.engine.instance import SYSTEM_LOG, Ironlog
from ironlog.engine.stats import (
    DAY_MINUTES,
    MAX_RANGE_MINUTES,
    MINUTE_US,
    StatsBook,
    merge_days,
)
from ironlog.engine.system_log import HOST
from ironlog.errors import (
    InvalidRequestError,
    IronlogError,
    QuotaExceededError,
    StorageQuotaExceededError,
)
from ironlog.store.base import ControlStore, LogInfo, LogStore

log = logging.getLogger("ironlog.quotas")

SETTING = "quota"  # control.db setting "quota:TENANT" -> JSON
QUOTA_SECONDS = 2.0  # a quota set by another process applies within this time
USAGE_SECONDS = 1.0  # other processes' appends are counted within this time
DAY_US = DAY_MINUTES * MINUTE_US
MAX_USAGE_DAYS = MAX_RANGE_MINUTES // DAY_MINUTES
# A tenant's logs (not its system log) as (store, info).
TenantLogs = Callable[[str], Iterable[tuple[LogStore, LogInfo]]]


@dataclass(frozen=True)
class Quota:
    entries_per_day: int | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {"entries_per_day": self.entries_per_day, "bytes": self.bytes}

    @property
    def unlimited(self) -> bool:
        return self.entries_per_day is None and self.bytes is None

    def checked(self) -> Quota:
        for name, v in (("entries_per_day", self.entries_per_day), ("bytes", self.bytes)):
            if v is not None and (type(v) is not int or not 0 <= v <= MAX_INT):
                raise InvalidRequestError(f"{name} must be null or an integer from 0 to {MAX_INT}")
        return self


def read_quota(control: ControlStore, tenant: str) -> Quota:
    raw = control.get_setting(f"{SETTING}:{tenant}")
    if not raw:
        return Quota()
    try:
        obj = json.loads(raw)
        return Quota(obj.get("entries_per_day"), obj.get("bytes")).checked()
    except (ValueError, AttributeError, IronlogError):
        log.error("control.db: the quota of tenant %r cannot be read; not enforced", tenant)
        return Quota()


def set_tenant_quota(il: Ironlog, tenant: str, quota: Quota, by: str = HOST) -> None:
    """Set the tenant's quota, recorded first in its system log."""
    quota.checked()
    il.tenant(tenant)
    il.record(tenant, by, "quota.set", **quota.to_json())
    il.control.set_setting(f"{SETTING}:{tenant}", json.dumps(quota.to_json()))


@dataclass
class _Usage:
    day: int
    entries: int  # received on ``day``
    bytes: int  # all entries
    expires: float


class QuotaGuard:
    """``check`` runs before every append of a tenant's log (not the service's
    own) and counts what it lets through."""

    def __init__(self, control: ControlStore, book: StatsBook, logs: TenantLogs) -> None:
        self.control = control
        self.book = book
        self.logs = logs
        self._quotas: dict[str, tuple[float, Quota]] = {}
        self._usage: dict[str, _Usage] = {}
        self._lock = threading.Lock()  # guards _locks only
        self._locks: dict[str, threading.Lock] = {}  # one per tenant: a re-read per tenant

    def quota(self, tenant: str) -> Quota:
        now = time.monotonic()
        got = self._quotas.get(tenant)
        if got is None or got[0] < now:
            got = (now + QUOTA_SECONDS, read_quota(self.control, tenant))
            self._quotas[tenant] = got
        return got[1]

    def forget(self, tenant: str) -> None:
        self._quotas.pop(tenant, None)

    def usage(self, tenant: str) -> tuple[int, int]:
        """(entries today, bytes): read from the aggregates the first time (each
        new day, after an idle while), then re-read in the background every
        USAGE_SECONDS while appends come, so the append path does not wait for it."""
        day = now_us() // DAY_US
        u = self._usage.get(tenant)
        now = time.monotonic()
        if u is None or u.day != day or now > u.expires + USAGE_SECONDS:  # first, or idle
            u = self._refresh(tenant, day)
        elif u.expires < now:
            u.expires = now + USAGE_SECONDS  # one refresh at a time
            threading.Thread(target=self._refresh_quietly, args=(tenant, day), daemon=True).start()
        return u.entries, u.bytes

    def _refresh(self, tenant: str, day: int) -> _Usage:
        # Per tenant: one tenant's long catch-up (a large log aggregated for the
        # first time) never holds up another tenant's quota check.
        with self._lock:
            lock = self._locks.setdefault(tenant, threading.Lock())
        with lock:
            entries = nbytes = 0
            for store, info in self.logs(tenant):
                e, b = self.book.of(store, info).totals(day)
                entries, nbytes = entries + e, nbytes + b
            u = _Usage(day, entries, nbytes, time.monotonic() + USAGE_SECONDS)
            self._usage[tenant] = u
            return u

    def _refresh_quietly(self, tenant: str, day: int) -> None:
        try:
            self._refresh(tenant, day)
        except Exception as e:  # the last figures stay; the next check tries again
            log.warning("usage of tenant %r not re-read: %s", tenant, e)

    def check(self, info: LogInfo, entries: int, nbytes: int) -> None:
        if info.name == SYSTEM_LOG:
            return
        q = self.quota(info.tenant)
        if q.unlimited:
            return
        used, stored = self.usage(info.tenant)
        if q.entries_per_day is not None and used + entries > q.entries_per_day:
            now = now_us()
            wait = max(1, -(-(DAY_US - now % DAY_US) // 1_000_000))
            raise QuotaExceededError(
                f"tenant {info.tenant!r} has used {used} of its {q.entries_per_day} "
                f"entries for today (UTC); these {entries} would exceed it: nothing was "
                "appended (the quota resets at midnight UTC)",
                retry_after=wait,
            )
        if q.bytes is not None and stored + nbytes > q.bytes:
            raise StorageQuotaExceededError(
                f"tenant {info.tenant!r} stores {stored} bytes of entries, its quota is "
                f"{q.bytes}; these {nbytes} would exceed it: nothing was appended"
            )
        # Counted now, before the commit: requests in flight together cannot
        # all pass on the same figures.  (A request that then fails stays
        # counted until the next re-read.)
        u = self._usage[info.tenant]
        u.entries += entries
        u.bytes += nbytes


def tenant_logs(il: Ironlog, tenant: str) -> Iterator[tuple[LogStore, LogInfo]]:
    """The tenant's logs that can be opened, but its system log."""
    for info, lg in il.each_log(tenant):
        if info.name != SYSTEM_LOG and not isinstance(lg, IronlogError):
            yield lg.store, lg.info


def usage_by_day(
    il: Ironlog, book: StatsBook, tenant: str, first_day: int, end_day: int
) -> list[dict[str, Any]]:
    """What ``GET /v1/tenants/T/usage`` lists as ``days`` (and ``ironlog tenant
    usage`` prints): per UTC day in [first, end) with entries, per log."""
    if end_day - first_day > MAX_USAGE_DAYS:
        raise InvalidRequestError(f"the range is at most {MAX_USAGE_DAYS} days")
    per_log = [(info.name, book.of(store, info).days(first_day, end_day))
               for store, info in tenant_logs(il, tenant)]  # fmt: skip
    return [
        {
            "day": time.strftime("%Y-%m-%d", time.gmtime(day * 86400)),
            "logs": {n: {"entries": e, "bytes": b} for n, (e, b) in sorted(logs.items())},
            "entries": sum(e for e, _ in logs.values()),
            "bytes": sum(b for _, b in logs.values()),
        }
        for day, logs in merge_days(per_log)
    ]
