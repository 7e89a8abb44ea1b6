"""Storage drivers behind one narrow interface (see ``base``)."""

from ironlog.store.base import (
    BatchResult,
    ControlStore,
    Driver,
    Durability,
    Head,
    LogInfo,
    LogStore,
    Query,
    TenantRecord,
)

__all__ = [
    "BatchResult",
    "ControlStore",
    "Driver",
    "Durability",
    "Head",
    "LogInfo",
    "LogStore",
    "Query",
    "TenantRecord",
]
