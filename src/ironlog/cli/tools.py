"""``ironlog witness ...`` and ``ironlog monitor``: the standalone programs."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("witness")
def witness_group() -> None:
    """Run a witness (c2sp.org/tlog-witness) that cosigns logs' checkpoints.

    \b
    Examples:
      ironlog witness keygen w1.example.org/witness
      ironlog witness serve --data wdata --key witness.key --log "$ORIGIN=$LOG_VKEY"
    """


@witness_group.command("keygen")
@click.argument("name")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key file to write (mode 0600).  [default: NAME's last part + .key]",
)
def witness_keygen(name: str, output: Path | None) -> None:
    """Create a witness key NAME; prints its verifier key (give it to log operators).

    \b
    Example:
      ironlog witness keygen w1.example.org/witness --output w1.key
    """
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
def witness_serve(wdata: Path, key_file: Path, logs: tuple[str, ...], host: str, port: int) -> None:
    """Serve POST /add-checkpoint and GET /checkpoint/<origin>.

    \b
    Examples:
      ironlog witness serve --data /var/lib/witness --key w1.key \\
          --log "ironlog.localhost/acme/payments=$LOG_VKEY" --port 8090
    """
    from ironlog.service.config import ServeConfig
    from ironlog.service.server import bind_http
    from ironlog.tools.witness_server import load_key, parse_log, serve

    key = load_key(key_file)
    known = dict(parse_log(x) for x in logs)
    cfg = ServeConfig(host=host, port=port)
    sock = bind_http(cfg)  # a taken port fails here, before anything is printed or created
    click.echo(f"witness {key.vkey()} on http://{host}:{cfg.port} for {', '.join(known)}")
    serve(wdata, key, known, host, cfg.port, sock)


@click.command()
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
    Exits with status 2 on a rollback, fork or bad signature.

    \b
    Examples:
      ironlog monitor --log https://audit.example.com/logs/acme/payments \\
          --vkey "$LOG_VKEY" --state monitor.json --entries
      ironlog monitor --log URL --vkey VKEY --state monitor.json --once
    """
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
