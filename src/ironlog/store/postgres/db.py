"""PostgreSQL connections (one pool per driver), the translation of psycopg's
errors, and applying the versioned migrations of ``store/migrations.py``.

Versions live in ``ironlog.schema_version`` (one row per kind: the control
schema, and the layout of tenant schemas); ``ironlog.tenant_schemas`` records
the version of each tenant's schema.  Only ``init`` (``migrate=True``) runs
DDL; a runtime connection reads the version and refuses a schema that is
older (run ``ironlog init``) or newer (a newer ironlog wrote it) than this code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from ironlog.errors import ConfigurationError, ConflictError, LogUnavailableError
from ironlog.store.migrations import Migrations

CONTROL_SCHEMA = "ironlog"
POOL_MAX = 16
CONNECT_TIMEOUT_S = 10.0


def is_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host", "")
    return f"postgresql://{info.get('user', '')}@{host}/{info.get('dbname', '')}"


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """psycopg's errors become ironlog's, here and only here."""
    try:
        yield
    except psycopg.IntegrityError as e:
        raise ConflictError(f"{what}: {e.diag.message_primary or e}") from e
    except psycopg.Error as e:
        raise LogUnavailableError(f"{what}: database error: {e.diag.message_primary or e}") from e
    except TimeoutError as e:  # the pool had no connection to give
        raise LogUnavailableError(f"{what}: database unavailable: {e}") from e


def open_pool(url: str) -> ConnectionPool:
    """Autocommit connections whose statements are prepared on the server from
    their first execution (``prepare_threshold=0``)."""
    pool: ConnectionPool = ConnectionPool(
        url,
        min_size=1,
        max_size=POOL_MAX,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        timeout=CONNECT_TIMEOUT_S,
        open=False,
        name="ironlog",
    )
    try:
        with translated(f"connect to {redact(url)}"):
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except BaseException:
        pool.close()
        raise
    return pool


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _versions_table(con: psycopg.Connection[Any]) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {CONTROL_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {CONTROL_SCHEMA}.schema_version("
        " kind TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )


def found_version(con: psycopg.Connection[Any], kind: str) -> int:
    """The recorded version of ``kind`` (0: never initialised)."""
    row = con.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{CONTROL_SCHEMA}.schema_version",)
    ).fetchone()
    if not row or not row[0]:
        return 0
    got = con.execute(
        f"SELECT version FROM {CONTROL_SCHEMA}.schema_version WHERE kind=%s", (kind,)
    ).fetchone()
    return int(got[0]) if got else 0


def check_current(con: psycopg.Connection[Any], migrations: Migrations, what: str) -> None:
    """Refuse a schema this code cannot use without running DDL."""
    found = found_version(con, migrations.kind)
    if migrations.pending(found, what):
        raise ConfigurationError(
            f"{what}: the {migrations.kind} is at version {found}, this ironlog needs"
            f" {migrations.latest}: run `ironlog init --database URL` first"
        )


def migrate(con: psycopg.Connection[Any], migrations: Migrations, what: str) -> tuple[int, int]:
    """Every pending step in one transaction, under an advisory lock (of
    several nodes initialising at once, one migrates, the others find it done).
    A schema already current is only read: ``serve`` initialises on every
    start, as a role that may have no DDL rights."""
    found = found_version(con, migrations.kind)
    if not migrations.pending(found, what):
        return found, found
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(hashtext('ironlog.migrate'))")
        _versions_table(con)
        found = found_version(con, migrations.kind)
        for step in migrations.pending(found, what):
            for statement in step.statements:
                if isinstance(statement, str):
                    con.execute(statement.encode())
                else:
                    statement(con)
        con.execute(
            f"INSERT INTO {CONTROL_SCHEMA}.schema_version (kind, version) VALUES (%s, %s)"
            " ON CONFLICT (kind) DO UPDATE SET version = EXCLUDED.version",
            (migrations.kind, migrations.latest),
        )
    return found, migrations.latest
