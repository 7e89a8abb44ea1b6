"""The store's integrity as someone holding the files attacks it, and as the
machine loses it: names, atomic creation, broken logs isolated and
quarantined, tampered query columns, rows beyond the head, vanished and
rolled-back logs, directory fsyncs, and read-only copies."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironlog.atomic import replace_atomically
from ironlog.core.entry import column_mismatch, prepare_object
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.errors import InvalidRequestError, LogUnavailableError
from ironlog.store.base import check_name
from tests.conftest import BIN
from tests.server import Server, run_server
from tests.test_cli import run

EVENTS = b"".join(
    json.dumps({"actor": a, "action": "pay", "outcome": "success", "n": i}).encode() + b"\n"
    for i, a in enumerate(["alice", "bob", "carol", "alice", "bob"])
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    run(d, "init")
    run(d, "log", "create", "acme/pay")
    run(d, "append", "acme/pay", stdin=EVENTS)
    return d


def _db(data: Path, path: str = "acme/pay") -> sqlite3.Connection:
    return sqlite3.connect(data / "logs" / f"{path}.db", isolation_level=None)


def _wait(cond: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _err(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code, r.text
    return str(r.json()["error"]["message"])


# --- item 2: names, atomic creation, isolation, quarantine -------------------------


@pytest.mark.parametrize("name", ["zz\n", "a\n", "x/y", "a..b"])
def test_name_check_matches_the_whole_string(name: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_name("log", name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("srv") / "data") as s:
        yield s


def _admin(s: Server, tenant: str) -> str:
    with s.client(s.operator) as op:
        assert op.post("/v1/tenants", json={"name": tenant}).status_code in (201, 409)
        r = op.post(f"/v1/tenants/{tenant}/keys", json={"scopes": "append,read,admin"})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


def _entries_on_disk(data: Path) -> set[str]:
    return {str(p.relative_to(data / "logs")) for p in (data / "logs").rglob("*")}


def test_bad_names_over_http_leave_nothing_behind(server: Server) -> None:
    key = _admin(server, "nlco")
    before = _entries_on_disk(server.data)
    with server.client(key) as c, server.client(server.operator) as op:
        for bad in ("zz\n", "zz\r", "z z", "zz/", "\nzz"):
            _err(c.post("/v1/tenants/nlco/logs", json={"name": bad}), 400, "invalid_request")
            _err(op.post("/v1/tenants", json={"name": bad}), 400, "invalid_request")
        r = c.get("/v1/tenants/nlco/logs")
        # only the tenant's system log, which records nothing of refused requests
        assert r.status_code == 200, r.text
        assert [x["name"] for x in r.json()["logs"]] == ["_system"], r.text
        assert r.json()["logs"][0]["size"] == 2, r.text  # tenant.create, key.create
        assert op.get("/v1/integrity").status_code == 200
        names = [t["name"] for t in op.get("/v1/tenants").json()["tenants"]]
        assert all(n.strip() == n and " " not in n for n in names), names
    con = sqlite3.connect(server.data / "control.db")
    try:
        bad_rows = con.execute(
            "SELECT tenant, name FROM logs WHERE name GLOB '*[^a-z0-9._-]*'"
            " OR tenant GLOB '*[^a-z0-9._-]*'"
        ).fetchall()
    finally:
        con.close()
    assert bad_rows == []
    assert _entries_on_disk(server.data) == before


def test_tile_paths_match_as_whole_strings(server: Server) -> None:
    """Not only names: a tile path with a trailing newline is not the same
    identifier as the one without."""
    key = _admin(server, "tileco")
    with server.client(key) as c:
        assert c.post("/v1/tenants/tileco/logs", json={"name": "t"}).status_code == 201
        assert c.post("/v1/logs/tileco/t/entries", json={"x": 1}).status_code == 201
        assert c.get("/logs/tileco/t/tile/0/000.p/1").status_code == 200
        assert c.get("/logs/tileco/t/tile/0/000.p/1%0A").status_code in (400, 404)


def test_failed_log_creation_leaves_no_tenant_and_no_file(tmp_path: Path) -> None:
    """A log whose storage cannot be created leaves neither its record nor the
    tenant that was to be created with it."""
    d = tmp_path / "data"
    init_data_dir(d)
    (d / "logs").mkdir(mode=0o700)
    (d / "logs" / "newco").write_text("not a directory")  # the tenant's directory cannot exist
    with Ironlog(d) as il:
        with pytest.raises(LogUnavailableError, match="cannot create"):
            il.create_log("newco", "l", create_tenant=True)
        assert il.control.get_tenant("newco") is None
        assert il.list_logs() == []
    (d / "logs" / "newco").unlink()
    with Ironlog(d) as il:  # and the names are free again
        il.create_log("newco", "l", create_tenant=True)
        assert [i.path for i in il.list_logs()] == ["newco/_system", "newco/l"]


def _left_behind(data: Path, tenant: str, name: str) -> None:
    """A log row as the old name check let through (``"zz\\n"``): it cannot be opened."""
    con = sqlite3.connect(data / "control.db")
    with con:
        con.execute(
            "INSERT INTO logs (tenant, name, origin, durability, created_us, indexes, public)"
            " VALUES (?, ?, ?, 'sync', 0, '', 0)",
            (tenant, name, f"ironlog.localhost/{tenant}/{name}"),
        )
    con.close()


def test_one_broken_log_does_not_stop_the_others(tmp_path: Path) -> None:
    """A broken log (sorted first) must not hide tampering in the logs after it,
    nor break listings, the integrity report or ``verify --all``; the operator
    quarantines it (reads and writes refused, loops skip it) and deletes it."""
    data = tmp_path / "data"
    run(data, "init")
    run(data, "log", "create", "aaa/first")
    run(data, "log", "create", "zed/last")
    run(data, "append", "zed/last", stdin=EVENTS)
    _left_behind(data, "aaa", "broken\n")
    with run_server(data) as s:
        key = _admin(s, "aaa")
        with s.client(s.operator) as op, s.client(key) as c:
            r = c.get("/v1/tenants/aaa/logs")
            assert r.status_code == 200, r.text
            listed = {x["name"]: x for x in r.json()["logs"]}
            assert listed["first"]["healthy"] is True
            assert listed["broken\n"]["healthy"] is False
            assert listed["broken\n"]["unhealthy_reason"]
            r = op.get("/v1/integrity")
            assert r.status_code == 200, r.text
            con = _db(data, "zed/last")
            con.execute("UPDATE entries SET data = replace(data, 'carol', 'carl!') WHERE idx=2")
            con.close()

            def last() -> dict[str, object]:
                rows = op.get("/v1/integrity").json()["logs"]
                return next(x for x in rows if x["log"] == "zed/last")

            _wait(lambda: last()["failure"] is not None)
            assert "entry 2" in str(last()["failure"])
            broken = next(x for x in op.get("/v1/integrity").json()["logs"] if "broken" in x["log"])
            assert broken["writable"] is False and broken["failure"]

            p = run(data, "log", "list").stdout
            assert "aaa/first\t0\t" in p and "zed/last\t5\t" in p and "UNHEALTHY" in p
            p = run(data, "verify", "--all", ok=False)
            assert "ok aaa/first" in p.stdout and "FAILED aaa/broken" in p.stderr
            assert "FAILED zed/last: entry 2" in p.stderr

            # The operator quarantines the broken log over HTTP (tenants cannot).
            _err(c.post("/v1/integrity/aaa/broken%0A/quarantine", json={"reason": "x"}), 403)
            r = op.post("/v1/integrity/aaa/broken%0A/quarantine", json={"reason": "bad name"})
            assert r.status_code == 200 and r.json()["quarantined"] == "bad name", r.text
            r = op.post("/v1/integrity/aaa/first/quarantine", json={"reason": "under review"})
            assert r.status_code == 200, r.text
            msg = _err(c.get("/v1/logs/aaa/first/entries"), 503, "log_quarantined")
            assert "under review" in msg
            _err(c.post("/v1/logs/aaa/first/entries", json={"x": 1}), 503, "log_quarantined")
            listed = {x["name"]: x for x in c.get("/v1/tenants/aaa/logs").json()["logs"]}
            assert listed["first"]["quarantined"] == "under review"
            p = run(data, "verify", "--all", ok=False)
            assert "skipped aaa/first: quarantined: under review" in p.stdout
            assert "aaa/broken" not in p.stderr  # skipped, not failed
            assert "QUARANTINED: under review" in run(data, "log", "list").stdout
            r = op.post("/v1/integrity/aaa/first/release")
            assert r.status_code == 200, r.text
            _wait(lambda: c.get("/v1/logs/aaa/first/entries").status_code == 200)
            _err(op.post("/v1/integrity/aaa/first/delete"), 400)  # only a quarantined log
            r = op.post("/v1/integrity/aaa/broken%0A/delete")
            assert r.status_code == 200 and r.json()["deleted"] is True, r.text
            listed = [x["name"] for x in c.get("/v1/tenants/aaa/logs").json()["logs"]]
            assert listed == ["_system", "first"]
    run(data, "log", "quarantine", "zed/last", "--reason", "tampered")
    assert "FAILED" not in run(data, "verify", "--all").stderr
    out = run(data, "log", "delete", "zed/last").stdout
    assert "deleted zed/last" in out
    kept = list((data / "deleted" / "zed").glob("last.*/last.db"))
    assert len(kept) == 1  # the files are kept as evidence
    assert "zed/last" not in run(data, "log", "list").stdout
    assert "must be quarantined" in run(data, "log", "delete", "aaa/first", ok=False).stderr
    # A new log under the deleted one's name would sign another tree under the
    # same origin and key (size 1 with another root: a fork to every witness).
    err = run(data, "log", "create", "zed/last", ok=False).stderr
    assert "zed/last was deleted" in err and "choose another name" in err, err
    assert "zed/last" not in run(data, "log", "list").stdout
    run(data, "log", "create", "zed/next")


_GOOD = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}", fullmatch=True)
_CHARS = st.sampled_from([*"az09._-/\\\n\r\t \x00.Ä", "..", "\u2028", "\x85", "%2f"])
_NAMES = st.one_of(
    _GOOD,
    _GOOD.map(lambda s: s + "\n"),
    st.tuples(_GOOD, _CHARS, _GOOD).map("".join),
    st.lists(_CHARS, max_size=6).map("".join),
    st.text(max_size=8),
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(tenant=_NAMES, name=_NAMES)
def test_accepted_names_stay_in_their_directory(tenant: str, name: str) -> None:
    """Property: a name the check accepts lands exactly at logs/<tenant>/<log>.db
    and lists as itself; a rejected one leaves nothing behind."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "data"
        init_data_dir(d)
        with Ironlog(d) as il:
            try:
                check_name("tenant", tenant)
                check_name("log", name)
                accepted = True
            except InvalidRequestError:
                accepted = False
            if not accepted:
                with pytest.raises(InvalidRequestError):
                    il.create_log(tenant, name, create_tenant=True)
                assert il.list_logs() == [] and il.control.list_tenants() == []
                assert not (d / "logs").exists() or not any((d / "logs").rglob("*"))
                return
            il.create_log(tenant, name, create_tenant=True)
            files = sorted(str(p.relative_to(d / "logs")) for p in (d / "logs").rglob("*.db"))
            assert files == sorted([f"{tenant}/{name}.db", f"{tenant}/_system.db"])
            assert (d / "logs" / tenant / f"{name}.db").resolve().parent == (
                d / "logs" / tenant
            ).resolve()
            listed = {info.path: lg for info, lg in il.each_log()}
            assert sorted(listed) == sorted([f"{tenant}/{name}", f"{tenant}/_system"])
            assert not any(isinstance(lg, Exception) for lg in listed.values())


