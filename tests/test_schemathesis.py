"""Schemathesis against the live OpenAPI schema: no input makes a 5xx."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.conftest import BIN
from tests.test_api import run_server

CONFIG = """
[parameters]
"path.tenant" = "demo"
"path.name" = "events"
"""


def test_no_server_errors_for_any_generated_request(tmp_path: Path) -> None:
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    with run_server(tmp_path / "data") as s:
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {s.demo}"}) as c:
            body = b"".join(b'{"n":%d}\n' % i for i in range(300))
            r = c.post(
                "/v1/logs/demo/events/entries",
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert r.status_code == 201
        for key in (s.demo, s.operator):
            p = subprocess.run(
                [
                    str(BIN / "st"),
                    "--config-file",
                    str(tmp_path / "schemathesis.toml"),
                    "run",
                    f"{s.url}/schema/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--header",
                    f"Authorization: Bearer {key}",
                    "--max-examples",
                    "25",
                    "--no-color",
                ],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                timeout=600,
            )
            assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
            assert " passed" in p.stdout and "failed" not in p.stdout.split("Test cases:")[-1]
