"""Versioned layouts (``PRAGMA user_version``): data directories made before
versions existed (``tests/data/unversioned``, made by older ironlogs) open with
today's code, which brings each database to the last version in one
transaction; their logs still verify, prove and append; a database written by
a newer ironlog is refused with a clear message and left as it is."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ironlog.core import merkle, note, tlogproof
from ironlog.errors import ConfigurationError, LogUnavailableError
from ironlog.store.migrations import Migrations, Step
from ironlog.store.sqlite import CONTROL_MIGRATIONS, LOG_MIGRATIONS
from ironlog.store.sqlite.db import migrate, user_version
from tests.conftest import BIN
from tests.server import run_server
from tests.test_cli import run

FIXTURES = Path(__file__).parent / "data" / "unversioned"
MAIN_VKEY = "ironlog.localhost/acme/payments+e416f76e+AUm2lKuznpZazJCtJX7AI4SvjyM85dES95jbiDd/Mdhl"
OLD_VKEY = "ironlog.localhost/acme/payments+8acde45c+ATrGebx/OwKXvvveYKY0IiZHLKjCEmwLxkwm3FfG5kEO"
MAIN_KEY = "ilk_5e9d9cc85f574bfa_orjtN2CW0hxnHnEFILhPFKsJHL7Vsp5A4ZUki_ReZSs"  # append,read on acme


def materialise(name: str, tmp_path: Path) -> Path:
    """The data directory of ``tests/data/unversioned/<name>``, its databases
    rebuilt from their SQL text (user_version 0, as the old code left them)."""
    src, data = FIXTURES / name, tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copy(src / "master.key", data / "master.key")
    os.chmod(data / "master.key", 0o600)
    for sql in sorted(src.rglob("*.sql")):
        db = data / sql.relative_to(src).with_suffix(".db")
        db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        con = sqlite3.connect(db)
        con.executescript(sql.read_text())
        con.close()
        os.chmod(db, 0o600)
        assert _version(db) == 0
    return data


def _version(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def _set_version(db: Path, version: int) -> None:
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version={version}")
    con.close()


def _payments(data: Path) -> Path:
    return data / "logs" / "acme" / "payments.db"


def _events(*actors: str) -> bytes:
    return b"".join(json.dumps({"actor": a, "action": "pay"}).encode() + b"\n" for a in actors)


def _check_proofs(data: Path, vkey: str, old_size: int, new_size: int) -> None:
    """The log's latest checkpoint is signed by the key it had before, extends
    the tree it had before, and proves an old entry and a new one."""
    verifier = note.Verifier.from_vkey(vkey)
    assert run(data, "vkey", "acme/payments").stdout.strip() == vkey
    old = note.open_checkpoint(
        run(data, "checkpoint", "acme/payments", "--size", str(old_size)).stdout, verifier
    ).checkpoint
    new = note.open_checkpoint(run(data, "checkpoint", "acme/payments").stdout, verifier).checkpoint
    assert (old.size, new.size) == (old_size, new_size)
    hashes = run(data, "proof", "acme/payments", "--from", str(old_size)).stdout.split()
    merkle.verify_consistency(
        old_size, new_size, [note.b64decode(h) for h in hashes], old.root, new.root
    )
    for index in (1, new_size - 1):
        out = data.parent / f"entry-{index}"
        text = run(
            data, "proof", "acme/payments", "--index", str(index), "--entry-output", str(out)
        ).stdout
        tlogproof.parse_tlog_proof(text).verify(out.read_bytes(), verifier)


def test_the_last_unversioned_layout_is_migrated_and_keeps_working(tmp_path: Path) -> None:
    data = materialise("main-3ea1c85", tmp_path)
    dbs = [data / "control.db", _payments(data), data / "logs" / "acme" / "_system.db"]
    # Read-only commands never write, so never migrate: they read the old layout.
    assert "ok acme/payments: 5 entries" in run(data, "verify", "--all").stdout
    assert [_version(db) for db in dbs] == [0, 0, 0]
    # The first command that writes brings what it opens to the last version.
    assert (
        "appended 2 entries (indexes 5..6)"
        in run(data, "append", "acme/payments", stdin=_events("erin", "alice")).stdout
    )
    assert _version(data / "control.db") == CONTROL_MIGRATIONS.latest == 1
    assert _version(_payments(data)) == LOG_MIGRATIONS.latest == 1
    _check_proofs(data, MAIN_VKEY, 5, 7)
    out = run(data, "verify", "--all").stdout
    assert "ok acme/payments: 7 entries" in out and "ok acme/_system" in out
    rows = json.loads(
        run(data, "query", "acme/payments", "--actor", "alice", "--format", "json").stdout
    )
    assert [r["index"] for r in rows] == [0, 2, 6]  # the indexed column, old rows and new
    assert "5e9d9cc85f574bfa" in run(data, "key", "list", "acme").stdout
    # Opening again changes nothing.
    run(data, "append", "acme/payments", stdin=_events("frank"))
    assert [_version(db) for db in dbs[:2]] == [1, 1]


def test_a_layout_from_before_quarantine_gets_its_columns(tmp_path: Path) -> None:
    data = materialise("before-quarantine-c85d03a", tmp_path)
    con = sqlite3.connect(data / "control.db")
    assert "quarantined" not in {r[1] for r in con.execute("PRAGMA table_info(logs)")}
    con.close()
    assert "ok acme/payments: 3 entries" in run(data, "verify", "acme/payments").stdout
    run(data, "append", "acme/payments", stdin=_events("dave", "erin"))
    assert [_version(data / "control.db"), _version(_payments(data))] == [1, 1]
    con = sqlite3.connect(data / "control.db")
    cols = {r[1] for r in con.execute("PRAGMA table_info(logs)")}
    con.close()
    assert {"quarantined", "signed_size"} <= cols
    _check_proofs(data, OLD_VKEY, 3, 5)
    run(data, "log", "quarantine", "acme/payments", "--reason", "migration test")
    assert "QUARANTINED" in run(data, "log", "list").stdout
    run(data, "log", "release", "acme/payments")
    assert "ok acme/payments: 5 entries" in run(data, "verify", "acme/payments").stdout


def test_two_processes_opening_an_old_layout_at_once(tmp_path: Path) -> None:
    """Of two processes migrating one old database at once, one migrates and
    the other finds it done (the version is read again under the write lock)."""
    data = materialise("main-3ea1c85", tmp_path)
    procs = [
        subprocess.Popen(
            [str(BIN / "ironlog"), "--data", str(data), "append", "acme/payments"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for i, p in enumerate(procs):
        _, err = p.communicate(_events(f"p{i}a", f"p{i}b", f"p{i}c"), timeout=120)
        assert p.returncode == 0, err.decode()
    assert [_version(data / "control.db"), _version(_payments(data))] == [1, 1]
    assert "ok acme/payments: 11 entries" in run(data, "verify", "acme/payments").stdout


def test_a_control_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    data = materialise("main-3ea1c85", tmp_path)
    _set_version(data / "control.db", 99)
    for args in (("log", "list"), ("verify", "--all"), ("log", "create", "acme/other")):
        err = run(data, *args, ok=False).stderr
        assert "layout is version 99" in err and "written by a newer ironlog" in err, err
    assert _version(data / "control.db") == 99
    con = sqlite3.connect(data / "control.db")
    assert [r[0] for r in con.execute("SELECT name FROM logs ORDER BY name")] == [
        "_system",
        "payments",
    ]
    con.close()
    assert not (data / "logs" / "acme" / "other.db").exists()


def test_a_log_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    data = materialise("main-3ea1c85", tmp_path)
    _set_version(_payments(data), 7)
    for args in (
        ("append", "acme/payments"),
        ("verify", "acme/payments"),
        ("vkey", "acme/payments"),
    ):
        err = run(data, *args, stdin=_events("mallory"), ok=False).stderr
        assert "log acme/payments" in err and "layout is version 7" in err, err
    out = run(data, "verify", "--all", ok=False).stdout
    assert "ok acme/_system" in out  # one log refused never stops the others
    assert _version(_payments(data)) == 7
    con = sqlite3.connect(_payments(data))
    assert con.execute("SELECT count(*) FROM entries").fetchone() == (5,)
    con.close()
    with run_server(data) as server, server.client(MAIN_KEY) as c:
        r = c.post("/v1/logs/acme/payments/entries", json={"actor": "mallory"})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "log_unavailable" and "newer ironlog" in error["message"]
        assert c.get("/v1/logs/acme/_system").status_code in (200, 403)


# -- the mechanism, driver-neutral steps applied to a SQLite database ------------


def _steps(*extra: Step) -> Migrations:
    return Migrations(
        "test database",
        (
            Step(1, "a table", ("CREATE TABLE a(x INTEGER)",)),
            Step(2, "a row in it", ("INSERT INTO a VALUES (2)",)),
            Step(3, "a second table", ("CREATE TABLE b(y TEXT)", lambda con: None)),
            *extra,
        ),
        refuse=ConfigurationError,
    )


def test_steps_apply_in_order_once(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    assert migrate(con, _steps(), "t.db") == (0, 3)
    assert user_version(con) == 3
    assert migrate(con, _steps(), "t.db") == (3, 3)  # idempotent: nothing runs again
    assert con.execute("SELECT x FROM a").fetchall() == [(2,)]
    ran: list[int] = []
    four = Step(4, "a column", ("ALTER TABLE b ADD COLUMN z INTEGER", lambda c: ran.append(4)))
    assert migrate(con, _steps(four), "t.db") == (3, 4)  # only the new step
    assert ran == [4] and con.execute("SELECT x FROM a").fetchall() == [(2,)]
    con.close()


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    migrate(con, _steps(), "t.db")
    bad = Step(4, "two statements, the second wrong", ("CREATE TABLE c(z)", "NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(con, _steps(bad), "t.db")
    assert user_version(con) == 3 and not con.in_transaction
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a", "b"}
    con.close()


def test_versions_are_checked() -> None:
    with pytest.raises(ValueError, match=r"1\.\.n"):
        Migrations("x", (Step(2, "gap", ()),), refuse=ConfigurationError)
    with pytest.raises(LogUnavailableError, match="version 2 but this ironlog knows"):
        LOG_MIGRATIONS.pending(2, "log a/b")
    assert LOG_MIGRATIONS.pending(1, "log a/b") == ()