# --- item 3: tampering verify must see --------------------------------------------------


def test_verify_sees_tampered_query_columns(data: Path) -> None:
    """A changed query column hides an entry from queries, time ranges and
    evidence exports: the audit compares every column with the entry's bytes."""
    run(data, "verify", "acme/pay")
    for column, value in [
        ("actor", "'mallory'"),
        ("actor", "NULL"),
        ("received_us", "received_us + 1"),
        ("outcome", "'failure'"),
    ]:
        con = _db(data)
        before = con.execute(f"SELECT {column} FROM entries WHERE idx = 3").fetchone()[0]
        con.execute(f"UPDATE entries SET {column} = {value} WHERE idx = 3")
        con.close()
        p = run(data, "verify", "acme/pay", ok=False)
        assert f"entry 3: query column {column}" in p.stderr
        con = _db(data)
        con.execute(f"UPDATE entries SET {column} = ? WHERE idx = 3", (before,))
        con.close()
    run(data, "verify", "acme/pay")


def test_rows_beyond_the_head_are_caught(data: Path) -> None:
    con = _db(data)
    row = con.execute("SELECT * FROM entries WHERE idx = 4").fetchone()
    con.execute("INSERT INTO entries VALUES (?,?,?,?,?,?,?)", (5, *row[1:]))
    con.close()
    p = run(data, "verify", "--all", ok=False)
    assert "entry 5 lies beyond the tree size 5" in p.stderr
    p = run(data, "append", "acme/pay", stdin=EVENTS, ok=False)  # not a 409 UNIQUE
    assert "beyond the tree size" in p.stderr and "UNIQUE" not in p.stderr
    con = _db(data)
    con.execute("DELETE FROM entries WHERE idx = 5")
    note = con.execute("SELECT note FROM checkpoints WHERE size = 5").fetchone()[0]
    con.execute("INSERT INTO checkpoints VALUES (9, ?, 0)", (note,))
    con.close()
    assert "checkpoint of size 9 lies beyond" in run(data, "verify", "acme/pay", ok=False).stderr
    con = _db(data)
    con.execute("DELETE FROM checkpoints WHERE size = 9")
    con.execute("INSERT INTO tiles VALUES (0, 7, ?)", (b"\x00" * 32,))
    con.close()
    assert "tile 0/7" in run(data, "verify", "acme/pay", ok=False).stderr
    con = _db(data)
    con.execute("DELETE FROM tiles WHERE level = 0 AND idx = 7")
    con.close()
    run(data, "verify", "acme/pay")
    run(data, "append", "acme/pay", stdin=EVENTS)


