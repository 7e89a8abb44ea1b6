"""The ``ironlog`` command: a thin layer over the library.

Each command opens the data directory, calls the library, and turns
ironlog's errors into one-line messages with a non-zero exit status.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import click
import msgspec

from ironlog.atomic import replace_atomically
from ironlog.core.entry import PreparedEntry, now_us, prepare_json, prepare_text
from ironlog.core.note import b64encode
from ironlog.core.timeparse import parse_time
from ironlog.engine.api_keys import KeyManager, parse_scopes
from ironlog.engine.audit import AuditReport, audit_log
from ironlog.engine.instance import DEFAULT_ORIGIN_PREFIX, PRIVATE_UMASK, Ironlog, init_data_dir
from ironlog.engine.log import BatchReceipt, Receipt
from ironlog.errors import IronlogError
from ironlog.store.base import DEFAULT_INDEXES, Durability, Query, parse_indexes

P = ParamSpec("P")
R = TypeVar("R")

FORMATS = ("json", "ndjson", "csv", "text")


def _errors(fn: Callable[P, R]) -> Callable[P, R]:
    """ironlog's errors become a clean CLI error (exit 1), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except IronlogError as e:
            raise click.ClickException(str(e)) from e

    return wrapper


def _open(ctx: click.Context, read_only: bool = False) -> Ironlog:
    """The data directory; ``read_only`` for commands that only read: they
    never write to it (not even a WAL checkpoint), so they work on a
    read-only copy, a read-only mount and a full disk."""
    data: Path = ctx.obj["data"]
    il = Ironlog(data, read_only=read_only)
    ctx.call_on_close(il.close)
    return il


@click.group()
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
    """ironlog: a crash-proof, tamper-evident audit log."""
    os.umask(PRIVATE_UMASK)  # every file ironlog writes is 0600, every directory 0700
    ctx.ensure_object(dict)
    ctx.obj["data"] = data


@main.command()
@click.option(
    "--origin-prefix",
    default=DEFAULT_ORIGIN_PREFIX,
    show_default=True,
    help="Prefix of every log's origin: <prefix>/<tenant>/<log>.",
)
@click.pass_context
@_errors
def init(ctx: click.Context, origin_prefix: str) -> None:
    """Create the data directory (0700) and its master key.  A non-empty directory
    that is not an ironlog data directory is refused (and left as it is)."""
    data: Path = ctx.obj["data"]
    created = init_data_dir(data, origin_prefix)
    what = "created master key" if created else "master key already present"
    click.echo(f"initialised {data} ({what})")


@main.group("log")
def log_group() -> None:
    """Manage logs."""


@log_group.command("create")
@click.argument("path")
@click.option(
    "--durability",
    default="sync",
    show_default=True,
    help="sync | interval:MS | off (off is for tests and benchmarks only).",
)
@click.option(
    "--index",
    "index",
    default=",".join(DEFAULT_INDEXES) or "none",
    show_default=True,
    help="Fields to index for queries: any of actor,action,resource,outcome, or all, or none. "
    "Received time is always indexed; other fields are still queryable (by scan). Indexes on "
    "many-valued fields (actor, resource) slow appends more as the log grows.",
)
@click.option(
    "--public", is_flag=True, help="Serve the log's tlog-tiles and checkpoint without an API key."
)
@click.pass_context
@_errors
def log_create(ctx: click.Context, path: str, durability: str, index: str, public: bool) -> None:
    """Create TENANT/LOG (and the tenant, if it does not exist yet)."""
    tenant, _, name = _split(path)
    il = _open(ctx)
    info = il.create_log(
        tenant,
        name,
        Durability.parse(durability),
        create_tenant=True,
        indexes=parse_indexes(index),
        public=public,
    )
    lg = il.log(tenant, name)
    click.echo(f"created log {info.path}")
    click.echo(f"origin: {info.origin}")
    click.echo(f"durability: {info.durability}")
    click.echo(f"indexed: received_at{''.join(',' + f for f in info.indexes)}")
    click.echo(f"vkey: {lg.verifier.vkey()}")


@log_group.command("list")
@click.option("--tenant", help="Only this tenant's logs.")
@click.pass_context
@_errors
def log_list(ctx: click.Context, tenant: str | None) -> None:
    """List logs with their size and durability; a log out of service is
    listed with the reason (QUARANTINED or UNHEALTHY)."""
    il = _open(ctx, read_only=True)
    if tenant is not None:
        il.tenant(tenant)
    for info, lg in il.each_log(tenant, quarantined=True):
        if info.quarantined is not None:
            state, size = f"QUARANTINED: {info.quarantined}", "-"
        elif isinstance(lg, IronlogError):
            state, size = f"UNHEALTHY: {lg}", "-"
        else:
            size = str(lg.head().size)
            state = "ok" if lg.unhealthy is None else f"UNHEALTHY: {lg.unhealthy}"
        click.echo(f"{info.path}\t{size}\t{info.durability}\t{info.origin}\t{state}")


