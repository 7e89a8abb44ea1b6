"""ironlog on PostgreSQL, as a user runs it: ``init --database``, ``serve``
nodes sharing one database, the CLI, the offline verifier.  The cluster is
the session's own (tests/pg.py); the store agreement suite covers the driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BIN
from tests.pg import PASSWORD, PgCluster
from tests.server import Server, run_server


def cli(
    data: Path, *args: str, database: str | None = None, ok: bool = True, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    db = ["--database", database] if database else []
    p = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *db, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert (p.returncode == 0) == ok, p.stdout + p.stderr
    return p


@pytest.fixture
def pg_data(postgres: PgCluster, tmp_path: Path) -> tuple[Path, str]:
    """A data directory (the master key) and a database initialised for it."""
    url = postgres.new_database()
    data = tmp_path / "data"
    out = cli(data, "init", "--database", url).stdout
    assert "created master key" in out and "schema in postgresql://ironlog@" in out
    assert PASSWORD not in out
    assert sorted(p.name for p in data.iterdir()) == ["master.key"]
    # idempotent: a second init finds the schema current
    assert "master key already present" in cli(data, "init", "--database", url).stdout
    return data, url


def test_serve_append_verify_and_prove_offline(pg_data: tuple[Path, str], tmp_path: Path) -> None:
    data, url = pg_data
    env = {**os.environ, "IRONLOG_DATABASE_URL": url}
    with run_server(data, env=env) as s, s.client(s.demo) as c:
        for i in range(5):
            r = c.post("/v1/logs/demo/events/entries", json={"actor": "alice", "n": i})
            assert r.status_code == 201, r.text
        body = "".join(json.dumps({"n": i}) + "\n" for i in range(5, 1005))
        r = c.post(
            "/v1/logs/demo/events/entries",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 201 and r.json()["count"] == 1000, r.text
        assert c.get("/v1/logs/demo/events").json()["size"] == 1005
    assert "schema in" not in s.output and PASSWORD not in s.output
    # nothing of the logs went to the data directory
    assert not (data / "control.db").exists() and not (data / "logs" / "demo").exists()
    # The CLI reads the same database (the env var, or --database).
    out = cli(data, "verify", "--all", database=url).stdout
    assert "ok demo/events: 1005 entries" in out, out
    rows = json.loads(
        cli(
            data, "query", "demo/events", "--format", "json", "--actor", "alice", database=url
        ).stdout
    )
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    vkey = cli(data, "vkey", "demo/events", database=url).stdout.strip()
    proof = tmp_path / "p.tlog-proof"
    proof.write_text(cli(data, "proof", "demo/events", "--index", "700", database=url).stdout)
    entry = tmp_path / "entry"
    entry.write_bytes(
        subprocess.run(
            [
                str(BIN / "ironlog"),
                "--data",
                str(data),
                "--database",
                url,
                "entry",
                "demo/events",
                "700",
            ],
            capture_output=True,
            check=True,
        ).stdout
    )
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "ironlog.evidence",
            "proof",
            str(proof),
            "--entry",
            str(entry),
            "--vkey",
            vkey,
        ],
        capture_output=True,
        text=True,
    )
    assert r2.returncode == 0, r2.stdout + r2.stderr
    # Without the database, the data directory is no embedded store.
    assert "ironlog init" in cli(data, "log", "list", ok=False).stderr


def test_two_nodes_append_to_one_log(pg_data: tuple[Path, str], tmp_path: Path) -> None:
    """Two ``serve`` nodes on one database, appending to one log at once: the
    receipts' indexes are exactly 0..n-1 (no gap, no duplicate), the tree is
    that of the entries in index order (no fork), and an idempotency key used
    on one node is honoured by the other.  One node has the database from
    IRONLOG_DATABASE_URL, the other from ``database = "..."`` in its config."""
    data, url = pg_data
    env = {**os.environ, "IRONLOG_DATABASE_URL": url}
    config = tmp_path / "ironlog.toml"
    config.write_text(f"database = {json.dumps(url)}\n")
    plain = {k: v for k, v in os.environ.items() if k != "IRONLOG_DATABASE_URL"}
    with run_server(data, env=env) as a:
        assert a.demo
        with run_server(data, "--config", str(config), env=plain) as b:
            assert not b.operator  # keys were issued once, by the first node
            got: list[tuple[int, int]] = []  # (first index, count) of each receipt
            lock = threading.Lock()
            errors: list[str] = []

            def writer(node: Server, tag: str) -> None:
                with node.client(a.demo) as c:
                    for i in range(40):
                        n = 1 + i % 7
                        body = "".join(
                            json.dumps({"w": tag, "i": i, "j": j}) + "\n" for j in range(n)
                        )
                        r = c.post(
                            "/v1/logs/demo/events/entries",
                            content=body,
                            headers={
                                "Content-Type": "application/x-ndjson",
                                "Idempotency-Key": f"{tag}-{i}",
                            },
                        )
                        if r.status_code != 201:
                            errors.append(r.text)
                            continue
                        with lock:
                            got.append((r.json()["first_index"], r.json()["count"]))

            threads = [
                threading.Thread(target=writer, args=(node, f"{tag}{k}"))
                for k in range(2)
                for node, tag in ((a, "a"), (b, "b"))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[:3]
            indexes = sorted(i for first, count in got for i in range(first, first + count))
            assert indexes == list(range(len(indexes)))
            # the same request (same key) repeated on the other node appends nothing
            with b.client(a.demo) as cb, a.client(a.demo) as ca:
                size = ca.get("/v1/logs/demo/events").json()["size"]
                assert size == len(indexes)
                body = "".join(json.dumps({"w": "a0", "i": 3, "j": j}) + "\n" for j in range(4))
                again = cb.post(
                    "/v1/logs/demo/events/entries",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson", "Idempotency-Key": "a0-3"},
                )
                assert again.status_code == 201, again.text
                assert (again.json()["first_index"], again.json()["count"]) in got
                assert cb.get("/v1/logs/demo/events").json()["size"] == size
    # every checkpoint is of the tree of the entries in index order (no fork)
    out = cli(data, "verify", "--all", database=url).stdout
    assert f"ok demo/events: {size} entries" in out, out


def test_database_never_initialised_is_named(
    pg_data: tuple[Path, str], postgres: PgCluster
) -> None:
    data, _ = pg_data
    fresh = postgres.new_database()
    err = cli(data, "log", "list", database=fresh, ok=False).stderr
    assert "ironlog init --database URL" in err and PASSWORD not in err


def test_bad_database_url_is_refused_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    err = cli(data, "--database", "mysql://x/y", "init", ok=False).stderr
    assert "postgresql://" in err
    assert not data.exists()
    url = f"postgresql://ironlog:{PASSWORD}@127.0.0.1:1/nowhere"
    err = cli(data, "init", "--database", url, ok=False).stderr
    assert "connect to postgresql://ironlog@127.0.0.1/nowhere" in err and PASSWORD not in err
    assert not data.exists()  # no master key without its database


def test_runtime_role_needs_no_ddl(postgres: PgCluster) -> None:
    """``init`` runs as the database's owner; ironlog then runs as a role with
    only the grants docs/postgres.md lists (no CREATE anywhere): it adds a
    tenant (its schema made by the SECURITY DEFINER function), creates, appends
    to and reads a log, and any DDL of its own is refused."""
    from ironlog.core.entry import prepare_object
    from ironlog.store.base import Durability, LogInfo, TenantRecord
    from ironlog.store.postgres import PostgresDriver

    owner_url = postgres.new_database()
    db = owner_url.rsplit("/", 1)[1]
    PostgresDriver(owner_url, migrate=True).close()
    app = f"app_{db}"
    postgres.admin(f"CREATE ROLE {app} LOGIN PASSWORD 'app-pw'")
    postgres.admin(
        f"SET ROLE ironlog; GRANT USAGE ON SCHEMA ironlog TO {app};"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ironlog TO {app};"
        f" GRANT EXECUTE ON FUNCTION ironlog.tenant_schema(text) TO {app};",
        db=db,
    )
    url = owner_url.replace(f"ironlog:{PASSWORD}@", f"{app}:app-pw@")
    # ``serve`` runs init on every start: on a current schema it runs no DDL
    PostgresDriver(url, migrate=True).close()
    # a tenant made by the owner (an admin's CLI) is the runtime role's too
    owner = PostgresDriver(owner_url)
    try:
        owner.create_log(LogInfo("byowner", "l", "o/byowner/l", Durability(), 1))
    finally:
        owner.close()
    driver = PostgresDriver(url)
    try:
        for tenant in ("acme", "byowner"):
            info = LogInfo(tenant, "pay", f"o/{tenant}/pay", Durability(), 1)
            control = driver.control()
            control.create_tenant(TenantRecord(tenant, 1, False, b"sealed", b"pub"))
            control.create_log(info)
            assert driver.create_log(info)
            store = driver.open_log(info)
            res = store.append([prepare_object({"n": i}, 1, "t") for i in range(3)], None)
            assert (res.first_index, res.count, store.head().size) == (0, 3, 3)
            assert len(store.entries(0, 10)) == 3
            store.close()
    finally:
        driver.close()
    schema = "ironlog_t2"  # acme's, made by the function as the owner
    with psycopg.connect(url, autocommit=True) as con:
        for ddl in (
            "CREATE TABLE ironlog.x (a int)",
            "CREATE SCHEMA mine",
            f"CREATE TABLE {schema}.x (a int)",
            f"ALTER TABLE {schema}.entries ADD COLUMN x int",
            "DROP TABLE ironlog.tenants",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(ddl.encode())