def test_a_row_slipped_past_the_head_of_an_open_log(server: Server) -> None:
    """While the server has the log open: the next append is refused as an
    integrity failure (not a 409 conflict) and the background check names it."""
    key = _admin(server, "pastco")
    with server.client(key) as c:
        assert c.post("/v1/tenants/pastco/logs", json={"name": "p"}).status_code == 201
        assert c.post("/v1/logs/pastco/p/entries", json={"x": 1}).status_code == 201
        con = _db(server.data, "pastco/p")
        row = con.execute("SELECT * FROM entries WHERE idx = 0").fetchone()
        con.execute("INSERT INTO entries VALUES (?,?,?,?,?,?,?)", (1, *row[1:]))
        con.close()

        def failure() -> object:
            logs = c.get("/v1/integrity").json()["logs"]
            return next(x for x in logs if x["log"] == "pastco/p")["failure"]

        msg = _err(c.post("/v1/logs/pastco/p/entries", json={"x": 2}), 503, "integrity_failure")
        assert "beyond" in msg
        _wait(lambda: failure() is not None)
        assert "beyond" in str(failure())


def test_queries_check_entries_against_their_leaf_hashes(data: Path) -> None:
    con = _db(data)
    con.execute("UPDATE entries SET data = replace(data, 'bob', 'eve') WHERE idx = 1")
    con.close()
    p = run(data, "query", "acme/pay", ok=False)
    assert "entry 1 does not match its leaf hash" in p.stderr and "eve" not in p.stdout
    out = str(data.parent / "x.json")
    p = run(data, "evidence", "export", "acme/pay", "--index", "1", "--output", out, ok=False)
    assert "entry 1 does not match its leaf hash" in p.stderr


