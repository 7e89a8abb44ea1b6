"""ironlog's one exception tree.

    IronlogError                      every error ironlog raises on purpose
    ├── FormatError                   malformed wire data (note, checkpoint, proof, key, tile)
    ├── VerificationError             well-formed data that does not verify
    │   └── ConsistencyError          two checkpoints that cannot both be true
    │       ├── ForkError                 two different trees for what should be one history
    │       └── RollbackError             a log showed a smaller tree than one already trusted
    ├── InvalidEntryError             an event that cannot be stored (not JSON, too big, ...)
    ├── InvalidRequestError           a request with bad arguments (index out of range, ...)
    │   ├── TooLargeError                 over a per-request limit (bytes, records, objects)
    │   └── InvalidCursorError            a paging cursor not issued (for this log) by this service
    ├── AuthenticationError           no API key, or one that is unknown, revoked or expired
    ├── PermissionDeniedError         a valid key without the scope (or the log) the request needs
    ├── RateLimitedError              too many requests for a key (carries retry_after)
    │   └── QuotaExceededError        the tenant's entries/day quota is used up (till 00:00 UTC)
    ├── StorageQuotaExceededError     the tenant's bytes quota is used up
    ├── NotFoundError                 unknown tenant, log, index, tile
    ├── ConflictError                 the thing already exists
    ├── LogUnavailableError           the log refuses writes (integrity failure, closed)
    │   ├── IntegrityError            stored data does not match its signed checkpoint
    │   └── LogQuarantinedError       an operator took the log out of service (reads too)
    ├── UnreachableError              (client side) the service could not be reached
    └── ConfigurationError            missing master key, bad data directory, ...

Errors of the libraries underneath (sqlite3, cryptography, msgspec, binascii)
are translated where they are raised, so callers only ever see these.  The
mapping to HTTP statuses lives in exactly one place: ``HTTP_STATUS`` below.
"""

from __future__ import annotations


class IronlogError(Exception):
    """Base class of every error ironlog raises on purpose."""

    code = "error"


class FormatError(IronlogError):
    code = "bad_format"


class VerificationError(IronlogError):
    code = "verification_failed"


class ConsistencyError(VerificationError):
    code = "inconsistent"


class ForkError(ConsistencyError):
    code = "fork"


class RollbackError(ConsistencyError):
    code = "rollback"


class InvalidEntryError(IronlogError):
    code = "invalid_entry"


class InvalidRequestError(IronlogError):
    code = "invalid_request"


class TooLargeError(InvalidRequestError):
    code = "too_large"


class InvalidCursorError(InvalidRequestError):
    code = "invalid_cursor"


class AuthenticationError(IronlogError):
    code = "unauthenticated"


class PermissionDeniedError(IronlogError):
    code = "forbidden"


class RateLimitedError(IronlogError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceededError(RateLimitedError):
    code = "quota_exceeded"


class StorageQuotaExceededError(IronlogError):
    code = "storage_quota_exceeded"


class NotFoundError(IronlogError):
    code = "not_found"


class ConflictError(IronlogError):
    code = "conflict"


class LogUnavailableError(IronlogError):
    code = "log_unavailable"


class IntegrityError(LogUnavailableError):
    code = "integrity_failure"


class LogQuarantinedError(LogUnavailableError):
    code = "log_quarantined"


class UnreachableError(IronlogError):
    code = "unreachable"


class ConfigurationError(IronlogError):
    code = "configuration"


# The single place where errors become HTTP statuses (most specific class first).
HTTP_STATUS: tuple[tuple[type[IronlogError], int], ...] = (
    (IntegrityError, 503),
    (LogQuarantinedError, 503),
    (LogUnavailableError, 503),
    (ConsistencyError, 409),
    (VerificationError, 422),
    (FormatError, 400),
    (InvalidEntryError, 400),
    (TooLargeError, 413),
    (InvalidRequestError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (RateLimitedError, 429),  # QuotaExceededError too
    (StorageQuotaExceededError, 507),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnreachableError, 503),
    (ConfigurationError, 500),
)


def error_classes() -> dict[str, type[IronlogError]]:
    """Error code -> class, for clients turning an HTTP error body back into an error."""
    out: dict[str, type[IronlogError]] = {}
    stack: list[type[IronlogError]] = [IronlogError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return out


def http_status(exc: IronlogError) -> int:
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500
