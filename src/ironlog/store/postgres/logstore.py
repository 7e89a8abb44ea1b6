"""A log's storage in PostgreSQL: rows of its tenant's schema (entries, tiles,
checkpoints, heads, idempotency keys), keyed by the log's name.

One transaction per batch.  It locks the log's head row (``SELECT ... FOR
UPDATE``), re-reads its size, reloads the tile state when another node moved
it, and extends the tree from there: several nodes appending to one log queue
on that row lock and interleave with no gap, duplicate or fork, and the
idempotency keys they check are those committed before them.  Entries go in
with ``COPY`` (measured faster than ``executemany`` for 1000-entry batches:
docs/postgres.md).  ``interval``/``off`` durability commits with
``synchronous_commit=off``; ``sync()`` makes everything committed before it
durable by one synchronous commit (PostgreSQL flushes its WAL in order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from ironlog.core.entry import PreparedEntry, now_us
from ironlog.core.merkle import EMPTY_ROOT
from ironlog.core.tiles import TileBuilder, partial_tiles
from ironlog.errors import IntegrityError, LogUnavailableError
from ironlog.store.base import (
    BatchResult,
    DuplicateRequestError,
    Extents,
    Head,
    IdempotentResult,
    LogInfo,
    LogStore,
    Query,
    SignFn,
    StoredRow,
)
from ironlog.store.migrations import Migrations, Step
from ironlog.store.postgres.db import translated

# The layout of a tenant's schema; ``{s}`` is the schema.  Applied by the
# SECURITY DEFINER function ``ironlog.tenant_schema`` (control.py), so that
# the role ironlog runs as needs no DDL rights to add a tenant.
TENANT_MIGRATIONS = Migrations(
    "tenant schema",
    (
        Step(
            1,
            "heads, entries, tiles, checkpoints and idempotency keys of the tenant's logs",
            (
                """CREATE TABLE {s}.heads(
                    log TEXT PRIMARY KEY, size BIGINT NOT NULL, root BYTEA NOT NULL,
                    checkpoint TEXT NOT NULL, origin TEXT NOT NULL)""",
                """CREATE TABLE {s}.entries(
                    log TEXT NOT NULL, idx BIGINT NOT NULL, data BYTEA NOT NULL,
                    received_us BIGINT NOT NULL,
                    actor TEXT, action TEXT, resource TEXT, outcome TEXT,
                    PRIMARY KEY(log, idx))""",
                "CREATE INDEX ON {s}.entries(log, received_us)",
                "CREATE INDEX ON {s}.entries(log, actor, idx) WHERE actor IS NOT NULL",
                "CREATE INDEX ON {s}.entries(log, action, idx) WHERE action IS NOT NULL",
                "CREATE INDEX ON {s}.entries(log, resource, idx) WHERE resource IS NOT NULL",
                "CREATE INDEX ON {s}.entries(log, outcome, idx) WHERE outcome IS NOT NULL",
                """CREATE TABLE {s}.tiles(
                    log TEXT NOT NULL, level INTEGER NOT NULL, idx BIGINT NOT NULL,
                    data BYTEA NOT NULL, PRIMARY KEY(log, level, idx))""",
                """CREATE TABLE {s}.checkpoints(
                    log TEXT NOT NULL, size BIGINT NOT NULL, note TEXT NOT NULL,
                    created_us BIGINT NOT NULL, PRIMARY KEY(log, size))""",
                """CREATE TABLE {s}.idempotency(
                    log TEXT NOT NULL, key TEXT NOT NULL, first_index BIGINT NOT NULL,
                    count BIGINT NOT NULL, size BIGINT NOT NULL, created_us BIGINT NOT NULL,
                    PRIMARY KEY(log, key))""",
            ),
        ),
    ),
    refuse=LogUnavailableError,
)

LOG_TABLES = ("heads", "entries", "tiles", "checkpoints", "idempotency")
ENTRY_COLUMNS = ("log", "idx", "data", "received_us", "actor", "action", "resource", "outcome")
EMPTY_HEAD = EMPTY_ROOT

USE_COPY = True  # benchmarks/pg_batch.py measures COPY against executemany


class PostgresLogStore(LogStore):
    def __init__(self, pool: ConnectionPool, schema: str, info: LogInfo) -> None:
        self.info = info
        self._pool = pool
        self._schema = schema
        self._builder: TileBuilder | None = None
        self.batches = 0
        self.fsyncs = 0
        s = sql.Identifier(schema)
        self._sql = {
            name: sql.SQL(text).format(s=s).as_string(None)
            for name, text in {
                "lock_head": "SELECT size FROM {s}.heads WHERE log=%s FOR UPDATE",
                "head": "SELECT size, root, checkpoint FROM {s}.heads WHERE log=%s",
                "tile": "SELECT data FROM {s}.tiles WHERE log=%s AND level=%s AND idx=%s",
                "used": "SELECT key FROM {s}.idempotency WHERE log=%s AND key = ANY(%s)",
                "copy": "COPY {s}.entries (" + ", ".join(ENTRY_COLUMNS) + ") FROM STDIN",
                "insert": "INSERT INTO {s}.entries (" + ", ".join(ENTRY_COLUMNS) + ")"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                "put_tile": "INSERT INTO {s}.tiles (log, level, idx, data) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT (log, level, idx) DO UPDATE SET data = EXCLUDED.data",
                "put_checkpoint": "INSERT INTO {s}.checkpoints (log, size, note, created_us)"
                " VALUES (%s,%s,%s,%s)",
                "add_checkpoint": "INSERT INTO {s}.checkpoints (log, size, note, created_us)"
                " VALUES (%s,%s,%s,%s) ON CONFLICT (log, size) DO NOTHING",
                "set_head": "UPDATE {s}.heads SET size=%s, root=%s, checkpoint=%s WHERE log=%s",
                "sign_head": "UPDATE {s}.heads SET checkpoint=%s"
                " WHERE log=%s AND size=%s AND root=%s",
                "put_key": "INSERT INTO {s}.idempotency"
                " (log, key, first_index, count, size, created_us) VALUES (%s,%s,%s,%s,%s,%s)",
                "key": "SELECT first_index, count, size FROM {s}.idempotency"
                " WHERE log=%s AND key=%s",
                "entries": "SELECT data FROM {s}.entries WHERE log=%s AND idx >= %s AND idx < %s"
                " ORDER BY idx",
                "scan": "SELECT idx, data FROM {s}.entries WHERE log=%s AND idx >= %s AND idx < %s"
                " ORDER BY idx LIMIT %s",
                "scan_rows": "SELECT idx, data, received_us, actor, action, resource, outcome"
                " FROM {s}.entries WHERE log=%s AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
                "last_entry": "SELECT max(idx) FROM {s}.entries WHERE log=%s",
                "last_checkpoint": "SELECT max(size) FROM {s}.checkpoints WHERE log=%s",
                "last_tiles": "SELECT DISTINCT ON (level) level, idx, length(data) / 32"
                " FROM {s}.tiles WHERE log=%s ORDER BY level, idx DESC",
                "tiles": "SELECT level, idx, data FROM {s}.tiles WHERE log=%s"
                " AND (level, idx) > (%s, %s) ORDER BY level, idx LIMIT 1024",
                "checkpoints": "SELECT size, note FROM {s}.checkpoints WHERE log=%s AND size >= %s"
                " ORDER BY size LIMIT 1024",
                "latest": "SELECT size, note FROM {s}.checkpoints WHERE log=%s"
                " ORDER BY size DESC LIMIT 1",
                "checkpoint": "SELECT note FROM {s}.checkpoints WHERE log=%s AND size=%s",
                "size_on_disk": "SELECT COALESCE(sum(pg_column_size(e.*)), 0)"
                " FROM {s}.entries e WHERE log=%s",
            }.items()
        }
        with translated(f"open {info.path}"), pool.connection() as con:
            if con.execute(self._sql["head"], (info.name,)).fetchone() is None:
                raise IntegrityError(f"log {info.path}: its head row is missing from {schema}")

    @property
    def _log(self) -> str:
        return self.info.name

    # -- writing -------------------------------------------------------------
    def _load_builder(self, con: psycopg.Connection[Any], size: int) -> TileBuilder:
        partial: list[bytes] = []
        for level, idx in partial_tiles(size):
            row = con.execute(self._sql["tile"], (self._log, level, idx)).fetchone()
            partial.append(bytes(row[0]) if row is not None else b"")
        return TileBuilder(size, partial)

    def append(
        self,
        entries: Sequence[PreparedEntry],
        sign: SignFn | None,
        idempotency: Sequence[tuple[str, int, int]] = (),
    ) -> BatchResult:
        log = self._log
        with (
            translated(f"append to {self.info.path}"),
            self._pool.connection() as con,
            con.transaction(),
        ):
            if self.info.durability.mode != "sync":
                con.execute("SET LOCAL synchronous_commit = off")
            row = con.execute(self._sql["lock_head"], (log,)).fetchone()
            if row is None:
                raise IntegrityError(f"log {self.info.path}: its head row is missing")
            size = int(row[0])
            if idempotency:
                keys = [k for k, _, _ in idempotency]
                found = {k for (k,) in con.execute(self._sql["used"], (log, keys)).fetchall()}
                if found:
                    raise DuplicateRequestError([k for k in keys if k in found])
            builder = self._builder
            if builder is None or builder.size != size:
                builder = self._load_builder(con, size)
            self._builder = None  # until this batch commits
            rows = [
                (log, size + i, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome)
                for i, e in enumerate(entries)
            ]
            try:
                with con.transaction():  # a savepoint: the error is reported as ours
                    self._insert_entries(con, rows)
            except psycopg.errors.UniqueViolation as e:  # not the caller's conflict: tampering
                raise IntegrityError(
                    f"log {self.info.path}: entries exist beyond the head's size {size}"
                ) from e
            done = builder.add([e.leaf for e in entries])
            with con.cursor() as cur:
                cur.executemany(
                    self._sql["put_tile"],
                    [(log, t.level, t.index, d) for t, d in done + builder.partials()],
                )
            new_size, root = builder.size, builder.root()
            note = sign(new_size, root) if sign is not None else ""
            if note:  # (one of that size already there lies beyond the head: a conflict)
                con.execute(self._sql["put_checkpoint"], (log, new_size, note, now_us()))
            con.execute(self._sql["set_head"], (new_size, root, note, log))
            if idempotency:
                now = now_us()
                with con.cursor() as cur:
                    cur.executemany(
                        self._sql["put_key"],
                        [(log, k, size + off, n, new_size, now) for k, off, n in idempotency],
                    )
        self._builder = builder
        self.batches += 1
        return BatchResult(size, len(entries), Head(new_size, root, note))

    def _insert_entries(self, con: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        with con.cursor() as cur:
            if USE_COPY:
                with cur.copy(self._sql["copy"]) as copy:
                    for r in rows:
                        copy.write_row(r)
            else:
                cur.executemany(self._sql["insert"], rows)

    def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        with (
            translated(f"sign {self.info.path}"),
            self._pool.connection() as con,
            con.transaction(),
        ):
            con.execute(self._sql["add_checkpoint"], (self._log, size, note, now_us()))
            con.execute(self._sql["sign_head"], (note, self._log, size, root))

    def idempotent(self, key: str) -> IdempotentResult | None:
        row = self._one("key", (self._log, key))
        if row is None:
            return None
        first_index, count, size = row
        return IdempotentResult(first_index=first_index, count=count, size=size)

    def sync(self) -> None:
        """A synchronous commit flushes the WAL up to it, and with it every
        asynchronous commit before it."""
        with (
            translated(f"sync {self.info.path}"),
            self._pool.connection() as con,
            con.transaction(),
        ):
            con.execute("SET LOCAL synchronous_commit = on")
            con.execute("SELECT pg_current_xact_id()")
        self.fsyncs += 1

    # -- reading -------------------------------------------------------------
    def _one(self, name: str, args: Sequence[Any]) -> tuple[Any, ...] | None:
        with translated(f"read {self.info.path}"), self._pool.connection() as con:
            row: tuple[Any, ...] | None = con.execute(self._sql[name], args).fetchone()
            return row

    def _all(self, name: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with translated(f"read {self.info.path}"), self._pool.connection() as con:
            return con.execute(self._sql[name], args).fetchall()

    def head(self) -> Head:
        row = self._one("head", (self._log,))
        if row is None:
            raise IntegrityError(f"log {self.info.path}: its head row is missing")
        size, root, checkpoint = row
        return Head(size, bytes(root), checkpoint)

    def entries(self, start: int, end: int) -> list[bytes]:
        return [bytes(d) for (d,) in self._all("entries", (self._log, start, end))]

    def _pages(
        self, name: str, page: int, start: int, end: int | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        stop = end if end is not None else 1 << 62
        pos = start
        while pos < stop:
            rows = self._all(name, (self._log, pos, stop, page))
            if not rows:
                return
            yield rows
            pos = int(rows[-1][0]) + 1

    def scan_entries(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[list[tuple[int, bytes]]]:
        for rows in self._pages("scan", 16384, start, end):
            yield [(idx, bytes(data)) for idx, data in rows]

    def scan_rows(self, start: int = 0, end: int | None = None) -> Iterator[list[StoredRow]]:
        for rows in self._pages("scan_rows", 16384, start, end):
            yield [
                (idx, bytes(data), received_us, actor, action, resource, outcome)
                for idx, data, received_us, actor, action, resource, outcome in rows
            ]

    def extents(self) -> Extents:
        log = self._log
        with (
            translated(f"read {self.info.path}"),
            self._pool.connection() as con,
            con.transaction(),  # one snapshot for all of it
        ):
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = con.execute(self._sql["head"], (log,)).fetchone()
            if row is None:
                raise IntegrityError(f"log {self.info.path}: its head row is missing")
            last_entry = _value(con.execute(self._sql["last_entry"], (log,)).fetchone())
            last_cp = _value(con.execute(self._sql["last_checkpoint"], (log,)).fetchone())
            tiles = {
                int(level): (int(idx), int(width))
                for level, idx, width in con.execute(self._sql["last_tiles"], (log,)).fetchall()
            }
        return Extents(int(row[0]), last_entry, last_cp, tiles)

    def query(self, q: Query) -> Iterator[tuple[int, bytes]]:
        where = ["log = %s", "idx >= %s"]
        args: list[Any] = [self._log, q.from_index]
        if q.since_us is not None:
            where.append("received_us >= %s")
            args.append(q.since_us)
        if q.until_us is not None:
            where.append("received_us < %s")
            args.append(q.until_us)
        for col in ("actor", "action", "resource", "outcome"):  # names are ours
            v = getattr(q, col)
            if v is not None:
                where.append(f"{col} = %s")
                args.append(v)
        text = sql.SQL(
            "SELECT idx, data FROM {s}.entries WHERE " + " AND ".join(where) + " ORDER BY idx"
        ).format(s=sql.Identifier(self._schema))
        if q.limit is not None:
            text = text + sql.SQL(" LIMIT %s")
            args.append(q.limit)
        with (
            translated(f"query {self.info.path}"),
            self._pool.connection() as con,
            con.transaction(),
            con.cursor(name="ironlog_query") as cur,
        ):  # server-side
            cur.execute(text, args)
            while rows := cur.fetchmany(1000):
                for idx, data in rows:
                    yield idx, bytes(data)

    def tile(self, level: int, index: int) -> bytes | None:
        data = _value(self._one("tile", (self._log, level, index)))
        return bytes(data) if data is not None else None

    def iter_tiles(self) -> Iterator[tuple[int, int, bytes]]:
        level, idx = -1, -1
        while rows := self._all("tiles", (self._log, level, idx)):
            for level, idx, data in rows:
                yield level, idx, bytes(data)

    def checkpoints(self, min_size: int = 0) -> Iterator[tuple[int, str]]:
        pos = min_size
        while rows := self._all("checkpoints", (self._log, pos)):
            for size, note in rows:
                yield int(size), str(note)
            pos = int(rows[-1][0]) + 1

    def latest_checkpoint(self) -> tuple[int, str] | None:
        row = self._one("latest", (self._log,))
        if row is None:
            return None
        size, note = row
        return int(size), str(note)

    def checkpoint(self, size: int) -> str | None:
        note = _value(self._one("checkpoint", (self._log, size)))
        return str(note) if note is not None else None

    def stats(self) -> dict[str, int | str]:
        return {
            "durability": str(self.info.durability),
            "fsyncs": self.fsyncs,
            "batches": self.batches,
            "bytes_on_disk": int(_value(self._one("size_on_disk", (self._log,))) or 0),
        }

    def close(self) -> None:
        self._builder = None  # the pool is the driver's


def _value(row: Any) -> Any:
    """The one column of a one-column row, or None for no row."""
    if row is None:
        return None
    (value,) = row
    return value
