"""Versioned layouts of a store's databases, for any driver.

Each kind of database (a log's, the control database) has an ordered list of
steps; a step takes a database from ``version - 1`` to ``version``.  A
database records the version of its layout (SQLite: ``PRAGMA user_version``;
another driver: wherever it likes); on open, the driver applies the steps it
has not seen yet, all of them in one transaction, and then records the last
version.  Applying is idempotent: a database at the last version is left
alone, and steps are written so that they may meet a database that already
has what they create (the first step meets the layouts made before versions
existed).  A database whose version is newer than the last step is refused:
this code does not know what it holds.

The SQLite driver applies these in ``store/sqlite/db.py``; the step lists are
next to the code that uses the tables (``store/sqlite/logstore.py``,
``store/sqlite/control.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ironlog.errors import IronlogError

Statement = str | Callable[[Any], None]
"""SQL text, or a function of the driver's connection for what SQL alone
cannot say (add a column only where an old layout lacks it)."""


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class Migrations:
    """The steps of one kind of database, versions 1, 2, ... in order.
    ``refuse`` is the error raised for a database newer than the code."""

    kind: str
    steps: tuple[Step, ...]
    refuse: type[IronlogError]

    def __post_init__(self) -> None:
        versions = [s.version for s in self.steps]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.kind} migrations: versions must be 1..n, got {versions}")

    @property
    def latest(self) -> int:
        return len(self.steps)

    def pending(self, found: int, what: str) -> Sequence[Step]:
        """The steps a database at version ``found`` still needs (none when it
        is current); ``refuse`` when it is newer than this code knows."""
        if found > self.latest:
            raise self.refuse(
                f"{what}: its layout is version {found} but this ironlog knows {self.kind}"
                f" layouts up to version {self.latest}; it was written by a newer ironlog:"
                " run that version (or a newer one)"
            )
        if found < 0:
            raise self.refuse(f"{what}: its layout version {found} is not a version")
        return self.steps[found:]
