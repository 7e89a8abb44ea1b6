"""The control schema ``ironlog``: settings, tenants, logs, signing keys
(sealed under the master key, as the engine hands them over), API keys,
cosignatures, and the map from a tenant to its schema.

A tenant's schema is made by ``ironlog.tenant_schema(tenant)``, a SECURITY
DEFINER function created by ``init``: it runs the tenant layout's DDL
(logstore.py's TENANT_MIGRATIONS) as the schema's owner and grants the rights
ironlog needs on it (no DDL) to the calling role and to every role that may
insert into ``ironlog.tenants``, so that the role ironlog runs as never needs
CREATE rights after ``init``, whichever role made the tenant.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ironlog.errors import ConfigurationError
from ironlog.store.migrations import Migrations, Step
from ironlog.store.postgres.db import translated
from ironlog.store.postgres.logstore import LOG_TABLES, TENANT_MIGRATIONS
from ironlog.store.sql import Args, SqlControlStore, Statements


def _tenant_schema_function(con: psycopg.Connection[Any]) -> None:
    """(Re)create ``ironlog.tenant_schema`` from the tenant layout's steps."""
    body = []
    for step in TENANT_MIGRATIONS.steps:
        for statement in step.statements:
            if not isinstance(statement, str):
                raise TypeError("tenant schema steps are SQL text")
            text = statement.replace("{s}", "%1$I")
            body.append(f"EXECUTE format($q${text}$q$, s);")
    tables = ", ".join(f"%1$I.{t}" for t in LOG_TABLES)
    grants = f"""FOR r IN SELECT session_user::text AS name UNION
            SELECT grantee::text FROM information_schema.role_table_grants
            WHERE table_schema = 'ironlog' AND table_name = 'tenants'
              AND privilege_type = 'INSERT' AND grantee <> 'PUBLIC'
          LOOP
            EXECUTE format('GRANT USAGE ON SCHEMA %1$I TO %2$I', s, r.name);
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO %2$I', s, r.name);
          END LOOP;"""
    con.execute(
        f"""CREATE OR REPLACE FUNCTION ironlog.tenant_schema(p_tenant TEXT) RETURNS TEXT
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
        DECLARE s TEXT; r RECORD;
        BEGIN
          SELECT schema_name INTO s FROM ironlog.tenant_schemas WHERE tenant = p_tenant;
          IF s IS NOT NULL THEN RETURN s; END IF;
          PERFORM pg_advisory_xact_lock(hashtext('ironlog.tenant_schema'));
          SELECT schema_name INTO s FROM ironlog.tenant_schemas WHERE tenant = p_tenant;
          IF s IS NOT NULL THEN RETURN s; END IF;
          s := 'ironlog_t' || nextval('ironlog.tenant_schema_seq');
          EXECUTE format('CREATE SCHEMA %I', s);
          {" ".join(body)}
          {grants}
          INSERT INTO ironlog.tenant_schemas (tenant, schema_name, version)
            VALUES (p_tenant, s, {TENANT_MIGRATIONS.latest});
          RETURN s;
        END $fn$""".encode()
    )


CONTROL_MIGRATIONS = Migrations(
    "control schema",
    (
        Step(
            1,
            "settings, tenants, logs, signing keys, cosignatures, API keys and tenant schemas",
            (
                "CREATE TABLE ironlog.settings(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """CREATE TABLE ironlog.tenants(
                    name TEXT PRIMARY KEY, created_us BIGINT NOT NULL,
                    disabled BOOLEAN NOT NULL DEFAULT false,
                    key_encrypted BYTEA NOT NULL, public_key BYTEA NOT NULL)""",
                """CREATE TABLE ironlog.logs(
                    tenant TEXT NOT NULL REFERENCES ironlog.tenants(name), name TEXT NOT NULL,
                    origin TEXT NOT NULL UNIQUE, durability TEXT NOT NULL,
                    created_us BIGINT NOT NULL, indexes TEXT NOT NULL DEFAULT '',
                    public BOOLEAN NOT NULL DEFAULT false, quarantined TEXT,
                    signed_size BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY(tenant, name))""",
                """CREATE TABLE ironlog.signing_keys(
                    tenant TEXT NOT NULL REFERENCES ironlog.tenants(name),
                    fingerprint TEXT NOT NULL, kind TEXT NOT NULL, ref BYTEA NOT NULL,
                    public_key BYTEA NOT NULL, created_us BIGINT NOT NULL, retired_us BIGINT,
                    PRIMARY KEY(tenant, fingerprint))""",
                """CREATE TABLE ironlog.cosignatures(
                    tenant TEXT NOT NULL, log TEXT NOT NULL, size BIGINT NOT NULL,
                    witness TEXT NOT NULL, checkpoint TEXT NOT NULL, line TEXT NOT NULL,
                    PRIMARY KEY(tenant, log, size, witness))""",
                """CREATE TABLE ironlog.api_keys(
                    key_id TEXT PRIMARY KEY, tenant TEXT REFERENCES ironlog.tenants(name),
                    scopes TEXT NOT NULL, secret_hash BYTEA NOT NULL,
                    created_us BIGINT NOT NULL, name TEXT NOT NULL DEFAULT '',
                    expires_us BIGINT, revoked_us BIGINT, log TEXT)""",
                """CREATE TABLE ironlog.tenant_schemas(
                    tenant TEXT PRIMARY KEY, schema_name TEXT NOT NULL UNIQUE,
                    version INTEGER NOT NULL)""",
                "CREATE SEQUENCE ironlog.tenant_schema_seq",
                _tenant_schema_function,
            ),
        ),
    ),
    refuse=ConfigurationError,
)


class PostgresControlStore(SqlControlStore):
    """``store/sql.py``'s control store over the driver's connection pool."""

    PARAM = "%s"
    NAMED = "%({})s"
    NS = "ironlog."
    MAX = "GREATEST"

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _one(self, q: str, args: Args = ()) -> dict[str, Any] | None:
        with (
            translated("control schema"),
            self._pool.connection() as con,
            con.cursor(row_factory=dict_row) as cur,
        ):
            return cur.execute(q.encode(), args).fetchone()

    def _all(self, q: str, args: Args = ()) -> list[dict[str, Any]]:
        with (
            translated("control schema"),
            self._pool.connection() as con,
            con.cursor(row_factory=dict_row) as cur,
        ):
            return cur.execute(q.encode(), args).fetchall()

    def _exec(self, q: str, args: Args = ()) -> int:
        with translated("control schema"), self._pool.connection() as con:
            return con.execute(q.encode(), args).rowcount

    def _transaction(self, statements: Statements) -> None:
        with translated("control schema"), self._pool.connection() as con, con.transaction():
            for q, args in statements:
                con.execute(q.encode(), args)

    def close(self) -> None:
        """The pool is the driver's."""
