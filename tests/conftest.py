from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironlog.engine.instance import Ironlog, init_data_dir
from tests.pg import PgCluster
from tests.pg import cluster as pg_cluster

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("IRONLOG_SHARED", ROOT.parent / "shared"))
VECTORS = SHARED / "vectors"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def pure_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A clean virtualenv with ``pip install ironlog`` (no extras): the pure core."""
    import subprocess

    venv = tmp_path_factory.mktemp("pure") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", str(ROOT)], check=True, capture_output=True)
    return py


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of the session's own (tests/pg.py), started on
    first use and stopped at the end; ``postgres.new_database()`` gives the
    URL of a fresh database owned by a non-superuser role."""
    with pg_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def sumdb() -> dict:  # type: ignore[type-arg]
    return json.loads((VECTORS / "interop-go-sumdb.json").read_text())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    init_data_dir(d)
    return d


@pytest.fixture
def il(data_dir: Path) -> Iterator[Ironlog]:
    inst = Ironlog(data_dir)
    yield inst
    inst.close()
