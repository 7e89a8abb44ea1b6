"""The data directory: creating it (``init_data_dir``), and what marks one.

```
<data>/                 0700
  master.key            0600  the master key (engine/master_key.py)
  control.db            0600  settings, tenants, logs (the control store)
  logs/<tenant>/<log>.db 0600 one database per log
```

With a PostgreSQL database (``--database postgresql://...``, env
``IRONLOG_DATABASE_URL``, ``database = "..."`` in the service's config) the
data directory keeps only the master key (and the service's small local
files); the control store and the logs are in the database (docs/postgres.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from ironlog.atomic import make_dirs
from ironlog.engine.master_key import create_master_key
from ironlog.errors import ConfigurationError
from ironlog.store.base import Driver
from ironlog.store.sqlite import SqliteDriver

DEFAULT_ORIGIN_PREFIX = "ironlog.localhost"
_DATA_DIR_MARKERS = ("control.db", "master.key")
DATABASE_ENV = "IRONLOG_DATABASE_URL"


def database_url(database: str | None = None) -> str | None:
    """The database to use: ``database``, else ``IRONLOG_DATABASE_URL``, else
    None (the embedded SQLite store in the data directory); ``""`` says the
    embedded store whatever the environment holds."""
    url = database if database is not None else os.environ.get(DATABASE_ENV)
    if not url:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "database must be a postgresql:// URL (without one, the data directory holds"
            " the embedded store)"
        )
    return url


def open_driver(
    data_dir: Path, database: str | None = None, *, read_only: bool = False, init: bool = False
) -> Driver:
    """The driver of this deployment: PostgreSQL when a database URL is given
    (``init``: create or upgrade its schema), else SQLite in ``data_dir``."""
    url = database_url(database)
    if url is None:
        return SqliteDriver(data_dir, read_only=read_only)
    try:
        from ironlog.store.postgres import PostgresDriver
    except ImportError as e:
        raise ConfigurationError(
            "a PostgreSQL database needs the postgres extra: pip install 'ironlog[postgres]'"
        ) from e
    return PostgresDriver(url, migrate=init)


def redact(url: str) -> str:
    """A database URL without its password (nor its query, which may hold one),
    for messages."""
    url = url.partition("?")[0]
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.partition(':')[0]}@{tail}"


def _refuse_foreign_dir(data_dir: Path) -> None:
    """A directory holding other things is not ours to take over (and chmod)."""
    try:
        if not data_dir.is_dir() or any((data_dir / m).exists() for m in _DATA_DIR_MARKERS):
            return
        with os.scandir(data_dir) as it:
            if next(it, None) is None:
                return
    except OSError as e:
        raise ConfigurationError(f"cannot read data directory {data_dir}: {e.strerror}") from e
    raise ConfigurationError(
        f"{data_dir} is not empty and is not an ironlog data directory (no control.db or "
        "master.key): give an empty or new directory"
    )


PRIVATE_UMASK = 0o077  # set by the command and the service: files 0600, directories 0700


def init_data_dir(
    data_dir: Path, origin_prefix: str = DEFAULT_ORIGIN_PREFIX, database: str | None = None
) -> bool:
    """Create the data directory (0700), its master key and control database
    (with a PostgreSQL ``database``, see ``database_url``: its schema).

    Idempotent; returns True if a new master key was written.  Refuses a
    non-empty directory that is not an ironlog data directory (changing
    nothing, not even its mode)."""
    _refuse_foreign_dir(data_dir)
    url = database_url(database)  # a bad URL stops here, before anything is created
    # The database's schema first: one that cannot be reached leaves no master key.
    pg = open_driver(data_dir, url, init=True) if url is not None else None
    try:
        try:
            make_dirs(data_dir)
            os.chmod(data_dir, 0o700)
        except OSError as e:
            raise ConfigurationError(
                f"cannot create data directory {data_dir}: {e.strerror}"
            ) from e
        created = create_master_key(data_dir)
        driver = pg or SqliteDriver(data_dir)
        try:
            control = driver.control()
            if control.get_setting("origin_prefix") is None:
                control.set_setting("origin_prefix", origin_prefix.strip("/"))
        finally:
            driver.close()
    finally:
        if pg is not None:
            pg.close()
    return created
