"""ironlog: a crash-proof, tamper-evident, multi-tenant audit log."""

from ironlog.errors import (
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
    VerificationError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "ConsistencyError",
    "FormatError",
    "IntegrityError",
    "InvalidEntryError",
    "InvalidRequestError",
    "IronlogError",
    "LogUnavailableError",
    "NotFoundError",
    "VerificationError",
    "__version__",
]
