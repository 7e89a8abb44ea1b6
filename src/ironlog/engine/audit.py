"""Full audit of a stored log: re-hash every entry, rebuild every tile, check
every stored checkpoint.

Every checkpoint's signature is verified with the log's key and its root is
compared with the root recomputed from the entries at its size.  Since all
roots come from one sequence of entries, matching roots also prove that each
checkpoint is consistent with the next (and with every other).  The first
problem found is named: an entry index, a tile path or a checkpoint size.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ironlog.core.entry import column_mismatch
from ironlog.core.merkle import HASH_SIZE
from ironlog.core.note import open_checkpoint
from ironlog.core.tiles import TILE_WIDTH, TileBuilder, TileRef
from ironlog.engine.checks import beyond_head
from ironlog.engine.log import Log
from ironlog.errors import IronlogError, ResourceExhaustedError
from ironlog.store.base import StoredRow


@dataclass(frozen=True)
class Problem:
    kind: str  # entry | tile | checkpoint | head
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.where}: {self.message}"


@dataclass
class AuditReport:
    log: str
    size: int = 0
    entries: int = 0
    tiles: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    problem: Problem | None = None
    builder: TileBuilder | None = None  # the verified tree state, to resume from

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def audit_log(
    lg: Log,
    progress: Callable[[int], None] | None = None,
    resume: TileBuilder | None = None,
) -> AuditReport:
    """Audit the whole log, or only what was added since ``resume`` (the
    ``builder`` of an earlier successful report)."""
    report = AuditReport(lg.info.path)
    started = time.perf_counter()
    try:
        _audit(lg, report, progress or (lambda n: None), resume)
    except _Stop as s:
        report.problem = s.problem
    except ResourceExhaustedError:  # nothing was read: no finding about the data
        raise
    except IronlogError as e:
        report.problem = Problem("head", lg.info.path, str(e))
    report.seconds = time.perf_counter() - started
    return report


def _checkpoints(lg: Log, report: AuditReport, min_size: int) -> Iterator[tuple[int, bytes, str]]:
    """(size, root, note) of every stored checkpoint from min_size, signature checked."""
    for size, note in lg.store.checkpoints(min_size):
        if size > report.size:
            return  # signed after the audit started
        try:
            cp = open_checkpoint(note, lg.verifiers).checkpoint
        except IronlogError as e:
            raise _Stop(Problem("checkpoint", f"size {size}", f"does not verify: {e}")) from e
        if cp.size != size:
            raise _Stop(
                Problem(
                    "checkpoint", f"size {size}", f"is stored under size {size} but says {cp.size}"
                )
            )
        report.checkpoints += 1
        yield size, cp.root, note


def _audit(
    lg: Log, report: AuditReport, progress: Callable[[int], None], resume: TileBuilder | None
) -> None:
    store = lg.store
    # The recorded signed size only grows, and only after the head did: read it
    # first, or an append between the two reads looks like a rollback.
    known_size = lg.known_size
    head = store.head()
    report.size = size = head.size
    builder = TileBuilder() if resume is None else TileBuilder(resume.size, resume.partial_data())
    start = builder.size
    if size < start:
        raise _Stop(Problem("head", lg.info.path, f"the log shrank from {start} to {size} entries"))
    sha = hashlib.sha256
    cps = _checkpoints(lg, report, start + 1)
    next_cp = next(cps, None)
    suspect: tuple[int, TileRef] | None = None  # first level-0 mismatch, not yet attributed
    last_cp_size = start

    def check_tiles(done: list[tuple[TileRef, bytes]]) -> None:
        nonlocal suspect
        for ref, data in done:
            report.tiles += 1
            stored = store.tile(ref.level, ref.index)
            if stored == data:
                continue
            if ref.level == 0 and stored is not None and len(stored) == len(data):
                pos = next(
                    i
                    for i in range(0, len(data), HASH_SIZE)
                    if stored[i : i + HASH_SIZE] != data[i : i + HASH_SIZE]
                )
                if suspect is None:
                    suspect = (ref.index * TILE_WIDTH + pos // HASH_SIZE, ref)
                continue
            msg = (
                "is missing" if stored is None else "differs from the tile rebuilt from the entries"
            )
            raise _Stop(Problem("tile", ref.path(), msg))

    def first_partial_mismatch() -> tuple[int, TileRef] | None:
        """Where the growing level-0 tile differs from the stored one, if it does."""
        for ref, data in builder.partials():
            if ref.level != 0:
                continue
            stored = store.tile(0, ref.index) or b""
            for i in range(0, len(data), HASH_SIZE):
                if stored[i : i + HASH_SIZE] != data[i : i + HASH_SIZE]:
                    return ref.index * TILE_WIDTH + i // HASH_SIZE, ref
        return None

    def at_checkpoint(cp_size: int, root: bytes) -> None:
        nonlocal last_cp_size, suspect
        ok = builder.root() == root
        if not ok and suspect is None:
            suspect = first_partial_mismatch()
        if suspect is not None:
            index, ref = suspect
            if ok:
                raise _Stop(
                    Problem(
                        "tile",
                        ref.path(),
                        f"hash of entry {index} differs from the entry, whose bytes the signed "
                        f"checkpoint at size {cp_size} confirms",
                    )
                )
            raise _Stop(
                Problem(
                    "entry",
                    str(index),
                    f"bytes do not match the leaf hash in {ref.path()} nor the signed "
                    f"checkpoint at size {cp_size}",
                )
            )
        if not ok:
            raise _Stop(
                Problem(
                    "checkpoint",
                    f"size {cp_size}",
                    f"root differs from the root of the stored entries; an entry at index "
                    f"{last_cp_size}..{cp_size - 1} or earlier was altered",
                )
            )
        last_cp_size = cp_size

    expected = start
    column_problem: Problem | None = None  # named once the bytes themselves check out
    for rows in store.scan_rows(start, size):
        first, last = rows[0][0], rows[-1][0]
        if first != expected or last - first + 1 != len(rows):
            gap = next((expected + i for i, r in enumerate(rows) if r[0] != expected + i), last)
            raise _Stop(Problem("entry", str(gap), "is missing"))
        leaves = [sha(b"\x00" + r[1]).digest() for r in rows]
        if column_problem is None:
            column_problem = _columns_problem(rows)
        i = 0
        while i < len(leaves):
            stop = len(leaves)
            if next_cp is not None and next_cp[0] - expected < stop - i:
                stop = i + max(1, next_cp[0] - expected)
            done = builder.add(leaves[i:stop])
            expected += stop - i
            i = stop
            report.entries = expected - start
            if done:
                check_tiles(done)
            while next_cp is not None and next_cp[0] <= expected:
                if next_cp[0] < expected:
                    raise _Stop(Problem("checkpoint", f"size {next_cp[0]}", "out of order"))
                at_checkpoint(next_cp[0], next_cp[1])
                next_cp = next(cps, None)
        progress(expected)
    if expected < size:
        raise _Stop(Problem("entry", str(expected), "is missing"))
    progress(expected)
    for ref, data in builder.partials():
        report.tiles += 1
        stored = store.tile(ref.level, ref.index)
        # The tile may have grown since the audit began; its first hashes never change.
        prefix = stored[: len(data)] if stored is not None else None
        if prefix == data:
            continue
        if ref.level == 0 and prefix is not None and len(prefix) == len(data) and suspect is None:
            pos = next(
                i
                for i in range(0, len(data), HASH_SIZE)
                if prefix[i : i + HASH_SIZE] != data[i : i + HASH_SIZE]
            )
            suspect = (ref.index * TILE_WIDTH + pos // HASH_SIZE, ref)
        elif ref.level > 0 or suspect is None:
            msg = (
                "is missing" if stored is None else "differs from the tile rebuilt from the entries"
            )
            raise _Stop(Problem("tile", ref.path(), msg))
    if next_cp is not None:
        raise _Stop(
            Problem("checkpoint", f"size {next_cp[0]}", f"is beyond the log's {size} entries")
        )
    if suspect is not None:
        # No checkpoint after the mismatch: attribute it with the head's signed root.
        at_checkpoint(size, head.root)
    if size and builder.root() != head.root:
        raise _Stop(Problem("head", lg.info.path, "root differs from the entries"))
    if size and head.checkpoint:  # "" while a non-sync log's newest tree awaits its fsync
        try:
            cp = open_checkpoint(head.checkpoint, lg.verifiers).checkpoint
        except IronlogError as e:
            raise _Stop(Problem("head", lg.info.path, f"checkpoint does not verify: {e}")) from e
        if (cp.size, cp.root) != (size, head.root):
            raise _Stop(Problem("head", lg.info.path, "differs from its signed checkpoint"))
    if column_problem is not None:
        raise _Stop(column_problem)
    if size < known_size:
        raise _Stop(
            Problem(
                "head",
                lg.info.path,
                f"rolled back: it had signed a checkpoint of size {known_size} "
                f"but holds {size} entries",
            )
        )
    beyond = beyond_head(store)
    if beyond is not None:
        raise _Stop(Problem("head", lg.info.path, beyond))
    report.builder = builder


def _columns_problem(rows: list[StoredRow]) -> Problem | None:
    """The first stored row whose query columns (received time, actor, action,
    resource, outcome) differ from what its entry's bytes give: such a row
    would hide the entry from queries, time ranges and evidence exports."""
    for row in rows:
        try:
            bad = column_mismatch(row[1], row[2:])
        except IronlogError as e:
            return Problem("entry", str(row[0]), f"cannot be read for its query columns: {e}")
        if bad is not None:
            name, stored, want = bad
            return Problem(
                "entry",
                str(row[0]),
                f"query column {name} is {stored!r} but the entry says {want!r}",
            )
    return None
