"""The ``ironlog`` command: the root group (``--data``, ``init``) and its command groups."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ironlog.cli.base import DataDir, RootGroup, pass_data
from ironlog.cli.entries import append, checkpoint, entry, export, query, verify, vkey
from ironlog.cli.evidence import evidence_group
from ironlog.cli.keys import key_group, operator_key_group
from ironlog.cli.logs import log_group
from ironlog.cli.proofs import proof_group
from ironlog.cli.service import integrity_group, serve
from ironlog.cli.tenants import tenant_group
from ironlog.cli.tools import monitor, witness_group
from ironlog.engine.instance import DEFAULT_ORIGIN_PREFIX, PRIVATE_UMASK, init_data_dir


@click.group(cls=RootGroup)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="IRONLOG_DATA",
    default=Path("data"),
    show_default=True,
    help="Data directory (env IRONLOG_DATA).",
)
@click.version_option(package_name="ironlog")
@click.pass_context
def main(ctx: click.Context, data: Path) -> None:
    """ironlog: a crash-proof, tamper-evident audit log.

    \b
    Examples:
      ironlog --data /var/lib/ironlog log list
      IRONLOG_DATA=/var/lib/ironlog ironlog verify --all
    """
    os.umask(PRIVATE_UMASK)  # every file ironlog writes is 0600, every directory 0700
    ctx.obj = DataDir(data)


@main.command()
@click.option(
    "--origin-prefix",
    default=DEFAULT_ORIGIN_PREFIX,
    show_default=True,
    help="Prefix of every log's origin: <prefix>/<tenant>/<log>.",
)
@pass_data
def init(dd: DataDir, origin_prefix: str) -> None:
    """Create the data directory (0700) and its master key.  A non-empty directory
    that is not an ironlog data directory is refused (and left as it is).

    \b
    Examples:
      ironlog --data /var/lib/ironlog init
      ironlog init --origin-prefix audit.example.com
    """
    data: Path = dd.path
    created = init_data_dir(data, origin_prefix)
    what = "created master key" if created else "master key already present"
    click.echo(f"initialised {data} ({what})")


for command in (
    log_group, append, query, export, checkpoint, vkey, entry, proof_group, verify, tenant_group,
    key_group, operator_key_group, serve, integrity_group, evidence_group, witness_group, monitor,
):  # fmt: skip
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
