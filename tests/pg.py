"""A throwaway PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl start``
as the ``postgres`` user (PostgreSQL refuses to run as root) in a temporary
directory that user owns, on a free port, its socket in that directory.

It holds a non-superuser role ``ironlog`` (password ``ironlog``) and one
database per call of :meth:`PgCluster.new_database`, owned by that role.
Durability is turned off (``fsync=off``) unless ``durable``: these clusters
die with the test session, and the driver's durability is PostgreSQL's, not
under test here (benchmarks/bench_postgres.py turns it on).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ironlog.store.base import Driver

ROLE = "ironlog"
PASSWORD = "pw-s3cret"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, bindir: Path, durable: bool = False) -> None:
        """``durable``: fsync and synchronous commits on (benchmarks)."""
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="ironlog-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._n = 0
        self._lock = threading.Lock()
        os.chmod(self.root, 0o700)
        self._as_user = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        if self._as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.root} -c max_connections=200"
        )
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            opts,
            "-w",
            "start",
        )
        self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, timeout=60)

    def admin(self, sql: str, db: str = "postgres") -> None:
        """Run ``sql`` as the superuser."""
        self._run(
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        )

    def url(self, db: str) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh empty database owned by the ironlog role; its URL."""
        with self._lock:
            self._n += 1
            name = f"t{self._n}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster(durable: bool = False) -> Iterator[PgCluster]:
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run `make sysdeps` (Debian: postgresql)")
    c = PgCluster(bindir, durable)
    try:
        yield c
    finally:
        c.stop()


def postgres_factory(c: PgCluster) -> Callable[[Path], Driver]:
    """Drivers as ``SqliteDriver(path)`` makes them: the same path, the same
    database (a fresh one, initialised, for a path not seen before)."""
    from ironlog.store.postgres import PostgresDriver

    urls: dict[Path, str] = {}

    def make(path: Path) -> Driver:
        if path not in urls:
            urls[path] = c.new_database()
        return PostgresDriver(urls[path], migrate=True)

    return make