@log_group.command("quarantine")
@click.argument("path", metavar="TENANT/LOG")
@click.option("--reason", required=True, help="Why; shown to anyone who tries to use the log.")
@click.pass_context
@_errors
def log_quarantine(ctx: click.Context, path: str, reason: str) -> None:
    """Take a (broken) log out of service: it refuses reads and writes with
    the reason, and integrity checks, verify --all and witnessing skip it.
    A running server notices within a second."""
    tenant, _, name = _split(path)
    info = _open(ctx).quarantine_log(tenant, name, reason)
    click.echo(f"quarantined {info.path}: {info.quarantined}")


@log_group.command("release")
@click.argument("path", metavar="TENANT/LOG")
@click.pass_context
@_errors
def log_release(ctx: click.Context, path: str) -> None:
    """Put a quarantined log back in service (it is checked again when opened)."""
    tenant, _, name = _split(path)
    info = _open(ctx).release_log(tenant, name)
    click.echo(f"released {info.path}")


@log_group.command("delete")
@click.argument("path", metavar="TENANT/LOG")
@click.pass_context
@_errors
def log_delete(ctx: click.Context, path: str) -> None:
    """Forget a quarantined log; its files are moved under DATA/deleted/."""
    tenant, _, name = _split(path)
    where = _open(ctx).delete_log(tenant, name)
    click.echo(f"deleted {tenant}/{name}: its files are in {where}")


@log_group.command("info")
@click.argument("path", metavar="TENANT/LOG")
@click.pass_context
@_errors
def log_info(ctx: click.Context, path: str) -> None:
    """What GET /v1/logs/TENANT/LOG answers, as JSON: origin, keys, size, durability,
    indexes, public, health, witnesses and their status."""
    tenant, _, name = _split(path)
    il = _open(ctx)
    out = il.describe_log(il.log(tenant, name))
    click.echo(json.dumps(out, indent=1))


@log_group.command("public")
@click.argument("path", metavar="TENANT/LOG")
@click.option(
    "--on/--off",
    "public",
    required=True,
    help="Serve the log's tlog-tiles and checkpoint without an API key (--on), or not.",
)
@click.pass_context
@_errors
def log_public(ctx: click.Context, path: str, public: bool) -> None:
    """Make TENANT/LOG's tlog-tiles and checkpoint public, or private again."""
    tenant, _, name = _split(path)
    _open(ctx).control.set_log_public(tenant, name, public)
    click.echo(f"{path}: {'public' if public else 'private'}")


@log_group.command("witnesses")
@click.argument("path", metavar="TENANT/LOG")
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    metavar="VKEY=URL",
    help="A witness: its cosignature/v1 verifier key and base URL (repeatable).",
)
@click.option("--quorum", type=click.IntRange(min=1), help="How many must cosign.  [default: all]")
@click.option(
    "--policy",
    "policy_json",
    help='A policy group as JSON, e.g. \'{"quorum": 2, "members": ["w1", {"quorum": 1, '
    '"members": ["w2", "w3"]}]}\' (members are witness key names).',
)
@click.pass_context
@_errors
def log_witnesses(
    ctx: click.Context,
    path: str,
    witnesses: tuple[str, ...],
    quorum: int | None,
    policy_json: str | None,
) -> None:
    """Set the witnesses of TENANT/LOG and how many must cosign (no --witness: none).
    The running service submits each new checkpoint to them.  The tenant must be
    allowed witnesses (tenant witnessing), and each URL must resolve to a public
    address or one in IRONLOG_WITNESS_ALLOW (as for serve --witness-allow)."""
    from ironlog.core.policy import parse_policy
    from ironlog.service.outbound import OutboundPolicy

    tenant, _, name = _split(path)
    ws = []
    for w in witnesses:
        vkey, sep, url = w.partition("=")
        if not sep:
            raise click.BadParameter(f"{w!r} is not VKEY=URL", param_hint="--witness")
        ws.append({"vkey": vkey, "url": url})
    if quorum is not None and policy_json is not None:
        raise click.UsageError("give --quorum or --policy, not both")
    raw: dict[str, Any] = {"witnesses": ws}
    if policy_json is not None:
        try:
            raw["policy"] = json.loads(policy_json)
        except ValueError as e:
            raise click.BadParameter("not valid JSON", param_hint="--policy") from e
    elif quorum is not None:
        raw["policy"] = {"quorum": quorum, "members": [w["vkey"].split("+")[0] for w in ws]}
    policy = parse_policy(raw)
    check = OutboundPolicy.from_env().check  # as the service will check them
    _open(ctx).set_witnesses(tenant, name, policy, check_url=check)
    click.echo(json.dumps(policy.to_json(), indent=1))


