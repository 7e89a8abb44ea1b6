"""The embedded SQLite driver: one database file per log plus a control database.

WAL mode; ``synchronous=FULL`` for ``sync`` durability, ``NORMAL`` plus an
fsync of the WAL at most every N ms for ``interval``, ``OFF`` for ``off``.
One transaction per batch writes the entries, the tiles that changed, the
head and, in ``sync`` mode, the signed checkpoint (in the other modes the
engine signs later, once an fsync made the tree durable: ``add_checkpoint``),
under ``BEGIN IMMEDIATE`` so that several
processes can append to one log: a batch re-reads the head and reloads its
tile state when another process moved it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ironlog.atomic import create_file, fsync_dir, make_dirs
from ironlog.core.entry import PreparedEntry, now_us
from ironlog.core.merkle import EMPTY_ROOT
from ironlog.core.tiles import TileBuilder, partial_tiles
from ironlog.errors import (
    ConflictError,
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    NotFoundError,
)
from ironlog.store.base import (
    DEFAULT_INDEXES,
    ApiKeyRecord,
    BatchResult,
    ControlStore,
    Driver,
    DuplicateRequestError,
    Durability,
    Extents,
    Head,
    IdempotentResult,
    LogInfo,
    LogStore,
    Query,
    SignFn,
    SigningKeyRecord,
    StoredRow,
    TenantRecord,
    parse_indexes,
)

BUSY_TIMEOUT_MS = 60_000

_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
    idx INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    received_us INTEGER NOT NULL,
    actor TEXT, action TEXT, resource TEXT, outcome TEXT
);
CREATE INDEX IF NOT EXISTS entries_received ON entries(received_us);
CREATE TABLE IF NOT EXISTS tiles(
    level INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints(
    size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency(
    key TEXT PRIMARY KEY, first_index INTEGER NOT NULL, count INTEGER NOT NULL,
    size INTEGER NOT NULL, created_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS head(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL, root BLOB NOT NULL, checkpoint TEXT NOT NULL
);
INSERT OR IGNORE INTO head VALUES (1, 0, X'{empty}', '');
""".replace("{empty}", EMPTY_ROOT.hex())

_CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants(
    name TEXT PRIMARY KEY, created_us INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    key_encrypted BLOB NOT NULL, public_key BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS logs(
    tenant TEXT NOT NULL REFERENCES tenants(name), name TEXT NOT NULL,
    origin TEXT NOT NULL UNIQUE, durability TEXT NOT NULL, created_us INTEGER NOT NULL,
    indexes TEXT NOT NULL DEFAULT '',
    public INTEGER NOT NULL DEFAULT 0,
    quarantined TEXT,
    signed_size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(tenant, name)
);
CREATE TABLE IF NOT EXISTS signing_keys(
    tenant TEXT NOT NULL REFERENCES tenants(name), fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL, ref BLOB NOT NULL, public_key BLOB NOT NULL,
    created_us INTEGER NOT NULL, retired_us INTEGER, PRIMARY KEY(tenant, fingerprint)
);
CREATE TABLE IF NOT EXISTS cosignatures(
    tenant TEXT NOT NULL, log TEXT NOT NULL, size INTEGER NOT NULL, witness TEXT NOT NULL,
    checkpoint TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY(tenant, log, size, witness)
);
CREATE TABLE IF NOT EXISTS api_keys(
    key_id TEXT PRIMARY KEY, tenant TEXT REFERENCES tenants(name), scopes TEXT NOT NULL,
    secret_hash BLOB NOT NULL, created_us INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '',
    expires_us INTEGER, revoked_us INTEGER, log TEXT
);
"""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """sqlite3's errors become ironlog's, here and only here."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise ConflictError(f"{what}: {e}") from e
    except sqlite3.Error as e:
        raise LogUnavailableError(f"{what}: storage error: {e}") from e


def _create_file(path: Path) -> bool:
    """Create an empty file with mode 0600 (SQLite gives -wal/-shm the same
    mode), durably: its directory entry is fsync'd."""
    return create_file(path, 0o600)


Connect = Callable[[Path], sqlite3.Connection]
"""Opens a connection in autocommit mode, usable from any thread."""


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes: not the WAL mode, not a checkpoint on
    close, not the -shm file if it cannot be created (a read-only copy of a
    data directory, a read-only mount, a full disk)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError:
        con.close()
        wal = Path(str(path) + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise  # committed data sits in the WAL: immutable would not see it
    # No WAL content: the file alone is the database, and it cannot change
    # under us (its directory is not writable), so no locking is needed.
    con = sqlite3.connect(
        uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False
    )
    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return con


def _sqlite3_connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )


def _connect(
    path: Path,
    synchronous: str = "FULL",
    connect: Connect = _sqlite3_connect,
    read_only: bool = False,
) -> sqlite3.Connection:
    if read_only:
        return _connect_read_only(path)
    con = connect(path)
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise LogUnavailableError(f"{path}: could not switch to WAL mode")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("PRAGMA journal_size_limit=67108864")
    con.execute("PRAGMA wal_autocheckpoint=8192")
    return con


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
        self._connect_fn = connect or _sqlite3_connect
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
        if not path.is_file():
            # Never a fresh empty database for a log the control store knows.
            raise IntegrityError(
                f"log {info.path}: its database file is missing (logs/{info.tenant}/{path.name})"
            )
        if read_only:
            return
        with _translated(f"open {info.path}"):
            con = self._connect(path)
            try:
                con.executescript(_LOG_SCHEMA)
                for col in info.indexes:  # names come from INDEXABLE_FIELDS only
                    con.execute(
                        f"CREATE INDEX IF NOT EXISTS entries_{col} ON entries({col})"
                        f" WHERE {col} IS NOT NULL"
                    )
                con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('origin', ?), ('format', '1')",
                    (info.origin,),
                )
            finally:
                con.close()

    # -- connections ---------------------------------------------------------
    def _connect(self, path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
        return _connect(path, synchronous, self._connect_fn, self.read_only)

    def _read(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            with _translated(f"open {self.info.path}"):
                con = self._connect(self.path)
                con.execute("PRAGMA query_only=1")
            self._local.con = con
            with self._lock:
                self._readers.append(con)
        return con

    def _write(self) -> sqlite3.Connection:
        if self.read_only:
            raise LogUnavailableError(f"log {self.info.path} is open read-only")
        if self._writer is None:
            sync = {"sync": "FULL", "interval": "NORMAL", "off": "OFF"}[self.info.durability.mode]
            with _translated(f"open {self.info.path}"):
                self._writer = self._connect(self.path, sync)
                self._writer.execute("PRAGMA cache_size=-16000")
        return self._writer

    # -- writing -------------------------------------------------------------
    def _load_builder(self, con: sqlite3.Connection, size: int) -> TileBuilder:
        partial: list[bytes] = []
        for level, idx in partial_tiles(size):
            row = con.execute(
                "SELECT CAST(data AS BLOB) FROM tiles WHERE level=? AND idx=?", (level, idx)
            ).fetchone()
            partial.append(row[0] if row else b"")
        return TileBuilder(size, partial)

    def append(
        self,
        entries: Sequence[PreparedEntry],
        sign: SignFn | None,
        idempotency: Sequence[tuple[str, int, int]] = (),
    ) -> BatchResult:
        con = self._write()
        with self._process_lock(), _translated(f"append to {self.info.path}"):
            con.execute("BEGIN IMMEDIATE")
            try:
                if idempotency:
                    used = [
                        k
                        for k, _, _ in idempotency
                        if con.execute("SELECT 1 FROM idempotency WHERE key=?", (k,)).fetchone()
                    ]
                    if used:
                        raise DuplicateRequestError(used)
                (size,) = con.execute("SELECT size FROM head").fetchone()
                builder = self._builder
                if builder is None or builder.size != size:
                    builder = self._load_builder(con, size)
                self._builder = None  # until this batch commits
                rows = [
                    (size + i, e.data, e.received_us, e.actor, e.action, e.resource, e.outcome)
                    for i, e in enumerate(entries)
                ]
                try:
                    con.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?)", rows)
                except sqlite3.IntegrityError as e:  # not the caller's conflict: tampering
                    raise IntegrityError(
                        f"log {self.info.path}: entries exist beyond the head's size {size}"
                    ) from e
                done = builder.add([e.leaf for e in entries])
                con.executemany(
                    "INSERT OR REPLACE INTO tiles VALUES (?,?,?)",
                    [(t.level, t.index, d) for t, d in done + builder.partials()],
                )
                new_size, root = builder.size, builder.root()
                note = sign(new_size, root) if sign is not None else ""
                if note:
                    con.execute(
                        "INSERT INTO checkpoints VALUES (?,?,?)", (new_size, note, now_us())
                    )
                con.execute(
                    "UPDATE head SET size=?, root=?, checkpoint=? WHERE id=1",
                    (new_size, root, note),
                )
                if idempotency:
                    now = now_us()
                    con.executemany(
                        "INSERT INTO idempotency VALUES (?,?,?,?,?)",
                        [(k, size + off, n, new_size, now) for k, off, n in idempotency],
                    )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        self._builder = builder
        self.batches += 1
        return BatchResult(size, len(entries), Head(new_size, root, note))

    def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        con = self._write()
        with self._process_lock(), _translated(f"sign {self.info.path}"):
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(
                    "INSERT OR IGNORE INTO checkpoints VALUES (?,?,?)", (size, note, now_us())
                )
                con.execute(
                    "UPDATE head SET checkpoint=? WHERE id=1 AND size=? AND root=?",
                    (note, size, root),
                )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

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
        with _translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT first_index, count, size FROM idempotency WHERE key=?", (key,))
                .fetchone()
            )
        return IdempotentResult(*row) if row else None

    def sync(self) -> None:
        if self._fsync_fn is not None:
            self._fsync_fn(Path(str(self.path) + "-wal"))
            self.fsyncs += 1
            return
        if self.info.durability.mode == "off":
            # synchronous=OFF: SQLite synced nothing, not even the database
            # file after moving WAL frames into it.
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._wal_fd is None:
            wal = Path(str(self.path) + "-wal")
            if not wal.exists():
                return
            self._wal_fd = os.open(wal, os.O_RDONLY)
        os.fsync(self._wal_fd)
        self.fsyncs += 1

    # -- reading -------------------------------------------------------------
    def head(self) -> Head:
        with _translated(f"read {self.info.path}"):
            size, root, cp = (
                self._read().execute("SELECT size, root, checkpoint FROM head").fetchone()
            )
        return Head(size, bytes(root), cp)

    def entries(self, start: int, end: int) -> list[bytes]:
        with _translated(f"read {self.info.path}"):
            rows = (
                self._read()
                .execute(
                    "SELECT CAST(data AS BLOB) FROM entries WHERE idx >= ? AND idx < ?"
                    " ORDER BY idx",
                    (start, end),
                )
                .fetchall()
            )
        return [bytes(r[0]) for r in rows]

    def _scan(
        self, columns: str, page: int, start: int, end: int | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of ``idx, columns`` rows in index order, on a connection of
        their own: a long scan must not hold the shared reader."""
        with _translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            stop = end if end is not None else 1 << 62
            pos = start
            while pos < stop:
                with _translated(f"read {self.info.path}"):
                    rows = con.execute(
                        f"SELECT idx, {columns} FROM entries WHERE idx >= ? AND idx < ?"
                        f" ORDER BY idx LIMIT {page}",
                        (pos, stop),
                    ).fetchall()
                if not rows:
                    break
                yield rows
                pos = rows[-1][0] + 1
        finally:
            con.close()

    def scan_entries(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[list[tuple[int, bytes]]]:
        yield from self._scan("CAST(data AS BLOB)", 65536, start, end)

    def scan_rows(self, start: int = 0, end: int | None = None) -> Iterator[list[StoredRow]]:
        columns = "CAST(data AS BLOB), received_us, actor, action, resource, outcome"
        for rows in self._scan(columns, 16384, start, end):
            yield [(r[0], bytes(r[1]), *r[2:]) for r in rows]

    def extents(self) -> Extents:
        with (
            _translated(f"read {self.info.path}"),
            contextlib.closing(self._connect(self.path)) as con,
        ):
            con.execute("BEGIN")  # one snapshot for all of it
            try:
                (size,) = con.execute("SELECT size FROM head").fetchone()
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
                        tiles[level] = (row[0], row[1])
            finally:
                con.execute("COMMIT")
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
        with _translated(f"query {self.info.path}"):
            cur = self._read().execute(sql, args)
            while True:
                rows = cur.fetchmany(1000)
                if not rows:
                    return
                for idx, data in rows:
                    yield idx, bytes(data)

    def tile(self, level: int, index: int) -> bytes | None:
        with _translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute(
                    "SELECT CAST(data AS BLOB) FROM tiles WHERE level=? AND idx=?", (level, index)
                )
                .fetchone()
            )
        return bytes(row[0]) if row else None

    def iter_tiles(self) -> Iterator[tuple[int, int, bytes]]:
        with _translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            with _translated(f"read {self.info.path}"):
                cur = con.execute(
                    "SELECT level, idx, CAST(data AS BLOB) FROM tiles ORDER BY level, idx"
                )
                while rows := cur.fetchmany(1024):
                    for level, idx, data in rows:
                        yield level, idx, bytes(data)
        finally:
            con.close()

    def checkpoints(self, min_size: int = 0) -> Iterator[tuple[int, str]]:
        with _translated(f"read {self.info.path}"):
            con = self._connect(self.path)
        try:
            with _translated(f"read {self.info.path}"):
                cur = con.execute(
                    "SELECT size, note FROM checkpoints WHERE size >= ? ORDER BY size", (min_size,)
                )
                while rows := cur.fetchmany(1024):
                    yield from rows
        finally:
            con.close()

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with _translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
                .fetchone()
            )
        return (int(row[0]), str(row[1])) if row else None

    def checkpoint(self, size: int) -> str | None:
        with _translated(f"read {self.info.path}"):
            row = (
                self._read()
                .execute("SELECT note FROM checkpoints WHERE size=?", (size,))
                .fetchone()
            )
        return str(row[0]) if row else None

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
        with self._lock:
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


class SqliteControlStore(ControlStore):
    def __init__(self, path: Path, read_only: bool = False) -> None:
        if not read_only and not path.exists():
            _create_file(path)
        self._lock = threading.Lock()
        with _translated("open control database"):
            self._con = _connect(path, read_only=read_only)
            if read_only:
                return
            self._con.executescript(_CONTROL_SCHEMA)
            cols = {r[1] for r in self._con.execute("PRAGMA table_info(api_keys)")}
            if "log" not in cols:  # data directories from before keys had a log
                self._con.execute("ALTER TABLE api_keys ADD COLUMN log TEXT")
            cols = {r[1] for r in self._con.execute("PRAGMA table_info(logs)")}
            for col, decl in (
                ("quarantined", "TEXT"),
                ("signed_size", "INTEGER NOT NULL DEFAULT 0"),
            ):
                if col not in cols:  # data directories from before quarantine
                    self._con.execute(f"ALTER TABLE logs ADD COLUMN {col} {decl}")

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock, _translated("control database"):
            return self._con.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock, _translated("control database"):
            return self._con.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._lock, _translated("control database"):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.execute(sql, args)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def add_signing_key(self, record: SigningKeyRecord) -> None:
        self._exec(
            "INSERT INTO signing_keys VALUES (?,?,?,?,?,?,?)",
            (
                record.tenant,
                record.fingerprint,
                record.kind,
                record.ref,
                record.public_key,
                record.created_us,
                record.retired_us,
            ),
        )

    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        rows = self._all(
            "SELECT * FROM signing_keys WHERE tenant=? ORDER BY created_us, fingerprint", (tenant,)
        )
        return [
            SigningKeyRecord(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5], r[6]) for r in rows
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

    KEEP_COSIGNED_SIZES = 64

    def add_cosignatures(
        self, tenant: str, log: str, size: int, checkpoint: str, lines: dict[str, str]
    ) -> None:
        with self._lock, _translated("control database"):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany(
                    "INSERT OR REPLACE INTO cosignatures VALUES (?,?,?,?,?,?)",
                    [(tenant, log, size, w, checkpoint, line) for w, line in lines.items()],
                )
                self._con.execute(
                    "DELETE FROM cosignatures WHERE tenant=? AND log=? AND size < ("
                    " SELECT MIN(size) FROM (SELECT DISTINCT size FROM cosignatures"
                    " WHERE tenant=? AND log=? ORDER BY size DESC LIMIT ?))",
                    (tenant, log, tenant, log, self.KEEP_COSIGNED_SIZES),
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def cosignatures(self, tenant: str, log: str) -> dict[int, dict[str, tuple[str, str]]]:
        out: dict[int, dict[str, tuple[str, str]]] = {}
        for size, w, cp, line in self._all(
            "SELECT size, witness, checkpoint, line FROM cosignatures WHERE tenant=? AND log=?",
            (tenant, log),
        ):
            out.setdefault(int(size), {})[str(w)] = (str(cp), str(line))
        return out

    def get_setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE key=?", (key,))
        return str(row[0]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._exec("INSERT OR REPLACE INTO settings VALUES (?,?)", (key, value))

    def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Several statements, all or nothing."""
        with self._lock, _translated("control database"):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._con.execute(sql, args)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    @staticmethod
    def _insert_tenant(
        record: TenantRecord, key: SigningKeyRecord | None
    ) -> list[tuple[str, Sequence[Any]]]:
        out: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO tenants VALUES (?,?,?,?,?)",
                (
                    record.name,
                    record.created_us,
                    int(record.disabled),
                    record.key_encrypted,
                    record.public_key,
                ),
            )
        ]
        if key is not None:
            out.append(
                (
                    "INSERT INTO signing_keys VALUES (?,?,?,?,?,?,?)",
                    (
                        key.tenant,
                        key.fingerprint,
                        key.kind,
                        key.ref,
                        key.public_key,
                        key.created_us,
                        key.retired_us,
                    ),
                )
            )
        return out

    def create_tenant(self, record: TenantRecord, key: SigningKeyRecord | None = None) -> None:
        if self.get_tenant(record.name) is not None:
            raise ConflictError(f"tenant {record.name!r} already exists")
        try:
            self._transaction(self._insert_tenant(record, key))
        except ConflictError as e:
            raise ConflictError(f"tenant {record.name!r} already exists") from e

    @staticmethod
    def _tenant(row: Any) -> TenantRecord:
        return TenantRecord(row[0], row[1], bool(row[2]), bytes(row[3]), bytes(row[4]))

    def get_tenant(self, name: str) -> TenantRecord | None:
        row = self._one("SELECT * FROM tenants WHERE name=?", (name,))
        return self._tenant(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [self._tenant(r) for r in self._all("SELECT * FROM tenants ORDER BY name")]

    def create_log(
        self, info: LogInfo, new_tenant: tuple[TenantRecord, SigningKeyRecord] | None = None
    ) -> None:
        statements: list[tuple[str, Sequence[Any]]] = []
        if new_tenant is not None:
            if self.get_tenant(info.tenant) is not None:
                raise ConflictError(f"tenant {info.tenant!r} already exists")
            statements = self._insert_tenant(*new_tenant)
        elif self.get_tenant(info.tenant) is None:
            raise NotFoundError(f"tenant {info.tenant!r} does not exist")
        statements.append(
            (
                "INSERT INTO logs (tenant, name, origin, durability, created_us, indexes, public)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    info.tenant,
                    info.name,
                    info.origin,
                    str(info.durability),
                    info.created_us,
                    ",".join(info.indexes),
                    int(info.public),
                ),
            )
        )
        try:
            self._transaction(statements)
        except ConflictError as e:
            raise ConflictError(f"log {info.path!r} already exists") from e

    @staticmethod
    def _log(row: Any) -> LogInfo:
        """A log's row; one whose columns do not parse (edited outside ironlog)
        comes back ``damaged`` with defaults, so that it never stops a listing."""
        damaged, durability, indexes = None, Durability(), DEFAULT_INDEXES
        try:
            durability = Durability.parse(row[3])
            indexes = parse_indexes(row[5])
        except (IronlogError, TypeError, ValueError, AttributeError) as e:
            damaged = f"its durability or indexes column does not parse: {e}"
        if len(row) > 8 and not _is_size(row[8]):
            damaged = "its signed_size column is not a size"
        return LogInfo(
            row[0],
            row[1],
            row[2],
            durability,
            row[4],
            indexes,
            bool(row[6]),
            row[7] if len(row) > 7 else None,  # a read-only copy from before quarantine
            damaged=damaged and f"control.db row of log {row[0]}/{row[1]}: {damaged}",
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
        if not _is_size(row[0]):
            raise IntegrityError(
                f"control.db row of log {tenant}/{name}: its signed_size column is not a size"
            )
        return int(row[0])

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

    def set_tenant_disabled(self, name: str, disabled: bool) -> None:
        if self.get_tenant(name) is None:
            raise NotFoundError(f"tenant {name!r} does not exist")
        self._exec("UPDATE tenants SET disabled=? WHERE name=?", (int(disabled), name))

    def create_api_key(self, record: ApiKeyRecord) -> None:
        self._exec(
            "INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.key_id,
                record.tenant,
                ",".join(record.scopes),
                record.secret_hash,
                record.created_us,
                record.name,
                record.expires_us,
                record.revoked_us,
                record.log,
            ),
        )

    @staticmethod
    def _key(row: Any) -> ApiKeyRecord:
        return ApiKeyRecord(
            row[0],
            row[1],
            tuple(s for s in row[2].split(",") if s),
            bytes(row[3]),
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
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


class SqliteDriver(Driver):
    """``<root>/control.db`` and ``<root>/logs/<tenant>/<log>.db``.

    ``read_only``: nothing is ever written (a read-only copy, a full disk).
    ``connect``/``fsync``: see SqliteLogStore (log databases only)."""

    def __init__(
        self,
        root: Path,
        connect: Connect | None = None,
        fsync: Callable[[Path], None] | None = None,
        read_only: bool = False,
    ) -> None:
        self.root = root
        self.read_only = read_only
        self._control: SqliteControlStore | None = None
        self._connect = connect
        self._fsync = fsync

    def control(self) -> ControlStore:
        if self._control is None:
            self._control = SqliteControlStore(self.root / "control.db", self.read_only)
        return self._control

    def log_path(self, info: LogInfo) -> Path:
        return self.root / "logs" / info.tenant / f"{info.name}.db"

    def _writable(self) -> None:
        if self.read_only:
            raise InvalidRequestError(f"{self.root} is open read-only")

    def create_log(self, info: LogInfo) -> bool:
        self._writable()
        path = self.log_path(info)
        try:
            created = _create_file(path)
        except OSError as e:
            raise LogUnavailableError(
                f"cannot create the storage of log {info.path}: {e.strerror}"
            ) from e
        if not created and path.stat().st_size > 0:
            existing = SqliteLogStore(path, info, self._connect, self._fsync, read_only=True)
            with contextlib.closing(existing) as old:
                if old.head().size or old.extents().last_entry is not None:
                    raise ConflictError(
                        f"log {info.path}: a database holding entries exists at "
                        f"logs/{info.tenant}/{path.name} without a record; move it away first"
                    )
        # the schema, committed with synchronous=FULL
        SqliteLogStore(path, info, self._connect, self._fsync).close()
        return created

    def open_log(self, info: LogInfo) -> LogStore:
        return SqliteLogStore(self.log_path(info), info, self._connect, self._fsync, self.read_only)

    def _files(self, info: LogInfo) -> list[Path]:
        path = self.log_path(info)
        return [Path(str(path) + s) for s in ("", "-wal", "-shm", ".lock")]

    def drop_log(self, info: LogInfo) -> None:
        self._writable()
        for f in self._files(info):
            f.unlink(missing_ok=True)
        fsync_dir(self.log_path(info).parent)

    def retire_log(self, info: LogInfo) -> str:
        self._writable()
        dest = self.root / "deleted" / info.tenant / f"{info.name}.{now_us()}"
        make_dirs(dest)
        for f in self._files(info):
            if f.exists():
                os.replace(f, dest / f.name)
        fsync_dir(dest)
        fsync_dir(self.log_path(info).parent)
        return str(dest.relative_to(self.root))

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None


def _is_size(value: object) -> bool:
    """A tree size as stored in control.db: a non-negative integer (not text)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
