"""Every transparency-dev/merkle conformance vector gives exactly wantErr."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ironlog.core.merkle import verify_consistency, verify_inclusion
from ironlog.errors import IronlogError
from tests.conftest import VECTORS

INCLUSION = sorted((VECTORS / "merkle" / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "merkle" / "consistency").rglob("*.json"))


def _b(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def test_vector_count() -> None:
    assert len(INCLUSION) + len(CONSISTENCY) == 196


@pytest.mark.parametrize("path", INCLUSION, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    try:
        verify_inclusion(
            v["leafIdx"],
            v["treeSize"],
            _b(v["leafHash"]),
            [_b(p) for p in v["proof"] or []],
            _b(v["root"]),
        )
        err = False
    except IronlogError:
        err = True
    assert err == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", CONSISTENCY, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    try:
        verify_consistency(
            v["size1"],
            v["size2"],
            [_b(p) for p in v["proof"] or []],
            _b(v["root1"]),
            _b(v["root2"]),
        )
        err = False
    except IronlogError:
        err = True
    assert err == v["wantErr"], v["desc"]
