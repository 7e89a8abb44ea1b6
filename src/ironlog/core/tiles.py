"""C2SP tlog-tiles: paths, tile arithmetic, building tiles and reading nodes from them.

Pure: no I/O.  Tile height is 8: a full tile holds 256 hashes.  A tile at
level L holds hashes of tree height 8*L.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ironlog.core.merkle import HASH_SIZE, TreeEdge, perfect_root
from ironlog.core.numparse import parse_int
from ironlog.errors import FormatError, NotFoundError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE  # 8192
MAX_ENTRY_BYTES = 0xFFFF


@dataclass(frozen=True, slots=True)
class TileRef:
    """A tile: level L (or -1 for an entry bundle), index N, width W (1..256)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level < 0

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    def path(self) -> str:
        head = "tile/entries" if self.is_bundle else f"tile/{self.level}"
        p = f"{head}/{format_index(self.index)}"
        if not self.is_full:
            p += f".p/{self.width}"
        return p


def format_index(n: int) -> str:
    """1234067 -> 'x001/x234/067'; 5 -> '005'."""
    if n < 0:
        raise ValueError("negative tile index")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


_PATH_RE = re.compile(r"^tile/(entries|\d+)/((?:x\d{3}/)*\d{3})(?:\.p/(\d+))?$")


def parse_tile_path(path: str) -> TileRef:
    """Inverse of ``TileRef.path``; FormatError for anything malformed."""
    m = _PATH_RE.fullmatch(path)
    if not m:
        raise FormatError(f"not a tile path: {path!r}")
    kind, digits, width_s = m.groups()
    if kind == "entries":
        level = -1
    else:
        if len(kind) > 1 and kind.startswith("0"):
            raise FormatError(f"tile level has a leading zero: {path!r}")
        level = parse_int(kind, "tile level", 0, 63, FormatError)
    index = parse_int(digits.replace("x", "").replace("/", ""), "tile index", error=FormatError)
    if format_index(index) != digits:
        raise FormatError(f"tile index is not in canonical form: {path!r}")
    width = TILE_WIDTH
    if width_s is not None:
        if width_s.startswith("0"):
            raise FormatError(f"tile width has a leading zero: {path!r}")
        width = parse_int(width_s, "partial tile width", 1, TILE_WIDTH - 1, FormatError)
    return TileRef(level, index, width)


def tiles_for_size(size: int) -> list[TileRef]:
    """Every hash tile a tree of ``size`` leaves has, level by level."""
    out: list[TileRef] = []
    level = 0
    while True:
        count = size >> (TILE_HEIGHT * level)  # hashes at this level
        if count == 0:
            break
        full, rest = divmod(count, TILE_WIDTH)
        out.extend(TileRef(level, i) for i in range(full))
        if rest:
            out.append(TileRef(level, full, rest))
        level += 1
    return out


