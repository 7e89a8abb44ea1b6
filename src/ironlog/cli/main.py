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
from ironlog.engine.datadir import DATABASE_ENV, database_url, redact
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
@click.option(
    "--database",
    envvar=DATABASE_ENV,
    metavar="URL",
    help="A postgresql:// URL: tenants and logs live in that PostgreSQL database, the"
    " data directory keeps the master key (env IRONLOG_DATABASE_URL; default: the"
    " embedded store in the data directory).",
)
@click.version_option(package_name="ironlog")
@click.pass_context
def main(ctx: click.Context, data: Path, database: str | None) -> None:
    """ironlog: a crash-proof, tamper-evident audit log.

    \b
    Examples:
      ironlog --data /var/lib/ironlog log list
      IRONLOG_DATA=/var/lib/ironlog ironlog verify --all
      IRONLOG_DATABASE_URL=postgresql://ironlog@db1/ironlog ironlog --data /etc/ironlog serve
    """
    os.umask(PRIVATE_UMASK)  # every file ironlog writes is 0600, every directory 0700
    if database:  # what the service's workers (and every Ironlog opened here) use
        database_url(database)  # a bad URL is refused here, before anything runs
        os.environ[DATABASE_ENV] = database
    ctx.obj = DataDir(data, database or None)


@main.command()
@click.option(
    "--origin-prefix",
    default=DEFAULT_ORIGIN_PREFIX,
    show_default=True,
    help="Prefix of every log's origin: <prefix>/<tenant>/<log>.",
)
@click.option(
    "--database",
    metavar="URL",
    help="Create (or upgrade) the schema in this PostgreSQL database (as the root"
    " --database); the data directory gets the master key.",
)
@pass_data
def init(dd: DataDir, origin_prefix: str, database: str | None) -> None:
    """Create the data directory (0700) and its master key.  A non-empty directory
    that is not an ironlog data directory is refused (and left as it is).  With a
    PostgreSQL database, also its schema (idempotent; docs/postgres.md).

    \b
    Examples:
      ironlog --data /var/lib/ironlog init
      ironlog init --origin-prefix audit.example.com
      ironlog --data /etc/ironlog init --database postgresql://ironlog@db1/ironlog
    """
    data: Path = dd.path
    url = database_url(database or dd.database)
    created = init_data_dir(data, origin_prefix, url or "")
    what = "created master key" if created else "master key already present"
    where = f", schema in {redact(url)}" if url else ""
    click.echo(f"initialised {data} ({what}{where})")


for command in (
    log_group, append, query, export, checkpoint, vkey, entry, proof_group, verify, tenant_group,
    key_group, operator_key_group, serve, integrity_group, evidence_group, witness_group, monitor,
):  # fmt: skip
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
