"""The log store: one SQLite database per log (entries, tiles, checkpoints, head).

WAL mode; ``synchronous=FULL`` for ``sync`` durability, ``NORMAL`` plus an
fsync of the WAL at most every N ms for ``interval``, ``OFF`` for ``off``.
One transaction per batch writes the entries, the tiles that changed, the
head and, in ``sync`` mode, the signed checkpoint (in the other modes the
engine signs later, once an fsync made the tree durable: ``add_checkpoint``),
under ``BEGIN IMMEDIATE`` so that several
processes can append to one log: a batch re-reads the head and reloads its
tile state when another process moved it.

Rows are read by name: every SELECT names its columns and the code unpacks
them into names (``size, root, note = row``), never ``row[7]``.  Not
``sqlite3.Row``: connections come from a hook (``connect``) that tests fill
with another SQLite (apsw, to simulate power loss) whose rows are tuples.
Over 400 lines because it is one class implementing one interface
(``store/base.py``'s LogStore); its schema is the migration list at the top.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
from ironlog.store.sqlite.db import (
    Connect,
    check_version,
    connect,
    migrate,
    sqlite3_connect,
    transaction,
    translated,
)

LOG_MIGRATIONS = Migrations(
    "log database",
    (
        Step(
            1,
            "entries, tiles, checkpoints, idempotency keys, the head and meta"
            " (the layout of every log made before versions, which it meets unchanged)",
            (
                "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """CREATE TABLE IF NOT EXISTS entries(
                    idx INTEGER PRIMARY KEY,
                    data BLOB NOT NULL,
                    received_us INTEGER NOT NULL,
                    actor TEXT, action TEXT, resource TEXT, outcome TEXT
                )""",
                "CREATE INDEX IF NOT EXISTS entries_received ON entries(received_us)",
                """CREATE TABLE IF NOT EXISTS tiles(
                    level INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
                    PRIMARY KEY(level, idx)
                ) WITHOUT ROWID""",
                """CREATE TABLE IF NOT EXISTS checkpoints(
                    size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_us INTEGER NOT NULL
                )""",
                """CREATE TABLE IF NOT EXISTS idempotency(
                    key TEXT PRIMARY KEY, first_index INTEGER NOT NULL, count INTEGER NOT NULL,
                    size INTEGER NOT NULL, created_us INTEGER NOT NULL
                ) WITHOUT ROWID""",
                """CREATE TABLE IF NOT EXISTS head(
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    size INTEGER NOT NULL, root BLOB NOT NULL, checkpoint TEXT NOT NULL
                )""",
                "INSERT OR IGNORE INTO head (id, size, root, checkpoint)"
                f" VALUES (1, 0, X'{EMPTY_ROOT.hex()}', '')",
            ),
        ),
    ),
    refuse=LogUnavailableError,
)

_INSERT_ENTRY = (
    "INSERT INTO entries (idx, data, received_us, actor, action, resource, outcome)"
    " VALUES (?,?,?,?,?,?,?)"
)


class SqliteLogStore(LogStore):
    def __init__(
        self,
        path: Path,
        info: LogInfo,
        connect: Connect | None = None,
        fsync: Callable[[Path], None] | None = None,
        read_only: bool = False,
    ) -> None:
        """``connect``/``fsync`` replace sqlite3 and os.fsync of the WAL (tests
        simulate power loss through them); production leaves them None.
        ``read_only``: nothing is ever written (a read-only copy, a full disk)."""
        self.info = info
        self.path = path
        self.read_only = read_only
        self._connect_fn = connect or sqlite3_connect
        self._fsync_fn = fsync
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        self._builder: TileBuilder | None = None
        self._wal_fd: int | None = None
        self._lock_fd: int | None = None
        self.fsyncs = 0
        self.batches = 0
        # close() releases everything; a later use reopens (a new generation
        # of connections) and calls on_connect.
        self._gen = 0
        self.on_connect: Callable[[], None] | None = None
        self.last_used = time.monotonic()
        if not path.is_file():
            # Never a fresh empty database for a log the control store knows.
            raise IntegrityError(
                f"log {info.path}: its database file is missing (logs/{info.tenant}/{path.name})"
            )
        what = f"log {info.path}"
        if read_only:  # nothing to migrate, but a layout too new is refused
            with (
                contextlib.suppress(sqlite3.Error),  # unreadable: its reads say so
                contextlib.closing(self._connect(path)) as con,
            ):
                check_version(con, LOG_MIGRATIONS, what)
            return
        with translated(f"open {info.path}"):
            con = self._connect(path)
            try:
                migrate(con, LOG_MIGRATIONS, what)
                for col in info.indexes:  # names come from INDEXABLE_FIELDS only
                    con.execute(
                        f"CREATE INDEX IF NOT EXISTS entries_{col} ON entries({col})"
                        f" WHERE {col} IS NOT NULL"
                    )
                con.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('origin', ?), ('format', '1')",
                    (info.origin,),
                )
            finally:
                con.close()

    # -- connections ---------------------------------------------------------
    def _connect(self, path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
        return connect(path, synchronous, self._connect_fn, self.read_only)

    def _read(self) -> _Reader:
        """The shared reader of this thread, for one statement at a time."""
        return _Reader(self)

    def _read_con(self) -> sqlite3.Connection:
        self.last_used = time.monotonic()
        local = self._local
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is None or local.gen != self._gen:
            gen = self._gen
            with translated(f"open {self.info.path}"):
                con = self._connect(self.path)
                con.execute("PRAGMA query_only=1")
            with self._lock:
                if gen != self._gen:  # closed meanwhile: this one goes on the new list
                    gen = self._gen
                self._readers.append(con)
            local.con, local.gen = con, gen
            if self.on_connect is not None:
                self.on_connect()
        return con

    def _write(self) -> sqlite3.Connection:
        if self.read_only:
            raise LogUnavailableError(f"log {self.info.path} is open read-only")
        self.last_used = time.monotonic()
        if self._writer is None:
            sync = {"sync": "FULL", "interval": "NORMAL", "off": "OFF"}[self.info.durability.mode]
            with translated(f"open {self.info.path}"):
                self._writer = self._connect(self.path, sync)
                self._writer.execute("PRAGMA cache_size=-16000")
            if self.on_connect is not None:
                self.on_connect()
        return self._writer

    # -- writing -------------------------------------------------------------
    def _load_builder(self, con: sqlite3.Connection, size: int) -> TileBuilder:
        partial: list[bytes] = []
        for level, idx in partial_tiles(size):
            data = _value(
                con.execute(
                    "SELECT CAST(data AS BLOB) AS data FROM tiles WHERE level=? AND idx=?",
                    (level, idx),
                ).fetchone()
            )
            partial.append(data if data is not None else b"")
        return TileBuilder(size, partial)

    def append(
        self,
        entries: Sequence[PreparedEntry],
        sign: SignFn | None,
        idempotency: Sequence[tuple[str, int, int]] = (),
    ) -> BatchResult:
        con = self._write()
        with (
            translated(f"append to {self.info.path}"),  # the lock file's open too
            self._process_lock(),
            transaction(con),
        ):
            if idempotency:
                used = [
                    k
                    for k, _, _ in idempotency
                    if con.execute("SELECT 1 FROM idempotency WHERE key=?", (k,)).fetchone()
                ]
                if used:
                    raise DuplicateRequestError(used)
            size = self._head_size(con)
            builder = self._builder
            if builder is None or builder.size != size:
                builder = self._load_builder(con, size)
            self._builder = None  # until this batch commits
            rows = [
                (size + i, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome)
                for i, e in enumerate(entries)
            ]
            try:
                con.executemany(_INSERT_ENTRY, rows)
            except sqlite3.IntegrityError as e:  # not the caller's conflict: tampering
                raise IntegrityError(
                    f"log {self.info.path}: entries exist beyond the head's size {size}"
                ) from e
            done = builder.add([e.leaf for e in entries])
            con.executemany(
                "INSERT OR REPLACE INTO tiles (level, idx, data) VALUES (?,?,?)",
                [(t.level, t.index, d) for t, d in done + builder.partials()],
            )
            new_size, root = builder.size, builder.root()
            note = sign(new_size, root) if sign is not None else ""
            if note:  # (one of that size already there lies beyond the head: a conflict)
                _insert_checkpoint(con, "INSERT", new_size, note)
            con.execute(
                "UPDATE head SET size=?, root=?, checkpoint=? WHERE id=1",
                (new_size, root, note),
            )
            if idempotency:
                now = now_us()
                con.executemany(
                    "INSERT INTO idempotency (key, first_index, count, size, created_us)"
                    " VALUES (?,?,?,?,?)",
                    [(k, size + off, n, new_size, now) for k, off, n in idempotency],
                )
        self._builder = builder
        self.batches += 1
        return BatchResult(size, len(entries), Head(new_size, root, note))

    def _head_size(self, con: sqlite3.Connection) -> int:
        row = con.execute("SELECT size FROM head").fetchone()
        if row is None:
            raise IntegrityError(f"log {self.info.path}: its head row is missing")
        (size,) = row
        return int(size)

    def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        con = self._write()
        with translated(f"sign {self.info.path}"), self._process_lock(), transaction(con):
            _insert_checkpoint(con, "INSERT OR IGNORE", size, note)
            con.execute(
                "UPDATE head SET checkpoint=? WHERE id=1 AND size=? AND root=?",
                (note, size, root),
            )

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        """Writers of other processes queue on a blocking flock, which wakes as
        soon as the lock is free; SQLite's own busy handler would poll with
        sleeps of up to 100 ms (measured: p99 1.1 s with two workers)."""
        if self._lock_fd is None:
            self._lock_fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def idempotent(self, key: str) -> IdempotentResult | None:
        with translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT first_index, count, size FROM idempotency WHERE key=?", (key,))
                .fetchone()
            )
        if row is None:
            return None
        first_index, count, size = row
        return IdempotentResult(first_index=first_index, count=count, size=size)

    def sync(self) -> None:
        if self._fsync_fn is not None:
            self._fsync_fn(Path(str(self.path) + "-wal"))
            self.fsyncs += 1
            return
        if self.info.durability.mode == "off":
            # synchronous=OFF: SQLite synced nothing, not even the database
            # file after moving WAL frames into it.
            fd = self._open_for_fsync(self.path)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._wal_fd is None:
            wal = Path(str(self.path) + "-wal")
            if not wal.exists():
                return
            self._wal_fd = self._open_for_fsync(wal)
        os.fsync(self._wal_fd)
        self.fsyncs += 1

    def _open_for_fsync(self, path: Path) -> int:
        """A descriptor to fsync through.  Failing to get one (no descriptor
        left) is a ResourceExhaustedError: nothing was lost yet, the next
        round retries; only a failed fsync itself is a durability failure."""
        with translated(f"sync {self.info.path}"):
            return os.open(path, os.O_RDONLY)

    # -- reading -------------------------------------------------------------
    def head(self) -> Head:
        with translated(f"read {self.info.path}"):
            row = self._read().execute("SELECT size, root, checkpoint FROM head").fetchone()
        if row is None:
            raise IntegrityError(f"log {self.info.path}: its head row is missing")
        size, root, checkpoint = row
        return Head(size, bytes(root), checkpoint)

    def entries(self, start: int, end: int) -> list[bytes]:
        with translated(f"read {self.info.path}"):
            rows = (
                self._read()
                .execute(
                    "SELECT CAST(data AS BLOB) FROM entries WHERE idx >= ? AND idx < ?"
                    " ORDER BY idx",
                    (start, end),
                )
                .fetchall()
            )
        return [bytes(data) for (data,) in rows]

    def _scan(
        self, columns: str, page: int, start: int, end: int | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of ``idx, columns`` rows in index order, on a connection of
        their own: a long scan must not hold the shared reader.  Rows stay
        tuples (``idx`` first): the callers unpack them."""
        with translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            stop = end if end is not None else 1 << 62
            pos = start
            while pos < stop:
                with translated(f"read {self.info.path}"):
                    rows = con.execute(
                        f"SELECT idx, {columns} FROM entries WHERE idx >= ? AND idx < ?"
                        f" ORDER BY idx LIMIT {page}",
                        (pos, stop),
                    ).fetchall()
                if not rows:
                    break
                yield rows
                last_idx = rows[-1][0]  # idx is the first column
                pos = last_idx + 1
        finally:
            con.close()

    def scan_entries(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[list[tuple[int, bytes]]]:
        yield from self._scan("CAST(data AS BLOB)", 65536, start, end)

    def scan_rows(self, start: int = 0, end: int | None = None) -> Iterator[list[StoredRow]]:
        columns = "CAST(data AS BLOB), received_us, actor, action, resource, outcome"
        for rows in self._scan(columns, 16384, start, end):
            yield [
                (idx, bytes(data), received_us, actor, action, resource, outcome)
                for idx, data, received_us, actor, action, resource, outcome in rows
            ]

    def extents(self) -> Extents:
        with (
            translated(f"read {self.info.path}"),
            contextlib.closing(self._connect(self.path)) as con,
            transaction(con, "DEFERRED"),  # one snapshot for all of it
        ):
            size = self._head_size(con)
            (last_entry,) = con.execute("SELECT max(idx) FROM entries").fetchone()
            (last_cp,) = con.execute("SELECT max(size) FROM checkpoints").fetchone()
            (top,) = con.execute("SELECT max(level) FROM tiles").fetchone()
            tiles: dict[int, tuple[int, int]] = {}
            for level in range(top + 1 if top is not None else 0):
                row = con.execute(
                    "SELECT idx, length(CAST(data AS BLOB)) / 32 FROM tiles"
                    " WHERE level = ? ORDER BY idx DESC LIMIT 1",
                    (level,),
                ).fetchone()
                if row is not None:
                    idx, width = row
                    tiles[level] = (idx, width)
        return Extents(size, last_entry, last_cp, tiles)

    def query(self, q: Query) -> Iterator[tuple[int, bytes]]:
        where = ["idx >= ?"]
        args: list[Any] = [q.from_index]
        if q.since_us is not None:
            where.append("received_us >= ?")
            args.append(q.since_us)
        if q.until_us is not None:
            where.append("received_us < ?")
            args.append(q.until_us)
        for col in ("actor", "action", "resource", "outcome"):
            v = getattr(q, col)
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = (
            f"SELECT idx, CAST(data AS BLOB) FROM entries WHERE {' AND '.join(where)} ORDER BY idx"
        )
        if q.limit is not None:
            sql += " LIMIT ?"
            args.append(q.limit)
        with translated(f"query {self.info.path}"):
            cur = self._read_con().execute(sql, args)
            while True:
                rows = cur.fetchmany(1000)
                if not rows:
                    return
                for idx, data in rows:
                    yield idx, bytes(data)

    def tile(self, level: int, index: int) -> bytes | None:
        with translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute(
                    "SELECT CAST(data AS BLOB) FROM tiles WHERE level=? AND idx=?", (level, index)
                )
                .fetchone()
            )
        data = _value(row)
        return bytes(data) if data is not None else None

    def iter_tiles(self) -> Iterator[tuple[int, int, bytes]]:
        with translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            with translated(f"read {self.info.path}"):
                cur = con.execute(
                    "SELECT level, idx, CAST(data AS BLOB) FROM tiles ORDER BY level, idx"
                )
                while rows := cur.fetchmany(1024):
                    for level, idx, data in rows:
                        yield level, idx, bytes(data)
        finally:
            con.close()

    def checkpoints(self, min_size: int = 0) -> Iterator[tuple[int, str]]:
        with translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            with translated(f"read {self.info.path}"):
                cur = con.execute(
                    "SELECT size, note FROM checkpoints WHERE size >= ? ORDER BY size", (min_size,)
                )
                while rows := cur.fetchmany(1024):
                    yield from rows  # (size, note)
        finally:
            con.close()

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
                .fetchone()
            )
        if row is None:
            return None
        size, note = row
        return int(size), str(note)

    def checkpoint(self, size: int) -> str | None:
        with translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT note FROM checkpoints WHERE size=?", (size,))
                .fetchone()
            )
        note = _value(row)
        return str(note) if note is not None else None

    def stats(self) -> dict[str, int | str]:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.stat(str(self.path) + suffix).st_size
        return {
            "durability": str(self.info.durability),
            "fsyncs": self.fsyncs,
            "batches": self.batches,
            "bytes_on_disk": size,
        }

    def close(self) -> None:
        """Close every connection and descriptor.  The store stays usable: a
        later read or write opens new ones (a log released by the LRU of open
        logs, engine/open_logs.py)."""
        with self._lock:
            self._gen += 1
            for con in self._readers:
                con.close()
            self._readers.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._builder = None


class _Reader:
    """A statement on the thread's reader connection, its rows fetched at
    once.  The LRU of open logs may close the store (every connection) while
    a request still holds the log: a statement meeting its connection closed
    runs again, once, on a new one."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        try:
            return _Rows(self._store._read_con().execute(sql, params).fetchall())
        except sqlite3.ProgrammingError as e:
            if "closed" not in str(e):
                raise
            return _Rows(self._store._read_con().execute(sql, params).fetchall())


class _Rows:
    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


def _insert_checkpoint(con: sqlite3.Connection, verb: str, size: int, note: str) -> None:
    con.execute(
        f"{verb} INTO checkpoints (size, note, created_us) VALUES (?,?,?)", (size, note, now_us())
    )


def _value(row: Any) -> Any:
    """The one column of a one-column row, or None for no row."""
    if row is None:
        return None
    (value,) = row
    return value