def _split(path: str) -> tuple[str, str, str]:
    tenant, sep, name = path.partition("/")
    if not sep or not tenant or not name or "/" in name:
        raise click.BadParameter(f"{path!r} is not TENANT/LOG", param_hint="TENANT/LOG")
    return tenant, sep, name


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(stream, 1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield n, line


@main.command()
@click.argument("path")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--raw", is_flag=True, help='Store plain text lines as {"message": ...}.')
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Entries per committed batch.",
)
@click.pass_context
@_errors
def append(ctx: click.Context, path: str, file: IO[bytes], raw: bool, batch_size: int) -> None:
    """Append NDJSON objects (or --raw text lines) from FILE or stdin.

    Each batch is all or nothing; on a bad line the command stops, says which
    line, and reports what earlier batches already appended."""
    tenant, _, name = _split(path)
    lg = _open(ctx).log(tenant, name)
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


@main.command()
@click.argument("path")
@_filters
@click.pass_context
@_errors
def query(ctx: click.Context, /, path: str, fmt: str | None, **kw: Any) -> None:
    """Show entries by received time and actor, action, resource, outcome."""
    tenant, _, name = _split(path)
    lg = _open(ctx, read_only=True).log(tenant, name)
    _write(lg.query(_query(kw)), fmt or "text", sys.stdout)


@main.command()
@click.argument("path")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_filters
@click.pass_context
@_errors
def export(ctx: click.Context, /, path: str, output: Path, fmt: str | None, **kw: Any) -> None:
    """Write matching entries to a file, atomically (ndjson by default)."""
    tenant, _, name = _split(path)
    lg = _open(ctx, read_only=True).log(tenant, name)
    q = _query(kw)
    directory = output.resolve().parent
    if not directory.is_dir():
        raise click.ClickException(f"directory {directory} does not exist")
    with replace_atomically(directory / output.name) as f:
        n = _write(lg.query(q), fmt or "ndjson", f)
    click.echo(f"exported {n} entries to {output}")


@main.command()
@click.argument("path")
@click.option("--size", type=click.IntRange(min=1), help="A stored checkpoint of this size.")
@click.pass_context
@_errors
def checkpoint(ctx: click.Context, path: str, size: int | None) -> None:
    """Print the latest signed checkpoint."""
    tenant, _, name = _split(path)
    click.echo(_open(ctx, read_only=True).log(tenant, name).checkpoint(size), nl=False)


@main.command()
@click.argument("path")
@click.pass_context
@_errors
def vkey(ctx: click.Context, path: str) -> None:
    """Print the log's verifier key."""
    tenant, _, name = _split(path)
    click.echo(_open(ctx, read_only=True).log(tenant, name).verifier.vkey())


def _write_bytes(data: bytes, output: Path | None) -> None:
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


@main.command()
@click.argument("path", metavar="TENANT/LOG")
@click.argument("index", type=click.IntRange(min=0))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File for the entry's exact stored bytes (default: stdout, no newline added).",
)
@click.pass_context
@_errors
def entry(ctx: click.Context, path: str, index: int, output: Path | None) -> None:
    """The exact stored bytes of entry INDEX: what its leaf hash covers, for
    ``ironlog proof verify --entry FILE``."""
    tenant, _, name = _split(path)
    data = _open(ctx).log(tenant, name).entry(index)
    _write_bytes(data, output)
    if output is not None and str(output) != "-":
        click.echo(f"wrote entry {index} ({len(data)} bytes) to {output}", err=True)


