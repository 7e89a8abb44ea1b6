"""The ``ironlog`` command, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ironlog.core import merkle, note, tlogproof
from tests.conftest import BIN


def run(
    data: Path, *args: str, stdin: bytes | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    raw = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
    )
    p = subprocess.CompletedProcess(
        raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode()
    )
    if ok:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode != 0, p.stdout
        assert "Traceback" not in p.stderr
    return p


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    out = run(d, "init").stdout
    assert "created master key" in out
    assert (d.stat().st_mode & 0o777) == 0o700
    assert ((d / "master.key").stat().st_mode & 0o777) == 0o600
    run(d, "log", "create", "acme/payments")
    return d


EVENTS = b"".join(
    json.dumps({"actor": a, "action": act, "resource": f"acct/{i}", "outcome": o, "n": i}).encode()
    + b"\n"
    for i, (a, act, o) in enumerate(
        [("alice", "pay", "success"), ("bob", "refund", "failure"), ("alice", "login", "success")]
        * 10
    )
)


def test_append_query_export(data: Path, tmp_path: Path) -> None:
    out = run(data, "append", "acme/payments", stdin=EVENTS).stdout
    assert "appended 30 entries (indexes 0..29)" in out
    assert "ironlog.localhost/acme/payments\n30\n" in out
    f = tmp_path / "more.ndjson"
    f.write_bytes(EVENTS)
    assert "indexes 30..59" in run(data, "append", "acme/payments", str(f)).stdout
    assert (
        "indexes 60..61"
        in run(data, "append", "acme/payments", "--raw", stdin=b"plain line\nanother\n").stdout
    )

    rows = [
        json.loads(line)
        for line in run(
            data,
            "query",
            "acme/payments",
            "--actor",
            "alice",
            "--action",
            "pay",
            "--format",
            "ndjson",
        ).stdout.splitlines()
    ]
    assert len(rows) == 20 and all(r["entry"]["actor"] == "alice" for r in rows)
    assert (
        len(
            json.loads(
                run(
                    data,
                    "query",
                    "acme/payments",
                    "--outcome",
                    "failure",
                    "--limit",
                    "3",
                    "--format",
                    "json",
                ).stdout
            )
        )
        == 3
    )
    assert (
        run(data, "query", "acme/payments", "--resource", "acct/4", "--format", "csv").stdout.count(
            "\n"
        )
        == 3
    )
    assert (
        run(data, "query", "acme/payments", "--from", "1h", "--to", "2999-01-01").stdout.count("\n")
        == 62
    )
    assert run(data, "query", "acme/payments", "--to", "1h").stdout == ""
    text = run(data, "query", "acme/payments", "--limit", "1").stdout
    assert text.startswith("0\t") and "alice" in text

    target = tmp_path / "out" / "export.ndjson"
    target.parent.mkdir()
    assert (
        "exported 62 entries"
        in run(data, "export", "acme/payments", "--output", str(target)).stdout
    )
    lines = target.read_bytes().splitlines()
    assert len(lines) == 62 and json.loads(lines[61])["entry"]["message"] == "another"
    assert os.listdir(target.parent) == ["export.ndjson"]  # no temp file left behind
    run(data, "export", "acme/payments", "--output", str(tmp_path / "nodir" / "x"), ok=False)
    # "-" is stdout (as for `entry --output -`), not a file named "-".
    p = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "export", "acme/payments", "-o", "-"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0 and p.stdout.encode().splitlines() == lines, p.stderr
    assert "exported 62 entries" in p.stderr and not (tmp_path / "-").exists()


def test_bad_input_is_rejected_whole(data: Path) -> None:
    cases = [
        (b'{"ok":1}\nnot json\n', "line 2: not valid JSON"),
        (b'{"ok":1}\n[1,2]\n', "line 2: an event must be a JSON object"),
        (b'{"a":"\xff"}\n', "line 1: not valid JSON: invalid UTF-8"),
        (json.dumps({"a": "x" * 70000}).encode() + b"\n", "limit is 65535"),
        (b"", "no entries"),
    ]
    for payload, msg in cases:
        p = run(data, "append", "acme/payments", stdin=payload, ok=False)
        assert msg in p.stderr
    assert (
        "nothing of its batch was written"
        in run(data, "append", "acme/payments", stdin=b"{}\nx\n", ok=False).stderr
    )
    assert run(data, "query", "acme/payments").stdout == ""  # nothing was written
    assert "does not exist" in run(data, "append", "acme/nope", stdin=b"{}\n", ok=False).stderr
    assert "is not TENANT/LOG" in run(data, "append", "nope", stdin=b"{}\n", ok=False).stderr
    assert (
        "invalid durability"
        in run(data, "log", "create", "acme/x", "--durability", "fast", ok=False).stderr
    )
    assert "already exists" in run(data, "log", "create", "acme/payments", ok=False).stderr
    assert (
        "cannot read time"
        in run(data, "query", "acme/payments", "--from", "yesterday", ok=False).stderr
    )
    assert (
        "not an ironlog data directory"
        in run(data.parent / "empty", "query", "a/b", ok=False).stderr
    )


def test_batches_commit_in_order_and_report_partial(data: Path) -> None:
    payload = b"".join(json.dumps({"n": i}).encode() + b"\n" for i in range(25)) + b"bad\n"
    p = run(data, "append", "acme/payments", "--batch-size", "10", stdin=payload, ok=False)
    assert "line 26" in p.stderr and "20 entries from earlier batches were appended" in p.stderr
    assert run(data, "query", "acme/payments").stdout.count("\n") == 20


def test_checkpoint_vkey_proofs_offline(data: Path, tmp_path: Path) -> None:
    run(data, "append", "acme/payments", stdin=EVENTS)
    vkey = run(data, "vkey", "acme/payments").stdout.strip()
    verifier = note.Verifier.from_vkey(vkey)
    cp = note.open_checkpoint(run(data, "checkpoint", "acme/payments").stdout, verifier).checkpoint
    assert cp.size == 30
    proof = tlogproof.parse_tlog_proof(run(data, "proof", "acme/payments", "--index", "7").stdout)
    entry = json.loads(run(data, "query", "acme/payments", "--format", "json").stdout)[7]["entry"]
    raw = json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    proof.verify(raw, verifier)
    run(data, "append", "acme/payments", stdin=EVENTS)
    old = tlogproof.parse_tlog_proof(
        run(data, "proof", "acme/payments", "--index", "7", "--size", "30").stdout
    )
    assert old.checkpoint == run(data, "checkpoint", "acme/payments", "--size", "30").stdout
    new = note.open_checkpoint(run(data, "checkpoint", "acme/payments").stdout, verifier).checkpoint
    hashes = [
        note.b64decode(h)
        for h in run(data, "proof", "acme/payments", "--from", "30", "--to", "60").stdout.split()
    ]
    merkle.verify_consistency(30, 60, hashes, cp.root, new.root)
    assert "give either" in run(data, "proof", "acme/payments", ok=False).stderr
    assert (
        "not below tree size"
        in run(data, "proof", "acme/payments", "--index", "60", ok=False).stderr
    )
    assert (
        "between 0 and 60"
        in run(data, "proof", "acme/payments", "--index", "1", "--size", "99", ok=False).stderr
    )


def _db(data: Path) -> Path:
    return data / "logs" / "acme" / "payments.db"


@pytest.fixture
def filled(data: Path) -> Path:
    payload = b"".join(json.dumps({"actor": "a", "n": i}).encode() + b"\n" for i in range(1000))
    run(data, "append", "acme/payments", "--batch-size", "100", stdin=payload)
    assert "ok acme/payments: 1000 entries" in run(data, "verify", "acme/payments").stdout
    assert "ok acme/payments" in run(data, "verify", "--all").stdout
    return data


def _flip_in_file(path: Path, needle: bytes) -> None:
    """Change one byte of the database file itself, inside ``needle``."""
    raw = bytearray(path.read_bytes())
    pos = raw.find(needle)
    assert pos >= 0 and raw.find(needle, pos + 1) < 0
    raw[pos + len(needle) - 1] ^= 0x01
    path.write_bytes(bytes(raw))


def _checkpointed(data: Path) -> None:
    con = sqlite3.connect(_db(data))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def test_tamper_entry_byte(filled: Path) -> None:
    _checkpointed(filled)
    _flip_in_file(_db(filled), b'{"actor":"a","n":517,')
    p = run(filled, "verify", "acme/payments", ok=False)
    assert (
        "FAILED acme/payments: entry 517: bytes do not match the leaf hash in tile/0/002"
        in p.stderr
    )


def test_tamper_tile_byte(filled: Path) -> None:
    con = sqlite3.connect(_db(filled))
    tile = bytes(con.execute("SELECT data FROM tiles WHERE level=0 AND idx=1").fetchone()[0])
    con.close()
    _checkpointed(filled)
    _flip_in_file(_db(filled), tile[40 * 32 : 41 * 32])
    p = run(filled, "verify", "acme/payments", ok=False)
    assert "tile tile/0/001: hash of entry 296 differs from the entry" in p.stderr


def test_tamper_upper_tile(filled: Path) -> None:
    con = sqlite3.connect(_db(filled))
    con.execute("UPDATE tiles SET data = zeroblob(96) WHERE level = 1")
    con.commit()
    con.close()
    assert "tile tile/1/000.p/3: differs" in run(filled, "verify", "acme/payments", ok=False).stderr


def test_tamper_checkpoint_byte(filled: Path) -> None:
    con = sqlite3.connect(_db(filled))
    size, cp = con.execute(
        "SELECT size, note FROM checkpoints ORDER BY size LIMIT 1 OFFSET 2"
    ).fetchone()
    con.close()
    _checkpointed(filled)
    sig = cp.split("— ")[1].split(" ")[1].strip()
    _flip_in_file(_db(filled), sig[:20].encode())
    p = run(filled, "verify", "acme/payments", ok=False)
    assert f"checkpoint size {size}: does not verify" in p.stderr


def test_tamper_root_in_checkpoint(filled: Path) -> None:
    con = sqlite3.connect(_db(filled))
    size, cp = con.execute(
        "SELECT size, note FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1"
    ).fetchone()
    con.close()
    _checkpointed(filled)
    _flip_in_file(_db(filled), cp.split("\n")[2][:30].encode())
    p = run(filled, "verify", "acme/payments", ok=False)
    assert f"checkpoint size {size}: does not verify" in p.stderr


def test_deleted_entry(filled: Path) -> None:
    con = sqlite3.connect(_db(filled))
    con.execute("DELETE FROM entries WHERE idx = 555")
    con.commit()
    con.close()
    assert "entry 555: is missing" in run(filled, "verify", "acme/payments", ok=False).stderr
    # and the log refuses writes only if the damage reaches the head; the audit found it here


def test_indexed_fields_give_the_same_answers(data: Path) -> None:
    out = run(data, "log", "create", "acme/indexed", "--index", "actor,resource").stdout
    assert "indexed: received_at,actor,resource" in out
    assert "unknown" not in out
    run(data, "append", "acme/indexed", stdin=EVENTS)
    run(data, "append", "acme/payments", stdin=EVENTS)
    for args in (["--actor", "alice"], ["--resource", "acct/4"], ["--outcome", "failure"]):
        a = run(data, "query", "acme/indexed", *args, "--format", "csv").stdout
        b = run(data, "query", "acme/payments", *args, "--format", "csv").stdout
        assert a.count("\n") > 1 and a.count("\n") == b.count("\n")
    assert (
        "cannot index colour"
        in run(data, "log", "create", "acme/x", "--index", "colour", ok=False).stderr
    )


APPENDER = r"""
import sys, json, time
from ironlog.engine.instance import Ironlog
from ironlog.core.entry import prepare_json, now_us
il = Ironlog(sys.argv[1]); lg = il.log("acme", "payments")
deadline = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < deadline:
    batch = [json.dumps({"actor": "w", "n": i + j}) for j in range(20)]
    lg.append_batch([prepare_json(b, now_us(), "t") for b in batch])
    lg.append(prepare_json(json.dumps({"actor": "w", "single": i}), now_us(), "t"))
    i += 20
