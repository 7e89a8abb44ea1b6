"""The data directory: creating it (``init_data_dir``), and what marks one.

```
<data>/                 0700
  master.key            0600  the master key (engine/master_key.py)
  control.db            0600  settings, tenants, logs (the control store)
  logs/<tenant>/<log>.db 0600 one database per log
```
"""

from __future__ import annotations

import os
from pathlib import Path

from ironlog.atomic import make_dirs
from ironlog.engine.master_key import create_master_key
from ironlog.errors import ConfigurationError
from ironlog.store.sqlite import SqliteDriver

DEFAULT_ORIGIN_PREFIX = "ironlog.localhost"
_DATA_DIR_MARKERS = ("control.db", "master.key")


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


def init_data_dir(data_dir: Path, origin_prefix: str = DEFAULT_ORIGIN_PREFIX) -> bool:
    """Create the data directory (0700), its master key and control database.

    Idempotent; returns True if a new master key was written.  Refuses a
    non-empty directory that is not an ironlog data directory (changing
    nothing, not even its mode)."""
    _refuse_foreign_dir(data_dir)
    try:
        make_dirs(data_dir)
        os.chmod(data_dir, 0o700)
    except OSError as e:
        raise ConfigurationError(f"cannot create data directory {data_dir}: {e.strerror}") from e
    created = create_master_key(data_dir)
    driver = SqliteDriver(data_dir)
    try:
        control = driver.control()
        if control.get_setting("origin_prefix") is None:
            control.set_setting("origin_prefix", origin_prefix.strip("/"))
    finally:
        driver.close()
    return created