@main.command()
@click.argument("path", metavar="TENANT/LOG | verify")
@click.argument("proof_file", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--index", type=click.IntRange(min=0), help="Inclusion proof of this entry.")
@click.option(
    "--size", type=click.IntRange(min=1), help="Tree size to prove against (default: latest)."
)
@click.option(
    "--from", "from_", type=click.IntRange(min=1), help="Consistency proof from this size..."
)
@click.option("--to", type=click.IntRange(min=1), help="...to this size (default: latest).")
@click.option(
    "--entry",
    type=click.Path(dir_okay=False, exists=True),
    help="verify: file with the entry's exact bytes.",
)
@click.option("--vkey", "vkey_", help="verify: the log's verifier key.")
@click.option("--witness-vkey", multiple=True, help="verify: a witness key (repeatable).")
@click.option("--quorum", type=click.IntRange(min=0), default=0, help="verify: cosigners needed.")
@click.option(
    "--entry-output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --index: also write the entry's exact bytes to this file (for verify --entry).",
)
@click.pass_context
@_errors
def proof(
    ctx: click.Context,
    path: str,
    proof_file: str | None,
    index: int | None,
    size: int | None,
    from_: int | None,
    to: int | None,
    entry: str | None,
    vkey_: str | None,
    witness_vkey: tuple[str, ...],
    quorum: int,
    entry_output: Path | None,
) -> None:
    """A tlog-proof (--index) or a consistency proof (--from/--to) of TENANT/LOG;
    or ``ironlog proof verify FILE --entry ENTRYFILE --vkey VKEY`` to check a
    .tlog-proof offline (exit 1 if it does not hold)."""
    if path == "verify":
        from ironlog.core.evidence import verify_proof_file

        if not (proof_file and entry and vkey_):
            raise click.UsageError("proof verify FILE --entry ENTRYFILE --vkey VKEY")
        report = verify_proof_file(
            Path(proof_file).read_bytes(), Path(entry).read_bytes(), vkey_, witness_vkey, quorum
        )
        click.echo(report.render(), nl=False)
        raise SystemExit(0 if report.passed else 1)
    tenant, _, name = _split(path)
    lg = _open(ctx, read_only=True).log(tenant, name)
    if entry_output is not None and (index is None or from_ is not None):
        raise click.UsageError("--entry-output goes with --index")
    if index is not None and from_ is None:
        text = lg.tlog_proof(index, size).to_text()
        if entry_output is not None:
            _write_bytes(lg.entry(index), entry_output)
        click.echo(text, nl=False)
    elif from_ is not None and index is None:
        for h in lg.consistency_proof(from_, to):
            click.echo(b64encode(h))
    else:
        raise click.UsageError("give either --index N [--size S] or --from M [--to N]")


@main.command()
@click.argument("path", required=False)
@click.option("--all", "all_", is_flag=True, help="Audit every log.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
@_errors
def verify(ctx: click.Context, path: str | None, all_: bool, quiet: bool) -> None:
    """Full audit: re-hash every entry, rebuild every tile, check every checkpoint,
    every query column, that nothing lies beyond the head and that the log was
    not rolled back below the size it had signed.

    Exits 0 only if everything holds; otherwise names the first bad entry,
    tile or checkpoint.  --all skips quarantined logs (and says so); a log
    that cannot be opened fails without stopping the others.  Never writes to
    the data directory: works on a read-only copy and on a full disk."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    il = _open(ctx, read_only=True)
    if all_ == bool(path):
        raise click.UsageError("give TENANT/LOG or --all")
    if all_:  # quarantined logs are skipped, and said to be
        targets = [i.path for i in il.list_logs() if i.quarantined is None]
        for info in il.list_logs():
            if info.quarantined is not None:
                click.echo(f"skipped {info.path}: quarantined: {info.quarantined}")
    else:
        targets = [path or ""]
    for p in targets:
        _split(p)
    failed = 0
    console_err = not quiet and sys.stderr.isatty()
    for p in targets:
        try:  # one log that cannot be opened does not stop the others
            lg = il.log_by_path(p)
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
        ctx.exit(1)


@main.group("tenant")
def tenant_group() -> None:
    """Manage tenants."""


@tenant_group.command("create")
@click.argument("name")
@click.pass_context
@_errors
def tenant_create(ctx: click.Context, name: str) -> None:
    """Create a tenant with its own signing key."""
    rec = _open(ctx).create_tenant(name)
    click.echo(f"created tenant {rec.name}")


@tenant_group.command("list")
@click.pass_context
@_errors
def tenant_list(ctx: click.Context) -> None:
    """List tenants."""
    for t in _open(ctx, read_only=True).control.list_tenants():
        click.echo(f"{t.name}\t{'disabled' if t.disabled else 'active'}")


def _set_disabled(ctx: click.Context, name: str, disabled: bool) -> None:
    il = _open(ctx)
    il.tenant(name)
    il.control.set_tenant_disabled(name, disabled)


@tenant_group.command("disable")
@click.argument("name")
@click.pass_context
@_errors
def tenant_disable(ctx: click.Context, name: str) -> None:
    """Disable a tenant: its keys stop working (within a second in a running service)."""
    _set_disabled(ctx, name, True)
    click.echo(f"disabled tenant {name}")


@tenant_group.command("enable")
@click.argument("name")
@click.pass_context
@_errors
def tenant_enable(ctx: click.Context, name: str) -> None:
    """Enable a disabled tenant again."""
    _set_disabled(ctx, name, False)
    click.echo(f"enabled tenant {name}")


@tenant_group.command("keys")
@click.argument("tenant")
@click.pass_context
@_errors
def tenant_keys(ctx: click.Context, tenant: str) -> None:
    """List TENANT's checkpoint-signing keys (fingerprint, kind, created, retired)."""
    from ironlog.core.entry import format_time

    for k in _open(ctx).signing_keys(tenant):
        retired = format_time(k.retired_us) if k.retired_us else "active"
        click.echo(f"{k.fingerprint}\t{k.kind}\t{format_time(k.created_us)}\t{retired}")


@tenant_group.command("rotate-key")
@click.argument("tenant")
@click.option("--pkcs11-module", help="PKCS#11 library: generate the new key in that token.")
@click.option("--pkcs11-token", help="Token label.")
@click.option("--pkcs11-label", help="Label for the new key in the token.")
@click.pass_context
@_errors
def tenant_rotate_key(
    ctx: click.Context,
    tenant: str,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    pkcs11_label: str | None,
) -> None:
    """Add a new signing key for TENANT.  Old and new keys both sign every
    checkpoint until the old one is retired (retire-key).  With --pkcs11-*, the
    key is generated in the token and never leaves it (PIN: IRONLOG_PKCS11_PIN)."""
    from ironlog.engine.signing_keys import Pkcs11Ref

    given = [pkcs11_module, pkcs11_token, pkcs11_label]
    if any(given) and not all(given):
        raise click.UsageError("--pkcs11-module, --pkcs11-token and --pkcs11-label go together")
    ref = (
        Pkcs11Ref(str(pkcs11_module), str(pkcs11_token), str(pkcs11_label)) if all(given) else None
    )
    il = _open(ctx)
    rec = il.rotate_signing_key(tenant, ref)
    click.echo(f"new signing key {rec.fingerprint} ({rec.kind}); now signing with:", err=True)
    for info, lg in il.each_log(tenant):
        if isinstance(lg, IronlogError):
            click.echo(f"{info.path}\tcannot be opened: {lg}", err=True)
            continue
        for v in lg.keys.published():
            if v["retired_us"] is None:
                click.echo(f"{info.path}\t{v['fingerprint']}\t{v['vkey']}")


@tenant_group.command("retire-key")
@click.argument("tenant")
@click.argument("fingerprint")
@click.pass_context
@_errors
def tenant_retire_key(ctx: click.Context, tenant: str, fingerprint: str) -> None:
    """Stop signing with a key; checkpoints it signed still verify with it."""
    _open(ctx).retire_signing_key(tenant, fingerprint)
    click.echo(f"retired {fingerprint}")


@tenant_group.command("witnessing")
@click.argument("tenant")
@click.option(
    "--enable/--disable", required=True, help="Allow the tenant's logs witnesses, or not."
)
@click.pass_context
@_errors
def tenant_witnessing(ctx: click.Context, tenant: str, enable: bool) -> None:
    """Allow TENANT to give its logs witnesses (off by default): the service then
    sends requests to URLs the tenant chooses, on public addresses or networks
    allowed with serve --witness-allow.  Recorded in the tenant's system log."""
    _open(ctx).set_witnessing_allowed(tenant, enable)
    click.echo(f"witnessing {'enabled' if enable else 'disabled'} for tenant {tenant}")


@tenant_group.command("operator-lock")
@click.argument("tenant")
@click.option("--unlock", is_flag=True, help="Lift the lock.")
@click.option(
    "--url",
    help="As the tenant: the service's URL; the tenant's admin key comes from IRONLOG_API_KEY.  "
    "Without --url: on the service's machine, as the operator (to unlock a tenant that lost "
    "its admin keys).",
)
@click.pass_context
@_errors
def tenant_operator_lock(ctx: click.Context, tenant: str, unlock: bool, url: str | None) -> None:
    """Lock the operator out of creating or rotating TENANT's API keys (or --unlock).
    Every lock and unlock is recorded in the tenant's system log."""
    if url is None:
        _open(ctx).set_operator_locked(tenant, not unlock)
    else:
        import httpx

        key = os.environ.get("IRONLOG_API_KEY")
        if not key:
            raise click.UsageError("set IRONLOG_API_KEY to the tenant's admin key")
        try:
            r = httpx.post(
                f"{url.rstrip('/')}/v1/tenants/{tenant}/operator-lock",
                json={"locked": not unlock},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        except httpx.HTTPError as e:
            raise click.ClickException(f"cannot reach {url}: {type(e).__name__}") from e
        if r.status_code != 200:
            try:
                msg = str(r.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                msg = f"HTTP {r.status_code}"
            raise click.ClickException(msg)
    click.echo(f"operator {'unlocked' if unlock else 'locked out'} for tenant {tenant}")


@main.group("key")
def key_group() -> None:
    """Manage API keys."""


@key_group.command("create")
@click.argument("tenant")
@click.option("--scopes", required=True, help="Comma-separated: append, read, admin.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--expires-in", type=click.IntRange(min=1), help="Lifetime in seconds.")
@click.option(
    "--log",
    "log_name",
    help="Bind the key to this log of the tenant: it can use no other (OTLP writes there).",
)
@click.pass_context
@_errors
def key_create(
    ctx: click.Context,
    tenant: str,
    scopes: str,
    name: str,
    expires_in: int | None,
    log_name: str | None,
) -> None:
    """Create an API key for TENANT; the secret is printed once."""
    il = _open(ctx)
    secret, rec = KeyManager(il.control, record=il.record).create(
        tenant, parse_scopes(scopes), name, expires_in, log_name
    )
    click.echo(f"key id: {rec.key_id}  scopes: {','.join(rec.scopes)}", err=True)
    click.echo(secret)


@key_group.command("list")
@click.argument("tenant")
@click.pass_context
@_errors
def key_list(ctx: click.Context, tenant: str) -> None:
    """List TENANT's API keys: id, scopes, name, created, state (never secrets)."""
    il = _open(ctx)
    il.tenant(tenant)
    for line in _key_rows(KeyManager(il.control).list(tenant)):
        click.echo(line)


@key_group.command("rotate")
@click.argument("tenant")
@click.argument("key_id")
@click.option(
    "--old-expires-in",
    type=click.IntRange(min=0),
    help="Seconds the old key keeps working.  [default: until revoked]",
)
@click.pass_context
@_errors
def key_rotate(ctx: click.Context, tenant: str, key_id: str, old_expires_in: int | None) -> None:
    """A new key with the same scopes as KEY_ID; the secret is printed once."""
    secret, rec = KeyManager(_open(ctx).control).rotate(key_id, tenant, old_expires_in)
    click.echo(f"key id: {rec.key_id} replaces {key_id}  scopes: {','.join(rec.scopes)}", err=True)
    click.echo(secret)


@key_group.command("revoke")
@click.argument("tenant")
@click.argument("key_id")
@click.pass_context
@_errors
def key_revoke(ctx: click.Context, tenant: str, key_id: str) -> None:
    """Revoke an API key now."""
    il = _open(ctx)
    KeyManager(il.control, record=il.record).revoke(key_id, tenant)
    click.echo(f"revoked {key_id}")


def _key_rows(keys: list[Any]) -> Iterator[str]:
    """One line per key (never the secret): id, scopes, name, created, state."""
    from ironlog.core.entry import format_time

    now = now_us()
    for k in keys:
        if k.revoked_us is not None:
            state = f"revoked {format_time(k.revoked_us)}"
        elif k.expires_us is not None:
            word = "expired" if k.expires_us <= now else "expires"
            state = f"{word} {format_time(k.expires_us)}"
        else:
            state = "active"
        cols = [k.key_id, ",".join(k.scopes), k.name or "-", format_time(k.created_us), state]
        yield "\t".join(cols) + (f"\tlog={k.log}" if k.log else "")


@main.group("operator-key")
def operator_key_group() -> None:
    """The operator's API keys (manage tenants over HTTP); needs the data directory."""


@operator_key_group.command("list")
@click.pass_context
@_errors
def operator_key_list(ctx: click.Context) -> None:
    """List operator keys (id, scopes, name, created, state); never secrets."""
    for line in _key_rows(KeyManager(_open(ctx).control).list(None)):
        click.echo(line)


@operator_key_group.command("new")
@click.option(
    "--keep-old",
    is_flag=True,
    help="Leave the existing operator keys valid (default: revoke them all).",
)
@click.option("--name", default="operator", show_default=True, help="A label for the key.")
@click.pass_context
@_errors
def operator_key_new(ctx: click.Context, keep_old: bool, name: str) -> None:
    """Issue a new operator key and print its secret once, e.g. when the one shown
    at first start was lost.  Needs access to the data directory, not to the API;
    a running service accepts the new key (and refuses revoked ones) within a second."""
    from ironlog.engine.api_keys import OPERATOR_SCOPE

    keys = KeyManager(_open(ctx).control)
    old = [k for k in keys.list(None) if k.revoked_us is None]
    secret, rec = keys.create(None, (OPERATOR_SCOPE,), name)
    if not keep_old:
        for k in old:
            keys.revoke(k.key_id, None)
    done = f"revoked {len(old)} old" if not keep_old else f"kept {len(old)} old"
    click.echo(f"new operator key id: {rec.key_id} ({done}); the secret is shown once:", err=True)
    click.echo(secret)


@main.command()
@click.option("--host", help="Address to bind.  [default: 127.0.0.1]")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind.  [default: 8080]")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the data directory.  [default: 1]",
)
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, exists=True), help="TLS certificate (PEM)."
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM)."
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    help="Requests per second allowed per API key and worker; 0 = no limit.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file with any of: host, port, workers, tls_cert, tls_key, rate_limit, "
    "rate_burst, verify_interval, full_verify_interval, witness_allow, [[listen]] tables "
    "and a [limits] table.  "
    "Options given here win.",
)
@click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="KIND:HOST:PORT=TENANT/LOG",
    help="Also receive events on a socket (repeatable).  KIND: syslog-udp, syslog-tcp, "
    "syslog-tls (uses --tls-cert/--tls-key), ndjson-tcp.",
)
@click.option(
    "--witness-allow",
    "witness_allow",
    multiple=True,
    metavar="CIDR",
    help="Also allow witnesses in this network, e.g. 127.0.0.0/8 (repeatable; "
    "default: public addresses only; env IRONLOG_WITNESS_ALLOW, comma-separated).",
)
@click.pass_context
@_errors
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    rate_limit: float | None,
    config: Path | None,
    listen: tuple[str, ...],
    witness_allow: tuple[str, ...],
) -> None:
    """Run the HTTP API (initialises the data directory on first start).

    The address is bound first: if it is taken, nothing is created or printed."""
    from ironlog.service.server import ServeConfig, bind_http, first_start, run

    data: Path = ctx.obj["data"]
    cfg = ServeConfig.load(config)
    for name, value in (
        ("host", host),
        ("port", port),
        ("workers", workers),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("rate_limit", rate_limit),
    ):
        if value is not None:
            setattr(cfg, name, value)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    cfg.add_listeners(listen)
    cfg.add_witness_allow(witness_allow)
    listening = list(cfg.check_listeners(data))  # checks only: nothing created yet
    sock = bind_http(cfg)
    for line in first_start(data, cfg.host, cfg.port, tls=bool(cfg.tls_cert)):
        click.echo(line)
    for line in listening:
        click.echo(line)
    run(data, cfg, sock)


