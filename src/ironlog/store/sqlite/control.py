"""The control store: ``control.db`` holds tenants, logs, signing keys, API
keys, witnesses' cosignatures and settings.

Its schema is the migration list below; its logic is ``store/sql.py``'s,
shared with the PostgreSQL driver.  Rows are read by column name
(``sqlite3.Row``).  A read-only copy of a data directory made before a column
existed is read as it is (it is never migrated): a missing column reads as its
default.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ironlog.errors import ConfigurationError, LogUnavailableError
from ironlog.store.migrations import Migrations, Step
from ironlog.store.sql import Args, Row, SqlControlStore, Statements
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


class SqliteControlStore(SqlControlStore):
    """``store/sql.py``'s control store over one SQLite connection (a lock
    serialises its users)."""

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

    def _one(self, sql: str, args: Args = ()) -> sqlite3.Row | None:
        with self._lock, translated("control database"):
            row: sqlite3.Row | None = self._con.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: Args = ()) -> list[sqlite3.Row]:
        with self._lock, translated("control database"):
            return self._con.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: Args = ()) -> int:
        with self._lock, translated("control database"), transaction(self._con):
            return self._con.execute(sql, args).rowcount

    def _transaction(self, statements: Statements) -> None:
        with self._lock, translated("control database"), transaction(self._con):
            for sql, args in statements:
                self._con.execute(sql, args)

    def _signed_size_row(self, tenant: str, name: str) -> Row | None:
        try:
            return super()._signed_size_row(tenant, name)
        except LogUnavailableError:  # a read-only copy from before sizes were recorded
            return None

    def close(self) -> None:
        with self._lock:
            self._con.close()
