"""A real ``ironlog serve`` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import BIN


@dataclass
class Server:
    url: str
    operator: str
    demo: str
    data: Path
    output: str = ""  # everything the server printed after its banner, once stopped
    pid: int = 0  # the serving process (its one worker unless --workers N)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _limit_nofile(n: int | tuple[int, int]) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, n if isinstance(n, tuple) else (n, n))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_server(
    data: Path,
    *args: str,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    port: int | None = None,
    env: dict[str, str] | None = None,
    nofile: int | tuple[int, int] | None = None,
) -> Iterator[Server]:
    """Start ``ironlog serve`` as a user would, wait until it answers, stop it after.
    ``nofile``: its descriptor limit, soft and hard, or (soft, hard) (``ulimit -n``,
    systemd's LimitNOFILE).

    On a data directory that was served before, no keys are printed: the
    Server then has empty ``operator``/``demo``."""
    port = port or _free_port()
    env = {
        **(env or os.environ),
        "IRONLOG_VERIFY_INTERVAL": "0.2",
        "IRONLOG_FULL_VERIFY_INTERVAL": "1",
    }
    proc = subprocess.Popen(
        [str(BIN / "ironlog"), "--data", str(data), "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=None if nofile is None else lambda: _limit_nofile(nofile),
    )
    assert proc.stdout is not None
    servers: list[Server] = []
    try:
        for s in _serve(proc, port, scheme, verify, data):
            s.pid = proc.pid
            servers.append(s)
            yield s
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for s in servers:
            s.output = out or "(stopped)"


def _serve(
    proc: subprocess.Popen[str],
    port: int,
    scheme: str,
    verify: ssl.SSLContext | bool,
    data: Path,
) -> Iterator[Server]:
    assert proc.stdout is not None
    lines = []
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("Append an event:"):
            # The curl example (with the demo key) is part of the banner: read it
            # here, so that what the server prints later (``output``) never holds
            # it, whether or not it came in the same chunk as this line.
            lines.append(proc.stdout.readline())
            break
        if line.startswith("operator key: already issued") or not line:
            break
    up = False
    while time.monotonic() < deadline and not up:
        try:
            up = httpx.get(url + "/healthz", timeout=1, verify=verify).status_code == 200
        except httpx.HTTPError:
            time.sleep(0.05)
    text = "".join(lines)
    assert up, text
    op = demo = ""
    if "operator key (manages tenants): " in text:
        op = text.split("operator key (manages tenants): ")[1].split()[0]
        demo = text.split("demo tenant key (append, read): ")[1].split()[0]
    yield Server(url, op, demo, data)
