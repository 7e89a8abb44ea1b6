"""The ironlog Python SDK.

``ironlog.client.trust`` (verification and trusted state) needs only the pure
core: ``pip install ironlog``.  ``Client``, ``AsyncClient``, ``LogHandler`` and
``StructlogProcessor`` need httpx: ``pip install 'ironlog[client]'``.  They are
imported lazily so that the verifying parts work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlog.client.trust import LogTrust, TrustStore, verify_entry
from ironlog.lazy import lazy_exports

if TYPE_CHECKING:
    from ironlog.client.handler import LogHandler, StructlogProcessor
    from ironlog.client.http import (
        AsyncClient,
        BatchReceipt,
        BatchResult,
        Client,
        Entry,
        Receipt,
    )
    from ironlog.core.names import LogRef

_LAZY = {
    "Client": "ironlog.client.http",
    "AsyncClient": "ironlog.client.http",
    "Receipt": "ironlog.client.http",
    "BatchReceipt": "ironlog.client.http",
    "BatchResult": "ironlog.client.http",
    "LogRef": "ironlog.core.names",
    "Entry": "ironlog.client.http",
    "LogHandler": "ironlog.client.handler",
    "StructlogProcessor": "ironlog.client.handler",
}

__all__ = [
    "AsyncClient",
    "BatchReceipt",
    "BatchResult",
    "Client",
    "Entry",
    "LogHandler",
    "LogRef",
    "LogTrust",
    "Receipt",
    "StructlogProcessor",
    "TrustStore",
    "verify_entry",
]


__getattr__ = lazy_exports(__name__, _LAZY)
