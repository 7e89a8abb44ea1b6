"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs and their verification.

Pure: no I/O.  Proof *building* works over any source of complete-subtree
hashes (a ``NodeFn``: ``node(height, index)`` returns the hash of the perfect
subtree of ``2**height`` leaves starting at leaf ``index * 2**height``), so the
same code serves the store, the tiles served over HTTP and the tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ironlog.errors import ConsistencyError, VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeFn = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    """The largest power of two strictly less than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Root of a perfect tree whose bottom level is ``hashes`` (len a power of 2)."""
    level = list(hashes)
    sha = _sha256
    while len(level) > 1:
        level = [
            sha(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (reference implementation, RFC 6962 2.1)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _largest_pow2_below(n)
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


def subtree_hash(start: int, end: int, node: NodeFn) -> bytes:
    """MTH(D[start:end]) where ``start`` is aligned as RFC 6962's recursion makes it."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0 and start % n == 0:
        height = n.bit_length() - 1
        return node(height, start >> height)
    k = _largest_pow2_below(n)
    return node_hash(subtree_hash(start, start + k, node), subtree_hash(start + k, end, node))


def tree_root(size: int, node: NodeFn) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return subtree_hash(0, size, node)


def inclusion_proof(index: int, size: int, node: NodeFn) -> list[bytes]:
    """PATH(index, D[0:size]) from RFC 6962 2.1.1, leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not below tree size {size}")
    proof: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = _largest_pow2_below(end - start)
        if m < k:
            proof.append(subtree_hash(start + k, end, node))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, node))
            start += k
            m -= k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, node: NodeFn) -> list[bytes]:
    """PROOF(size1, D[0:size2]) from RFC 6962 2.1.2."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    proof: list[bytes] = []
    if size1 == size2:
        return proof
    # SUBPROOF(m, D[start:end], b), iteratively.
    start, end, m, complete = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, node))
            break
        k = _largest_pow2_below(n)
        if m <= k:
            proof.append(subtree_hash(start + k, end, node))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, node))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root implied by an inclusion proof."""
    if index < 0 or size < 0:
        raise VerificationError("negative index or size")
    if index >= size:
        raise VerificationError(f"index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        _check_hash("proof hash", p)
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise VerificationError unless ``leaf`` is at ``index`` in the tree ``(size, root)``."""
    _check_hash("root", root)
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise VerificationError(f"inclusion proof for index {index} does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """RFC 9162 2.1.4.2, with the edge rules of FORMATS.md; raises on failure."""
    if size1 < 0 or size2 < 0:
        raise VerificationError("negative tree size")
    if size2 < size1:
        raise VerificationError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        raise VerificationError("consistency from an empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise VerificationError("equal sizes need an empty proof")
        if root1 != root2:
            raise ConsistencyError(f"two different roots for tree size {size1}")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    if not proof:
        raise VerificationError("empty consistency proof")
    for p in proof:
        _check_hash("proof hash", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if fr != root1:
        raise ConsistencyError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2:
        raise ConsistencyError(f"consistency proof does not lead to the root of size {size2}")


class TreeEdge:
    """The right edge of a growing tree: the perfect subtrees of the binary
    decomposition of its size, left to right.  O(log n) memory; ``root()`` is
    O(log n) hashes.  Used to stream-verify a whole log."""

    __slots__ = ("_hashes", "_heights", "size")

    def __init__(self) -> None:
        self._heights: list[int] = []
        self._hashes: list[bytes] = []
        self.size = 0

    def push(self, height: int, value: bytes) -> list[tuple[int, bytes]]:
        """Add a perfect subtree of 2**height leaves (aligned at the current size).

        Returns every node created by the push, including the pushed one, as
        (height, hash), so callers can collect the ones they store."""
        heights, hashes = self._heights, self._hashes
        created = [(height, value)]
        heights.append(height)
        hashes.append(value)
        while len(heights) > 1 and heights[-2] == heights[-1]:
            right = hashes.pop()
            heights.pop()
            value = _sha256(b"\x01" + hashes[-1] + right).digest()
            hashes[-1] = value
            heights[-1] += 1
            created.append((heights[-1], value))
        self.size += 1 << height
        return created

    def root(self) -> bytes:
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = node_hash(h, r)
        return r

    def peaks(self) -> list[tuple[int, bytes]]:
        return list(zip(self._heights, self._hashes, strict=True))

    @classmethod
    def from_peaks(cls, peaks: Sequence[tuple[int, bytes]]) -> TreeEdge:
        """The edge saved earlier with :meth:`peaks` (heights strictly decreasing)."""
        edge = cls()
        last = 64
        for height, value in peaks:
            if not 0 <= height < last:
                raise VerificationError("tree edge heights must strictly decrease")
            _check_hash("edge hash", value)
            edge._heights.append(height)
            edge._hashes.append(value)
            edge.size += 1 << height
            last = height
        return edge
