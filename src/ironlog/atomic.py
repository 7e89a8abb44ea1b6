"""Replacing a file atomically: write a temporary file beside it, then rename.

Standard library only, so the pure-core client can use it too."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def replace_atomically(path: Path, *, fsync: bool = True) -> Iterator[TextIO]:
    """Yield a text file; on success it replaces ``path`` in one rename (after
    an fsync unless told otherwise), on failure it is removed and ``path`` is
    untouched.  The directory must exist."""
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
