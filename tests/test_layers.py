"""The folders are the layers (docs/architecture.md).  The pure core (``core/``)
imports no I/O, no SQL, no networking, and nothing but itself and the errors;
``store/`` never imports the engine; ``engine/`` never imports the service or
the CLI; and all of the core works with the base install alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ironlog

SRC = Path(ironlog.__file__).parent
CORE = sorted(p.stem for p in (SRC / "core").glob("*.py") if p.stem != "__init__")
FORBIDDEN = [
    "sqlite3",
    "socket",
    "http",
    "asyncio",
    "subprocess",
    "threading",
    "click",
    "rich",
    "httpx",
    "litestar",
    "ironlog.store",
    "ironlog.engine",
    "ironlog.service",
    "ironlog.cli",
    "ironlog.tools",
    "ironlog.client",
]


def _imports(folder: str, package: Path = SRC) -> list[tuple[str, str]]:
    """(module, what it imports) for every import under ``src/ironlog/<folder>``, at any
    depth (imports inside functions count), ``from ironlog import x`` as ``ironlog.x``."""
    found: list[tuple[str, str]] = []
    for path in sorted((package / folder).rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "ironlog":
                    names = [f"ironlog.{a.name}" for a in node.names]
                found += [(module, n) for n in names if n.startswith("ironlog")]
            elif isinstance(node, ast.Import):
                found += [(module, a.name) for a in node.names]
    return found


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_core_has_modules() -> None:
    assert {"merkle", "note", "entry", "tiles", "tlogproof", "evidence"} <= set(CORE)


def test_core_imports_only_core_and_errors() -> None:
    for module, name in _imports("core"):
        if name.startswith("ironlog"):
            assert _under(name, "ironlog.core", "ironlog.errors"), f"{module} imports {name}"


def test_core_sources_import_no_io_module() -> None:
    for module, name in _imports("core"):
        assert name.split(".")[0] not in {"os", "sqlite3", "socket", "io"} or (
            module == "ironlog.core.note" and name == "os"  # os.urandom: key generation only
        ), f"{module} imports {name}"


def test_store_never_imports_the_layers_above() -> None:
    above = ("ironlog.engine", "ironlog.service", "ironlog.cli", "ironlog.tools", "ironlog.client")
    for module, name in _imports("store"):
        assert not _under(name, *above), f"{module} imports {name}"


def test_engine_never_imports_service_or_cli() -> None:
    above = ("ironlog.service", "ironlog.cli", "ironlog.tools", "ironlog.client")
    for module, name in _imports("engine"):
        assert not _under(name, *above), f"{module} imports {name}"


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The reader behind the rules finds imports inside functions and ``from ironlog import x``."""
    engine = tmp_path / "ironlog" / "engine"
    engine.mkdir(parents=True)
    (engine / "bad.py").write_text(
        "import json\n\n\ndef f():\n"
        "    from ironlog import service\n"
        "    import ironlog.cli.commands\n"
    )
    found = _imports("engine", tmp_path / "ironlog")
    assert found == [
        ("ironlog.engine.bad", "json"),
        ("ironlog.engine.bad", "ironlog.service"),
        ("ironlog.engine.bad", "ironlog.cli.commands"),
    ]
    assert [n for _, n in found if _under(n, "ironlog.service", "ironlog.cli")] == [
        "ironlog.service",
        "ironlog.cli.commands",
    ]


def test_pure_core_loads_no_io_modules() -> None:
    code = (
        "import sys\n"
        + "".join(f"import ironlog.core.{m}\n" for m in CORE)
        + f"print([m for m in {FORBIDDEN!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_of_core_imports_with_the_base_install(pure_python: str) -> None:
    code = "".join(f"import ironlog.core.{m}\n" for m in CORE) + "print('ok')"
    out = subprocess.run([pure_python, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_one_exception_tree_mapped_in_one_place() -> None:
    from ironlog import errors

    statuses = {400, 401, 403, 404, 409, 413, 422, 429, 500, 503, 507}
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


PUBLIC = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "ConsistencyError",
    "FormatError",
    "IntegrityError",
    "InvalidEntryError",
    "InvalidRequestError",
    "Ironlog",
    "IronlogError",
    "Log",
    "LogUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "VerificationError",
    "__version__",
    "init_data_dir",
    "now_us",
    "prepare_json",
]


def test_the_public_face_is_pinned() -> None:
    """``ironlog.__all__`` changes only on purpose (README examples import from it)."""
    assert ironlog.__all__ == PUBLIC
    from ironlog.core.entry import prepare_json
    from ironlog.engine.instance import Ironlog
    from ironlog.engine.log import Log

    assert (ironlog.Ironlog, ironlog.Log, ironlog.prepare_json) == (Ironlog, Log, prepare_json)
    for name in PUBLIC:
        assert getattr(ironlog, name) is not None, name


def test_importing_ironlog_does_not_load_the_library() -> None:
    code = (
        "import sys, ironlog\nprint([m for m in ('ironlog.engine', 'sqlite3') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_pure_parts_of_the_listeners_and_otlp_load_no_io() -> None:
    """Framing, listener specs and the OTLP mapping are tested without sockets: they
    load no event loop, socket, TLS, HTTP framework or engine."""
    modules = [f"ironlog.service.ingest.{m}" for m in ("framing", "specs", "otlp")]
    banned = {"asyncio", "socket", "ssl", "litestar", "anyio", "sqlite3", "ironlog.engine"}
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted({banned!r} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_architecture_page_names_every_module() -> None:
    """docs/architecture.md draws the tree as built: every module is named there."""
    page = (SRC.parent.parent / "docs" / "architecture.md").read_text()
    missing = [
        str(p.relative_to(SRC))
        for p in sorted(SRC.rglob("*.py"))
        if p.name != "__init__.py" and p.name not in page
    ]
    assert not missing, f"modules docs/architecture.md does not name: {missing}"
