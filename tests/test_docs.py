"""Docs that are tested: the README quickstart runs, the CLI reference is current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click

from tests.conftest import BIN, ROOT


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- quickstart:start -->\n```bash\n(.*?)```\n<!-- quickstart:end -->", text, re.S
    )
    assert block, "README has no quickstart block"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("IRONLOG_DATA", None)
    p = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "appended 2 entries" in p.stdout
    assert '"actor":"alice"' in p.stdout
    assert "ok acme/payments: 2 entries" in p.stdout
    assert "RESULT: everything holds" in p.stdout
    assert (tmp_path / "payments.ndjson").read_text().count("\n") == 1
    assert (
        (tmp_path / "entry0.tlog-proof").read_text().startswith("c2sp.org/tlog-proof@v1\nindex 0\n")
    )


def test_cli_reference_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_cli_docs
    finally:
        sys.path.pop(0)
    env_cols = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        want = gen_cli_docs.render()
    finally:
        if env_cols is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = env_cols
    assert (ROOT / "docs" / "cli.md").read_text() == want, "run 'make docs'"
    for path, cmd in gen_cli_docs.walk(gen_cli_docs.main, ["ironlog"]):
        assert cmd.help and cmd.help.strip(), f"{' '.join(path)} has no help"
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                assert param.help or param.name in {
                    "actor",
                    "action",
                    "resource",
                    "outcome",
                    "limit",
                    "format",
                    "fmt",
                    "output",
                }, f"{' '.join(path)} {param.opts} has no help"


def test_command_in_base_install_says_what_to_install(pure_python: str) -> None:
    """``pip install ironlog`` (no extras) gives an ``ironlog`` command that
    names the extra it needs: no traceback, exit 2."""
    command = Path(pure_python).parent / "ironlog"
    for args in ([], ["--help"], ["init"]):
        p = subprocess.run([str(command), *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr
        assert "pip install 'ironlog[server]'" in p.stderr
