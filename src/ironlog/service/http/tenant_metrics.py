"""Per-tenant append counters for Prometheus, with bounded cardinality.

``ironlog_tenant_appended_entries_total{tenant}`` and
``ironlog_tenant_appended_bytes_total{tenant}``: the first ``max_tenants``
tenants by creation time (the same choice in every worker process, read from
control.db) are labelled with their names; all others count under
``tenant="other"``.  So a service with any number of tenants exports at most
``max_tenants + 1`` series per counter.  Like :mod:`.metrics`, they are
written per worker and summed by a scrape in multiprocess mode.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter

from ironlog.store.base import ControlStore, LogInfo

DEFAULT_MAX_TENANTS = 100
OTHER = "other"
REFRESH_SECONDS = 10.0  # how soon a new tenant among the first max_tenants gets its label


class TenantMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        control: ControlStore,
        max_tenants: int = DEFAULT_MAX_TENANTS,
    ) -> None:
        self.control = control
        self.max_tenants = max(0, max_tenants)
        self.entries = Counter(
            "ironlog_tenant_appended_entries",
            f"Entries appended per tenant (the first {self.max_tenants} tenants by creation; "
            f'the rest as tenant="{OTHER}")',
            ["tenant"],
            registry=registry,
        )
        self.bytes = Counter(
            "ironlog_tenant_appended_bytes",
            "Bytes of entries appended per tenant (labelled as the entries counter)",
            ["tenant"],
            registry=registry,
        )
        self._labelled: frozenset[str] = frozenset()
        self._refreshed = float("-inf")
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        if tenant in self._labelled:
            return tenant
        now = time.monotonic()
        # While there is room, a tenant not labelled yet is new: look at once.
        wait = REFRESH_SECONDS if len(self._labelled) >= self.max_tenants else 0.05
        if now - self._refreshed >= wait:
            with self._lock:
                if now - self._refreshed >= wait:
                    tenants = self.control.list_tenants()
                    first = sorted(tenants, key=lambda t: (t.created_us, t.name))
                    self._labelled = frozenset(t.name for t in first[: self.max_tenants])
                    self._refreshed = now
        return tenant if tenant in self._labelled else OTHER

    def observe_commit(self, info: LogInfo, entries: int, nbytes: int, seconds: float) -> None:
        name = self.label(info.tenant)
        self.entries.labels(name).inc(entries)
        self.bytes.labels(name).inc(nbytes)
