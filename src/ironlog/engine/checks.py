"""The integrity checks of a log's storage: what a log checks on open
(``check_head``: its head against its tiles, entries and latest signed
checkpoint) and what nothing may hold (``beyond_head``: rows past the head).
A failed check is an IntegrityError naming what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlog.core.merkle import leaf_hash
from ironlog.core.note import open_checkpoint
from ironlog.core.tiles import TILE_WIDTH, TileBuilder, partial_tiles, tile_width_at
from ironlog.errors import IntegrityError, IronlogError, ResourceExhaustedError
from ironlog.store.base import Head, LogStore

if TYPE_CHECKING:
    from ironlog.engine.log import Log


def beyond_head(store: LogStore) -> str | None:
    """What the store holds beyond its head's tree size (entries, checkpoints,
    tiles), if anything: one snapshot, a few indexed look-ups."""
    ext = store.extents()
    size = ext.head_size
    if ext.last_entry is not None and ext.last_entry >= size:
        return f"entry {ext.last_entry} lies beyond the tree size {size}"
    if ext.last_checkpoint is not None and ext.last_checkpoint > size:
        return f"a checkpoint of size {ext.last_checkpoint} lies beyond the tree size {size}"
    for level, (index, width) in sorted(ext.last_tiles.items()):
        if width > tile_width_at(level, index, size):
            return f"tile {level}/{index} (width {width}) lies beyond the tree size {size}"
    return None


def check_head(lg: Log) -> None:
    """The root recomputed from stored tiles must equal the head's, and the
    latest signed checkpoint (the head's, or an older one while the head
    awaits its signature) must be of a tree the log holds."""
    where = f"log {lg.info.path}"
    known_size = lg.known_size  # these only grow, after the head did:
    latest = lg.store.latest_checkpoint()  # read them before the head
    head = lg.store.head()
    if head.size < known_size:
        raise IntegrityError(
            f"{where}: rolled back: it had signed a checkpoint of size {known_size} "
            f"but its database holds {head.size} entries (restored from an older copy?)"
        )
    problem = beyond_head(lg.store)
    if problem is not None:
        raise IntegrityError(f"{where}: {problem}")
    if head.size == 0:
        if head.checkpoint or lg.store.checkpoint(0) is not None:
            raise IntegrityError(f"{where}: head is empty but a checkpoint exists")
        if latest is not None:
            raise IntegrityError(f"{where}: the log is empty but signed checkpoints exist")
        return
    if head.checkpoint:
        if lg.store.checkpoint(head.size) != head.checkpoint:
            raise IntegrityError(f"{where}: head does not match the stored checkpoint")
        if latest is None or latest[0] <= head.size:
            latest = (head.size, head.checkpoint)  # signed since latest was read
    if latest is not None and latest[0] > head.size:
        raise IntegrityError(
            f"{where}: a checkpoint of size {latest[0]} was signed but the log has "
            f"only {head.size} entries"
        )
    partial = [lg.store.tile(lv, ix) or b"" for lv, ix in partial_tiles(head.size)]
    try:
        root = TileBuilder(head.size, partial).root()
    except ResourceExhaustedError:
        raise
    except IronlogError as e:
        raise IntegrityError(f"{where}: stored tiles are inconsistent: {e}") from e
    if latest is not None:
        _check_signed(lg, where, head, root, *latest)
    if root != head.root:
        raise IntegrityError(f"{where}: root rebuilt from stored tiles differs from the head")
    last_full = head.size - head.size % TILE_WIDTH
    tail = lg.store.entries(last_full, head.size)
    if len(tail) != head.size - last_full:
        raise IntegrityError(f"{where}: entries are missing below the tree size {head.size}")
    level0 = partial[0][: len(tail) * 32] if partial else b""
    if b"".join(leaf_hash(e) for e in tail) != level0:
        raise IntegrityError(f"{where}: latest entries do not match their tile")


def _check_signed(lg: Log, where: str, head: Head, root: bytes, size: int, note: str) -> None:
    """The latest signed checkpoint verifies and is the tree of its size."""
    try:
        cp = open_checkpoint(note, lg.verifiers).checkpoint
    except ResourceExhaustedError:
        raise
    except IronlogError as e:
        raise IntegrityError(f"{where}: last checkpoint does not verify: {e}") from e
    if cp.size != size:
        raise IntegrityError(f"{where}: checkpoint stored under size {size} says {cp.size}")
    if size == head.size:
        if cp.root != head.root:
            raise IntegrityError(f"{where}: head differs from its signed checkpoint")
        signed_root = root
    else:
        try:
            signed_root = lg.root(size)
        except ResourceExhaustedError:
            raise
        except IronlogError as e:
            raise IntegrityError(f"{where}: stored tiles are inconsistent: {e}") from e
    if signed_root != cp.root:
        raise IntegrityError(
            f"{where}: root recomputed from stored tiles differs from the signed "
            f"checkpoint at size {cp.size}"
        )