@main.group("integrity")
def integrity_group() -> None:
    """Integrity checks: a fresh report, and lifting a service's write refusal."""


@integrity_group.command("report")
@click.argument("paths", nargs=-1, metavar="[TENANT/LOG]...")
@click.option("--tenant", help="Only this tenant's logs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per log, as the API.")
@click.pass_context
@_errors
def integrity_report(
    ctx: click.Context, paths: tuple[str, ...], tenant: str | None, as_json: bool
) -> None:
    """Check logs now (every log by default), as the service's background check
    does, and report each as GET /v1/integrity does.  Exit 1 if any fails."""
    from ironlog.service.integrity import IntegrityChecker

    il = _open(ctx)
    if tenant is not None:
        il.tenant(tenant)
    infos = il.list_logs(tenant)
    targets = [i.path for i in infos if i.quarantined is None]
    for i in infos:  # out of service: said, not checked
        if i.quarantined is not None and (not paths or i.path in paths):
            click.echo(f"QUARANTINED {i.path}: {i.quarantined}")
    for p in paths:
        t, _, n = _split(p)
        il.log(t, n)  # names an unknown log clearly
    checker = IntegrityChecker(il)
    failed = 0
    for path in [p for p in targets if not paths or p in paths]:
        try:
            st = checker.check(path, full=True)  # a failure also marks the log unwritable
            lg = il.log_by_path(path)
        except IronlogError as e:  # one broken log does not hide the others
            failed += 1
            click.echo(json.dumps({"log": path, "failure": str(e)}) if as_json else
                       f"FAILED {path}: {e}")  # fmt: skip
            continue
        row = {**st.to_json(), "writable": lg.unhealthy is None, "reason": lg.unhealthy}
        ok = st.failure is None and lg.unhealthy is None
        failed += not ok
        if as_json:
            click.echo(json.dumps(row))
        elif ok:
            click.echo(f"ok {path}: {st.verified_size} entries verified")
        else:
            click.echo(f"FAILED {path}: {st.failure or lg.unhealthy}")
    if failed:
        ctx.exit(1)


