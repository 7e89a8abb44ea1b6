"""The control store: ``control.db`` holds tenants, logs, signing keys, API
keys, witnesses' cosignatures and settings.

Rows are read by column name (``sqlite3.Row``): ``row["signed_size"]``, never
``row[8]``, and rows are written with named columns.  A read-only copy of a
data directory made before a column existed is read as it is (it is never
migrated): a missing column reads as its default.

Over 400 lines because it is one class implementing one interface
(``store/base.py``'s ControlStore, ~25 methods); its schema is the migration
list at the top.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ironlog.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    IronlogError,
    LogUnavailableError,
    NotFoundError,
)
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
from ironlog.store.migrations import Migrations, Step
from ironlog.store.sqlite.db import (
    check_version,
    connect,
    create_file,
    migrate,
    transaction,
    translated,
)


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Data directories from before API keys had a log, and before logs had
    quarantine and a signed size, lack those columns."""
    for table, col, decl in (
        ("api_keys", "log", "TEXT"),
        ("logs", "quarantined", "TEXT"),
        ("logs", "signed_size", "INTEGER NOT NULL DEFAULT 0"),
    ):
        cols = {name for (name,) in con.execute(f"SELECT name FROM pragma_table_info('{table}')")}
        if col not in cols:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")


CONTROL_MIGRATIONS = Migrations(
    "control database",
    (
        Step(
            1,
            "settings, tenants, logs, signing keys, cosignatures and API keys (the layout"
            " made before versions; older ones get the columns they lack)",
            (
                "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """CREATE TABLE IF NOT EXISTS tenants(
                    name TEXT PRIMARY KEY, created_us INTEGER NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    key_encrypted BLOB NOT NULL, public_key BLOB NOT NULL
                )""",
                """CREATE TABLE IF NOT EXISTS logs(
                    tenant TEXT NOT NULL REFERENCES tenants(name), name TEXT NOT NULL,
                    origin TEXT NOT NULL UNIQUE, durability TEXT NOT NULL,
                    created_us INTEGER NOT NULL,
                    indexes TEXT NOT NULL DEFAULT '',
                    public INTEGER NOT NULL DEFAULT 0,
                    quarantined TEXT,
                    signed_size INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY(tenant, name)
                )""",
                """CREATE TABLE IF NOT EXISTS signing_keys(
                    tenant TEXT NOT NULL REFERENCES tenants(name), fingerprint TEXT NOT NULL,
                    kind TEXT NOT NULL, ref BLOB NOT NULL, public_key BLOB NOT NULL,
                    created_us INTEGER NOT NULL, retired_us INTEGER,
                    PRIMARY KEY(tenant, fingerprint)
                )""",
                """CREATE TABLE IF NOT EXISTS cosignatures(
                    tenant TEXT NOT NULL, log TEXT NOT NULL, size INTEGER NOT NULL,
                    witness TEXT NOT NULL, checkpoint TEXT NOT NULL, line TEXT NOT NULL,
                    PRIMARY KEY(tenant, log, size, witness)
                )""",
                """CREATE TABLE IF NOT EXISTS api_keys(
                    key_id TEXT PRIMARY KEY, tenant TEXT REFERENCES tenants(name),
                    scopes TEXT NOT NULL, secret_hash BLOB NOT NULL, created_us INTEGER NOT NULL,
                    name TEXT NOT NULL DEFAULT '', expires_us INTEGER, revoked_us INTEGER,
                    log TEXT
                )""",
                _add_missing_columns,
            ),
        ),
    ),
    refuse=ConfigurationError,
)

Statements = list[tuple[str, Mapping[str, Any] | Sequence[Any]]]


def _insert(table: str, values: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """An INSERT naming its columns (names are ours, never the caller's)."""
    cols = ", ".join(values)
    params = ", ".join(f":{c}" for c in values)
    return f"INSERT INTO {table} ({cols}) VALUES ({params})", values


class SqliteControlStore(ControlStore):
    def __init__(self, path: Path, read_only: bool = False) -> None:
        if not read_only and not path.exists():
            create_file(path)
        self._lock = threading.Lock()
        with translated("open control database"):
            self._con = connect(path, read_only=read_only)
            try:
                self._con.row_factory = sqlite3.Row
                if read_only:  # never migrated, but a layout too new is refused
                    check_version(self._con, CONTROL_MIGRATIONS, f"{path}")
                else:
                    migrate(self._con, CONTROL_MIGRATIONS, f"{path}")
            except BaseException:
                self._con.close()
                raise

    def _one(self, sql: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock, translated("control database"):
            row: sqlite3.Row | None = self._con.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, translated("control database"):
            return self._con.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> None:
        self._transaction([(sql, args)])

    def _transaction(self, statements: Statements) -> None:
        """Several statements, all or nothing."""
        with self._lock, translated("control database"), transaction(self._con):
            for sql, args in statements:
                self._con.execute(sql, args)

    # -- signing keys ------------------------------------------------------------
    @staticmethod
    def _insert_signing_key(key: SigningKeyRecord) -> tuple[str, Mapping[str, Any]]:
        return _insert("signing_keys", asdict(key))  # its fields are the columns

    def add_signing_key(self, record: SigningKeyRecord) -> None:
        self._exec(*self._insert_signing_key(record))

    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        rows = self._all(
            "SELECT * FROM signing_keys WHERE tenant=? ORDER BY created_us, fingerprint", (tenant,)
        )
        return [
            SigningKeyRecord(
                tenant=r["tenant"],
                fingerprint=r["fingerprint"],
                kind=r["kind"],
                ref=bytes(r["ref"]),
                public_key=bytes(r["public_key"]),
                created_us=r["created_us"],
                retired_us=r["retired_us"],
            )
            for r in rows
        ]

    def retire_signing_key(self, tenant: str, fingerprint: str, when_us: int) -> None:
        row = self._one(
            "SELECT 1 FROM signing_keys WHERE tenant=? AND fingerprint=? AND retired_us IS NULL",
            (tenant, fingerprint),
        )
        if row is None:
            raise NotFoundError(f"tenant {tenant!r} has no active signing key {fingerprint}")
        self._exec(
            "UPDATE signing_keys SET retired_us=? WHERE tenant=? AND fingerprint=?",
            (when_us, tenant, fingerprint),
        )

    # -- cosignatures and settings -----------------------------------------------
    KEEP_COSIGNED_SIZES = 64

    def add_cosignatures(
        self, tenant: str, log: str, size: int, checkpoint: str, lines: dict[str, str]
    ) -> None:
        with self._lock, translated("control database"), transaction(self._con):
            self._con.executemany(
                "INSERT OR REPLACE INTO cosignatures"
                " (tenant, log, size, witness, checkpoint, line) VALUES (?,?,?,?,?,?)",
                [(tenant, log, size, w, checkpoint, line) for w, line in lines.items()],
            )
            self._con.execute(
                "DELETE FROM cosignatures WHERE tenant=? AND log=? AND size < ("
                " SELECT MIN(size) FROM (SELECT DISTINCT size FROM cosignatures"
                " WHERE tenant=? AND log=? ORDER BY size DESC LIMIT ?))",
                (tenant, log, tenant, log, self.KEEP_COSIGNED_SIZES),
            )

    def cosignatures(self, tenant: str, log: str) -> dict[int, dict[str, tuple[str, str]]]:
        out: dict[int, dict[str, tuple[str, str]]] = {}
        for r in self._all(
            "SELECT size, witness, checkpoint, line FROM cosignatures WHERE tenant=? AND log=?",
            (tenant, log),
        ):
            out.setdefault(int(r["size"]), {})[str(r["witness"])] = (
                str(r["checkpoint"]),
                str(r["line"]),
            )
        return out

    def get_setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE key=?", (key,))
        return str(row["value"]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._exec("INSERT OR REPLACE INTO settings (key, value) VALUES (?,?)", (key, value))

    # -- tenants -----------------------------------------------------------------
    @classmethod
    def _insert_tenant(cls, record: TenantRecord, key: SigningKeyRecord | None) -> Statements:
        out: Statements = [_insert("tenants", asdict(record))]  # its fields are the columns
        if key is not None:
            out.append(cls._insert_signing_key(key))
        return out

    def create_tenant(self, record: TenantRecord, key: SigningKeyRecord | None = None) -> None:
        if self.get_tenant(record.name) is not None:
            raise ConflictError(f"tenant {record.name!r} already exists")
        try:
            self._transaction(self._insert_tenant(record, key))
        except ConflictError as e:
            raise ConflictError(f"tenant {record.name!r} already exists") from e

    @staticmethod
    def _tenant(row: sqlite3.Row) -> TenantRecord:
        return TenantRecord(
            name=row["name"],
            created_us=row["created_us"],
            disabled=bool(row["disabled"]),
            key_encrypted=bytes(row["key_encrypted"]),
            public_key=bytes(row["public_key"]),
        )

    def get_tenant(self, name: str) -> TenantRecord | None:
        row = self._one("SELECT * FROM tenants WHERE name=?", (name,))
        return self._tenant(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [self._tenant(r) for r in self._all("SELECT * FROM tenants ORDER BY name")]

    def set_tenant_disabled(self, name: str, disabled: bool) -> None:
        if self.get_tenant(name) is None:
            raise NotFoundError(f"tenant {name!r} does not exist")
        self._exec("UPDATE tenants SET disabled=? WHERE name=?", (int(disabled), name))

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
        statements.append(
            _insert(
                "logs",
                {
                    "tenant": info.tenant,
                    "name": info.name,
                    "origin": info.origin,
                    "durability": str(info.durability),
                    "created_us": info.created_us,
                    "indexes": ",".join(info.indexes),
                    "public": int(info.public),
                },
            )
        )
        try:
            self._transaction(statements)
        except ConflictError as e:
            raise ConflictError(f"log {info.path!r} already exists") from e

    @staticmethod
    def _log(row: sqlite3.Row) -> LogInfo:
        """A log's row; one whose columns do not parse (edited outside ironlog)
        comes back ``damaged`` with defaults, so that it never stops a listing."""
        damaged, durability, indexes = None, Durability(), DEFAULT_INDEXES
        try:
            durability = Durability.parse(row["durability"])
            indexes = parse_indexes(row["indexes"])
        except (IronlogError, TypeError, ValueError, AttributeError) as e:
            damaged = f"its durability or indexes column does not parse: {e}"
        columns = row.keys()  # a read-only copy from before quarantine lacks the last two
        if "signed_size" in columns and not _is_size(row["signed_size"]):
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

    def set_log_quarantined(self, tenant: str, name: str, reason: str | None) -> None:
        if self.get_log(tenant, name) is None:
            raise NotFoundError(f"log {tenant}/{name} does not exist")
        self._exec(
            "UPDATE logs SET quarantined=? WHERE tenant=? AND name=?", (reason, tenant, name)
        )

    def delete_log(self, tenant: str, name: str) -> None:
        path = f"{tenant}/{name}"
        self._transaction(
            [
                ("DELETE FROM logs WHERE tenant=? AND name=?", (tenant, name)),
                ("DELETE FROM cosignatures WHERE tenant=? AND log=?", (tenant, name)),
                (
                    "DELETE FROM settings WHERE key IN (?,?,?)",
                    (f"witnesses:{path}", f"witnesses_from:{path}", f"witness_status:{path}"),
                ),
            ]
        )

    def record_log_size(self, tenant: str, name: str, size: int) -> None:
        self._exec(
            "UPDATE logs SET signed_size=max(signed_size, ?) WHERE tenant=? AND name=?",
            (size, tenant, name),
        )

    def log_size(self, tenant: str, name: str) -> int:
        try:
            row = self._one(
                "SELECT signed_size FROM logs WHERE tenant=? AND name=?", (tenant, name)
            )
        except LogUnavailableError:  # a read-only copy from before sizes were recorded
            return 0
        if row is None:
            return 0
        if not _is_size(row["signed_size"]):
            raise IntegrityError(
                f"control.db row of log {tenant}/{name}: its signed_size column is not a size"
            )
        return int(row["signed_size"])

    def get_log(self, tenant: str, name: str) -> LogInfo | None:
        row = self._one("SELECT * FROM logs WHERE tenant=? AND name=?", (tenant, name))
        return self._log(row) if row else None

    def set_log_public(self, tenant: str, name: str, public: bool) -> None:
        if self.get_log(tenant, name) is None:
            raise NotFoundError(f"log {tenant}/{name} does not exist")
        self._exec(
            "UPDATE logs SET public=? WHERE tenant=? AND name=?", (int(public), tenant, name)
        )

    def list_logs(self, tenant: str | None = None) -> list[LogInfo]:
        if tenant is None:
            rows = self._all("SELECT * FROM logs ORDER BY tenant, name")
        else:
            rows = self._all("SELECT * FROM logs WHERE tenant=? ORDER BY name", (tenant,))
        return [self._log(r) for r in rows]

    # -- API keys ----------------------------------------------------------------
    def create_api_key(self, record: ApiKeyRecord) -> None:
        # its fields are the columns, the scopes joined by commas
        self._exec(*_insert("api_keys", {**asdict(record), "scopes": ",".join(record.scopes)}))

    @staticmethod
    def _key(row: sqlite3.Row) -> ApiKeyRecord:
        columns = row.keys()  # (``in row`` would look among the values)
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

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._one("SELECT * FROM api_keys WHERE key_id=?", (key_id,))
        return self._key(row) if row else None

    def list_api_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        if tenant is None:
            rows = self._all("SELECT * FROM api_keys WHERE tenant IS NULL ORDER BY created_us")
        else:
            rows = self._all("SELECT * FROM api_keys WHERE tenant=? ORDER BY created_us", (tenant,))
        return [self._key(r) for r in rows]

    def update_api_key(
        self, key_id: str, *, expires_us: int | None = None, revoked_us: int | None = None
    ) -> None:
        if self.get_api_key(key_id) is None:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        if expires_us is not None:
            self._exec("UPDATE api_keys SET expires_us=? WHERE key_id=?", (expires_us, key_id))
        if revoked_us is not None:
            self._exec("UPDATE api_keys SET revoked_us=? WHERE key_id=?", (revoked_us, key_id))

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _is_size(value: object) -> bool:
    """A tree size as stored in control.db: a non-negative integer (not text)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