def test_background_verifier_sees_tampered_columns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "init")
    run(data, "log", "create", "acme/pay")
    run(data, "append", "acme/pay", stdin=EVENTS)
    with run_server(data) as s, s.client(s.operator) as op:
        key = _admin(s, "acme")
        with s.client(key) as c:
            assert c.get("/v1/logs/acme/pay/entries", params={"actor": "bob"}).json()["entries"]
            con = _db(data)
            con.execute("UPDATE entries SET actor = 'nobody' WHERE actor = 'bob'")
            con.close()

            def state() -> dict[str, object]:
                rows = op.get("/v1/integrity").json()["logs"]
                return dict(next(x for x in rows if x["log"] == "acme/pay"))

            _wait(lambda: state()["failure"] is not None)
            assert "query column actor" in str(state()["failure"])
            _err(c.post("/v1/logs/acme/pay/entries", json={"x": 1}), 503, "integrity_failure")


def test_restoring_an_older_copy_of_one_log_is_caught(data: Path, tmp_path: Path) -> None:
    """The control store remembers each log's signed size: a log file put back
    from an older backup is refused without any witness."""
    backup = tmp_path / "pay.db.bak"
    shutil.copy(data / "logs" / "acme" / "pay.db", backup)
    run(data, "append", "acme/pay", stdin=EVENTS)  # 10 entries now
    for f in (data / "logs" / "acme").glob("pay.db*"):
        f.unlink()
    shutil.copy(backup, data / "logs" / "acme" / "pay.db")
    p = run(data, "verify", "acme/pay", ok=False)
    assert "rolled back" in p.stderr and "size 10" in p.stderr
    p = run(data, "append", "acme/pay", stdin=EVENTS, ok=False)
    assert "rolled back" in p.stderr
    assert "UNHEALTHY" in run(data, "log", "list").stdout


