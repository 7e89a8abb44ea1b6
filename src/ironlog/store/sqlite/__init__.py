"""The embedded SQLite driver: ``<root>/control.db`` plus one database per
log, ``<root>/logs/<tenant>/<log>.db``.

    db.py        connecting, pragmas, read-only connections, the one
                 ``transaction()`` helper, sqlite3's errors translated, and
                 the migrations applied (``PRAGMA user_version``)
    logstore.py  a log's database (entries, tiles, checkpoints, head)
    control.py   the control database (tenants, logs, keys, settings)

Each database's layout is versioned (``store/migrations.py``): opening one
brings it to the last version in one transaction, and one written by a newer
ironlog is refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ironlog.atomic import fsync_dir, make_dirs
from ironlog.core.entry import now_us
from ironlog.errors import ConflictError, InvalidRequestError, LogUnavailableError
from ironlog.store.base import ControlStore, Driver, LogInfo, LogStore
from ironlog.store.sqlite.control import CONTROL_MIGRATIONS, SqliteControlStore
from ironlog.store.sqlite.db import BUSY_TIMEOUT_MS, Connect, create_file
from ironlog.store.sqlite.logstore import LOG_MIGRATIONS, SqliteLogStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CONTROL_MIGRATIONS",
    "LOG_MIGRATIONS",
    "Connect",
    "SqliteControlStore",
    "SqliteDriver",
    "SqliteLogStore",
]


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
            created = create_file(path)
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
