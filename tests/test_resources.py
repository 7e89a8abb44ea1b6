"""Running out of resources (descriptors) is never an integrity failure: a
real server under a low ``ulimit -n`` answers 503 with Retry-After while its
descriptors are exhausted, marks no log unhealthy, and serves again once
descriptors are free (issue 16)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import BIN
from tests.server import Server, _free_port, _limit_nofile, run_server
from tests.test_client import tenant_log


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def _exhausted(s: Server, limit: int) -> Iterator[None]:
    """Idle connections to ``s`` until it holds ``limit`` descriptors (the
    server accepts each one: a descriptor); closed after."""
    socks: list[socket.socket] = []
    try:
        stalled = 0
        while _fds(s.pid) < limit and stalled < 50:
            before = _fds(s.pid)
            for _ in range(8):
                socks.append(socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1]))))
            time.sleep(0.02)
            stalled = stalled + 1 if _fds(s.pid) <= before else 0
        assert _fds(s.pid) >= limit - 2, _fds(s.pid)
        yield
    finally:
        for sock in socks:
            sock.close()


def test_out_of_descriptors_is_a_503_with_retry_after_never_an_integrity_failure(
    tmp_path: Path,
) -> None:
    limit = 160
    with run_server(tmp_path / "data", nofile=limit) as s:
        key = tenant_log(s, "fd", "warm")
        auth = {"Authorization": f"Bearer {key}"}
        # One connection, opened before the descriptors run out.
        with httpx.Client(
            base_url=s.url, headers=auth, timeout=30, limits=httpx.Limits(max_connections=1)
        ) as c:
            cold = [f"cold{i}" for i in range(6)]
            for name in cold:
                assert c.post("/v1/tenants/fd/logs", json={"name": name}).status_code == 201
            for i in range(3):
                assert c.post("/v1/logs/fd/warm/entries", json={"n": i}).status_code == 201
            answers: list[httpx.Response] = []
            with _exhausted(s, limit):
                for name in cold:  # a log never opened: its database cannot be
                    answers.append(c.post(f"/v1/logs/fd/{name}/entries", json={"n": 0}))
                for i in range(3):
                    answers.append(c.get(f"/v1/logs/fd/warm/entries/{i}"))
                answers.append(c.post("/v1/logs/fd/warm/entries", json={"n": 9}))
                time.sleep(1.5)  # the integrity checker (every 0.2 s here) meets it too
                for name in cold:
                    answers.append(c.post(f"/v1/logs/fd/{name}/entries", json={"n": 0}))
            statuses = [r.status_code for r in answers]
            assert all(code in (200, 201, 503) for code in statuses), statuses
            refused = [r for r in answers if r.status_code == 503]
            assert refused, statuses  # the descriptors did run out
            for r in refused:
                assert r.json()["error"]["code"] == "resource_exhausted", r.text
                assert int(r.headers["Retry-After"]) >= 1
                assert "retry" in r.json()["error"]["message"]
        time.sleep(1.5)  # the server accepts again, and closes the idle connections
        with httpx.Client(base_url=s.url, headers=auth, timeout=30) as c:
            for name in [*cold, "warm"]:  # appends resume: nothing was marked unhealthy
                r = c.post(f"/v1/logs/fd/{name}/entries", json={"n": 1})
                assert r.status_code == 201, r.text
                assert c.get(f"/v1/logs/fd/{name}").json()["healthy"] is True
            time.sleep(0.5)
            op = {"Authorization": f"Bearer {s.operator}"}
            report = c.get("/v1/integrity", headers=op).json()
            rows = report.get("logs", report) if isinstance(report, dict) else report
            mine = [x for x in rows if x["log"].startswith("fd/")]
            assert len(mine) == len(cold) + 2  # its logs and its system log
            for row in mine:
                assert row["failure"] is None, row
                assert row["writable"] is True, row


def _soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files")


def test_serve_raises_the_soft_descriptor_limit_to_the_hard_one_and_says_so(
    tmp_path: Path,
) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "ironlog"), "--data", str(tmp_path / "data"), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: _limit_nofile((300, 1500)),
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1] == "file descriptors: limit raised from 300 to 1500\n", lines
        assert _soft_nofile(proc.pid) == 1500  # the serving process (its one worker)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_many_logs_under_ulimit_1024_stay_within_descriptors_and_threads(tmp_path: Path) -> None:
    """1,200 logs (24 tenants x 50) with at most 100 open: creating them and
    appending to each in random order gives no 5xx, descriptors stay under the
    limit with headroom and threads under a fixed number, and every
    acknowledged append is there after its log was closed and reopened."""
    limit, cap, tenants, per_tenant = 1024, 100, 24, 50
    cfg = tmp_path / "ironlog.toml"
    cfg.write_text(f"max_open_logs = {cap}\nverify_interval = 2.0\nfull_verify_interval = 30.0\n")
    peak = {"fds": 0, "threads": 0}
    with run_server(tmp_path / "data", "--config", str(cfg), nofile=limit) as s:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    peak["fds"] = max(peak["fds"], _fds(s.pid))
                    peak["threads"] = max(peak["threads"], _threads(s.pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        statuses: collections.Counter[int] = collections.Counter()
        try:
            keys = {f"m{t:02d}": tenant_log(s, f"m{t:02d}", "l0") for t in range(tenants)}
            logs = [(t, f"l{i}") for t in keys for i in range(per_tenant)]

            def run(jobs: list[tuple[str, str, str, dict[str, int] | None]]) -> None:
                local = threading.local()
                clients: list[httpx.Client] = []

                def one(job: tuple[str, str, str, dict[str, int] | None]) -> None:
                    c = getattr(local, "c", None)
                    if c is None:
                        c = local.c = httpx.Client(base_url=s.url, timeout=60)
                        clients.append(c)
                    tenant, path, method, body = job
                    auth = {"Authorization": f"Bearer {keys[tenant]}"}
                    r = c.request(method, path, json=body, headers=auth)
                    statuses[r.status_code] += 1

                try:
                    with ThreadPoolExecutor(8) as ex:
                        list(ex.map(one, jobs))
                finally:
                    for c in clients:
                        c.close()

            run([(t, f"/v1/tenants/{t}/logs", "POST", {"name": n}) for t, n in logs if n != "l0"])
            order = logs[:]
            random.Random(16).shuffle(order)
            run([(t, f"/v1/logs/{t}/{n}/entries", "POST", {"n": 1}) for t, n in order])
            sample_logs = random.Random(17).sample(logs, 60)
            with httpx.Client(base_url=s.url, timeout=60) as c:
                for t, n in sample_logs:  # acknowledged appends survived closing
                    auth = {"Authorization": f"Bearer {keys[t]}"}
                    info = c.get(f"/v1/logs/{t}/{n}", headers=auth).json()
                    assert info["size"] == 1 and info["healthy"] is True, info
                    r = c.get(f"/v1/logs/{t}/{n}/entries/0", headers=auth)
                    assert r.status_code == 200, r.text
                    assert json.loads(r.json()["entry"])["n"] == 1
                op = {"Authorization": f"Bearer {s.operator}"}
                metrics = c.get("/metrics", headers=op).text
            open_logs = _metric(metrics, "ironlog_open_logs")
            assert open_logs <= cap + 20, open_logs
            assert _metric(metrics, "ironlog_log_evictions_total") > 0
        finally:
            stop.set()
            sampler.join()
    print(f"peak descriptors and threads: {peak}; open logs at the end: {open_logs}")
    assert set(statuses) == {201}, statuses
    assert statuses[201] == 2 * len(logs) - tenants
    assert peak["fds"] < limit - 100, peak  # headroom
    assert peak["threads"] < 2 * cap, peak


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_idle_logs_are_closed_and_reopen_with_their_appends(tmp_path: Path) -> None:
    cfg = tmp_path / "ironlog.toml"
    cfg.write_text("log_idle_seconds = 0.5\nverify_interval = 60.0\n")
    with run_server(tmp_path / "data", "--config", str(cfg)) as s:
        key = tenant_log(s, "idle", "a")
        auth = {"Authorization": f"Bearer {key}"}
        op = {"Authorization": f"Bearer {s.operator}"}
        with httpx.Client(base_url=s.url, headers=auth, timeout=30) as c:
            before = _fds(s.pid)
            for i in range(3):
                assert c.post("/v1/logs/idle/a/entries", json={"n": i}).status_code == 201
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                metrics = c.get("/metrics", headers=op).text
                if _metric(metrics, "ironlog_open_logs") == 0:
                    break
                time.sleep(0.2)
            assert _metric(metrics, "ironlog_open_logs") == 0, metrics
            assert _metric(metrics, 'ironlog_log_evictions_total{reason="idle"}') >= 1
            assert _fds(s.pid) <= before  # its files are closed
            r = c.post("/v1/logs/idle/a/entries", json={"n": 3})  # reopened on demand
            assert r.status_code == 201 and r.json()["index"] == 3, r.text
            assert c.get("/v1/logs/idle/a").json()["size"] == 4
            metrics = c.get("/metrics", headers=op).text
            assert _metric(metrics, "ironlog_log_reopen_seconds_count") >= 1