il.close()
"""


def test_cli_works_while_another_process_appends(data: Path) -> None:
    import sys

    writer = subprocess.Popen([sys.executable, "-c", APPENDER, str(data), "6"])
    try:
        time.sleep(0.5)
        sizes = []
        for _ in range(4):
            assert "ok acme/payments" in run(data, "verify", "acme/payments").stdout
            cp = run(data, "checkpoint", "acme/payments").stdout
            sizes.append(int(cp.split("\n")[1]))
            run(data, "proof", "acme/payments", "--index", "0")
            run(data, "query", "acme/payments", "--actor", "w", "--limit", "5")
            run(data, "append", "acme/payments", stdin=b'{"actor":"cli"}\n')
        assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    finally:
        assert writer.wait(timeout=60) == 0
    assert "ok acme/payments" in run(data, "verify", "acme/payments").stdout
    assert run(data, "query", "acme/payments", "--actor", "cli").stdout.count("\n") == 4


def test_tenant_and_key_commands(data: Path) -> None:
    from ironlog.engine.api_keys import KeyManager
    from ironlog.engine.instance import Ironlog

    assert "created tenant bank" in run(data, "tenant", "create", "bank").stdout
    assert "already exists" in run(data, "tenant", "create", "bank", ok=False).stderr
    assert "bank\tactive" in run(data, "tenant", "list").stdout
    p = run(data, "key", "create", "bank", "--scopes", "append,read", "--name", "ingest")
    secret = p.stdout.strip()
    key_id = p.stderr.split("key id: ")[1].split()[0]
    assert secret.startswith("ilk_") and key_id in secret
    with Ironlog(data) as il:
        principal = KeyManager(il.control).authenticate(secret)
        assert principal.tenant == "bank" and principal.scopes == ("append", "read")
    assert (
        "invalid scopes" in run(data, "key", "create", "bank", "--scopes", "root", ok=False).stderr
    )
    assert (
        "does not exist"
        in run(data, "key", "create", "nobody", "--scopes", "read", ok=False).stderr
    )
    assert f"revoked {key_id}" in run(data, "key", "revoke", "bank", key_id).stdout
    with Ironlog(data) as il, pytest.raises(Exception, match="revoked"):
        KeyManager(il.control).authenticate(secret)


@pytest.mark.parametrize("command", [("init",), ("serve", "--port", "0")])
def test_refuses_non_empty_foreign_directory(tmp_path: Path, command: tuple[str, ...]) -> None:
    """init and serve never take over (or chmod) a directory holding other things."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "notes.txt").write_text("mine\n")
    p = run(home, *command, ok=False)
    assert "is not empty and is not an ironlog data directory" in p.stderr
    assert "key" not in p.stdout.lower()
    assert (home.stat().st_mode & 0o777) == 0o755
    assert sorted(x.name for x in home.iterdir()) == ["notes.txt"]
    # An empty directory, or an ironlog one, is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    run(empty, "init")
    assert "master key already present" in run(empty, "init").stdout


