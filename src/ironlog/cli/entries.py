"""Entries: ``append``, ``query``, ``export``, ``checkpoint``, ``vkey``, ``entry``,
``verify`` (``proof`` is in :mod:`ironlog.cli.proofs`)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

import click
import msgspec

from ironlog.atomic import replace_atomically
from ironlog.cli.base import FORMATS, LOG_REF, DataDir, pass_data
from ironlog.core.entry import PreparedEntry, now_us, prepare_json, prepare_text
from ironlog.core.names import LogRef
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.core.timeparse import parse_time
from ironlog.engine.audit import AuditReport, audit_log
from ironlog.errors import IronlogError
from ironlog.store.base import Query


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(stream, 1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield n, line


@click.command()
@click.argument("path", type=LOG_REF)
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--raw", is_flag=True, help='Store plain text lines as {"message": ...}.')
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Entries per committed batch.",
)
@pass_data
def append(dd: DataDir, path: LogRef, file: IO[bytes], raw: bool, batch_size: int) -> None:
    """Append NDJSON objects (or --raw text lines) from FILE or stdin.

    Each batch is all or nothing; on a bad line the command stops, says which
    line, and reports what earlier batches already appended.

    \b
    Examples:
      ironlog append acme/payments events.ndjson
      echo '{"actor":"alice","action":"pay"}' | ironlog append acme/payments
      ironlog append acme/payments --raw app.log
    """
    tenant, name = path
    lg = dd.open().log(tenant, name)
    pending: list[Future[BatchReceipt | list[Receipt]]] = []
    appended = 0
    last: BatchReceipt | None = None

    def settle(keep: int) -> None:
        nonlocal appended, last
        while len(pending) > keep:
            res = pending.pop(0).result()
            assert isinstance(res, BatchReceipt)
            appended += res.count
            last = res

    batch: list[PreparedEntry] = []
    try:
        for lineno, line in _lines(file):
            received = now_us()
            try:
                if raw:
                    try:
                        text = line.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise click.ClickException(f"line {lineno}: invalid UTF-8") from e
                    batch.append(prepare_text(text, received, "cli"))
                else:
                    batch.append(prepare_json(line, received, "cli"))
            except IronlogError as e:
                raise click.ClickException(f"line {lineno}: {e}") from e
            if len(batch) >= batch_size:
                pending.append(lg.submit(batch, proofs=False))
                batch = []
                settle(1)  # one batch committing while the next is prepared
        if batch:
            pending.append(lg.submit(batch, proofs=False))
        settle(0)
    except click.ClickException as e:
        settle(0)
        done = f"; {appended} entries from earlier batches were appended" if appended else ""
        raise click.ClickException(f"{e.message}; nothing of its batch was written{done}") from e
    if last is None:
        raise click.ClickException("no entries in the input")
    click.echo(
        f"appended {appended} entries (indexes {last.first_index + last.count - appended}"
        f"..{last.first_index + last.count - 1})"
    )
    checkpoint = last.checkpoint
    if not checkpoint:  # non-sync durability: signed once an fsync made it durable
        signed = lg.wait_signed(last.first_index + last.count, lg.sign_delay() + 2.0)
        if signed is None:
            raise click.ClickException("the entries were appended but are not signed yet")
        checkpoint = signed[1]
    click.echo(checkpoint, nl=False)


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--from", "from_", help="Received at or after: 1h, 30m, 2d, YYYY-MM-DD, RFC 3339."
        ),
        click.option("--to", help="Received before (same forms)."),
        click.option("--actor"),
        click.option("--action"),
        click.option("--resource"),
        click.option("--outcome"),
        click.option("--limit", type=click.IntRange(min=1)),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _query(kw: dict[str, Any]) -> Query:
    now = now_us()
    return Query(
        since_us=parse_time(kw["from_"], now) if kw.get("from_") else None,
        until_us=parse_time(kw["to"], now) if kw.get("to") else None,
        actor=kw.get("actor"),
        action=kw.get("action"),
        resource=kw.get("resource"),
        outcome=kw.get("outcome"),
        limit=kw.get("limit"),
    )


_CSV_FIELDS = ("index", "received_at", "actor", "action", "resource", "outcome", "entry")


def _write(rows: Iterator[tuple[int, bytes]], fmt: str, out: IO[str]) -> int:
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(_CSV_FIELDS)
    elif fmt == "json":
        out.write("[")
    for idx, data in rows:
        text = data.decode("utf-8")
        if fmt in ("ndjson", "json"):
            if fmt == "json" and n:
                out.write(",\n")
            out.write(f'{{"index":{idx},"entry":{text}}}')
            if fmt == "ndjson":
                out.write("\n")
        else:
            obj = msgspec.json.decode(data)
            fields = [
                str(obj.get(k, "")) if isinstance(obj, dict) else "" for k in _CSV_FIELDS[1:6]
            ]
            if fmt == "csv":
                w.writerow([idx, *fields, text])
            else:
                out.write(f"{idx}\t" + "\t".join(f or "-" for f in fields) + "\n")
        n += 1
    if fmt == "json":
        out.write("]\n")
    return n


@click.command()
@click.argument("path", type=LOG_REF)
@_filters
@pass_data
def query(dd: DataDir, /, path: LogRef, fmt: str | None, **kw: Any) -> None:
    """Show entries by received time and actor, action, resource, outcome.

    \b
    Examples:
      ironlog query acme/payments --from 1h
      ironlog query acme/payments --actor alice --action pay --format ndjson --limit 100
    """
    tenant, name = path
    lg = dd.open(read_only=True).log(tenant, name)
    _write(lg.query(_query(kw)), fmt or "text", sys.stdout)


@click.command()
@click.argument("path", type=LOG_REF)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_filters
@pass_data
def export(dd: DataDir, /, path: LogRef, output: Path, fmt: str | None, **kw: Any) -> None:
    """Write matching entries to a file, atomically (ndjson by default; - is stdout).

    \b
    Examples:
      ironlog export acme/payments --from 1d --output last-day.ndjson
      ironlog export acme/payments --actor alice --format csv -o alice.csv
    """
    tenant, name = path
    lg = dd.open(read_only=True).log(tenant, name)
    q = _query(kw)
    if str(output) == "-":  # stdout, as for `entry --output -`; the count to stderr
        n = _write(lg.query(q), fmt or "ndjson", sys.stdout)
        click.echo(f"exported {n} entries to stdout", err=True)
        return
    directory = output.resolve().parent
    if not directory.is_dir():
        raise click.ClickException(f"directory {directory} does not exist")
    with replace_atomically(directory / output.name) as f:
        n = _write(lg.query(q), fmt or "ndjson", f)
    click.echo(f"exported {n} entries to {output}")


@click.command()
@click.argument("path", type=LOG_REF)
@click.option("--size", type=click.IntRange(min=1), help="A stored checkpoint of this size.")
@pass_data
def checkpoint(dd: DataDir, path: LogRef, size: int | None) -> None:
    """Print the latest signed checkpoint.

    \b
    Examples:
      ironlog checkpoint acme/payments
      ironlog checkpoint acme/payments --size 100
    """
    tenant, name = path
    click.echo(dd.open(read_only=True).log(tenant, name).checkpoint(size), nl=False)


@click.command()
@click.argument("path", type=LOG_REF)
@pass_data
def vkey(dd: DataDir, path: LogRef) -> None:
    """Print the log's verifier key.

    \b
    Example:
      ironlog vkey acme/payments
    """
    tenant, name = path
    click.echo(dd.open(read_only=True).log(tenant, name).verifier.vkey())


def write_bytes(data: bytes, output: Path | None) -> None:
    """Exact bytes to a file (atomically) or to stdout; nothing added, not even a newline."""
    if output is None or str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    directory = output.resolve().parent
    if not directory.is_dir():
        raise click.ClickException(f"directory {directory} does not exist")
    with replace_atomically(directory / output.name) as f:
        f.buffer.write(data)  # the bytes as stored, not re-encoded


@click.command()
@click.argument("path", type=LOG_REF)
@click.argument("index", type=click.IntRange(min=0))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File for the entry's exact stored bytes (default: stdout, no newline added).",
)
@pass_data
def entry(dd: DataDir, path: LogRef, index: int, output: Path | None) -> None:
    """The exact stored bytes of entry INDEX: what its leaf hash covers, for
    ``ironlog proof verify --entry FILE``.

    \b
    Example:
      ironlog entry acme/payments 7 --output e7.bin
    """
    tenant, name = path
    data = dd.open(read_only=True).log(tenant, name).entry(index)
    write_bytes(data, output)
    if output is not None and str(output) != "-":
        click.echo(f"wrote entry {index} ({len(data)} bytes) to {output}", err=True)


@click.command()
@click.argument("path", required=False, type=LOG_REF)
@click.option("--all", "all_", is_flag=True, help="Audit every log.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@pass_data
def verify(dd: DataDir, path: LogRef | None, all_: bool, quiet: bool) -> None:
    """Full audit: re-hash every entry, rebuild every tile, check every checkpoint,
    every query column, that nothing lies beyond the head and that the log was
    not rolled back below the size it had signed.

    Exits 0 only if everything holds; otherwise names the first bad entry,
    tile or checkpoint.  --all skips quarantined logs (and says so); a log
    that cannot be opened fails without stopping the others.  Never writes to
    the data directory: works on a read-only copy and on a full disk.

    \b
    Examples:
      ironlog verify acme/payments
      ironlog verify --all --quiet
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    il = dd.open(read_only=True)
    if all_ == bool(path):
        raise click.UsageError("give TENANT/LOG or --all")
    if all_:  # quarantined logs are skipped, and said to be
        targets = [i.path for i in il.list_logs() if i.quarantined is None]
        for info in il.list_logs():
            if info.quarantined is not None:
                click.echo(f"skipped {info.path}: quarantined: {info.quarantined}")
    else:
        targets = [str(path)]
    failed = 0
    console_err = not quiet and sys.stderr.isatty()
    for p in targets:
        try:  # one log that cannot be opened does not stop the others
            lg = il.log_by_path(p)
            il.check_log_settings(lg.info.tenant, lg.info.name)  # its witness settings
            total = lg.head().size
        except IronlogError as e:
            failed += 1
            click.echo(f"FAILED {p}: {e}", err=True)
            continue
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            disable=not console_err,
            transient=True,
        ) as bar:
            task = bar.add_task(p, total=total or 1)

            def progress(n: int, t: Any = task, b: Progress = bar) -> None:
                b.update(t, completed=n)

            report: AuditReport = audit_log(lg, progress)
        if report.ok:
            rate = report.entries / report.seconds if report.seconds else 0.0
            click.echo(
                f"ok {p}: {report.entries} entries, {report.tiles} tiles, "
                f"{report.checkpoints} checkpoints verified in {report.seconds:.2f}s "
                f"({rate:,.0f} entries/s)"
            )
        else:
            failed += 1
            click.echo(f"FAILED {p}: {report.problem}", err=True)
    if failed:
        raise SystemExit(1)
