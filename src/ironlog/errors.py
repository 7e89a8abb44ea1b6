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
    │   ├── LogQuarantinedError       an operator took the log out of service (reads too)
    │   └── ResourceExhaustedError    out of descriptors, memory or disk, or a database locked
    │                                 (carries retry_after; never an integrity failure)
    ├── UnreachableError              (client side) the service could not be reached
    └── ConfigurationError            missing master key, bad data directory, ...

Errors of the libraries underneath (sqlite3, cryptography, msgspec, binascii)
are translated where they are raised, so callers only ever see these.  The
mapping to HTTP statuses lives in exactly one place: ``HTTP_STATUS`` below.
"""

from __future__ import annotations

import errno


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


class ResourceExhaustedError(LogUnavailableError):
    """The process ran out of something (descriptors, memory, disk) or a
    database stayed locked: nothing was read or written, nothing is wrong with
    the data, and the same request may succeed in ``retry_after`` seconds."""

    code = "resource_exhausted"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# What the operating system and SQLite say when a resource runs out: never
# evidence about the data.
RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOSPC, errno.EDQUOT, errno.EAGAIN}
)
RESOURCE_MESSAGES = (
    "unable to open database file",
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "out of memory",
    "too many open files",
    "no space left on device",
    "cannot operate on a closed database",  # released by the LRU of open logs meanwhile
)


def resource_exhausted(exc: BaseException, what: str = "") -> ResourceExhaustedError | None:
    """``exc`` as a ResourceExhaustedError if it says a resource ran out (an
    OSError's errno, MemoryError, an sqlite3 error's message); None otherwise."""
    if isinstance(exc, ResourceExhaustedError):
        return exc
    reason: str | None = None
    if isinstance(exc, MemoryError):
        reason = "out of memory"
    elif isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "resource exhausted")
    elif type(exc).__module__ == "sqlite3" or type(exc).__name__.endswith("Error"):
        text = str(exc).lower()
        if not isinstance(exc, IronlogError) and any(m in text for m in RESOURCE_MESSAGES):
            reason = str(exc)
    if reason is None:
        return None
    prefix = f"{what}: " if what else ""
    return ResourceExhaustedError(f"{prefix}temporarily out of resources ({reason}); retry")


class UnreachableError(IronlogError):
    code = "unreachable"


class ConfigurationError(IronlogError):
    code = "configuration"


# The single place where errors become HTTP statuses (most specific class first).
HTTP_STATUS: tuple[tuple[type[IronlogError], int], ...] = (
    (IntegrityError, 503),
    (LogQuarantinedError, 503),
    (ResourceExhaustedError, 503),
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