def tile_width_at(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) has in a tree of ``size`` (0 = none).

    Level -1 is the entry bundle, which holds entries, not hashes: the same
    count as level 0.
    """
    count = size >> (TILE_HEIGHT * max(level, 0))
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def partial_tiles(size: int) -> list[tuple[int, int]]:
    """(level, index) of the right-edge tile at each level of a ``size`` tree.

    Level L has ``size >> 8L`` hashes; its last tile, full or partial, has
    index ``size >> 8(L+1)``.  A level whose last tile is full still gets an
    entry (its width there is 0): this is the list a :class:`TileBuilder`
    resumes from.
    """
    out: list[tuple[int, int]] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        out.append((level, size >> (TILE_HEIGHT * (level + 1))))
        level += 1
    return out


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    parts = []
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise FormatError("entry longer than 65535 bytes")
        parts.append(len(e).to_bytes(2, "big"))
        parts.append(e)
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes]:
    out = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise FormatError("truncated entry bundle")
        n = int.from_bytes(data[i : i + 2], "big")
        if i + 2 + n > len(data):
            raise FormatError("truncated entry bundle")
        out.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return out


def split_hashes(tile: bytes) -> list[bytes]:
    if len(tile) % HASH_SIZE:
        raise FormatError(f"tile length {len(tile)} is not a multiple of {HASH_SIZE}")
    return [tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]


class TileBuilder:
    """Grows a tree tile by tile.

    State is the partial tile at each level (the hashes not yet in a full
    tile), which is exactly what a store keeps; ``add`` returns the tiles it
    completed, ``partials`` the ones still growing."""

    __slots__ = ("_edge", "_levels")

    def __init__(self, size: int = 0, partial: Sequence[bytes] = ()) -> None:
        """Restore from a tree ``size`` and its partial tiles, lowest level first
        (the data of ``tile/L/<n>.p/W`` for each level L that has one, else b"")."""
        self._levels: list[list[bytes]] = []
        self._edge = TreeEdge()
        level_data = list(partial)
        count_levels = 0
        while size >> (TILE_HEIGHT * count_levels):
            count_levels += 1
        while len(level_data) < count_levels:
            level_data.append(b"")
        for level in range(count_levels):
            want = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            hashes = split_hashes(level_data[level]) if level_data[level] else []
            if len(hashes) < want:
                raise FormatError(
                    f"partial tile at level {level} has {len(hashes)} hashes, need {want}"
                )
            self._levels.append(hashes[:want])
        # Rebuild the edge: highest level first, each level's hashes decomposed.
        for level in range(count_levels - 1, -1, -1):
            hashes = self._levels[level]
            pos = 0
            for bit in range(TILE_HEIGHT - 1, -1, -1):
                chunk = 1 << bit
                if len(hashes) - pos >= chunk:
                    root = perfect_root(hashes[pos : pos + chunk])
                    self._edge_push_raw(TILE_HEIGHT * level + bit, root)
                    pos += chunk
        if self._edge.size != size:
            raise FormatError("partial tiles do not describe the tree size")

    def _edge_push_raw(self, height: int, value: bytes) -> None:
        e = self._edge
        e._heights.append(height)
        e._hashes.append(value)
        e.size += 1 << height

    @property
    def size(self) -> int:
        return self._edge.size

    def root(self) -> bytes:
        return self._edge.root()

    def _level(self, level: int) -> list[bytes]:
        while len(self._levels) <= level:
            self._levels.append([])
        return self._levels[level]

    def add(self, leaf_hashes: Sequence[bytes]) -> list[tuple[TileRef, bytes]]:
        """Append leaf hashes; return the full tiles completed, in order."""
        done: list[tuple[TileRef, bytes]] = []
        i, n = 0, len(leaf_hashes)
        level0 = self._level(0)
        while i < n:
            k = len(level0)
            if k and n - i >= TILE_WIDTH - k:
                # Complete the growing level-0 tile at once: drop its peaks from the edge.
                full = [*level0, *leaf_hashes[i : i + TILE_WIDTH - k]]
                edge = self._edge
                while edge._heights and edge._heights[-1] < TILE_HEIGHT:
                    edge._heights.pop()
                    edge._hashes.pop()
                edge.size -= k
                tile_index = edge.size >> TILE_HEIGHT
                done.append((TileRef(0, tile_index), b"".join(full)))
                level0.clear()
                self._push(TILE_HEIGHT, perfect_root(full), done)
                i += TILE_WIDTH - k
                continue
            if not level0 and n - i >= TILE_WIDTH:
                # Fast path: a whole aligned level-0 tile at once.
                chunk = leaf_hashes[i : i + TILE_WIDTH]
                tile_index = self._edge.size >> TILE_HEIGHT
                done.append((TileRef(0, tile_index), b"".join(chunk)))
                self._push(TILE_HEIGHT, perfect_root(chunk), done)
                i += TILE_WIDTH
                continue
            self._push(0, leaf_hashes[i], done)
            i += 1
        return done

    def _push(self, height: int, value: bytes, done: list[tuple[TileRef, bytes]]) -> None:
        size_before = self._edge.size
        for h, v in self._edge.push(height, value):
            if h % TILE_HEIGHT:
                continue
            level = h // TILE_HEIGHT
            hashes = self._level(level)
            hashes.append(v)
            if len(hashes) == TILE_WIDTH:
                index = size_before >> (TILE_HEIGHT * (level + 1))
                done.append((TileRef(level, index), b"".join(hashes)))
                hashes.clear()

    def partials(self) -> list[tuple[TileRef, bytes]]:
        """The partial tiles of the current size (possibly none)."""
        out = []
        for level, hashes in enumerate(self._levels):
            if hashes:
                index = self._edge.size >> (TILE_HEIGHT * (level + 1))
                out.append((TileRef(level, index, len(hashes)), b"".join(hashes)))
        return out

    def partial_data(self) -> list[bytes]:
        return [b"".join(h) for h in self._levels]


TileFn = Callable[[int, int], bytes | None]
"""``tile(level, index)`` returns the stored hash tile (full or partial) or None."""


class NodeReader:
    """Complete-subtree hashes read from tiles, memoised in bounded LRUs.

    A complete subtree never changes, and a partial tile only ever grows, so
    cached nodes stay valid forever and a cached tile is re-read only when a
    hash beyond its end is needed."""

    def __init__(self, tile: TileFn, cache_size: int = 1 << 16, tile_cache: int = 512) -> None:
        self._tile = tile
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._tiles: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._tile_cache = tile_cache

    def _tile_data(self, level: int, index: int, need: int) -> bytes | None:
        key = (level, index)
        data = self._tiles.get(key)
        if data is not None and len(data) >= need:
            self._tiles.move_to_end(key)
            return data
        data = self._tile(level, index)
        if data is not None:
            self._tiles[key] = data
            if len(self._tiles) > self._tile_cache:
                self._tiles.popitem(last=False)
        return data

    def node(self, height: int, index: int) -> bytes:
        key = (height, index)
        cache = self._cache
        v = cache.get(key)
        if v is not None:
            return v
        # The node is the root of 2**r consecutive hashes of one tile at level L.
        level, r = divmod(height, TILE_HEIGHT)
        first = index << r
        pos = (first % TILE_WIDTH) * HASH_SIZE
        end = pos + (HASH_SIZE << r)
        tile = self._tile_data(level, first >> TILE_HEIGHT, end)
        if tile is None or len(tile) < end:
            raise NotFoundError(f"no stored hash at height {height}, index {index}")
        if r == 0:
            v = tile[pos:end]
        else:
            v = perfect_root([tile[i : i + HASH_SIZE] for i in range(pos, end, HASH_SIZE)])
        cache[key] = v
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return v

    def clear(self) -> None:
        self._cache.clear()
        self._tiles.clear()
