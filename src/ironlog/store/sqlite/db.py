"""SQLite databases: connecting (pragmas, read-only connections), the one
``transaction()`` helper, the translation of sqlite3's errors, and applying
the versioned migrations of ``store/migrations.py`` (``PRAGMA user_version``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from ironlog.atomic import create_file as _create_file
from ironlog.errors import ConflictError, LogUnavailableError, resource_exhausted
from ironlog.store.migrations import Migrations

BUSY_TIMEOUT_MS = 60_000

Connect = Callable[[Path], sqlite3.Connection]
"""Opens a connection in autocommit mode, usable from any thread."""


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """sqlite3's errors become ironlog's, here and only here.  Running out of
    descriptors, memory or disk, or a database staying locked, is a
    ResourceExhaustedError (a 503 with Retry-After), never an integrity failure."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise ConflictError(f"{what}: {e}") from e
    except (sqlite3.Error, OSError, MemoryError) as e:
        exhausted = resource_exhausted(e, what)
        if exhausted is not None:
            raise exhausted from e
        if not isinstance(e, sqlite3.Error):
            raise
        raise LogUnavailableError(f"{what}: storage error: {e}") from e


@contextlib.contextmanager
def transaction(con: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """All or nothing on ``con`` (an autocommit connection): ``BEGIN <mode>``,
    then ``COMMIT`` when the block ends, ``ROLLBACK`` when it raises (unless
    SQLite already rolled back).  ``IMMEDIATE`` takes the write lock at once
    (writers); ``DEFERRED`` gives readers one snapshot for several queries."""
    con.execute(f"BEGIN {mode}")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def create_file(path: Path) -> bool:
    """Create an empty file with mode 0600 (SQLite gives -wal/-shm the same
    mode), durably: its directory entry is fsync'd."""
    return _create_file(path, 0o600)


def connect_read_only(path: Path) -> sqlite3.Connection:
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


def sqlite3_connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )


def connect(
    path: Path,
    synchronous: str = "FULL",
    connect_fn: Connect = sqlite3_connect,
    read_only: bool = False,
) -> sqlite3.Connection:
    """A connection in WAL mode with ironlog's pragmas (``read_only``: see
    ``connect_read_only``)."""
    if read_only:
        return connect_read_only(path)
    con = connect_fn(path)
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise LogUnavailableError(f"{path}: could not switch to WAL mode")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("PRAGMA journal_size_limit=67108864")
    con.execute("PRAGMA wal_autocheckpoint=8192")
    return con


def user_version(con: sqlite3.Connection) -> int:
    """The version of the database's layout (0: made before versions, or new)."""
    return int(con.execute("PRAGMA user_version").fetchone()[0])


def check_version(con: sqlite3.Connection, migrations: Migrations, what: str) -> int:
    """The database's layout version; ``migrations.refuse`` when it is newer
    than this code.  Reads only (for read-only connections)."""
    found = user_version(con)
    migrations.pending(found, what)
    return found


def migrate(con: sqlite3.Connection, migrations: Migrations, what: str) -> tuple[int, int]:
    """Bring the database to the last version of ``migrations``, every pending
    step in one transaction (all or nothing); returns (found, now).  Under the
    write lock the version is read again: of several processes opening one
    old database at once, one migrates and the others find it done."""
    found = check_version(con, migrations, what)
    if found == migrations.latest:
        return found, found
    with transaction(con):
        found = user_version(con)
        for step in migrations.pending(found, what):
            for statement in step.statements:
                if isinstance(statement, str):
                    con.execute(statement)
                else:
                    statement(con)
        # PRAGMA takes no parameters; latest is an int of ours.
        con.execute(f"PRAGMA user_version={int(migrations.latest)}")
    return found, migrations.latest