def test_serve_on_taken_port_creates_and_prints_nothing(tmp_path: Path) -> None:
    """The address is bound before the first start creates keys: a taken port is a
    clear error, and the next start (on a free port) still shows the keys."""
    import socket

    from tests.server import run_server

    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        p = run(data, "serve", "--port", port, ok=False)
        assert "ilk_" not in p.stdout + p.stderr and "key" not in p.stdout
        assert "cannot listen on 127.0.0.1:" + port in p.stderr, p.stderr
        assert not data.exists()
        # Also when the data directory already exists (initialised, keys not yet issued).
        run(data, "init")
        p = run(data, "serve", "--port", port, ok=False)
        assert "cannot listen" in p.stderr and "ilk_" not in p.stdout + p.stderr
    with run_server(data) as s:
        assert s.operator.startswith("ilk_") and s.demo.startswith("ilk_")
        with s.client(s.operator) as c:
            assert c.get("/v1/tenants").status_code == 200


def test_operator_key_reissue(tmp_path: Path) -> None:
    """A lost operator key is re-issued from the data directory, once shown."""
    from tests.server import run_server

    data = tmp_path / "data"
    with run_server(data) as s:
        old = s.operator
        listed = run(data, "operator-key", "list").stdout
        assert listed.count("\toperator\t") == 1 and "active" in listed and "ilk_" not in listed
        kept = run(data, "operator-key", "new", "--keep-old")
        assert "kept 1 old" in kept.stderr
        second = kept.stdout.strip()
        p = run(data, "operator-key", "new")
        assert "revoked 2 old" in p.stderr and "shown once" in p.stderr
        new = p.stdout.strip()
        assert new.startswith("ilk_") and new not in (old, second)
        time.sleep(1.2)  # a worker remembers a key check for a second
        with s.client(new) as c:
            assert c.get("/v1/tenants").status_code == 200
        for gone in (old, second):
            with s.client(gone) as c:
                assert c.get("/v1/tenants").status_code == 401
        listed = run(data, "operator-key", "list").stdout.splitlines()
        assert sum("revoked" in line for line in listed) == 2 and len(listed) == 3


