"""``ironlog evidence ...``: bundles for auditors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ironlog.cli.base import LOG_REF, DataDir, pass_data
from ironlog.core.entry import now_us
from ironlog.core.names import LogRef
from ironlog.core.timeparse import parse_time


@click.group("evidence")
def evidence_group() -> None:
    """Evidence bundles for auditors: export, and verify offline.

    \b
    Examples:
      ironlog evidence export acme/payments --index 7 --output case.json
      ironlog evidence verify case.json --vkey "$(ironlog vkey acme/payments)"
    """


@evidence_group.command("export")
@click.argument("path", type=LOG_REF)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (- for stdout).",
)
@click.option("--index", "indexes", multiple=True, type=click.IntRange(min=0), help="Repeatable.")
@click.option("--from", "from_", help="Entries received since (RFC 3339 or 1h, 2d...).")
@click.option("--to", help="... and until.")
@pass_data
def evidence_export(
    dd: DataDir,
    path: LogRef,
    output: Path,
    indexes: tuple[int, ...],
    from_: str | None,
    to: str | None,
) -> None:
    """One self-contained file: the entries, their inclusion proofs, the (cosigned)
    checkpoint, the log's and witnesses' keys, and a consistency proof to the
    newest checkpoint.

    \b
    Examples:
      ironlog evidence export acme/payments --index 7 --index 9 --output case.json
      ironlog evidence export acme/payments --from 2026-11-01 --to 2026-11-02 --output day.json
    """
    from ironlog.engine.export import export_evidence, write_bundle

    tenant, name = path
    now = now_us()
    bundle = export_evidence(
        dd.open(read_only=True),
        tenant,
        name,
        indexes,
        parse_time(from_, now) if from_ else None,
        parse_time(to, now) if to else None,
    )
    how = "witnessed" if bundle["witnessed"] else "log-signed"
    said = f"{len(bundle['entries'])} entries, {how} checkpoint"
    if str(output) == "-":  # stdout, as for `entry --output -`; the summary to stderr
        click.echo(json.dumps(bundle, indent=1))
        click.echo(f"wrote the bundle to stdout: {said}", err=True)
        return
    write_bundle(bundle, output)
    click.echo(f"wrote {output}: {said}")


@evidence_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--vkey", "vkey_", help="The log's verifier key to trust.")
@click.option("--witness-vkey", multiple=True, help="A witness key to trust (repeatable).")
@click.option("--quorum", type=click.IntRange(min=0), help="Cosignatures needed.")
@click.option(
    "--trust-embedded-key",
    is_flag=True,
    help="Accept the keys found in the file itself (without it and without --vkey: exit 3).",
)
def evidence_verify(
    file: str,
    vkey_: str | None,
    witness_vkey: tuple[str, ...],
    quorum: int | None,
    trust_embedded_key: bool,
) -> None:
    """Check a bundle offline; says what holds and what does not.  Exit 0: everything
    holds against the keys given; 1: something does not hold; 2: unreadable file;
    3: it holds only against keys taken from the file (no --vkey), so nothing is shown.
    Needs only the pure core: ``python -m ironlog.evidence verify FILE`` is the same.

    \b
    Examples:
      ironlog evidence verify case.json --vkey "$(ironlog vkey acme/payments)"
      ironlog evidence verify case.json --vkey LOG_VKEY \\
          --witness-vkey W1_VKEY --witness-vkey W2_VKEY --quorum 2
    """
    from ironlog.core.evidence import read_bundle, verify_bundle
    from ironlog.errors import IronlogError

    try:
        bundle = read_bundle(file)
    except (OSError, IronlogError) as e:  # an unreadable file is exit 2, not 1
        click.echo(f"error: {e}", err=True)
        raise SystemExit(2) from e
    report = verify_bundle(bundle, vkey_, list(witness_vkey) or None, quorum, trust_embedded_key)
    click.echo(report.render(), nl=False)
    raise SystemExit(report.exit_code)