@integrity_group.command("clear")
@click.argument("path", metavar="TENANT/LOG")
@click.option(
    "--url",
    required=True,
    help="The running service, e.g. http://127.0.0.1:8080 (the refusal lives in its memory).",
)
@click.option(
    "--api-key",
    envvar="IRONLOG_API_KEY",
    required=True,
    help="The operator key (or IRONLOG_API_KEY).",
)
@click.option("--force", is_flag=True, help="Lift the refusal even if the log still fails.")
@_errors
def integrity_clear(path: str, url: str, api_key: str, force: bool) -> None:
    """Re-verify TENANT/LOG in the running service and lift its write refusal if
    it passes (POST /v1/integrity/TENANT/LOG/clear).  A restart also re-checks."""
    import httpx

    tenant, _, name = _split(path)
    try:
        r = httpx.post(
            f"{url.rstrip('/')}/v1/integrity/{tenant}/{name}/clear",
            params={"force": "true"} if force else None,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=600,
        )
    except httpx.HTTPError as e:
        raise click.ClickException(f"cannot reach {url}: {type(e).__name__}") from e
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code != 200:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        raise click.ClickException(f"{r.status_code}: {err.get('message') or r.reason_phrase}")
    click.echo(f"cleared {path}: {json.dumps(body)}")