# Every endpoint of docs/api.md -> the CLI commands that do the same on the data
# directory (or None: not an operator's or tenant admin's action).
PARITY: dict[str, list[str] | None] = {
    "GET /healthz": None,  # probes for load balancers
    "GET /readyz": None,
    "POST /v1/tenants": ["tenant create"],
    "GET /v1/tenants": ["tenant list"],
    "POST /v1/tenants/{t}/disable": ["tenant disable", "tenant enable"],
    "POST /v1/tenants/{t}/witnessing": ["tenant witnessing"],
    "POST /v1/tenants/{t}/operator-lock": ["tenant operator-lock"],
    "POST /v1/tenants/{t}/logs": ["log create"],
    "POST /v1/tenants/{t}/logs/{l}/public": ["log public"],
    "GET /v1/tenants/{t}/logs": ["log list"],
    "POST /v1/tenants/{t}/keys": ["key create"],
    "GET /v1/tenants/{t}/keys": ["key list"],
    "POST /v1/tenants/{t}/keys/{id}/rotate": ["key rotate"],
    "DELETE /v1/tenants/{t}/keys/{id}": ["key revoke"],
    "GET /v1/logs/{t}/{l}": ["log info"],
    "PUT /v1/tenants/{t}/logs/{l}/witnesses": ["log witnesses"],
    "GET /v1/tenants/{t}/signing-keys": ["tenant keys", "tenant rotate-key", "tenant retire-key"],
    "POST /v1/logs/{t}/{l}/entries": ["append"],
    "GET /v1/logs/{t}/{l}/entries?from_index&limit&since&until&actor&action&resource&outcome&cursor": [  # noqa: E501
        "query",
        "export",
    ],
    "GET /v1/logs/{t}/{l}/entries/{i}?size=": ["entry", "proof"],
    "GET /v1/logs/{t}/{l}/checkpoint": ["checkpoint"],
    "GET /v1/logs/{t}/{l}/proof/inclusion?index&size": ["proof"],
    "GET /v1/logs/{t}/{l}/proof/consistency?from_size&to_size": ["proof"],
    "GET /logs/{t}/{l}/checkpoint": None,  # tlog-tiles for monitors: `ironlog monitor` reads them
    "GET /v1/integrity": ["integrity report"],
    "POST /v1/integrity/{t}/{l}/clear?force=": ["integrity clear"],
    "POST /v1/integrity/{t}/{l}/quarantine": ["log quarantine"],
    "POST /v1/integrity/{t}/{l}/release": ["log release"],
    "POST /v1/integrity/{t}/{l}/delete": ["log delete"],
    "GET /metrics": None,  # for Prometheus
    "GET /v1/logs/{t}/{l}/stats?from&to&bucket&group_by&top": None,  # for the console
    "GET /v1/tenants/{t}/usage?from&to": ["tenant usage"],
    "GET /v1/tenants/{t}/quota": ["tenant quota"],
    "GET /v1/logs/{t}/{l}/evidence?index=N[&index=M…]&from&to": ["evidence export"],
    "POST /v1/logs": None,  # OTLP, for OpenTelemetry exporters
    "GET /v1/whoami": None,  # for the web console (the CLI knows its key)
    "GET /ui": None,  # the web console itself
}


