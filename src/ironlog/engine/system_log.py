"""Each tenant's system log: every administrative act on a tenant (its logs,
keys, settings) is appended to it, durably, before the act is made.  An act
whose record cannot be written is refused.  Only the service appends to it;
it reads like any log.  ``Ironlog`` has these methods (``SystemLog`` is one of
its bases)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ironlog.core.entry import now_us, prepare_object
from ironlog.errors import ConflictError, IronlogError
from ironlog.store.base import ControlStore, Driver, Durability, LogInfo, Query

if TYPE_CHECKING:
    from ironlog.engine.log import Log
    from ironlog.store.base import TenantRecord

log = logging.getLogger("ironlog.instance")

HOST = "host"  # who acts through the ironlog CLI on the service's machine (the operator)
SYSTEM_LOG = "_system"  # each tenant's log of administrative acts (no user name starts with _)


class SystemLog:
    """The tenants' system logs (a base of ``Ironlog``)."""

    control: ControlStore
    driver: Driver

    if TYPE_CHECKING:  # Ironlog's

        @property
        def origin_prefix(self) -> str: ...

        def tenant(self, name: str) -> TenantRecord: ...

        def log(self, tenant: str, name: str) -> Log: ...

    # -- the system log: every administrative act on a tenant ----------------------
    def system_log(self, tenant: str) -> Log:
        """The tenant's system log (created with the tenant, or now for tenants
        from before it existed).  Readable like any log; only the service appends."""
        if self.control.get_log(tenant, SYSTEM_LOG) is None:
            self.tenant(tenant)
            info = LogInfo(
                tenant=tenant,
                name=SYSTEM_LOG,
                origin=f"{self.origin_prefix}/{tenant}/{SYSTEM_LOG}",
                durability=Durability(),
                created_us=now_us(),
                indexes=("actor", "action"),
            )
            try:
                self.driver.create_log(info)  # the database first, durably
                self.control.create_log(info)
            except ConflictError:  # another process made it meanwhile
                if self.control.get_log(tenant, SYSTEM_LOG) is None:
                    raise
        return self.log(tenant, SYSTEM_LOG)

    def record(self, tenant: str, by: str, action: str, **details: Any) -> None:
        """Append an administrative act on ``tenant`` to its system log, durably,
        before the act is made: an act whose record cannot be written is refused.
        ``by``: ``operator:KEY_ID``, ``tenant:KEY_ID`` or ``host`` (the CLI)."""
        event = {"actor": by, "action": action, **details}
        self.system_log(tenant).append_service(prepare_object(event, now_us(), "system"))

    def _was_deleted(self, tenant: str, name: str) -> bool:
        """Whether the tenant's system log records the deletion of log ``name``."""
        if name == SYSTEM_LOG or self.control.get_log(tenant, SYSTEM_LOG) is None:
            return False
        q = Query(action="log.delete", resource=name, limit=1)
        return any(True for _ in self.log(tenant, SYSTEM_LOG).query(q))

    def _record_log_act(self, tenant: str, name: str, by: str, action: str, **details: Any) -> None:
        """Record an act on a log in the tenant's system log.  On the system log
        itself, as far as it can still record (a broken one cannot, and must
        still be quarantinable): an act on a healthy one is never unseen."""
        if name != SYSTEM_LOG:
            self.record(tenant, by, action, resource=name, **details)
            return
        try:
            self.record(tenant, by, action, resource=name, **details)
        except IronlogError as e:
            log.warning("%s of %s/%s not recorded in it: %s", action, tenant, name, e)
