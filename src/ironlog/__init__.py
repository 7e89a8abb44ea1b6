"""ironlog: a crash-proof, tamper-evident, multi-tenant audit log."""

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

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
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
    "PermissionDeniedError",
    "VerificationError",
    "__version__",
]