def test_every_api_action_has_a_cli_command() -> None:
    import re

    import click

    from ironlog.cli.main import main
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "api.md").read_text()
    table = text.split("## Endpoints")[1].split("\n## ")[0]
    endpoints = {m.group(1) for m in re.finditer(r"^\| `([A-Z]+ [^`]+)`", table, re.M)}
    assert endpoints, "no endpoint table in docs/api.md"
    unmapped = endpoints - PARITY.keys()
    assert not unmapped, f"docs/api.md endpoints without a CLI command (map them here): {unmapped}"
    ctx = click.Context(main)
    for endpoint, commands in PARITY.items():
        assert endpoint in endpoints, f"{endpoint} is no longer in docs/api.md"
        for command in commands or []:
            cmd: click.Command | None = main
            for part in command.split():
                assert isinstance(cmd, click.Group), command
                cmd = cmd.get_command(ctx, part)
            assert cmd is not None, f"{endpoint}: no command 'ironlog {command}'"


def test_operator_and_admin_commands_act_on_a_running_service(tmp_path: Path) -> None:
    """The new commands, with their effect seen through the HTTP API."""
    import httpx

    from tests.server import run_server

    data = tmp_path / "data"
    with run_server(data) as s, s.client(s.demo) as demo:
        assert demo.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
        # tenant disable / enable
        assert "disabled tenant demo" in run(data, "tenant", "disable", "demo").stdout
        assert "demo\tdisabled" in run(data, "tenant", "list").stdout
        time.sleep(1.2)  # key checks are remembered for a second
        assert demo.get("/v1/logs/demo/events").status_code == 401
        run(data, "tenant", "enable", "demo")
        assert demo.get("/v1/logs/demo/events").status_code == 200
        assert "does not exist" in run(data, "tenant", "disable", "nope", ok=False).stderr
        # log public --on / --off
        assert httpx.get(f"{s.url}/logs/demo/events/checkpoint").status_code == 401
        assert "demo/events: public" in run(data, "log", "public", "demo/events", "--on").stdout
        assert httpx.get(f"{s.url}/logs/demo/events/checkpoint").status_code == 200
        run(data, "log", "public", "demo/events", "--off")
        assert httpx.get(f"{s.url}/logs/demo/events/checkpoint").status_code == 401
        run(data, "log", "public", "demo/nope", "--on", ok=False)
        # log info == GET /v1/logs/{t}/{l}
        info = json.loads(run(data, "log", "info", "demo/events").stdout)
        assert info == demo.get("/v1/logs/demo/events").json()
        assert "demo/events" in run(data, "log", "list", "--tenant", "demo").stdout
        # key list / rotate
        demo_id = s.demo.split("_")[1]
        listed = run(data, "key", "list", "demo").stdout
        assert demo_id in listed and "append,read" in listed and s.demo not in listed
        p = run(data, "key", "rotate", "demo", demo_id, "--old-expires-in", "0")
        new = p.stdout.strip()
        assert f"replaces {demo_id}" in p.stderr and new.startswith("ilk_")
        time.sleep(1.2)
        with s.client(new) as c:
            assert c.get("/v1/logs/demo/events").status_code == 200
        assert demo.get("/v1/logs/demo/events").status_code == 401
        assert "expired" in run(data, "key", "list", "demo").stdout
        # integrity report (checks now) / clear (in the running service)
        out = run(data, "integrity", "report").stdout
        assert "ok demo/events: 1 entries verified" in out
        report = run(data, "integrity", "report", "--json").stdout
        rows = [json.loads(x) for x in report.splitlines()]
        by_log = {r["log"]: r for r in rows}
        assert by_log["demo/events"]["writable"] is True
        assert by_log["demo/_system"]["writable"] is True  # the tenant's record of admin acts
        run(data, "integrity", "report", "demo/nope", ok=False)
        url, op = ["--url", s.url], ["--api-key", s.operator]
        p = run(data, "integrity", "clear", "demo/events", *url, *op)
        assert "cleared demo/events" in p.stdout
        p = run(data, "integrity", "clear", "demo/events", *url, "--api-key", new, ok=False)
        assert "403" in p.stderr and new not in p.stderr


