"""Durable file-system changes: replacing a file atomically, creating
directories and files so that a power cut cannot drop their directory entry.

A new file, directory or rename is durable only once the directory holding
it is fsync'd; every creation in ironlog goes through these helpers.

Standard library only, so the pure-core client can use it too."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (new files, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """``mkdir -p`` where each directory created gets ``mode`` and is made
    durable with an fsync of its parent."""
    missing: list[Path] = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        os.chmod(d, mode)  # mkdir's mode is masked by the umask
        fsync_dir(d.parent)


def create_file(path: Path, mode: int = 0o600, *, exclusive: bool = False) -> bool:
    """Create ``path`` empty (and its directories) durably; returns False if
    it existed (FileExistsError instead when ``exclusive``)."""
    make_dirs(path.parent)
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        if exclusive:
            raise
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return True


@contextlib.contextmanager
def replace_atomically(path: Path, *, fsync: bool = True) -> Iterator[TextIO]:
    """Yield a text file; on success it replaces ``path`` in one rename (after
    an fsync of the file and then of the directory, unless told otherwise), on
    failure it is removed and ``path`` is untouched.  The directory must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
