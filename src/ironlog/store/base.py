"""The store interface every driver implements, and the records it speaks in.

A driver owns durability, sequencing, tiles, checkpoints and queries for the
logs it holds.  The engine above it never sees SQL.  ``tests/test_store_agreement.py``
is the one suite every driver must pass.

Over 400 lines: the whole interface in one place (its records, the two
abstract stores and the driver), so a new driver reads one file.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ironlog.core.entry import PreparedEntry
from ironlog.core.numparse import parse_int
from ironlog.errors import ConflictError, InvalidRequestError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # always matched whole: fullmatch

SignFn = Callable[[int, bytes], str]
"""``sign(size, root)`` returns the signed checkpoint note for that tree head."""


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidRequestError(
            f"invalid {kind} name {name!r}: "
            "use 1-63 of a-z 0-9 . _ - starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Durability:
    mode: str = "sync"  # sync | interval | off
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> Durability:
        t = text.strip().lower()
        if t in ("sync", "off"):
            return cls(t)
        if t.startswith("interval:"):
            with contextlib.suppress(InvalidRequestError):
                return cls("interval", parse_int(t.partition(":")[2], "interval", 1, 60_000))
        raise InvalidRequestError(
            f"invalid durability {text!r}: use sync, interval:MS (1..60000) or off"
        )

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode


@dataclass(frozen=True)
class TenantRecord:
    name: str
    created_us: int
    disabled: bool
    key_encrypted: bytes
    public_key: bytes


@dataclass(frozen=True)
class SigningKeyRecord:
    """One of a tenant's checkpoint-signing keys.  ``kind`` "local": ``ref`` is
    the seed sealed under the master key; "pkcs11": ``ref`` is JSON naming the
    module, token and key label (the private key never leaves the token).
    Active until ``retired_us``; while several are active, all sign."""

    tenant: str
    fingerprint: str  # hex SHA-256 of the public key, first 16 digits
    kind: str
    ref: bytes
    public_key: bytes
    created_us: int
    retired_us: int | None = None


INDEXABLE_FIELDS = ("actor", "action", "resource", "outcome")
DEFAULT_INDEXES: tuple[str, ...] = ()  # see docs/architecture.md, "Indexed fields"


def parse_indexes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``actor,action`` (or ``["actor", "action"]``) / ``all`` / ``none`` -> the
    fields to index."""
    t = text.strip().lower() if isinstance(text, str) else ",".join(text).lower()
    if t == "all":
        return INDEXABLE_FIELDS
    if t in ("none", ""):
        return ()
    fields = tuple(dict.fromkeys(f.strip() for f in t.split(",") if f.strip()))
    bad = [f for f in fields if f not in INDEXABLE_FIELDS]
    if bad:
        raise InvalidRequestError(
            f"cannot index {', '.join(bad)}: choose from {', '.join(INDEXABLE_FIELDS)}, all, none"
        )
    return tuple(f for f in INDEXABLE_FIELDS if f in fields)


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored: only a hash of its secret.  ``tenant`` None = operator."""

    key_id: str
    tenant: str | None
    scopes: tuple[str, ...]
    secret_hash: bytes
    created_us: int
    name: str = ""
    expires_us: int | None = None
    revoked_us: int | None = None
    log: str | None = None  # the log OTLP requests with this key write to


@dataclass(frozen=True)
class LogInfo:
    tenant: str
    name: str
    origin: str
    durability: Durability
    created_us: int
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    public: bool = False  # tlog-tiles and checkpoint readable without a key
    quarantined: str | None = None  # the operator's reason; None = in service
    # Why its control.db row cannot be read (edited outside ironlog); None = readable.
    # Such a log is listed with the reason and refused, never opened.
    damaged: str | None = None

    @property
    def path(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes
    # The signed note for (size, root); "" for a log never written, and, in the
    # non-sync durability modes, until the tree of this size is durable and signed.
    checkpoint: str


StoredRow = tuple[int, bytes, int, str | None, str | None, str | None, str | None]
"""(index, bytes, received_us, actor, action, resource, outcome) as stored."""


@dataclass(frozen=True)
class Extents:
    """What a log holds, read in one snapshot: the head's size, the highest
    entry index, checkpoint size and tile index per level (with that tile's
    width in hashes).  Nothing may lie beyond what the head's size implies."""

    head_size: int
    last_entry: int | None
    last_checkpoint: int | None
    last_tiles: dict[int, tuple[int, int]]


