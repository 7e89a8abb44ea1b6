"""ironlog: a crash-proof, tamper-evident, multi-tenant audit log.

The public face: the library (``Ironlog``, ``Log``, ``init_data_dir``), entries
(``prepare_json``, ``now_us``) and the errors.  Everything else is reached
through its layer (``ironlog.core``, ``ironlog.engine``, ``ironlog.client``...;
docs/architecture.md).  The library is imported on first use, so that
``import ironlog`` (and the pure core) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlog.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    ConsistencyError,
    FormatError,
    IntegrityError,
    InvalidEntryError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from ironlog.lazy import lazy_exports

if TYPE_CHECKING:
    from ironlog.core.entry import now_us, prepare_json
    from ironlog.engine.instance import Ironlog, init_data_dir
    from ironlog.engine.log import Log

__version__ = "0.1.0"

_LAZY = {
    "Ironlog": "ironlog.engine.instance",
    "init_data_dir": "ironlog.engine.instance",
    "Log": "ironlog.engine.log",
    "prepare_json": "ironlog.core.entry",
    "now_us": "ironlog.core.entry",
}

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "ConsistencyError",
    "FormatError",
    "IntegrityError",
    "InvalidEntryError",
    "InvalidRequestError",
    "Ironlog",
    "IronlogError",
    "Log",
    "LogUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "VerificationError",
    "__version__",
    "init_data_dir",
    "now_us",
    "prepare_json",
]


__getattr__ = lazy_exports(__name__, _LAZY)
