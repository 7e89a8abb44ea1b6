"""``ironlog log ...``: create, list, inspect and take logs out of service."""

from __future__ import annotations

import json
from typing import Any

import click

from ironlog.cli.base import DataDir, log_command, pass_data
from ironlog.core.names import LogRef
from ironlog.errors import IronlogError
from ironlog.store.base import DEFAULT_INDEXES, Durability, parse_indexes


@click.group("log")
def log_group() -> None:
    """Manage logs.

    \b
    Examples:
      ironlog log create acme/payments --index action,outcome
      ironlog log list --tenant acme
    """


@log_command(log_group, "create")
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
def log_create(dd: DataDir, path: LogRef, durability: str, index: str, public: bool) -> None:
    """Create TENANT/LOG (and the tenant, if it does not exist yet).

    \b
    Examples:
      ironlog log create acme/payments
      ironlog log create acme/payments --durability interval:100 --index action,outcome
    """
    tenant, name = path
    il = dd.open()
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
@pass_data
def log_list(dd: DataDir, tenant: str | None) -> None:
    """List logs with their size and durability; a log out of service is
    listed with the reason (QUARANTINED or UNHEALTHY).

    \b
    Examples:
      ironlog log list
      ironlog log list --tenant acme
    """
    il = dd.open(read_only=True)
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


@log_command(log_group, "quarantine")
@click.option("--reason", required=True, help="Why; shown to anyone who tries to use the log.")
def log_quarantine(dd: DataDir, path: LogRef, reason: str) -> None:
    """Take a (broken) log out of service: it refuses reads and writes with
    the reason, and integrity checks, verify --all and witnessing skip it.
    A running server notices within a second.

    \b
    Example:
      ironlog log quarantine acme/payments --reason "disk replaced; audit pending"
    """
    tenant, name = path
    info = dd.open().quarantine_log(tenant, name, reason)
    click.echo(f"quarantined {info.path}: {info.quarantined}")


@log_command(log_group, "release")
def log_release(dd: DataDir, path: LogRef) -> None:
    """Put a quarantined log back in service (it is checked again when opened).

    \b
    Example:
      ironlog log release acme/payments
    """
    tenant, name = path
    info = dd.open().release_log(tenant, name)
    click.echo(f"released {info.path}")


@log_command(log_group, "delete")
def log_delete(dd: DataDir, path: LogRef) -> None:
    """Forget a quarantined log; its files are moved under DATA/deleted/.

    \b
    Example:
      ironlog log delete acme/payments
    """
    tenant, name = path
    where = dd.open().delete_log(tenant, name)
    click.echo(f"deleted {tenant}/{name}: its files are in {where}")


@log_command(log_group, "info")
def log_info(dd: DataDir, path: LogRef) -> None:
    """What GET /v1/logs/TENANT/LOG answers, as JSON: origin, keys, size, durability,
    indexes, public, health, witnesses and their status.

    \b
    Example:
      ironlog log info acme/payments
    """
    tenant, name = path
    il = dd.open(read_only=True)  # works on a read-only copy and a full disk
    out = il.describe_log(il.log(tenant, name))
    click.echo(json.dumps(out, indent=1))


@log_command(log_group, "public")
@click.option(
    "--on/--off",
    "public",
    required=True,
    help="Serve the log's tlog-tiles and checkpoint without an API key (--on), or not.",
)
def log_public(dd: DataDir, path: LogRef, public: bool) -> None:
    """Make TENANT/LOG's tlog-tiles and checkpoint public, or private again.

    \b
    Examples:
      ironlog log public acme/payments --on
      ironlog log public acme/payments --off
    """
    tenant, name = path
    dd.open().set_log_public(tenant, name, public)  # recorded in the tenant's system log
    click.echo(f"{path}: {'public' if public else 'private'}")


@log_command(log_group, "witnesses")
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
def log_witnesses(
    dd: DataDir,
    path: LogRef,
    witnesses: tuple[str, ...],
    quorum: int | None,
    policy_json: str | None,
) -> None:
    """Set the witnesses of TENANT/LOG and how many must cosign (no --witness: none).
    The running service submits each new checkpoint to them.  The tenant must be
    allowed witnesses (tenant witnessing), and each URL must resolve to a public
    address or one in IRONLOG_WITNESS_ALLOW (as for serve --witness-allow).

    \b
    Examples:
      ironlog log witnesses acme/payments --witness "$W1_VKEY=https://w1.example.org" \\
          --witness "$W2_VKEY=https://w2.example.org" --quorum 1
      ironlog log witnesses acme/payments
    """
    from ironlog.core.policy import parse_policy
    from ironlog.service.config import ServeConfig

    tenant, name = path
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
    allow = ServeConfig.from_env(settings=("witness_allow",))
    check = allow.outbound().check  # as the service will check them
    dd.open().set_witnesses(tenant, name, policy, check_url=check)
    click.echo(json.dumps(policy.to_json(), indent=1))