@main.group("evidence")
def evidence_group() -> None:
    """Evidence bundles for auditors: export, and verify offline."""


@evidence_group.command("export")
@click.argument("path", metavar="TENANT/LOG")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write.",
)
@click.option("--index", "indexes", multiple=True, type=click.IntRange(min=0), help="Repeatable.")
@click.option("--from", "from_", help="Entries received since (RFC 3339 or 1h, 2d...).")
@click.option("--to", help="... and until.")
@click.pass_context
@_errors
def evidence_export(
    ctx: click.Context,
    path: str,
    output: Path,
    indexes: tuple[int, ...],
    from_: str | None,
    to: str | None,
) -> None:
    """One self-contained file: the entries, their inclusion proofs, the (cosigned)
    checkpoint, the log's and witnesses' keys, and a consistency proof to the
    newest checkpoint."""
    from ironlog.core.timeparse import parse_time
    from ironlog.engine.export import export_evidence, write_bundle

    tenant, _, name = _split(path)
    now = now_us()
    bundle = export_evidence(
        _open(ctx, read_only=True),
        tenant,
        name,
        indexes,
        parse_time(from_, now) if from_ else None,
        parse_time(to, now) if to else None,
    )
    write_bundle(bundle, output)
    how = "witnessed" if bundle["witnessed"] else "log-signed"
    click.echo(f"wrote {output}: {len(bundle['entries'])} entries, {how} checkpoint")


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
@_errors
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
    Needs only the pure core: ``python -m ironlog.evidence verify FILE`` is the same."""
    from ironlog.core.evidence import main as evidence_main

    args = ["verify", file]
    if trust_embedded_key:
        args.append("--trust-embedded-key")
    if vkey_:
        args += ["--vkey", vkey_]
    for w in witness_vkey:
        args += ["--witness-vkey", w]
    if quorum is not None:
        args += ["--quorum", str(quorum)]
    raise SystemExit(evidence_main(args))


@main.group("witness")
def witness_group() -> None:
    """Run a witness (c2sp.org/tlog-witness) that cosigns logs' checkpoints."""


