"""Docs that are tested: the README quickstart runs, the CLI reference is current."""

from __future__ import annotations

import json
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


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w+)\n(.*?)^```$", text, re.S | re.M)


def test_readme_examples_run_in_order(tmp_path: Path) -> None:
    """Every README example, in order, as written: `make serve` (as the Makefile
    runs it, on a free port), the curl example against it, the quickstart in a
    second terminal, the SDK example and the in-process example; the in-process
    one also on its own in an empty directory."""
    import signal
    import socket
    import time

    import httpx

    blocks = _blocks((ROOT / "README.md").read_text())
    kinds = [k for k, _ in blocks]
    assert kinds == ["console", "console", "bash", "python", "python"], kinds
    make_block, curl_block, quickstart, sdk, engine = (b for _, b in blocks)
    assert "make serve" in make_block and curl_block.lstrip().startswith("curl ")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "XDG_STATE_HOME": str(tmp_path)}
    env.pop("IRONLOG_DATA", None)
    venv = BIN.parent
    # `make serve` with the documented variables; -o: never reinstall from a test.
    serve = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "-o", f"{venv}/.installed", "serve", f"VENV={venv}",
         f"PORT={port}", f"DATA={tmp_path / 'data'}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert serve.stdout is not None
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Append an event:" not in banner and time.monotonic() < deadline:
            line = serve.stdout.readline()
            assert line, banner
            banner += line
        assert f"on http://127.0.0.1:{port}" in banner, banner
        assert f"Console: http://127.0.0.1:{port}/ui " in banner, banner
        demo = banner.split("demo tenant key (append, read): ")[1].split()[0]
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)

        def real(code: str) -> str:
            return code.replace("ilk_…", demo).replace("127.0.0.1:8080", f"127.0.0.1:{port}")

        def sh(code: str, cwd: Path = tmp_path) -> str:
            p = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
            assert p.returncode == 0, code + p.stdout + p.stderr
            return p.stdout

        receipt = json.loads(sh(real(curl_block)))
        assert receipt["index"] == 0 and '"actor":"alice"' in receipt["entry"]
        assert "RESULT: everything holds" in sh(quickstart)
        py = str(BIN / "python")
        out = sh(f"{py} - <<'EOF'\n{real(sdk)}EOF\n")
        assert "\n1 {'action': 'login', 'actor': 'alice'" in out, out
        with httpx.Client(headers={"Authorization": f"Bearer {demo}"}) as c:
            events = c.get(f"http://127.0.0.1:{port}/v1/logs/demo/events/entries").json()
        messages = [json.loads(e["entry"]).get("message") for e in events["entries"]]
        assert messages[-1] == "refund refused", messages
        assert "c2sp.org/tlog-proof" not in sh(f"{py} - <<'EOF'\n{engine}EOF\n")
        alone = tmp_path / "alone"
        alone.mkdir()
        out = sh(f"{py} - <<'EOF'\n{engine}EOF\n", cwd=alone)
        assert out.startswith("0 ironlog.localhost/acme/payments\n1\n"), out
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.communicate(timeout=30)


def test_doc_examples_create_the_logs_they_use() -> None:
    """A console example in docs/ that names a log in `--listen ...=T/L` or binds
    a key to one (`key create T ... --log L`) creates it first in the same block:
    run as written, `serve` refuses a listener on a missing log."""
    for doc in sorted((ROOT / "docs").glob("*.md")):
        if doc.name == "cli.md":
            continue
        for kind, block in _blocks(doc.read_text()):
            if kind != "console":
                continue
            created: set[str] = set()
            for line in block.replace("\\\n", " ").splitlines():
                created.update(re.findall(r"ironlog log create (\S+)", line))
                used = re.findall(r"--listen \S+=(\S+)", line)
                m = re.search(r"ironlog key create (\S+) .*--log (\S+)", line)
                used += [f"{m.group(1)}/{m.group(2)}"] if m else []
                missing = [u for u in used if u not in created]
                assert not missing, f"{doc.name}: {line.strip()!r} uses {missing} before creating"


def _examples(help_text: str) -> list[list[str]]:
    """The commands of a help text's ``\\b`` Example(s) block, as words: continuation
    lines joined; variable assignments before it, what is piped into it and
    redirections dropped."""
    import inspect
    import shlex

    block = inspect.cleandoc(help_text).split("\b\nExample")[1].split("\n\n")[0]
    commands, current = [], ""
    for line in block.splitlines()[1:]:
        current += " " + line.strip().removesuffix("\\")
        if not line.endswith("\\"):
            words = shlex.split(current.split(" | ")[-1])
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)
            cut = next((i for i, w in enumerate(words) if w in (">", "<")), len(words))
            commands.append(words[:cut])
            current = ""
    return commands


def test_every_command_shows_an_example_that_names_it_and_its_options() -> None:
    """Each command's help ends with an example (a ``\\b`` block, as click's docs
    show them) that runs that command (or, for a group, its commands) with options
    it has: a renamed option or command fails here, not in a reader's shell."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_cli_docs
    finally:
        sys.path.pop(0)
    import inspect

    from ironlog.cli.base import DefaultGroup

    root = gen_cli_docs.main
    for path, cmd in gen_cli_docs.walk(root, ["ironlog"]):
        text = inspect.cleandoc(cmd.help or "")
        assert "\b\nExample" in text, f"{' '.join(path)} has no example"
        examples = _examples(text)
        assert examples, f"{' '.join(path)}: no example command"
        for words in examples:
            assert words[0] == "ironlog", (path, words)
            rest, at, names = words[1:], root, ["ironlog"]
            if rest[:1] == ["--data"]:
                rest = rest[2:]
            while isinstance(at, click.Group):
                if isinstance(at, DefaultGroup) and (not rest or rest[0] not in at.commands):
                    rest = [at.default, *rest]
                assert rest and rest[0] in at.commands, (path, words)
                at, names, rest = at.commands[rest[0]], [*names, rest[0]], rest[1:]
            assert names[: len(path)] == path, f"{' '.join(path)}: example runs {names}"
            known = {o for p in at.params for o in [*p.opts, *p.secondary_opts]}
            for w in rest:
                if w.startswith("-") and len(w) > 1:
                    assert w.split("=")[0] in known, f"{' '.join(names)}: no option {w}"
