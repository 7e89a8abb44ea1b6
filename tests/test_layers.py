"""The pure core (merkle, note, entry, tiles, tlog-proof) imports no I/O, no
SQL, no networking, and nothing from the layers above it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ironlog

PURE = [
    "core.merkle",
    "core.note",
    "core.entry",
    "core.tiles",
    "core.tlogproof",
    "core.timeparse",
    "errors",
    "core.syslog",
    "core.policy",
    "core.numparse",
]
FORBIDDEN = [
    "sqlite3",
    "socket",
    "http",
    "asyncio",
    "subprocess",
    "threading",
    "click",
    "rich",
    "ironlog.store",
    "ironlog.engine.log",
    "ironlog.engine.instance",
    "ironlog.cli.commands",
]


def test_pure_core_loads_no_io_modules() -> None:
    code = (
        "import sys\n"
        + "".join(f"import ironlog.{m}\n" for m in PURE)
        + f"print([m for m in {FORBIDDEN!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pure_core_sources_import_only_pure_modules() -> None:
    src = Path(ironlog.__file__).parent
    allowed_ironlog = {f"ironlog.{m}" for m in PURE}
    for m in PURE:
        tree = ast.parse((src / f"{m.replace('.', '/')}.py").read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("ironlog")
            ):
                assert node.module in allowed_ironlog, f"{m} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in {"os", "sqlite3", "socket", "io"} or (
                        m == "core.note"
                        and alias.name == "os"  # os.urandom for key generation only
                    ), f"{m} imports {alias.name}"


def test_one_exception_tree_mapped_in_one_place() -> None:
    from ironlog import errors

    statuses = {400, 401, 403, 404, 409, 413, 422, 429, 500, 503}
    for name in dir(errors):
        obj = getattr(errors, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, errors.IronlogError)
            and obj is not errors.IronlogError
        ):
            assert errors.http_status(obj("x")) in statuses
    assert errors.http_status(errors.IntegrityError("x")) == 503
    assert errors.http_status(errors.NotFoundError("x")) == 404