LOG_COMMANDS = [
    (["log", "info"], []),
    (["log", "quarantine"], ["--reason", "r"]),
    (["log", "release"], []),
    (["log", "delete"], []),
    (["log", "public"], ["--on"]),
    (["log", "witnesses"], []),
    (["append"], []),
    (["query"], []),
    (["export"], ["-o", "OUT"]),
    (["checkpoint"], []),
    (["vkey"], []),
    (["entry"], ["0"]),
    (["proof"], ["--index", "0"]),
    (["verify"], []),
    (["evidence", "export"], ["--output", "OUT"]),
    (["integrity", "report"], []),
]


@pytest.mark.parametrize(("words", "extra"), LOG_COMMANDS, ids=lambda c: "-".join(c))
def test_every_log_command_reads_tenant_log_alike(
    data: Path, tmp_path: Path, words: list[str], extra: list[str]
) -> None:
    """Each TENANT/LOG argument is parsed by one parameter type and each command's
    errors are translated once, by the root group: a malformed name is a usage
    error (exit 2), an unknown log one clean line (exit 1), never a traceback."""
    out = str(tmp_path / "out")
    extra = [out if x == "OUT" else x for x in extra]
    p = run(data, *words, "nope", *extra, ok=False)
    assert p.returncode == 2 and "'nope' is not TENANT/LOG" in p.stderr, p.stderr
    p = run(data, *words, "acme/nope", *extra, ok=False)
    assert p.returncode == 1 and "acme/nope" in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    assert not Path(out).exists()