@witness_group.command("keygen")
@click.argument("name")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key file to write (mode 0600).  [default: NAME's last part + .key]",
)
@_errors
def witness_keygen(name: str, output: Path | None) -> None:
    """Create a witness key NAME; prints its verifier key (give it to log operators)."""
    from ironlog.tools.witness_server import keygen

    path = output or Path(name.rstrip("/").rsplit("/", 1)[-1] + ".key")
    key = keygen(name, path)
    click.echo(f"wrote {path}", err=True)
    click.echo(key.vkey())


@witness_group.command("serve")
@click.option(
    "--data",
    "wdata",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the witness's state.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="Witness key file (from 'ironlog witness keygen').",
)
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    metavar="ORIGIN=VKEY",
    help="A log to witness and its verifier key (repeatable).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8090, show_default=True, help="Port to bind."
)
@_errors
def witness_serve(wdata: Path, key_file: Path, logs: tuple[str, ...], host: str, port: int) -> None:
    """Serve POST /add-checkpoint and GET /checkpoint/<origin>."""
    from ironlog.tools.witness_server import load_key, parse_log, serve

    key = load_key(key_file)
    known = dict(parse_log(x) for x in logs)
    click.echo(f"witness {key.vkey()} on http://{host}:{port} for {', '.join(known)}")
    serve(wdata, key, known, host, port)


@main.command()
@click.option(
    "--log",
    "urls",
    multiple=True,
    required=True,
    metavar="URL",
    help="A log's tlog-tiles base URL, e.g. https://host/logs/acme/payments (repeatable).",
)
@click.option(
    "--vkey",
    "vkeys",
    multiple=True,
    required=True,
    help="The verifier key of each --log, in the same order.",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File keeping the last checkpoint accepted per log.",
)
@click.option("--entries", is_flag=True, help="Also download and verify every new entry bundle.")
@click.option("--webhook", metavar="URL", help="POST a JSON alert here on a violation.")
@click.option(
    "--api-key",
    envvar="IRONLOG_API_KEY",
    help="Key with read scope, for logs that are not public (or IRONLOG_API_KEY).",
)
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True,
    help="Seconds between polls.",
)  # fmt: skip
@click.option("--once", is_flag=True, help="Check once and exit (0 ok, 1 unreachable).")
@_errors
def monitor(
    urls: tuple[str, ...],
    vkeys: tuple[str, ...],
    state: Path,
    entries: bool,
    webhook: str | None,
    api_key: str | None,
    interval: float,
    once: bool,
) -> None:
    """Follow logs through their tlog-tiles endpoints and verify every new
    checkpoint (signature, consistency; with --entries, the entries too).
    Exits with status 2 on a rollback, fork or bad signature."""
    from ironlog.tools.monitor import run

    if len(urls) != len(vkeys):
        raise click.UsageError("give one --vkey for each --log")
    code = run(
        list(zip(urls, vkeys, strict=True)),
        state,
        entries=entries,
        webhook=webhook,
        api_key=api_key,
        interval=interval,
        once=once,
        say=lambda line: click.echo(line, err=line.startswith(("VIOLATION", "warning"))),
    )
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
