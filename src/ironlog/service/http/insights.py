"""The metrics API: counts per time bucket of a log, a tenant's usage per day,
its quota; and what feeds them (statistics, the quota check, per-tenant
Prometheus counters), installed on an instance by :class:`Insights`.

    GET /v1/logs/{tenant}/{log}/stats    read scope
    GET /v1/tenants/{tenant}/usage       the tenant's admin (or the operator)
    GET /v1/tenants/{tenant}/quota       the tenant's admin (or the operator)
    PUT /v1/tenants/{tenant}/quota       the operator
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Request
from litestar.params import Parameter
from prometheus_client import CollectorRegistry

from ironlog.core.entry import now_us
from ironlog.core.timeparse import parse_time
from ironlog.engine.api_keys import actor
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.engine.quotas import (
    DAY_US,
    Quota,
    QuotaGuard,
    read_quota,
    set_tenant_quota,
    tenant_logs,
    usage_by_day,
)
from ironlog.engine.stats import StatsBook
from ironlog.errors import InvalidRequestError
from ironlog.service.http.access import can_read, operator, tenant_admin
from ironlog.service.http.codec import parse_body
from ironlog.service.http.deps import principal
from ironlog.service.http.tenant_metrics import DEFAULT_MAX_TENANTS, TenantMetrics
from ironlog.service.routing import get, put

DEFAULT_RANGE_US = 24 * 3600 * 1_000_000
DEFAULT_USAGE_DAYS = 30


class Insights:
    """Statistics, quotas and per-tenant counters of one service process."""

    def __init__(self, il: Ironlog, registry: CollectorRegistry) -> None:
        self.il = il
        self.book = StatsBook(il.data_dir)
        self.quotas = QuotaGuard(il.control, self.book, lambda t: tenant_logs(il, t))
        max_tenants = os.environ.get("IRONLOG_METRICS_TENANTS", "")
        self.tenant_metrics = TenantMetrics(
            registry, il.control, int(max_tenants) if max_tenants.isdigit() else DEFAULT_MAX_TENANTS
        )
        il.append_checks.append(self.quotas.check)
        il.commit_observers.append(self.tenant_metrics.observe_commit)

    def close(self) -> None:
        self.book.close()


def insights(request: Request[Any, Any, Any]) -> Insights:
    got: Insights = request.app.state.insights
    return got


# --- answers --------------------------------------------------------------------


class StatsBucket(msgspec.Struct):
    start: str
    total: int
    counts: dict[str, int]


class StatsOut(msgspec.Struct):
    log: str
    from_: str = msgspec.field(name="from")
    to: str
    bucket: str
    group_by: str | None
    groups: list[str]
    buckets: list[StatsBucket]


class LogUsage(msgspec.Struct):
    entries: int
    bytes: int


class UsageDay(msgspec.Struct):
    day: str
    logs: dict[str, LogUsage]
    entries: int
    bytes: int


class QuotaOut(msgspec.Struct):
    entries_per_day: int | None
    bytes: int | None


class UsageOut(msgspec.Struct):
    tenant: str
    days: list[UsageDay]
    quota: QuotaOut


class QuotaIn(msgspec.Struct, forbid_unknown_fields=True):
    entries_per_day: int | None = None
    bytes: int | None = None


def _minute_text(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60))


def _range(from_: str | None, to: str | None, default_us: int) -> tuple[int, int]:
    now = now_us()
    to_us = parse_time(to, now) if to else now
    from_us = parse_time(from_, now) if from_ else to_us - default_us
    if from_us >= to_us:
        raise InvalidRequestError("from must be before to")
    return from_us, to_us


def _quota(q: Quota) -> QuotaOut:
    return QuotaOut(q.entries_per_day, q.bytes)


# --- routes ---------------------------------------------------------------------


@get("/v1/logs/{tenant:str}/{name:str}/stats", sync_to_thread=True, guards=[can_read])
def log_stats(
    request: Request[Any, Any, Any],
    lg: Log,
    tenant: str,
    name: str,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
    bucket: str = "1m",
    group_by: str | None = None,
    top: int = 10,
) -> StatsOut:
    """Entries per time bucket (1m, 5m, 1h, 1d; UTC) over [from, to) (default
    the last 24 hours; widened to whole minutes), and per value of ``group_by``
    (action, outcome, actor or source: its ``top`` values, the rest as
    "other").  Buckets without entries are left out."""
    from_us, to_us = _range(from_, to, DEFAULT_RANGE_US)
    res = insights(request).book.of(lg.store, lg.info).query(from_us, to_us, bucket, group_by, top)
    return StatsOut(
        log=f"{tenant}/{name}",
        from_=_minute_text(res.from_minute),
        to=_minute_text(res.to_minute),
        bucket=res.bucket,
        group_by=res.group_by,
        groups=res.groups,
        buckets=[StatsBucket(_minute_text(b.start_minute), b.total, b.counts) for b in res.buckets],
    )


@get("/v1/tenants/{tenant:str}/usage", sync_to_thread=True, guards=[tenant_admin])
def tenant_usage(
    request: Request[Any, Any, Any],
    tenant: str,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
) -> UsageOut:
    """Entries and stored entry bytes per UTC day and per log (not the tenant's
    system log) over [from, to) (default the last 30 days; whole days), and
    the tenant's quota.  Days without entries are left out."""
    ins = insights(request)
    ins.il.tenant(tenant)  # 404 for an unknown tenant
    from_us, to_us = _range(from_, to, DEFAULT_USAGE_DAYS * DAY_US)
    rows = usage_by_day(ins.il, ins.book, tenant, from_us // DAY_US, -(-to_us // DAY_US))
    days = msgspec.convert(rows, list[UsageDay])
    return UsageOut(tenant, days, _quota(read_quota(ins.il.control, tenant)))


@get("/v1/tenants/{tenant:str}/quota", sync_to_thread=True, guards=[tenant_admin])
def get_quota(request: Request[Any, Any, Any], tenant: str) -> QuotaOut:
    """The tenant's quota (null: none)."""
    il = insights(request).il
    il.tenant(tenant)
    return _quota(read_quota(il.control, tenant))


@put("/v1/tenants/{tenant:str}/quota", guards=[operator])
async def set_quota(request: Request[Any, Any, Any], tenant: str) -> QuotaOut:
    """The operator sets the tenant's quota: ``entries_per_day`` (UTC days;
    appends over it are refused with 429) and ``bytes`` (stored entry bytes;
    507); null for none.  Applies within two seconds in every worker."""
    body = await request.body()
    p = principal(request)
    data = parse_body(body, QuotaIn)
    quota = Quota(data.entries_per_day, data.bytes).checked()
    ins = insights(request)
    await anyio.to_thread.run_sync(lambda: set_tenant_quota(ins.il, tenant, quota, actor(p)))
    ins.quotas.forget(tenant)
    # Bring the tenant's aggregates up to date here, not in its next append.
    await anyio.to_thread.run_sync(ins.quotas.usage, tenant)
    return _quota(quota)


INSIGHTS_HANDLERS = [log_stats, tenant_usage, get_quota, set_quota]
