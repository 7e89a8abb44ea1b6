"""``ironlog tenant ...``: tenants, their signing keys, witnessing and operator lock."""

from __future__ import annotations

import os

import click

from ironlog.cli.base import DataDir, pass_data
from ironlog.engine.instance import SYSTEM_LOG, Ironlog
from ironlog.errors import IronlogError


@click.group("tenant")
def tenant_group() -> None:
    """Manage tenants.

    \b
    Examples:
      ironlog tenant create acme
      ironlog tenant list
    """


@tenant_group.command("create")
@click.argument("name")
@pass_data
def tenant_create(dd: DataDir, name: str) -> None:
    """Create a tenant with its own signing key.

    \b
    Example:
      ironlog tenant create acme
    """
    rec = dd.open().create_tenant(name)
    click.echo(f"created tenant {rec.name}")


@tenant_group.command("list")
@pass_data
def tenant_list(dd: DataDir) -> None:
    """List tenants.

    \b
    Example:
      ironlog tenant list
    """
    for t in dd.open(read_only=True).control.list_tenants():
        click.echo(f"{t.name}\t{'disabled' if t.disabled else 'active'}")


def _switch(disabled: bool, help: str) -> click.Command:
    """``tenant disable`` and ``tenant enable``."""

    @click.argument("name")
    @pass_data
    def command(dd: DataDir, name: str) -> None:
        dd.open().set_tenant_disabled(name, disabled)  # recorded in the tenant's system log
        click.echo(f"{'disabled' if disabled else 'enabled'} tenant {name}")

    word = "disable" if disabled else "enable"
    example = f"\n\n\b\nExample:\n  ironlog tenant {word} acme\n"
    return click.command(word, help=help + example)(command)


tenant_group.add_command(
    _switch(True, "Disable a tenant: its keys stop working (within a second in a running service).")
)
tenant_group.add_command(_switch(False, "Enable a disabled tenant again."))


@tenant_group.command("keys")
@click.argument("tenant")
@pass_data
def tenant_keys(dd: DataDir, tenant: str) -> None:
    """List TENANT's checkpoint-signing keys (fingerprint, kind, created, retired).

    \b
    Example:
      ironlog tenant keys acme
    """
    from ironlog.core.entry import format_time

    for k in dd.open(read_only=True).signing_keys(tenant):
        retired = format_time(k.retired_us) if k.retired_us else "active"
        click.echo(f"{k.fingerprint}\t{k.kind}\t{format_time(k.created_us)}\t{retired}")


@tenant_group.command("rotate-key")
@click.argument("tenant")
@click.option("--pkcs11-module", help="PKCS#11 library: generate the new key in that token.")
@click.option("--pkcs11-token", help="Token label.")
@click.option("--pkcs11-label", help="Label for the new key in the token.")
@pass_data
def tenant_rotate_key(
    dd: DataDir,
    tenant: str,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    pkcs11_label: str | None,
) -> None:
    """Add a new signing key for TENANT.  Old and new keys both sign every
    checkpoint until the old one is retired (retire-key).  With --pkcs11-*, the
    key is generated in the token and never leaves it (PIN: IRONLOG_PKCS11_PIN).

    \b
    Examples:
      ironlog tenant rotate-key acme
      ironlog tenant rotate-key acme --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \\
          --pkcs11-token ironlog --pkcs11-label acme-2027
    """
    from ironlog.engine.signing_keys import Pkcs11Ref

    given = [pkcs11_module, pkcs11_token, pkcs11_label]
    if any(given) and not all(given):
        raise click.UsageError("--pkcs11-module, --pkcs11-token and --pkcs11-label go together")
    ref = (
        Pkcs11Ref(str(pkcs11_module), str(pkcs11_token), str(pkcs11_label)) if all(given) else None
    )
    il = dd.open()
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
@pass_data
def tenant_retire_key(dd: DataDir, tenant: str, fingerprint: str) -> None:
    """Stop signing with a key; checkpoints it signed still verify with it.

    \b
    Example:
      ironlog tenant retire-key acme d1c2f2999ac5ca11
    """
    dd.open().retire_signing_key(tenant, fingerprint)
    click.echo(f"retired {fingerprint}")


