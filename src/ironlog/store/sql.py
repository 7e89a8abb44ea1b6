"""The control store's logic shared by the SQL drivers (SQLite, PostgreSQL).

``SqlControlStore`` implements ``store/base.py``'s ControlStore once, over four
primitives each driver gives (``_one``, ``_all``, ``_exec``, ``_transaction``)
and the few things that differ between the two dialects: the placeholder
(``?`` or ``%s``), the named placeholder, the prefix of the tables (``""`` or
``"ironlog."``), and the SQL function giving the larger of two values.  Its SQL
is written once with ``?`` placeholders and ``{ns}`` before each table name;
``_q`` turns it into the driver's dialect.  Each driver keeps its own schema,
migrations, connections and locking.

Rows are read by column name, records are written with named columns.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from ironlog.errors import ConflictError, IntegrityError, IronlogError, NotFoundError
from ironlog.store.base import (
    DEFAULT_INDEXES,
    ApiKeyRecord,
    ControlStore,
    Durability,
    LogInfo,
    SigningKeyRecord,
    TenantRecord,
    parse_indexes,
)


class Row(Protocol):
    """A row read by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Any: ...


Args = Mapping[str, Any] | Sequence[Any]
Statements = list[tuple[str, Args]]


def is_size(value: object) -> bool:
    """A tree size as stored in the control store: a non-negative integer (not text)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def signing_key_record(r: Row) -> SigningKeyRecord:
    return SigningKeyRecord(
        tenant=r["tenant"],
        fingerprint=r["fingerprint"],
        kind=r["kind"],
        ref=bytes(r["ref"]),
        public_key=bytes(r["public_key"]),
        created_us=r["created_us"],
        retired_us=r["retired_us"],
    )


def tenant_record(row: Row) -> TenantRecord:
    return TenantRecord(
        name=row["name"],
        created_us=row["created_us"],
        disabled=bool(row["disabled"]),
        key_encrypted=bytes(row["key_encrypted"]),
        public_key=bytes(row["public_key"]),
    )


def log_info(row: Row) -> LogInfo:
    """A log's row; one whose columns do not parse (edited outside ironlog)
    comes back ``damaged`` with defaults, so that it never stops a listing."""
    damaged, durability, indexes = None, Durability(), DEFAULT_INDEXES
    try:
        durability = Durability.parse(row["durability"])
        indexes = parse_indexes(row["indexes"])
    except (IronlogError, TypeError, ValueError, AttributeError) as e:
        damaged = f"its durability or indexes column does not parse: {e}"
    columns = row.keys()  # a read-only copy from before quarantine lacks the last two
    if "signed_size" in columns and not is_size(row["signed_size"]):
        damaged = "its signed_size column is not a size"
    return LogInfo(
        tenant=row["tenant"],
        name=row["name"],
        origin=row["origin"],
        durability=durability,
        created_us=row["created_us"],
        indexes=indexes,
        public=bool(row["public"]),
        quarantined=row["quarantined"] if "quarantined" in columns else None,
        damaged=damaged and f"control.db row of log {row['tenant']}/{row['name']}: {damaged}",
    )


def log_columns(info: LogInfo) -> dict[str, Any]:
    """The columns a new log's row is written with (the rest take their defaults)."""
    plain = {c: getattr(info, c) for c in ("tenant", "name", "origin", "created_us", "public")}
    return {**plain, "durability": str(info.durability), "indexes": ",".join(info.indexes)}


def api_key_record(row: Row) -> ApiKeyRecord:
    columns = row.keys()  # (``in row`` would look among a sqlite3.Row's values)
    return ApiKeyRecord(
        key_id=row["key_id"],
        tenant=row["tenant"],
        scopes=tuple(s for s in row["scopes"].split(",") if s),
        secret_hash=bytes(row["secret_hash"]),
        created_us=row["created_us"],
        name=row["name"],
        expires_us=row["expires_us"],
        revoked_us=row["revoked_us"],
        log=row["log"] if "log" in columns else None,  # a read-only copy from before
    )


