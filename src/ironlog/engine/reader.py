"""A log's read side: entries (each checked against its leaf hash in the
tree), queries, checkpoints, inclusion and consistency proofs, tlog-proofs,
tiles and entry bundles.  ``Log`` (engine/log.py) adds the write side."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ironlog.core.merkle import consistency_proof, inclusion_proof, leaf_hash, tree_root
from ironlog.core.tiles import TILE_WIDTH, NodeReader, encode_bundle
from ironlog.core.tlogproof import TlogProof
from ironlog.errors import (
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    NotFoundError,
    ResourceExhaustedError,
)
from ironlog.store.base import Head, LogInfo, LogStore, Query

log = logging.getLogger("ironlog.engine")

MAX_INDEX = 1 << 62


class LogReader:
    """Reads of one log, and its health: a read that finds stored data
    contradicting the tree marks the log unhealthy (it then refuses writes)."""

    def __init__(self, info: LogInfo, store: LogStore) -> None:
        self.info = info
        self.store = store
        self._tree_size = 0
        self._nodes = NodeReader(store.tile)
        self._nodes_lock = threading.Lock()
        self.unhealthy: str | None = None

    if TYPE_CHECKING:  # the write side's (Log): signed checkpoints wait for the writer

        def wait_signed(self, min_size: int, timeout: float) -> tuple[int, str] | None: ...

        def sign_delay(self) -> float: ...

    def drop_caches(self) -> None:
        """Forget the memoised nodes and tiles (a released log holds no memory)."""
        with self._nodes_lock:
            self._nodes = NodeReader(self.store.tile)
        self._tree_size = 0

    def mark_unhealthy(self, reason: str) -> None:
        self.unhealthy = reason
        log.error("log %s refused for writing: %s", self.info.path, reason)

    def head(self) -> Head:
        return self.store.head()

    @staticmethod
    def _bounded(**values: int | None) -> None:
        """Indexes and sizes must fit the store's 63-bit integers."""
        for name, v in values.items():
            if v is not None and not 0 <= v < MAX_INDEX:
                raise InvalidRequestError(f"{name} must be between 0 and {MAX_INDEX - 1}")

    def _size(self, size: int | None) -> int:
        self._bounded(size=size)
        current = self.store.head().size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise InvalidRequestError(f"tree size {size} is not between 0 and {current}")
        return size

    def latest_signed(self) -> tuple[int, str] | None:
        """(size, note) of the newest signed checkpoint: of a durable tree."""
        head = self.store.head()
        if head.checkpoint:
            return head.size, head.checkpoint
        if head.size == 0:
            return None
        return self.store.latest_checkpoint()

    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint of ``size``, or the latest one: never of a
        tree that is not durable yet."""
        self._bounded(size=size)
        if size is None:
            got = self.latest_signed()
            if got is None:
                raise NotFoundError(f"log {self.info.path} has no signed checkpoint yet")
            return got[1]
        note = self.store.checkpoint(size)
        if note is None:
            raise NotFoundError(f"no checkpoint was signed at size {size}")
        return note

    def _node(self, height: int, index: int) -> bytes:
        with self._nodes_lock:
            return self._nodes.node(height, index)

    def root(self, size: int) -> bytes:
        return tree_root(size, self._node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        self._bounded(index=index)
        size = self._size(size)
        if not 0 <= index < size:
            raise InvalidRequestError(f"index {index} is not below tree size {size}")
        return self.proof_at(index, size)

    def proof_at(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof for a size known to exist (no head look-up)."""
        return inclusion_proof(index, size, self._node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        self._bounded(size1=size1)
        size2 = self._size(size2)
        if not 1 <= size1 <= size2:
            raise InvalidRequestError(f"need 1 <= from ({size1}) <= to ({size2})")
        return consistency_proof(size1, size2, self._node)

    def tlog_proof(self, index: int, size: int | None = None) -> TlogProof:
        """An offline proof of entry ``index`` against the signed checkpoint of
        ``size`` (default: the latest, waiting for one that covers the entry
        for as long as signing may take)."""
        if size is None:
            self._bounded(index=index)
            got = self.latest_signed()
            if (got is None or got[0] <= index) and index < self.store.head().size:
                got = self.wait_signed(index + 1, self.sign_delay() + 2.0)
                if got is None:
                    raise NotFoundError(f"entry {index} is not covered by a signed checkpoint yet")
            size = got[0] if got is not None else 0
        size = self._size(size)
        proof = tuple(self.inclusion_proof(index, size))  # an index outside the tree: a 400
        return TlogProof(index, proof, self.checkpoint(size))

    def entry(self, index: int) -> bytes:
        self._bounded(index=index)
        got = self.store.entries(index, index + 1)
        if not got:
            raise NotFoundError(f"log {self.info.path} has no entry {index}")
        return self._checked(index, got[0])

    def _checked(self, index: int, data: bytes) -> bytes:
        """An entry read from storage, checked against its leaf hash in the
        tree (level-0 tiles, memoised): altered bytes or a row beyond the
        signed tree are never served as the log's."""
        try:
            if index >= self._tree_size and index >= self._head_size():
                raise IntegrityError(
                    f"entry {index} lies beyond the tree's {self._tree_size} entries"
                )
            if self._node(0, index) != leaf_hash(data):
                raise IntegrityError(f"entry {index} does not match its leaf hash in the tree")
        except ResourceExhaustedError:  # nothing was read: nothing failed a check
            raise
        except IronlogError as e:
            reason = f"{e}" if isinstance(e, IntegrityError) else f"entry {index}: {e}"
            self.mark_unhealthy(f"read check failed: {reason}")
            raise IntegrityError(f"log {self.info.path}: {reason}") from e
        return data

    def query(self, q: Query) -> Iterator[tuple[int, bytes]]:
        """Matching entries, each checked against its leaf hash (see _checked)."""
        self._bounded(from_index=q.from_index, limit=q.limit)
        for name in ("since_us", "until_us"):
            v = getattr(q, name)
            if v is not None and not -MAX_INDEX < v < MAX_INDEX:
                raise InvalidRequestError(f"{name} is out of range")
        return ((index, self._checked(index, data)) for index, data in self.store.query(q))

    def _head_size(self) -> int:
        """The committed tree size, re-read (a cache of it is ``_tree_size``)."""
        self._tree_size = self.store.head().size
        return self._tree_size

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        self._bounded(level=level, index=index)
        """Exactly the tile ``tile/<level>/<index>[.p/<width>]`` (NotFoundError if absent)."""
        data = self.store.tile(level, index)
        if data is None or len(data) < width * 32:
            raise NotFoundError(f"no tile {level}/{index} of width {width}")
        # A partial's hashes never change, so a grown tile serves any narrower width.
        return data[: width * 32]

    def bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        self._bounded(index=index)
        start = index * TILE_WIDTH
        got = self.store.entries(start, start + width)
        if len(got) < width:
            raise NotFoundError(f"no entry bundle {index} of width {width}")
        return encode_bundle(got)