# --- item 7: directory fsyncs, vanished logs ----------------------------------------------


def test_a_vanished_log_is_unhealthy_and_never_recreated(data: Path) -> None:
    for f in (data / "logs" / "acme").glob("pay.db*"):
        f.unlink()
    out = run(data, "log", "list").stdout
    assert "acme/pay" in out and "UNHEALTHY" in out and "database file is missing" in out
    p = run(data, "verify", "--all", ok=False)
    assert "FAILED acme/pay" in p.stderr and "missing" in p.stderr
    p = run(data, "append", "acme/pay", stdin=EVENTS, ok=False)
    assert "database file is missing" in p.stderr
    assert not (data / "logs" / "acme" / "pay.db").exists()
    with run_server(data) as s:
        key = _admin(s, "acme")
        with s.client(key) as c:
            msg = _err(c.post("/v1/logs/acme/pay/entries", json={"x": 1}), 503)
            assert "missing" in msg
            [row] = [x for x in c.get("/v1/tenants/acme/logs").json()["logs"] if x["name"] == "pay"]
            assert row["healthy"] is False and "missing" in row["unhealthy_reason"]
    assert not (data / "logs" / "acme" / "pay.db").exists()


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsync'd (through a file descriptor) in this process."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_new_directories_and_files_are_made_durable(tmp_path: Path, fsynced: list[str]) -> None:
    tmp_path = tmp_path.resolve()
    d = tmp_path / "new" / "data"
    init_data_dir(d)
    assert {str(tmp_path / "new"), str(d)} <= set(fsynced)  # data dir, master.key, control.db
    fsynced.clear()
    with Ironlog(d) as il:
        il.create_log("acme", "pay", create_tenant=True)
    assert {str(d), str(d / "logs"), str(d / "logs" / "acme")} <= set(fsynced)
    fsynced.clear()
    with replace_atomically(tmp_path / "out.txt") as f:
        f.write("x")
    assert fsynced[-1] == str(tmp_path)  # the rename, after the file itself
    assert oct((d / "logs" / "acme").stat().st_mode & 0o777) == "0o700"


# --- item 13: read-only copies ------------------------------------------------------------


def _read_commands(out: Path) -> list[list[str]]:
    return [
        ["verify", "--all"],
        ["query", "acme/pay", "--actor", "alice"],
        ["log", "list"],
        ["evidence", "export", "acme/pay", "--index", "1", "--output", str(out / "b.json")],
        # every other command that only reads: an auditor's copy answers them too
        ["entry", "acme/pay", "0"],
        ["entry", "acme/pay", "0", "--output", str(out / "entry0")],
        ["log", "info", "acme/pay"],
        ["checkpoint", "acme/pay"],
        ["vkey", "acme/pay"],
        ["proof", "acme/pay", "--index", "0"],
        ["tenant", "list"],
        ["tenant", "keys", "acme"],
        ["key", "list", "acme"],
        ["operator-key", "list"],
    ]


