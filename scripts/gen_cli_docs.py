"""Generate docs/cli.md from the commands' own help (``make docs``).

tests/test_docs.py fails when docs/cli.md is out of date or a command has no help."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from ironlog.cli.main import main

HEADER = """# ironlog command reference

Generated from the commands' help by `make docs`; `tests/test_docs.py` keeps it
current.  Every command takes the global `--data DIR` (env `IRONLOG_DATA`,
default `./data`).  Errors are one line on stderr and exit status 1 (2 for a
usage error); a failed `verify` exits 1 and names what failed.
"""


def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from walk(cmd.commands[name], [*path, name])


def render() -> str:
    out = [HEADER]
    for path, cmd in walk(main, ["ironlog"]):
        ctx = click.Context(cmd, info_name=" ".join(path))
        out.append(f"\n## `{' '.join(path)}`\n\n```text\n{cmd.get_help(ctx)}\n```\n")
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