@tenant_group.command("witnessing")
@click.argument("tenant")
@click.option(
    "--enable/--disable", required=True, help="Allow the tenant's logs witnesses, or not."
)
@pass_data
def tenant_witnessing(dd: DataDir, tenant: str, enable: bool) -> None:
    """Allow TENANT to give its logs witnesses (off by default): the service then
    sends requests to URLs the tenant chooses, on public addresses or networks
    allowed with serve --witness-allow.  Recorded in the tenant's system log.

    \b
    Example:
      ironlog tenant witnessing acme --enable
    """
    dd.open().set_witnessing_allowed(tenant, enable)
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
@pass_data
def tenant_operator_lock(dd: DataDir, tenant: str, unlock: bool, url: str | None) -> None:
    """Lock the operator out of creating or rotating TENANT's API keys (or --unlock).
    Every lock and unlock is recorded in the tenant's system log.

    \b
    Examples:
      ironlog tenant operator-lock acme
      ironlog tenant operator-lock acme --unlock
    """
    if url is None:
        dd.open().set_operator_locked(tenant, not unlock)
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


def _limit(text: str | None, option: str) -> int | None:
    """A quota limit: a whole number, or ``none`` to lift it."""
    from ironlog.core.numparse import parse_int

    if text is None or text.strip().lower() == "none":
        return None
    try:
        return parse_int(text.strip(), option)
    except IronlogError as e:
        raise click.BadParameter(str(e), param_hint=option) from e


@tenant_group.command("quota")
@click.argument("tenant")
@click.option(
    "--entries-per-day",
    metavar="N|none",
    help="Entries the tenant may append per UTC day (then 429); none: no limit.",
)
@click.option(
    "--bytes",
    "bytes_",
    metavar="N|none",
    help="Bytes of entries the tenant may store (then 507); none: no limit.",
)
@pass_data
def tenant_quota(dd: DataDir, tenant: str, entries_per_day: str | None, bytes_: str | None) -> None:
    """Show TENANT's quota, or set it: appends over it are refused whole (a running
    service applies it within two seconds).  A limit not given is kept.  Recorded in
    the tenant's system log.

    \b
    Example:
      ironlog tenant quota acme --entries-per-day 1000000 --bytes 10000000000
      ironlog tenant quota acme --bytes none
    """
    from ironlog.engine.quotas import Quota, read_quota, set_tenant_quota

    if entries_per_day is None and bytes_ is None:
        il = dd.open(read_only=True)
        il.tenant(tenant)
        q = read_quota(il.control, tenant)
    else:
        il = dd.open()
        il.tenant(tenant)
        old = read_quota(il.control, tenant)
        q = Quota(
            _limit(entries_per_day, "--entries-per-day")
            if entries_per_day is not None
            else old.entries_per_day,
            _limit(bytes_, "--bytes") if bytes_ is not None else old.bytes,
        )
        set_tenant_quota(il, tenant, q)
        _catch_up_stats(il, tenant)
    shown = {k: "none" if v is None else str(v) for k, v in q.to_json().items()}
    click.echo(
        f"tenant {tenant}: entries per day {shown['entries_per_day']}, bytes {shown['bytes']}"
    )


def _catch_up_stats(il: Ironlog, tenant: str) -> None:
    """Bring the tenant's derived statistics up to date now, so that a running
    service's first quota check only adds what came since."""
    from ironlog.engine.stats import StatsBook

    book = StatsBook(il.data_dir)
    try:
        for info, lg in il.each_log(tenant):
            if not isinstance(lg, IronlogError) and info.name != SYSTEM_LOG:
                book.of(lg.store, lg.info).catch_up()
    finally:
        book.close()


@tenant_group.command("usage")
@click.argument("tenant")
@click.option("--from", "from_", help="Since (RFC 3339, YYYY-MM-DD, 30d...); default 30 days ago.")
@click.option("--to", help="Until (default now); whole UTC days.")
@pass_data
def tenant_usage(dd: DataDir, tenant: str, from_: str | None, to: str | None) -> None:
    """TENANT's entries and stored entry bytes per UTC day and per log, and its
    quota: the JSON of GET /v1/tenants/TENANT/usage (for billing).

    \b
    Example:
      ironlog tenant usage acme --from 2026-11-01 --to 2026-12-01
    """
    import json

    from ironlog.core.entry import now_us
    from ironlog.core.timeparse import parse_time
    from ironlog.engine.quotas import DAY_US, read_quota, usage_by_day
    from ironlog.engine.stats import StatsBook
    from ironlog.errors import InvalidRequestError

    il = dd.open()  # the derived statistics are brought up to date
    il.tenant(tenant)
    now = now_us()
    end = parse_time(to, now) if to else now
    start = parse_time(from_, now) if from_ else end - 30 * DAY_US
    if start >= end:
        raise InvalidRequestError("--from must be before --to")
    book = StatsBook(il.data_dir)
    try:
        days = usage_by_day(il, book, tenant, start // DAY_US, -(-end // DAY_US))
    finally:
        book.close()
    quota = read_quota(il.control, tenant).to_json()
    click.echo(json.dumps({"tenant": tenant, "days": days, "quota": quota}, indent=1))