class SqlControlStore(ControlStore):
    """The ControlStore over a driver's four primitives."""

    PARAM = "?"
    """The positional placeholder of the driver's SQL."""
    NAMED = ":{}"
    """The named placeholder, ``{}`` standing for the column."""
    NS = ""
    """The prefix of the control tables' names."""
    MAX = "max"
    """The SQL function giving the larger of two values."""
    KEEP_COSIGNED_SIZES = 64

    @abstractmethod
    def _one(self, sql: str, args: Args = ()) -> Row | None:
        """The first row of a query (``sql`` in the driver's dialect)."""

    @abstractmethod
    def _all(self, sql: str, args: Args = ()) -> Sequence[Row]:
        """Every row of a query."""

    @abstractmethod
    def _exec(self, sql: str, args: Args = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""

    @abstractmethod
    def _transaction(self, statements: Statements) -> None:
        """Several statements, all or nothing."""

    def _q(self, sql: str) -> str:
        """Shared SQL (``?`` placeholders, ``{ns}`` tables) in the driver's dialect."""
        return sql.format(ns=self.NS, max=self.MAX).replace("?", self.PARAM)

    def _insert(self, table: str, values: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        """An INSERT naming its columns (names are ours, never the caller's)."""
        cols = ", ".join(values)
        params = ", ".join(self.NAMED.format(c) for c in values)
        return f"INSERT INTO {self.NS}{table} ({cols}) VALUES ({params})", values

    def _get(self, sql: str, args: Args = ()) -> Row | None:
        return self._one(self._q(sql), args)

    def _rows(self, sql: str, args: Args = ()) -> Sequence[Row]:
        return self._all(self._q(sql), args)

    def _run(self, sql: str, args: Args = ()) -> int:
        return self._exec(self._q(sql), args)

    # -- signing keys ------------------------------------------------------------
    def add_signing_key(self, record: SigningKeyRecord) -> None:
        self._transaction([self._insert("signing_keys", asdict(record))])  # fields are columns

    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        rows = self._rows(
            "SELECT * FROM {ns}signing_keys WHERE tenant=? ORDER BY created_us, fingerprint",
            (tenant,),
        )
        return [signing_key_record(r) for r in rows]

    def retire_signing_key(self, tenant: str, fingerprint: str, when_us: int) -> None:
        n = self._run(
            "UPDATE {ns}signing_keys SET retired_us=?"
            " WHERE tenant=? AND fingerprint=? AND retired_us IS NULL",
            (when_us, tenant, fingerprint),
        )
        if n == 0:
            raise NotFoundError(f"tenant {tenant!r} has no active signing key {fingerprint}")

    # -- cosignatures and settings -----------------------------------------------
    def add_cosignatures(
        self, tenant: str, log: str, size: int, checkpoint: str, lines: dict[str, str]
    ) -> None:
        upsert = self._q(
            "INSERT INTO {ns}cosignatures (tenant, log, size, witness, checkpoint, line)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, log, size, witness) DO UPDATE"
            " SET checkpoint = excluded.checkpoint, line = excluded.line"
        )
        statements: Statements = [
            (upsert, (tenant, log, size, w, checkpoint, line)) for w, line in lines.items()
        ]
        prune = (
            "DELETE FROM {ns}cosignatures WHERE tenant=? AND log=? AND size < ("
            " SELECT MIN(size) FROM (SELECT DISTINCT size FROM {ns}cosignatures"
            " WHERE tenant=? AND log=? ORDER BY size DESC LIMIT ?) AS kept)"
        )
        args = (tenant, log, tenant, log, self.KEEP_COSIGNED_SIZES)
        self._transaction([*statements, (self._q(prune), args)])

    def cosignatures(self, tenant: str, log: str) -> dict[int, dict[str, tuple[str, str]]]:
        out: dict[int, dict[str, tuple[str, str]]] = {}
        for r in self._rows(
            "SELECT size, witness, checkpoint, line FROM {ns}cosignatures WHERE tenant=? AND log=?",
            (tenant, log),
        ):
            out.setdefault(int(r["size"]), {})[str(r["witness"])] = (
                str(r["checkpoint"]),
                str(r["line"]),
            )
        return out

    def get_setting(self, key: str) -> str | None:
        row = self._get("SELECT value FROM {ns}settings WHERE key=?", (key,))
        return str(row["value"]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._run(
            "INSERT INTO {ns}settings (key, value) VALUES (?,?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- tenants -----------------------------------------------------------------
    def _insert_tenant(self, record: TenantRecord, key: SigningKeyRecord | None) -> Statements:
        out: Statements = [self._insert("tenants", asdict(record))]  # its fields are the columns
        if key is not None:
            out.append(self._insert("signing_keys", asdict(key)))
        return out

    def create_tenant(self, record: TenantRecord, key: SigningKeyRecord | None = None) -> None:
        if self.get_tenant(record.name) is not None:
            raise ConflictError(f"tenant {record.name!r} already exists")
        try:
            self._transaction(self._insert_tenant(record, key))
        except ConflictError as e:
            raise ConflictError(f"tenant {record.name!r} already exists") from e

    def get_tenant(self, name: str) -> TenantRecord | None:
        row = self._get("SELECT * FROM {ns}tenants WHERE name=?", (name,))
        return tenant_record(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [tenant_record(r) for r in self._rows("SELECT * FROM {ns}tenants ORDER BY name")]

    def set_tenant_disabled(self, name: str, disabled: bool) -> None:
        if not self._run("UPDATE {ns}tenants SET disabled=? WHERE name=?", (disabled, name)):
            raise NotFoundError(f"tenant {name!r} does not exist")

    # -- logs --------------------------------------------------------------------
    def create_log(
        self, info: LogInfo, new_tenant: tuple[TenantRecord, SigningKeyRecord] | None = None
    ) -> None:
        statements: Statements = []
        if new_tenant is not None:
            if self.get_tenant(info.tenant) is not None:
                raise ConflictError(f"tenant {info.tenant!r} already exists")
            statements = self._insert_tenant(*new_tenant)
        elif self.get_tenant(info.tenant) is None:
            raise NotFoundError(f"tenant {info.tenant!r} does not exist")
        statements.append(self._insert("logs", log_columns(info)))
        try:
            self._transaction(statements)
        except ConflictError as e:
            raise ConflictError(f"log {info.path!r} already exists") from e

    def set_log_quarantined(self, tenant: str, name: str, reason: str | None) -> None:
        if not self._run(
            "UPDATE {ns}logs SET quarantined=? WHERE tenant=? AND name=?", (reason, tenant, name)
        ):
            raise NotFoundError(f"log {tenant}/{name} does not exist")

    def delete_log(self, tenant: str, name: str) -> None:
        path = f"{tenant}/{name}"
        self._transaction(
            [
                (self._q("DELETE FROM {ns}logs WHERE tenant=? AND name=?"), (tenant, name)),
                (self._q("DELETE FROM {ns}cosignatures WHERE tenant=? AND log=?"), (tenant, name)),
                (
                    self._q("DELETE FROM {ns}settings WHERE key IN (?,?,?)"),
                    (f"witnesses:{path}", f"witnesses_from:{path}", f"witness_status:{path}"),
                ),
            ]
        )

    def record_log_size(self, tenant: str, name: str, size: int) -> None:
        self._run(
            "UPDATE {ns}logs SET signed_size={max}(signed_size, ?) WHERE tenant=? AND name=?",
            (size, tenant, name),
        )

    def _signed_size_row(self, tenant: str, name: str) -> Row | None:
        return self._get(
            "SELECT signed_size FROM {ns}logs WHERE tenant=? AND name=?", (tenant, name)
        )

    def log_size(self, tenant: str, name: str) -> int:
        row = self._signed_size_row(tenant, name)
        if row is None:
            return 0
        if not is_size(row["signed_size"]):
            raise IntegrityError(
                f"control.db row of log {tenant}/{name}: its signed_size column is not a size"
            )
        return int(row["signed_size"])

    def get_log(self, tenant: str, name: str) -> LogInfo | None:
        row = self._get("SELECT * FROM {ns}logs WHERE tenant=? AND name=?", (tenant, name))
        return log_info(row) if row else None

    def set_log_public(self, tenant: str, name: str, public: bool) -> None:
        if not self._run(
            "UPDATE {ns}logs SET public=? WHERE tenant=? AND name=?", (public, tenant, name)
        ):
            raise NotFoundError(f"log {tenant}/{name} does not exist")

    def list_logs(self, tenant: str | None = None) -> list[LogInfo]:
        if tenant is None:
            rows = self._rows("SELECT * FROM {ns}logs ORDER BY tenant, name")
        else:
            rows = self._rows("SELECT * FROM {ns}logs WHERE tenant=? ORDER BY name", (tenant,))
        return [log_info(r) for r in rows]

    # -- API keys ----------------------------------------------------------------
    def create_api_key(self, record: ApiKeyRecord) -> None:
        # its fields are the columns, the scopes joined by commas
        columns = {**asdict(record), "scopes": ",".join(record.scopes)}
        self._transaction([self._insert("api_keys", columns)])

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._get("SELECT * FROM {ns}api_keys WHERE key_id=?", (key_id,))
        return api_key_record(row) if row else None

    def list_api_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        if tenant is None:
            rows = self._rows("SELECT * FROM {ns}api_keys WHERE tenant IS NULL ORDER BY created_us")
        else:
            rows = self._rows(
                "SELECT * FROM {ns}api_keys WHERE tenant=? ORDER BY created_us", (tenant,)
            )
        return [api_key_record(r) for r in rows]

    def update_api_key(
        self, key_id: str, *, expires_us: int | None = None, revoked_us: int | None = None
    ) -> None:
        if self.get_api_key(key_id) is None:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        if expires_us is not None:
            self._run("UPDATE {ns}api_keys SET expires_us=? WHERE key_id=?", (expires_us, key_id))
        if revoked_us is not None:
            self._run("UPDATE {ns}api_keys SET revoked_us=? WHERE key_id=?", (revoked_us, key_id))