@dataclass(frozen=True)
class BatchResult:
    first_index: int
    count: int
    head: Head


@dataclass(frozen=True)
class IdempotentResult:
    """What an earlier request with the same idempotency key appended."""

    first_index: int
    count: int
    size: int  # the tree size of the checkpoint that batch signed


class DuplicateRequestError(ConflictError):
    """Raised by ``LogStore.append`` (nothing written) when idempotency keys
    of the batch were already used; ``keys`` names them."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"idempotency keys already used: {len(keys)}")
        self.keys = keys


@dataclass(frozen=True)
class Query:
    since_us: int | None = None
    until_us: int | None = None  # exclusive
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None
    from_index: int = 0
    limit: int | None = None


class LogStore(ABC):
    """One log's storage.  ``append`` is called from one thread per process;
    everything else may be called from any thread."""

    info: LogInfo

    @abstractmethod
    def head(self) -> Head:
        """The committed head, re-read from storage."""

    @abstractmethod
    def append(
        self,
        entries: Sequence[PreparedEntry],
        sign: SignFn | None,
        idempotency: Sequence[tuple[str, int, int]] = (),
    ) -> BatchResult:
        """One transaction: entries, tiles, the head and, when ``sign`` is given,
        the signed checkpoint (without it the head's checkpoint is "" until
        :meth:`add_checkpoint`).

        ``idempotency`` holds (key, offset in ``entries``, count) of the
        requests that carry a key; if any key was used before, nothing is
        written and DuplicateRequestError names them.  Durable (per the log's
        durability mode) when it returns.  Takes the store's write lock, so
        several processes may append to one log."""

    @abstractmethod
    def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        """Store the signed checkpoint of a tree already committed (and made
        durable by the caller); also the head's, if the head is still that tree."""

    @abstractmethod
    def idempotent(self, key: str) -> IdempotentResult | None:
        """What the request with this idempotency key appended, if any."""

    @abstractmethod
    def sync(self) -> None:
        """Make every committed batch durable now (for ``interval`` mode)."""

    @abstractmethod
    def entries(self, start: int, end: int) -> list[bytes]:
        """Entry bytes for indexes [start, end) that exist."""

    @abstractmethod
    def scan_entries(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[list[tuple[int, bytes]]]:
        """Stream (index, bytes) in index order, in chunks, for audits and exports."""

    @abstractmethod
    def scan_rows(self, start: int = 0, end: int | None = None) -> Iterator[list[StoredRow]]:
        """Like ``scan_entries``, with the derived query columns as stored."""

    @abstractmethod
    def extents(self) -> Extents:
        """The head and the highest stored entry, checkpoint and tiles, in one snapshot."""

    @abstractmethod
    def query(self, q: Query) -> Iterator[tuple[int, bytes]]:
        """Entries matching the filters, in index order."""

    @abstractmethod
    def tile(self, level: int, index: int) -> bytes | None:
        """The stored hash tile (full, or the partial as far as it has grown)."""

    @abstractmethod
    def iter_tiles(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored tile as (level, index, data), ordered by level then index."""

    @abstractmethod
    def checkpoints(self, min_size: int = 0) -> Iterator[tuple[int, str]]:
        """Every stored signed checkpoint with size >= min_size, by size."""

    @abstractmethod
    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, note) of the stored signed checkpoint of the largest size."""

    @abstractmethod
    def checkpoint(self, size: int) -> str | None:
        """The stored signed checkpoint for exactly ``size``."""

    @abstractmethod
    def stats(self) -> dict[str, int | str]:
        """Driver-level figures (fsyncs, bytes on disk, durability...)."""

    @abstractmethod
    def close(self) -> None: ...


class ControlStore(ABC):
    """Tenants, logs and settings."""

    @abstractmethod
    def get_setting(self, key: str) -> str | None: ...

    @abstractmethod
    def set_setting(self, key: str, value: str) -> None: ...

    @abstractmethod
    def create_tenant(self, record: TenantRecord, key: SigningKeyRecord | None = None) -> None:
        """ConflictError if it exists.  With ``key``, its first signing key is
        recorded in the same transaction."""

    @abstractmethod
    def get_tenant(self, name: str) -> TenantRecord | None: ...

    @abstractmethod
    def list_tenants(self) -> list[TenantRecord]: ...

    @abstractmethod
    def create_log(
        self, info: LogInfo, new_tenant: tuple[TenantRecord, SigningKeyRecord] | None = None
    ) -> None:
        """ConflictError if it exists; the tenant must exist, or be ``new_tenant``,
        created in the same transaction (all or nothing)."""

    @abstractmethod
    def set_log_quarantined(self, tenant: str, name: str, reason: str | None) -> None:
        """Take a log out of service with a reason, or back (None).  NotFoundError
        if the log does not exist."""

    @abstractmethod
    def delete_log(self, tenant: str, name: str) -> None:
        """Forget a log: its record, witness settings and cosignatures."""

    @abstractmethod
    def record_log_size(self, tenant: str, name: str, size: int) -> None:
        """Remember that the log had signed a checkpoint of ``size`` (only grows)."""

    @abstractmethod
    def log_size(self, tenant: str, name: str) -> int:
        """The largest size recorded by ``record_log_size`` (0 if none)."""

    @abstractmethod
    def get_log(self, tenant: str, name: str) -> LogInfo | None: ...

    @abstractmethod
    def set_log_public(self, tenant: str, name: str, public: bool) -> None:
        """NotFoundError if the log does not exist."""

    @abstractmethod
    def list_logs(self, tenant: str | None = None) -> list[LogInfo]: ...

    @abstractmethod
    def set_tenant_disabled(self, name: str, disabled: bool) -> None:
        """NotFoundError if the tenant does not exist."""

    @abstractmethod
    def create_api_key(self, record: ApiKeyRecord) -> None: ...

    @abstractmethod
    def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abstractmethod
    def list_api_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        """Keys of one tenant, or the operator keys when ``tenant`` is None."""

    @abstractmethod
    def update_api_key(
        self, key_id: str, *, expires_us: int | None = None, revoked_us: int | None = None
    ) -> None:
        """Set an expiry and/or a revocation time (None leaves it unchanged)."""

    @abstractmethod
    def add_signing_key(self, record: SigningKeyRecord) -> None: ...

    @abstractmethod
    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        """Oldest first."""

    @abstractmethod
    def retire_signing_key(self, tenant: str, fingerprint: str, when_us: int) -> None:
        """NotFoundError if there is no such active key."""

    @abstractmethod
    def add_cosignatures(
        self, tenant: str, log: str, size: int, checkpoint: str, lines: dict[str, str]
    ) -> None:
        """Witness cosignature lines (witness name -> note signature line) of
        ``checkpoint`` (the signed note of ``size`` they cosigned).  Only the
        newest sizes are kept."""

    @abstractmethod
    def cosignatures(self, tenant: str, log: str) -> dict[int, dict[str, tuple[str, str]]]:
        """Kept cosignatures: size -> witness name -> (checkpoint, line)."""

    @abstractmethod
    def close(self) -> None: ...


class Driver(ABC):
    """Opens the control store and per-log stores of one deployment."""

    @abstractmethod
    def control(self) -> ControlStore: ...

    @abstractmethod
    def create_log(self, info: LogInfo) -> bool:
        """Create the storage of a new log (durably); False if an empty one
        was already there (a creation that crashed half-way).  ConflictError
        if storage holding entries exists."""

    @abstractmethod
    def open_log(self, info: LogInfo) -> LogStore:
        """Open an existing log's storage; never creates it (IntegrityError if it is gone)."""

    @abstractmethod
    def drop_log(self, info: LogInfo) -> None:
        """Remove a new log's storage again (its creation failed)."""

    @abstractmethod
    def retire_log(self, info: LogInfo) -> str:
        """Move a deleted log's storage aside (kept as evidence); returns where."""

    @abstractmethod
    def close(self) -> None: ...
