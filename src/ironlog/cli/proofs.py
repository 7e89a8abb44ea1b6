"""``ironlog proof``: proofs of a log (``proof show``, the default) and the offline
check of a .tlog-proof file (``proof verify``)."""

from __future__ import annotations

from pathlib import Path

import click

from ironlog.cli.base import LOG_REF, DataDir, DefaultGroup, pass_data
from ironlog.cli.entries import write_bytes
from ironlog.core.names import LogRef
from ironlog.core.note import b64encode


@click.group(
    "proof",
    cls=DefaultGroup,
    default="show",
    options_metavar="",
    subcommand_metavar="[show] TENANT/LOG [OPTIONS] | verify FILE [OPTIONS]",
)
def proof_group() -> None:
    """Proofs of a log, and their offline check.

    ``ironlog proof TENANT/LOG ...`` is short for ``ironlog proof show TENANT/LOG ...``.

    \b
    Examples:
      ironlog proof acme/payments --index 7 --entry-output e7.bin > e7.tlog-proof
      ironlog proof verify e7.tlog-proof --entry e7.bin --vkey "$(ironlog vkey acme/payments)"
    """


@proof_group.command("show")
@click.argument("path", type=LOG_REF)
@click.option("--index", type=click.IntRange(min=0), help="Inclusion proof of this entry.")
@click.option(
    "--size", type=click.IntRange(min=1), help="Tree size to prove against (default: latest)."
)
@click.option(
    "--from", "from_", type=click.IntRange(min=1), help="Consistency proof from this size..."
)
@click.option("--to", type=click.IntRange(min=1), help="...to this size (default: latest).")
@click.option(
    "--entry-output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --index: also write the entry's exact bytes to this file (for verify --entry).",
)
@pass_data
def proof_show(
    dd: DataDir,
    path: LogRef,
    index: int | None,
    size: int | None,
    from_: int | None,
    to: int | None,
    entry_output: Path | None,
) -> None:
    """A tlog-proof of entry --index (c2sp.org/tlog-proof: the entry's inclusion
    proof with its signed checkpoint, verifiable offline), or a consistency proof
    (--from/--to: base64 hashes, one a line).

    \b
    Examples:
      ironlog proof show acme/payments --index 7 > e7.tlog-proof
      ironlog proof show acme/payments --index 7 --size 100 --entry-output e7.bin
      ironlog proof show acme/payments --from 100 --to 250
    """
    tenant, name = path
    lg = dd.open(read_only=True).log(tenant, name)
    if entry_output is not None and (index is None or from_ is not None):
        raise click.UsageError("--entry-output goes with --index")
    if index is not None and from_ is None:
        text = lg.tlog_proof(index, size).to_text()
        if entry_output is not None:
            write_bytes(lg.entry(index), entry_output)
        click.echo(text, nl=False)
    elif from_ is not None and index is None:
        for h in lg.consistency_proof(from_, to):
            click.echo(b64encode(h))
    else:
        raise click.UsageError("give either --index N [--size S] or --from M [--to N]")


@proof_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--entry",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="File with the entry's exact bytes.",
)
@click.option("--vkey", "vkey_", required=True, help="The log's verifier key.")
@click.option("--witness-vkey", multiple=True, help="A witness key (repeatable).")
@click.option("--quorum", type=click.IntRange(min=0), default=0, help="Cosigners needed.")
def proof_verify(
    file: str, entry: str, vkey_: str, witness_vkey: tuple[str, ...], quorum: int
) -> None:
    """Check a .tlog-proof FILE offline against the entry's exact bytes: exit 0 if
    it holds, 1 if not, 2 if a file cannot be read.  Needs only the pure core:
    ``python -m ironlog.evidence proof FILE --entry ENTRYFILE --vkey VKEY`` is the same.

    \b
    Examples:
      ironlog proof verify e7.tlog-proof --entry e7.bin --vkey "$(ironlog vkey acme/payments)"
      ironlog proof verify e7.tlog-proof --entry e7.bin --vkey LOG_VKEY \\
          --witness-vkey W1 --witness-vkey W2 --quorum 2
    """
    from ironlog.core.evidence import check_proof_file

    try:
        report = check_proof_file(file, entry, vkey_, witness_vkey, quorum)
    except OSError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(2) from e
    click.echo(report.render(), nl=False)
    raise SystemExit(report.exit_code)
