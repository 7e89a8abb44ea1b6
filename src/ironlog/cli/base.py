"""The plumbing every command shares, written once: ironlog's errors become a
one-line message (exit 1) in the root group, the data directory is passed with
``pass_data``, and ``TENANT/LOG`` arguments are parsed by ``LOG_REF``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ironlog.core.names import LogRef
from ironlog.engine.instance import Ironlog
from ironlog.errors import IronlogError

FORMATS = ("json", "ndjson", "csv", "text")


class RootGroup(click.Group):
    """The ``ironlog`` group: an :class:`IronlogError` raised by any command
    becomes a clean CLI error (exit 1), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IronlogError as e:
            raise click.ClickException(str(e)) from e


class DataDir:
    """The data directory given with ``--data``; commands open it when they need it."""

    def __init__(self, path: Path, database: str | None = None) -> None:
        self.path = path
        self.database = database  # a postgresql:// URL, or None: the embedded store

    def open(self, read_only: bool = False) -> Ironlog:
        """The instance, closed with the command; ``read_only`` for commands that
        only read: they never write to the directory (not even a WAL checkpoint),
        so they work on a read-only copy, a read-only mount and a full disk."""
        il = Ironlog(self.path, read_only=read_only, database=self.database)
        click.get_current_context().call_on_close(il.close)
        return il


pass_data = click.make_pass_decorator(DataDir)


class LogRefType(click.ParamType[LogRef]):
    """A ``TENANT/LOG`` argument, given to the command as a :class:`LogRef`."""

    name = "TENANT/LOG"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "TENANT/LOG"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> LogRef:
        if isinstance(value, LogRef):
            return value
        try:
            return LogRef.parse(str(value))
        except IronlogError as e:
            self.fail(str(e), param, ctx)


LOG_REF = LogRefType()


def parse_log_ref(text: str) -> LogRef:
    """``TENANT/LOG`` from an argument kept as text (``integrity report``'s list)."""
    try:
        return LogRef.parse(text)
    except IronlogError as e:
        raise click.BadParameter(str(e), param_hint="TENANT/LOG") from e


class DefaultGroup(click.Group):
    """A group whose first word may also be the first argument of its ``default``
    command: ``ironlog proof T/L --index N`` is ``ironlog proof show T/L --index N``,
    while ``ironlog proof verify FILE`` is the ``verify`` command."""

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def log_command(group: click.Group, name: str) -> Callable[[Callable[..., None]], click.Command]:
    """``@log_command(group, "name")``: a command of ``group`` whose first argument is
    ``TENANT/LOG`` (given as a :class:`LogRef` named ``path``) after the data directory."""

    def wrap(fn: Callable[..., None]) -> click.Command:
        return group.command(name)(click.argument("path", type=LOG_REF)(pass_data(fn)))

    return wrap
