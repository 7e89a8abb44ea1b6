"""A power cut, simulated: a SQLite VFS (apsw) that acts as the operating
system's page cache and a disk.

Every write goes to an in-memory image of its file, which all connections of
the process share (as they share the page cache); only ``xSync`` (SQLite's
fsync, or ``fsync`` below, the store's own fsync of the WAL) copies a file's
image to the real file, which plays the disk.  ``cut()`` drops power: from
then on nothing reaches the disk, and ``restore()`` (after the logs were
closed) forgets every image, so what remains is exactly what was synced.  A
file created through the VFS and never synced disappears, as a new directory
entry does without an fsync.

The store reaches it through ``SqliteDriver(root, connect, fsync)``: apsw
connections behind a thin adapter speaking the part of sqlite3's API the
store uses.  apsw carries its own SQLite, so the VFS cannot be used from the
sqlite3 module itself.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import apsw

_names = itertools.count()


class _Image:
    """One file as the page cache holds it, and the ranges not on disk yet."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        self.dirty: list[tuple[int, int]] = []
        self.resized = False


class _File(apsw.VFSFile):  # type: ignore[misc]
    def __init__(self, vfs: PowerLossVFS, path: str, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)  # the real file: locks, shared memory
        self.vfs = vfs
        self.image = vfs.image(path)

    def xRead(self, amount: int, offset: int) -> bytes:
        with self.vfs.lock:
            return bytes(self.image.data[offset : offset + amount])

    def xWrite(self, data: bytes, offset: int) -> None:
        with self.vfs.lock:
            if self.vfs.dead:
                return
            img = self.image.data
            if len(img) < offset:
                img.extend(bytes(offset - len(img)))
            img[offset : offset + len(data)] = data
            self.image.dirty.append((offset, len(data)))

    def xTruncate(self, newsize: int) -> None:
        with self.vfs.lock:
            if self.vfs.dead:
                return
            del self.image.data[newsize:]
            self.image.resized = True

    def xFileSize(self) -> int:
        with self.vfs.lock:
            return len(self.image.data)

    def xSync(self, flags: int) -> None:
        self.vfs.sync(self.image.path)


class PowerLossVFS(apsw.VFS):  # type: ignore[misc]
    def __init__(self) -> None:
        self.vfs_name = f"powerloss{next(_names)}"
        super().__init__(self.vfs_name, "")
        self.lock = threading.RLock()
        self.images: dict[str, _Image] = {}
        self.unsynced_new: set[str] = set()  # created here, never synced
        self.dead = False
        self.syncs = 0

    # -- the VFS ---------------------------------------------------------------
    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        path = name.filename() if isinstance(name, apsw.URIFilename) else name
        if path is None:  # SQLite's temporary files: not part of the model
            return apsw.VFSFile("", name, flags)
        with self.lock:
            if path not in self.images and not os.path.exists(path):
                self.unsynced_new.add(path)
            return _File(self, path, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        with self.lock:
            if self.dead:
                return
            self.images.pop(filename, None)
            self.unsynced_new.discard(filename)
            super().xDelete(filename, syncdir)

    def image(self, path: str) -> _Image:
        with self.lock:
            img = self.images.get(path)
            if img is None:
                img = self.images[path] = _Image(path)
            return img

    def sync(self, path: str) -> None:
        """fsync: the file's image reaches the disk."""
        with self.lock:
            img = self.images.get(path)
            if self.dead or img is None:
                return
            with open(path, "r+b") as f:
                for offset, length in img.dirty:
                    f.seek(offset)
                    f.write(img.data[offset : offset + length])
                if img.resized or os.fstat(f.fileno()).st_size > len(img.data):
                    f.truncate(len(img.data))
            img.dirty.clear()
            img.resized = False
            self.unsynced_new.discard(path)
            self.syncs += 1

    # -- the power -------------------------------------------------------------
    def cut(self) -> None:
        """Power off: nothing more reaches the disk (close the logs, then restore)."""
        with self.lock:
            self.dead = True

    def restore(self) -> None:
        """Power on again: memory is gone, the disk is what was synced."""
        with self.lock:
            for path in self.unsynced_new:
                if os.path.exists(path):
                    os.unlink(path)
            self.unsynced_new.clear()
            self.images.clear()
            self.dead = False

    def fsync(self, path: Path) -> None:
        """The store's fsync hook.  After the cut it fails: the machine is off,
        so nothing the process does afterwards (recording the size it thinks
        durable in the control database, say) may happen as if it had worked."""
        if self.dead:
            raise OSError(5, "power is off")
        self.sync(str(path))

    def connect(self, path: Path) -> _Connection:
        """The store's connection hook."""
        con = apsw.Connection(str(path), vfs=self.vfs_name)
        con.execute("PRAGMA mmap_size=0")  # every read goes through xRead
        return _Connection(con)

    def close(self) -> None:
        self.unregister()


# -- the part of sqlite3's API the store uses ----------------------------------


def _translated(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except apsw.ConstraintError as e:
        raise sqlite3.IntegrityError(str(e)) from e
    except apsw.Error as e:
        raise sqlite3.OperationalError(str(e)) from e


class _Cursor:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def fetchone(self) -> Any:
        return _translated(self._cur.fetchone)

    def fetchall(self) -> list[Any]:
        return list(_translated(self._cur.fetchall))

    def fetchmany(self, n: int) -> list[Any]:
        def take() -> list[Any]:
            return list(itertools.islice(self._cur, n))

        return list(_translated(take))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Connection:
    def __init__(self, con: apsw.Connection) -> None:
        self._con = con

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Cursor:
        return _Cursor(_translated(lambda: self._con.execute(sql, tuple(args))))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _Cursor:
        rows = [tuple(r) for r in rows]
        return _Cursor(_translated(lambda: self._con.executemany(sql, rows)))

    def executescript(self, sql: str) -> None:
        _translated(lambda: self._con.execute(sql).fetchall())

    @property
    def in_transaction(self) -> bool:
        return bool(self._con.in_transaction)

    def close(self) -> None:
        self._con.close()
