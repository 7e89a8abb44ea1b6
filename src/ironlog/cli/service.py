"""``ironlog serve`` and ``ironlog integrity ...``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ironlog.cli.base import LOG_REF, DataDir, parse_log_ref, pass_data
from ironlog.core.names import LogRef
from ironlog.engine.datadir import DATABASE_ENV, database_url
from ironlog.errors import IronlogError


@click.command()
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
    "--max-open-logs",
    type=click.IntRange(min=1),
    help="Logs each worker keeps open at once (files and a writer thread each); the "
    "least recently used are closed and reopened on demand (default 256; env "
    "IRONLOG_MAX_OPEN_LOGS).",
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file with any of: host, port, workers, tls_cert, tls_key, rate_limit, "
    "rate_burst, verify_interval, full_verify_interval, max_open_logs, log_idle_seconds, "
    "witness_allow, database, [[listen]] tables "
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
@pass_data
def serve(
    dd: DataDir,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    rate_limit: float | None,
    max_open_logs: int | None,
    config: Path | None,
    listen: tuple[str, ...],
    witness_allow: tuple[str, ...],
) -> None:
    """Run the HTTP API (initialises the data directory on first start).

    The address is bound first: if it is taken, nothing is created or printed.

    \b
    Examples:
      ironlog serve --host 0.0.0.0 --port 8080 --workers 2
      ironlog serve --config /etc/ironlog/ironlog.toml
      ironlog serve --listen syslog-tcp:0.0.0.0:6514=acme/syslog
    """
    from ironlog.service.config import ServeConfig
    from ironlog.service.server import bind_http, first_start, raise_nofile_limit, run

    data: Path = dd.path
    cfg = ServeConfig.load(config)
    if dd.database is None and cfg.database:  # --database / IRONLOG_DATABASE_URL win
        database_url(cfg.database)  # a bad URL stops here, nothing created
        os.environ[DATABASE_ENV] = dd.database = cfg.database
    cfg.database = dd.database  # what the workers are handed (ServeConfig.to_env)
    for name, value in (
        ("host", host),
        ("port", port),
        ("workers", workers),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("rate_limit", rate_limit),
        ("max_open_logs", max_open_logs),
    ):
        if value is not None:
            setattr(cfg, name, value)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    cfg.check()  # ranges and TLS files: a bad setting stops here, nothing created
    cfg.add_listeners(listen)
    cfg.add_witness_allow(witness_allow)
    listening = list(cfg.check_listeners(data))  # checks only: nothing created yet
    sock = bind_http(cfg)
    nofile = raise_nofile_limit()  # before anything opens a log; workers inherit it
    for i, line in enumerate(first_start(data, cfg.host, cfg.port, tls=bool(cfg.tls_cert))):
        click.echo(line)
        if i == 0:
            click.echo(nofile)
    for line in listening:
        click.echo(line)
    run(data, cfg, sock)


@click.group("integrity")
def integrity_group() -> None:
    """Integrity checks: a fresh report, and lifting a service's write refusal.

    \b
    Examples:
      ironlog integrity report
      ironlog integrity clear acme/payments --url http://127.0.0.1:8080 --api-key "$OPERATOR_KEY"
    """


@integrity_group.command("report")
@click.argument("paths", nargs=-1, metavar="[TENANT/LOG]...")
@click.option("--tenant", help="Only this tenant's logs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per log, as the API.")
@pass_data
def integrity_report(
    dd: DataDir, paths: tuple[str, ...], tenant: str | None, as_json: bool
) -> None:
    """Check logs now (every log by default), as the service's background check
    does, and report each as GET /v1/integrity does.  Exit 1 if any fails.

    \b
    Examples:
      ironlog integrity report
      ironlog integrity report acme/payments --json
      ironlog integrity report --tenant acme
    """
    from ironlog.service.integrity import IntegrityChecker

    il = dd.open()
    if tenant is not None:
        il.tenant(tenant)
    infos = il.list_logs(tenant)
    targets = [i.path for i in infos if i.quarantined is None]
    for i in infos:  # out of service: said, not checked
        if i.quarantined is not None and (not paths or i.path in paths):
            click.echo(f"QUARANTINED {i.path}: {i.quarantined}")
    for p in paths:
        t, n = parse_log_ref(p)
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
        raise SystemExit(1)


@integrity_group.command("clear")
@click.argument("path", type=LOG_REF)
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
def integrity_clear(path: LogRef, url: str, api_key: str, force: bool) -> None:
    """Re-verify TENANT/LOG in the running service and lift its write refusal if
    it passes (POST /v1/integrity/TENANT/LOG/clear).  A restart also re-checks.

    \b
    Example:
      ironlog integrity clear acme/payments --url http://127.0.0.1:8080 --api-key "$OPERATOR_KEY"
    """
    import httpx

    tenant, name = path
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
