"""``ironlog key ...`` and ``ironlog operator-key ...``: API keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

from ironlog.cli.base import DataDir, pass_data
from ironlog.core.entry import now_us
from ironlog.engine.api_keys import KeyManager, parse_scopes


@click.group("key")
def key_group() -> None:
    """Manage API keys.

    \b
    Examples:
      ironlog key create acme --scopes append --log payments --name gateway
      ironlog key list acme
    """


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
@pass_data
def key_create(
    dd: DataDir,
    tenant: str,
    scopes: str,
    name: str,
    expires_in: int | None,
    log_name: str | None,
) -> None:
    """Create an API key for TENANT; the secret is printed once.

    \b
    Examples:
      ironlog key create acme --scopes append,read --name app
      ironlog key create acme --scopes append --log payments --expires-in 86400
    """
    il = dd.open()
    secret, rec = KeyManager(il.control, record=il.record).create(
        tenant, parse_scopes(scopes), name, expires_in, log_name
    )
    click.echo(f"key id: {rec.key_id}  scopes: {','.join(rec.scopes)}", err=True)
    click.echo(secret)


@key_group.command("list")
@click.argument("tenant")
@pass_data
def key_list(dd: DataDir, tenant: str) -> None:
    """List TENANT's API keys: id, scopes, name, created, state (never secrets).

    \b
    Example:
      ironlog key list acme
    """
    il = dd.open(read_only=True)
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
@pass_data
def key_rotate(dd: DataDir, tenant: str, key_id: str, old_expires_in: int | None) -> None:
    """A new key with the same scopes as KEY_ID; the secret is printed once.

    \b
    Example:
      ironlog key rotate acme 49ac6145e1e7cf75 --old-expires-in 3600
    """
    il = dd.open()
    secret, rec = KeyManager(il.control, record=il.record).rotate(key_id, tenant, old_expires_in)
    click.echo(f"key id: {rec.key_id} replaces {key_id}  scopes: {','.join(rec.scopes)}", err=True)
    click.echo(secret)


@key_group.command("revoke")
@click.argument("tenant")
@click.argument("key_id")
@pass_data
def key_revoke(dd: DataDir, tenant: str, key_id: str) -> None:
    """Revoke an API key now.

    \b
    Example:
      ironlog key revoke acme 49ac6145e1e7cf75
    """
    il = dd.open()
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


@click.group("operator-key")
def operator_key_group() -> None:
    """The operator's API keys (manage tenants over HTTP); needs the data directory.

    \b
    Examples:
      ironlog operator-key new
      ironlog operator-key list
    """


@operator_key_group.command("list")
@pass_data
def operator_key_list(dd: DataDir) -> None:
    """List operator keys (id, scopes, name, created, state); never secrets.

    \b
    Example:
      ironlog operator-key list
    """
    for line in _key_rows(KeyManager(dd.open(read_only=True).control).list(None)):
        click.echo(line)


@operator_key_group.command("new")
@click.option(
    "--keep-old",
    is_flag=True,
    help="Leave the existing operator keys valid (default: revoke them all).",
)
@click.option("--name", default="operator", show_default=True, help="A label for the key.")
@pass_data
def operator_key_new(dd: DataDir, keep_old: bool, name: str) -> None:
    """Issue a new operator key and print its secret once, e.g. when the one shown
    at first start was lost.  Needs access to the data directory, not to the API;
    a running service accepts the new key (and refuses revoked ones) within a second.

    \b
    Examples:
      ironlog operator-key new
      ironlog operator-key new --keep-old --name backup
    """
    from ironlog.engine.api_keys import OPERATOR_SCOPE

    keys = KeyManager(dd.open().control)
    old = [k for k in keys.list(None) if k.revoked_us is None]
    secret, rec = keys.create(None, (OPERATOR_SCOPE,), name)
    if not keep_old:
        for k in old:
            keys.revoke(k.key_id, None)
    done = f"revoked {len(old)} old" if not keep_old else f"kept {len(old)} old"
    click.echo(f"new operator key id: {rec.key_id} ({done}); the secret is shown once:", err=True)
    click.echo(secret)
