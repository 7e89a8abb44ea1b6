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


def test_two_nodes_append_to_one_log(pg_data: tuple[Path, str]) -> None:
    """Two ``serve`` nodes on one database, appending to one log at once: the
    receipts' indexes are exactly 0..n-1 (no gap, no duplicate), the tree is
    that of the entries in index order (no fork), and an idempotency key used
    on one node is honoured by the other."""
    data, url = pg_data
    env = {**os.environ, "IRONLOG_DATABASE_URL": url}
    with run_server(data, env=env) as a:
        assert a.demo
        with run_server(data, env=env) as b:
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


def test_bad_database_url_is_refused_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    err = cli(data, "--database", "mysql://x/y", "init", ok=False).stderr
    assert "postgresql://" in err
    assert not data.exists()
    url = f"postgresql://ironlog:{PASSWORD}@127.0.0.1:1/nowhere"
    err = cli(data, "init", "--database", url, ok=False).stderr
    assert "connect to postgresql://ironlog@127.0.0.1/nowhere" in err and PASSWORD not in err
    assert not data.exists()  # no master key without its database
