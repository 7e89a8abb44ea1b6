"""Byte-for-byte agreement with Go's sumdb/note and sumdb/tlog."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ironlog.core import merkle, note, tiles
from ironlog.errors import VerificationError

b64 = base64.b64decode


def _entry(i: int) -> bytes:
    return json.dumps(
        {"action": "login", "actor": f"user-{i % 97}", "n": i}, separators=(",", ":")
    ).encode()


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return [merkle.leaf_hash(_entry(i)) for i in range(70000)]


@pytest.fixture(scope="module")
def node_fn(leaves: list[bytes]) -> merkle.NodeFn:
    tb = tiles.TileBuilder()
    store: dict[tuple[int, int], bytes] = {}
    for ref, data in tb.add(leaves):
        store[(ref.level, ref.index)] = data
    for ref, data in tb.partials():
        store[(ref.level, ref.index)] = data
    return tiles.NodeReader(lambda level, idx: store.get((level, idx))).node


def test_keys_roundtrip(sumdb: dict[str, Any]) -> None:
    signer = note.Signer.from_private_key(sumdb["private_key"])
    assert signer.private_key() == sumdb["private_key"]
    assert signer.vkey() == sumdb["verifier_key"]
    assert note.Verifier.from_vkey(sumdb["verifier_key"]).vkey() == sumdb["verifier_key"]


def test_signed_checkpoints_are_byte_identical(sumdb: dict[str, Any]) -> None:
    signer = note.Signer.from_private_key(sumdb["private_key"])
    verifier = note.Verifier.from_vkey(sumdb["verifier_key"])
    for c in sumdb["checkpoints"]:
        cp = note.Checkpoint(sumdb["origin"], c["size"], b64(c["root"]))
        assert cp.sign(signer) == c["signed_note"]
        opened = note.open_checkpoint(c["signed_note"], verifier)
        assert opened.checkpoint == cp


def test_every_tile_at_its_path(sumdb: dict[str, Any], leaves: list[bytes]) -> None:
    tb = tiles.TileBuilder()
    got: dict[str, bytes] = {}
    for i in range(0, len(leaves), 999):  # odd batch sizes cross tile edges
        for ref, data in tb.add(leaves[i : i + 999]):
            got[ref.path()] = data
    for ref, data in tb.partials():
        got[ref.path()] = data
    assert sumdb["tiles_at_size"] == 70000
    assert set(got) == set(sumdb["tiles"])
    for path, data in sumdb["tiles"].items():
        assert got[path] == b64(data), path
    assert [r.path() for r in tiles.tiles_for_size(70000)] == sorted(
        sumdb["tiles"], key=lambda p: (int(p.split("/")[1]), p)
    )


def test_roots(sumdb: dict[str, Any], leaves: list[bytes], node_fn: merkle.NodeFn) -> None:
    for c in sumdb["checkpoints"]:
        assert merkle.tree_root(c["size"], node_fn) == b64(c["root"])
        if c["size"] <= 300:
            assert merkle.root_from_leaves(leaves[: c["size"]]) == b64(c["root"])


def test_inclusion_proofs(sumdb: dict[str, Any], node_fn: merkle.NodeFn) -> None:
    for v in sumdb["inclusion"]:
        leaf = merkle.leaf_hash(v["entry"].encode())
        assert leaf == b64(v["leaf_hash"])
        proof = merkle.inclusion_proof(v["index"], v["size"], node_fn)
        assert proof == [b64(p) for p in v["proof"] or []]
        merkle.verify_inclusion(v["index"], v["size"], leaf, proof, b64(v["root"]))


def test_consistency_proofs(sumdb: dict[str, Any], node_fn: merkle.NodeFn) -> None:
    for v in sumdb["consistency"]:
        proof = merkle.consistency_proof(v["size1"], v["size2"], node_fn)
        assert proof == [b64(p) for p in v["proof"]]
        merkle.verify_consistency(v["size1"], v["size2"], proof, b64(v["root1"]), b64(v["root2"]))
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                v["size1"], v["size2"], proof, b64(v["root2"]), b64(v["root1"])
            )