def _check_read_only_run(data: Path, argv_prefix: list[str], out: Path | None = None) -> None:
    out = out or data.parent / "out"
    out.mkdir(mode=0o777, exist_ok=True)
    os.chmod(out, 0o777)
    for cmd in _read_commands(out):
        p = subprocess.run(
            [*argv_prefix, str(BIN / "ironlog"), "--data", str(data), *cmd],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, (cmd, p.stderr)
        assert "Traceback" not in p.stderr
        if cmd[0] == "query":
            assert p.stdout.count("alice") == 2


def test_verify_and_query_a_read_only_mount(data: Path, tmp_path: Path) -> None:
    """A read-only bind mount of a copy (EROFS even for root)."""
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    script = f'mount --bind -o ro "{copy}" "{copy}" && exec "$@"'
    _check_read_only_run(copy, ["unshare", "-m", "sh", "-c", script, "sh"])
    assert sorted(p.name for p in (copy / "logs" / "acme").iterdir()) == sorted(
        p.name for p in (data / "logs" / "acme").iterdir()
    )


def test_verify_and_query_on_a_full_disk(data: Path, tmp_path: Path) -> None:
    """A copy on a file system with no space left: reading must not need any."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && cp -a "{data}" "{mnt}/data"'
        f' && (dd if=/dev/zero of="{mnt}/fill" bs=4k 2>/dev/null; true)'
        f' && df "{mnt}" | tail -1 | grep -q " 100%" && exec "$@"'
    )
    _check_read_only_run(mnt / "data", ["unshare", "-m", "sh", "-c", script, "sh"], tmp_path / "o")


def test_verify_and_query_a_read_only_copy_as_another_user(data: Path) -> None:
    """A copy whose files and directories are read-only (chmod a-w), read by a
    user that is not root (root ignores permission bits)."""
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        copy = base / "data"
        shutil.copytree(data, copy)
        for p in [copy, *copy.rglob("*")]:
            os.chown(p, 65534, 65534)
            os.chmod(p, 0o500 if p.is_dir() else 0o400)
        _check_read_only_run(copy, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    finally:
        for p in [base, *base.rglob("*")]:
            os.chmod(p, 0o700)
        shutil.rmtree(base)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=1100),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["actor", "action", "resource", "outcome", "other"]), _JSON_VALUES
    ),
    received_us=st.integers(min_value=0, max_value=253402300799_999999),
)
def test_the_audit_derives_exactly_the_columns_appends_store(
    fields: dict[str, object], received_us: int
) -> None:
    """Property: the columns an append stores are what the audit derives from
    the entry's bytes, and a change to any one of them is named."""
    e = prepare_object(fields, received_us, "prop")
    stored = (e.received_us, e.actor, e.action, e.resource, e.outcome)
    assert column_mismatch(e.data, stored) is None
    names = ("received_us", "actor", "action", "resource", "outcome")
    for i, name in enumerate(names):
        changed = e.received_us + 1 if i == 0 else (None if stored[i] else "x")
        bad = column_mismatch(e.data, (*stored[:i], changed, *stored[i + 1 :]))
        assert bad is not None and bad[0] == name


def test_an_append_during_a_check_is_no_rollback(
    il: Ironlog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded signed size grows right after a commit, in another thread
    (or worker): a check that read the head just before must not call that a
    rollback (seen as a false integrity failure under two workers)."""
    from ironlog.engine.audit import audit_log

    il.create_log("race", "l", create_tenant=True)
    lg = il.log("race", "l")
    for i in range(3):
        lg.append(prepare_object({"i": i}, 1, "t"))
    real_head = lg.store.head

    def head_then_a_commit() -> object:
        head = real_head()
        lg.known_size = head.size + 1  # a commit recorded just after the head was read
        return head

    monkeypatch.setattr(lg.store, "head", head_then_a_commit)
    assert audit_log(lg).ok
    lg.known_size = 3
    lg.check_head()  # raises IntegrityError if fooled


def test_non_finite_numbers_get_the_column_their_bytes_give() -> None:
    """JSON has no inf or nan: the stored bytes hold null, so must the column
    (found by the property test above: an 'inf' actor column over a null)."""
    for v in (float("inf"), float("-inf"), float("nan")):
        e = prepare_object({"actor": v}, 0, "t")
        stored = (e.received_us, e.actor, e.action, e.resource, e.outcome)
        assert column_mismatch(e.data, stored) is None


def test_releasing_a_log_that_is_not_quarantined_says_so(tmp_path: Path) -> None:
    """It used to print "released" (and record a release) for a log in service."""
    data = tmp_path / "data"
    run(data, "init")
    run(data, "log", "create", "rel/l")
    p = run(data, "log", "release", "rel/l", ok=False)
    assert "is not quarantined" in p.stderr and "Traceback" not in p.stderr
    run(data, "log", "quarantine", "rel/l", "--reason", "check")
    assert "released rel/l" in run(data, "log", "release", "rel/l").stdout
