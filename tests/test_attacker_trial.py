"""An attacker trial of the issue 9 hardening: what each THREATS.md row tried
that did not hold, one regression test per finding."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ironlog.instance import Ironlog
from ironlog.store.base import Query
from tests.conftest import BIN


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        capture_output=True, text=True, env=dict(os.environ), timeout=60,
    )  # fmt: skip


def _system_actions(data: Path, tenant: str) -> list[tuple[str, str, str]]:
    with Ironlog(data, read_only=True) as il:
        events = [json.loads(d) for _, d in il.log(tenant, "_system").query(Query())]
    return [(e["action"], e["actor"], str(e.get("resource", ""))) for e in events]


def test_every_host_cli_act_on_a_tenant_is_in_its_system_log(tmp_path: Path) -> None:
    """The operator (host row): every CLI command that changes a tenant leaves
    a record the tenant can read; none acts unseen."""
    data = tmp_path / "data"
    assert _cli(data, "init").returncode == 0
    assert _cli(data, "log", "create", "acme/app").returncode == 0
    r = _cli(data, "key", "create", "acme", "--scopes", "read")
    assert r.returncode == 0, r.stderr
    key_id = r.stderr.split()[2]
    steps: list[tuple[tuple[str, ...], tuple[str, str, str]]] = [
        (("log", "public", "acme/app", "--on"), ("log.public", "host", "app")),
        (("log", "public", "acme/app", "--off"), ("log.public", "host", "app")),
        (("tenant", "disable", "acme"), ("tenant.disable", "host", "")),
        (("tenant", "enable", "acme"), ("tenant.enable", "host", "")),
        (("key", "rotate", "acme", key_id), ("key.rotate", "host", "")),
        (("key", "revoke", "acme", key_id), ("key.revoke", "host", key_id)),
        (("tenant", "witnessing", "acme", "--enable"), ("witnessing.enable", "host", "")),
        (("tenant", "rotate-key", "acme"), ("signing_key.add", "host", "")),
        (("log", "quarantine", "acme/app", "--reason", "x"), ("log.quarantine", "host", "app")),
        (("log", "release", "acme/app"), ("log.release", "host", "app")),
    ]
    for args, want in steps:
        before = len(_system_actions(data, "acme"))
        r = _cli(data, *args)
        assert r.returncode == 0, (args, r.stderr)
        after = _system_actions(data, "acme")
        assert len(after) == before + 1, (args, after[before:])
        got = after[-1]
        assert got[:2] == want[:2] and (not want[2] or got[2] == want[2]), (args, got)
