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

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ironlog.errors import ConfigurationError, ConflictError, NotFoundError
from ironlog.store.base import (
    ApiKeyRecord,
    ControlStore,
    Durability,
    LogInfo,
    SigningKeyRecord,
    TenantRecord,
    parse_indexes,
)
from ironlog.store.migrations import Migrations, Step
from ironlog.store.postgres.db import translated
from ironlog.store.postgres.logstore import LOG_TABLES, TENANT_MIGRATIONS


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

Statements = list[tuple[str, Mapping[str, Any] | Sequence[Any]]]


def _insert(table: str, values: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """An INSERT naming its columns (names are ours, never the caller's)."""
    cols = ", ".join(values)
    params = ", ".join(f"%({c})s" for c in values)
    return f"INSERT INTO ironlog.{table} ({cols}) VALUES ({params})", values


class PostgresControlStore(ControlStore):
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _one(self, q: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> dict[str, Any] | None:
        with (
            translated("control schema"),
            self._pool.connection() as con,
            con.cursor(row_factory=dict_row) as cur,
        ):
            return cur.execute(q.encode(), args).fetchone()

    def _all(self, q: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> list[dict[str, Any]]:
        with (
            translated("control schema"),
            self._pool.connection() as con,
            con.cursor(row_factory=dict_row) as cur,
        ):
            return cur.execute(q.encode(), args).fetchall()

    def _exec(self, q: str, args: Mapping[str, Any] | Sequence[Any] = ()) -> int:
        with translated("control schema"), self._pool.connection() as con:
            return con.execute(q.encode(), args).rowcount

    def _transaction(self, statements: Statements) -> None:
        """Several statements, all or nothing."""
        with translated("control schema"), self._pool.connection() as con, con.transaction():
            for q, args in statements:
                con.execute(q.encode(), args)

    # -- signing keys --------------------------------------------------------
    def add_signing_key(self, record: SigningKeyRecord) -> None:
        self._transaction([_insert("signing_keys", asdict(record))])

    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        rows = self._all(
            "SELECT * FROM ironlog.signing_keys WHERE tenant=%s ORDER BY created_us, fingerprint",
            (tenant,),
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
        n = self._exec(
            "UPDATE ironlog.signing_keys SET retired_us=%s"
            " WHERE tenant=%s AND fingerprint=%s AND retired_us IS NULL",
            (when_us, tenant, fingerprint),
        )
        if n == 0:
            raise NotFoundError(f"tenant {tenant!r} has no active signing key {fingerprint}")

    # -- cosignatures and settings ---------------------------------------------
    KEEP_COSIGNED_SIZES = 64

    def add_cosignatures(
        self, tenant: str, log: str, size: int, checkpoint: str, lines: dict[str, str]
    ) -> None:
        with (
            translated("control schema"),
            self._pool.connection() as con,
            con.transaction(),
            con.cursor() as cur,
        ):
            cur.executemany(
                "INSERT INTO ironlog.cosignatures"
                " (tenant, log, size, witness, checkpoint, line) VALUES (%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (tenant, log, size, witness) DO UPDATE"
                " SET checkpoint = EXCLUDED.checkpoint, line = EXCLUDED.line",
                [(tenant, log, size, w, checkpoint, line) for w, line in lines.items()],
            )
            con.execute(
                "DELETE FROM ironlog.cosignatures WHERE tenant=%s AND log=%s AND size < ("
                " SELECT MIN(size) FROM (SELECT DISTINCT size FROM ironlog.cosignatures"
                " WHERE tenant=%s AND log=%s ORDER BY size DESC LIMIT %s) AS kept)",
                (tenant, log, tenant, log, self.KEEP_COSIGNED_SIZES),
            )

    def cosignatures(self, tenant: str, log: str) -> dict[int, dict[str, tuple[str, str]]]:
        out: dict[int, dict[str, tuple[str, str]]] = {}
        for r in self._all(
            "SELECT size, witness, checkpoint, line FROM ironlog.cosignatures"
            " WHERE tenant=%s AND log=%s",
            (tenant, log),
        ):
            out.setdefault(int(r["size"]), {})[str(r["witness"])] = (
                str(r["checkpoint"]),
                str(r["line"]),
            )
        return out

    def get_setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM ironlog.settings WHERE key=%s", (key,))
        return str(row["value"]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO ironlog.settings (key, value) VALUES (%s,%s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    # -- tenants ---------------------------------------------------------------
    @staticmethod
    def _insert_tenant(record: TenantRecord, key: SigningKeyRecord | None) -> Statements:
        out: Statements = [_insert("tenants", asdict(record))]  # its fields are the columns
        if key is not None:
            out.append(_insert("signing_keys", asdict(key)))
        return out

    def create_tenant(self, record: TenantRecord, key: SigningKeyRecord | None = None) -> None:
        try:
            self._transaction(self._insert_tenant(record, key))
        except ConflictError as e:
            raise ConflictError(f"tenant {record.name!r} already exists") from e

    @staticmethod
    def _tenant(row: Mapping[str, Any]) -> TenantRecord:
        return TenantRecord(
            name=row["name"],
            created_us=row["created_us"],
            disabled=bool(row["disabled"]),
            key_encrypted=bytes(row["key_encrypted"]),
            public_key=bytes(row["public_key"]),
        )

    def get_tenant(self, name: str) -> TenantRecord | None:
        row = self._one("SELECT * FROM ironlog.tenants WHERE name=%s", (name,))
        return self._tenant(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [self._tenant(r) for r in self._all("SELECT * FROM ironlog.tenants ORDER BY name")]

    def set_tenant_disabled(self, name: str, disabled: bool) -> None:
        if not self._exec("UPDATE ironlog.tenants SET disabled=%s WHERE name=%s", (disabled, name)):
            raise NotFoundError(f"tenant {name!r} does not exist")

    # -- logs ------------------------------------------------------------------
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
                    "public": info.public,
                },
            )
        )
        try:
            self._transaction(statements)
        except ConflictError as e:
            raise ConflictError(f"log {info.path!r} already exists") from e

    @staticmethod
    def _log(row: Mapping[str, Any]) -> LogInfo:
        return LogInfo(
            tenant=row["tenant"],
            name=row["name"],
            origin=row["origin"],
            durability=Durability.parse(row["durability"]),
            created_us=row["created_us"],
            indexes=parse_indexes(row["indexes"]),
            public=bool(row["public"]),
            quarantined=row["quarantined"],
        )

    def set_log_quarantined(self, tenant: str, name: str, reason: str | None) -> None:
        if not self._exec(
            "UPDATE ironlog.logs SET quarantined=%s WHERE tenant=%s AND name=%s",
            (reason, tenant, name),
        ):
            raise NotFoundError(f"log {tenant}/{name} does not exist")

    def delete_log(self, tenant: str, name: str) -> None:
        path = f"{tenant}/{name}"
        self._transaction(
            [
                ("DELETE FROM ironlog.logs WHERE tenant=%s AND name=%s", (tenant, name)),
                ("DELETE FROM ironlog.cosignatures WHERE tenant=%s AND log=%s", (tenant, name)),
                (
                    "DELETE FROM ironlog.settings WHERE key IN (%s,%s,%s)",
                    (f"witnesses:{path}", f"witnesses_from:{path}", f"witness_status:{path}"),
                ),
            ]
        )

    def record_log_size(self, tenant: str, name: str, size: int) -> None:
        self._exec(
            "UPDATE ironlog.logs SET signed_size=GREATEST(signed_size, %s)"
            " WHERE tenant=%s AND name=%s",
            (size, tenant, name),
        )

    def log_size(self, tenant: str, name: str) -> int:
        row = self._one(
            "SELECT signed_size FROM ironlog.logs WHERE tenant=%s AND name=%s", (tenant, name)
        )
        return int(row["signed_size"]) if row else 0

    def get_log(self, tenant: str, name: str) -> LogInfo | None:
        row = self._one("SELECT * FROM ironlog.logs WHERE tenant=%s AND name=%s", (tenant, name))
        return self._log(row) if row else None

    def set_log_public(self, tenant: str, name: str, public: bool) -> None:
        if not self._exec(
            "UPDATE ironlog.logs SET public=%s WHERE tenant=%s AND name=%s", (public, tenant, name)
        ):
            raise NotFoundError(f"log {tenant}/{name} does not exist")

    def list_logs(self, tenant: str | None = None) -> list[LogInfo]:
        if tenant is None:
            rows = self._all("SELECT * FROM ironlog.logs ORDER BY tenant, name")
        else:
            rows = self._all("SELECT * FROM ironlog.logs WHERE tenant=%s ORDER BY name", (tenant,))
        return [self._log(r) for r in rows]

    # -- API keys --------------------------------------------------------------
    def create_api_key(self, record: ApiKeyRecord) -> None:
        # its fields are the columns, the scopes joined by commas
        self._transaction(
            [_insert("api_keys", {**asdict(record), "scopes": ",".join(record.scopes)})]
        )

    @staticmethod
    def _key(row: Mapping[str, Any]) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_id=row["key_id"],
            tenant=row["tenant"],
            scopes=tuple(s for s in row["scopes"].split(",") if s),
            secret_hash=bytes(row["secret_hash"]),
            created_us=row["created_us"],
            name=row["name"],
            expires_us=row["expires_us"],
            revoked_us=row["revoked_us"],
            log=row["log"],
        )

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._one("SELECT * FROM ironlog.api_keys WHERE key_id=%s", (key_id,))
        return self._key(row) if row else None

    def list_api_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        if tenant is None:
            rows = self._all(
                "SELECT * FROM ironlog.api_keys WHERE tenant IS NULL ORDER BY created_us"
            )
        else:
            rows = self._all(
                "SELECT * FROM ironlog.api_keys WHERE tenant=%s ORDER BY created_us", (tenant,)
            )
        return [self._key(r) for r in rows]

    def update_api_key(
        self, key_id: str, *, expires_us: int | None = None, revoked_us: int | None = None
    ) -> None:
        if self.get_api_key(key_id) is None:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        if expires_us is not None:
            self._exec(
                "UPDATE ironlog.api_keys SET expires_us=%s WHERE key_id=%s", (expires_us, key_id)
            )
        if revoked_us is not None:
            self._exec(
                "UPDATE ironlog.api_keys SET revoked_us=%s WHERE key_id=%s", (revoked_us, key_id)
            )

    def close(self) -> None:
        """The pool is the driver's."""
