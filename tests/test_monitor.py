"""``ironlog monitor`` against a real server whose log is then rolled back,
forked and tampered with."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ironlog.client import Client
from ironlog.core import note
from tests.conftest import BIN
from tests.server import run_server
from tests.test_client import _restore, _snapshot, tenant_log


class Hook:
    def __init__(self) -> None:
        self.alerts: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers["Content-Length"])
                hook.alerts.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alert"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def _monitor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ironlog"), "monitor", *args], capture_output=True, text=True, timeout=timeout
    )


def _append(url: str, key: str, events: list[dict[str, object]]) -> None:
    with Client(url, key, trust_on_first_use=True) as c:
        c.append_many("mon/app", events)


def test_monitor_follows_and_reports_rollback_and_fork(tmp_path: Path, hook: Hook) -> None:
    data, state, snap = tmp_path / "data", tmp_path / "monitor.json", tmp_path / "snap.db"
    db = data / "logs" / "mon" / "app.db"
    with run_server(data) as s:
        key = tenant_log(s, "mon")
        port = int(s.url.rsplit(":", 1)[1])
        with Client(s.url, key, trust_on_first_use=True) as c:
            vkey = str(c.log_info("mon/app")["vkey"])
        url = f"{s.url}/logs/mon/app"
        args = ["--log", url, "--vkey", vkey, "--state", str(state), "--api-key", key]
        _append(s.url, key, [{"n": i} for i in range(300)])
        r = _monitor(*args[:-2], "--once")  # no key for a log that is not public
        assert r.returncode == 1 and "HTTP 401" in r.stderr, r.stderr
        assert "--api-key or IRONLOG_API_KEY" in r.stderr, r.stderr  # says what is missing
        r = _monitor(*args, "--entries", "--once")
        assert r.returncode == 0 and "size 300" in r.stdout, r.stderr
        _snapshot(db, snap)
        # A monitor running in the background, with a webhook.
        proc = subprocess.Popen(
            [str(BIN / "ironlog"), "monitor", *args, "--entries", "--interval", "0.2",
             "--webhook", hook.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _append(s.url, key, [{"n": i} for i in range(300, 600)])
            deadline = time.monotonic() + 30
            while "\n600\n" not in json.loads(state.read_text())["logs"][url]["checkpoint"]:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
            # A well-formed key of the same name that did not sign: a violation,
            # not a malformed-argument error.
            impostor = note.Signer.generate(vkey.split("+")[0]).vkey()
            wrong = _monitor(
                "--log", url, "--vkey", impostor,
                "--state", str(tmp_path / "other.json"), "--api-key", key, "--once",
            )  # fmt: skip
            assert wrong.returncode == 2 and "VIOLATION (bad_signature)" in wrong.stderr
        except BaseException:
            proc.kill()
            raise
    _restore(snap, db)  # the operator serves an older copy of the log
    with run_server(data, port=port) as s:
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 2, (out, err)
        assert "VIOLATION (rollback)" in err and "size 300" in err and "size 600" in err
        assert [a["kind"] for a in hook.alerts] == ["rollback"]
        alert = hook.alerts[0]
        assert alert["log"] == url and "\n600\n" in str(alert["trusted_checkpoint"])
        assert "\n300\n" in str(alert["seen_checkpoint"])
        # ... then a different history of the same size: a fork.
        _append(s.url, key, [{"evil": i} for i in range(300)])
        r = _monitor(*args, "--once", "--webhook", hook.url)
        assert r.returncode == 2 and "VIOLATION (fork)" in r.stderr, r.stderr
        # ... and grown past it: not consistent with what was seen.
        _append(s.url, key, [{"evil": i} for i in range(300, 400)])
        r = _monitor(*args, "--once")
        assert r.returncode == 2 and "VIOLATION (inconsistent)" in r.stderr, r.stderr
        assert [a["kind"] for a in hook.alerts] == ["rollback", "fork"]
    # The state still holds the last good checkpoint.
    assert "\n600\n" in json.loads(state.read_text())["logs"][url]["checkpoint"]


def test_monitor_entries_catch_tampered_bundles(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(data) as s:
        key = tenant_log(s, "mon")
        with Client(s.url, key, trust_on_first_use=True) as c:
            vkey = str(c.log_info("mon/app")["vkey"])
        _append(s.url, key, [{"n": i} for i in range(700)])
        con = sqlite3.connect(data / "logs" / "mon" / "app.db")
        con.execute("UPDATE entries SET data = CAST('{\"n\":9999}' AS BLOB) WHERE idx = 600")
        con.commit()
        con.close()
        url = f"{s.url}/logs/mon/app"
        base = ["--log", url, "--vkey", vkey, "--api-key", key, "--once"]
        # Checkpoints and tiles are intact: without --entries this passes ...
        r = _monitor(*base, "--state", str(tmp_path / "a.json"))
        assert r.returncode == 0, r.stderr
        # ... and with it, the served entries do not hash to the checkpoint.
        r = _monitor(*base, "--state", str(tmp_path / "b.json"), "--entries")
        assert r.returncode == 2 and "VIOLATION (entries_mismatch)" in r.stderr, r.stderr
        # Unreachable: a warning and status 1, no violation.
        r = _monitor(
            "--log", "http://127.0.0.1:9/logs/mon/app", "--vkey", vkey,
            "--state", str(tmp_path / "c.json"), "--once",
        )  # fmt: skip
        assert r.returncode == 1 and "warning" in r.stderr
        r = _monitor("--log", url, "--state", str(tmp_path / "d.json"), "--vkey", "nonsense")
        assert r.returncode == 1 and "Error:" in r.stderr and "Traceback" not in r.stderr
