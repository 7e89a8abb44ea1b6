"""The PostgreSQL driver (psycopg 3 and its pool; ``pip install ironlog[postgres]``).

    db.py        the pool, psycopg's errors translated, versions and migrations
    control.py   the control schema ``ironlog`` (tenants, logs, keys, settings)
    logstore.py  a log's rows in its tenant's schema ``ironlog_t<N>``

``PostgresDriver(url, migrate=True)`` (``ironlog init --database URL``)
creates or upgrades the schema; without ``migrate`` the driver runs no DDL and
refuses a schema that is not at the version this code knows.  Several
ironlog nodes may share one database: a log's appends are sequenced by its
head row's lock (logstore.py).
"""

from __future__ import annotations

from psycopg import sql

from ironlog.core.entry import now_us
from ironlog.core.merkle import EMPTY_ROOT
from ironlog.errors import ConflictError, IntegrityError
from ironlog.store.base import ControlStore, Driver, LogInfo, LogStore
from ironlog.store.postgres.control import CONTROL_MIGRATIONS, PostgresControlStore
from ironlog.store.postgres.db import check_current, is_url, open_pool, redact, translated
from ironlog.store.postgres.db import migrate as migrate_schema
from ironlog.store.postgres.logstore import LOG_TABLES, TENANT_MIGRATIONS, PostgresLogStore

__all__ = ["CONTROL_MIGRATIONS", "TENANT_MIGRATIONS", "PostgresDriver", "is_url", "redact"]


class PostgresDriver(Driver):
    def __init__(self, url: str, migrate: bool = False) -> None:
        self.url = url
        self.where = redact(url)
        self._pool = open_pool(url)
        try:
            with translated(f"initialise {self.where}"), self._pool.connection() as con:
                if migrate:
                    migrate_schema(con, CONTROL_MIGRATIONS, self.where)
                check_current(con, CONTROL_MIGRATIONS, self.where)
        except BaseException:
            self._pool.close()
            raise
        self._control = PostgresControlStore(self._pool)

    def control(self) -> ControlStore:
        return self._control

    def _schema(self, tenant: str, create: bool) -> str | None:
        with translated(f"tenant {tenant} in {self.where}"), self._pool.connection() as con:
            if create:
                row = con.execute("SELECT ironlog.tenant_schema(%s)", (tenant,)).fetchone()
            else:
                row = con.execute(
                    "SELECT schema_name FROM ironlog.tenant_schemas WHERE tenant=%s", (tenant,)
                ).fetchone()
        return str(row[0]) if row else None

    def create_log(self, info: LogInfo) -> bool:
        schema = self._schema(info.tenant, create=True)
        assert schema is not None
        s = sql.Identifier(schema)
        with translated(f"create {info.path}"), self._pool.connection() as con, con.transaction():
            created = con.execute(
                sql.SQL(
                    "INSERT INTO {s}.heads (log, size, root, checkpoint, origin)"
                    " VALUES (%s, 0, %s, '', %s) ON CONFLICT (log) DO NOTHING"
                ).format(s=s),
                (info.name, EMPTY_ROOT, info.origin),
            ).rowcount
            if not created:
                row = con.execute(
                    sql.SQL(
                        "SELECT size, EXISTS (SELECT 1 FROM {s}.entries WHERE log=%s)"
                        " FROM {s}.heads WHERE log=%s"
                    ).format(s=s),
                    (info.name, info.name),
                ).fetchone()
                if row is not None and (row[0] or row[1]):
                    raise ConflictError(
                        f"log {info.path}: storage holding entries exists in schema"
                        f" {schema} without a record; move it away first"
                    )
        return bool(created)

    def open_log(self, info: LogInfo) -> LogStore:
        schema = self._schema(info.tenant, create=False)
        if schema is None:
            raise IntegrityError(f"log {info.path}: its tenant's schema is missing")
        return PostgresLogStore(self._pool, schema, info)

    def _move(self, info: LogInfo, to: str | None) -> str:
        schema = self._schema(info.tenant, create=False)
        if schema is None:
            return ""
        s = sql.Identifier(schema)
        with translated(f"remove {info.path}"), self._pool.connection() as con, con.transaction():
            for table in LOG_TABLES:
                t = sql.Identifier(table)
                if to is None:
                    q = sql.SQL("DELETE FROM {s}.{t} WHERE log=%s").format(s=s, t=t)
                    con.execute(q, (info.name,))
                else:
                    q = sql.SQL("UPDATE {s}.{t} SET log=%s WHERE log=%s").format(s=s, t=t)
                    con.execute(q, (to, info.name))
        return f"{schema}/{to}"

    def drop_log(self, info: LogInfo) -> None:
        self._move(info, None)

    def retire_log(self, info: LogInfo) -> str:
        # '@' never occurs in a log's name: the retired rows cannot meet a new log
        return self._move(info, f"{info.name}@deleted.{now_us()}")

    def close(self) -> None:
        self._pool.close()
