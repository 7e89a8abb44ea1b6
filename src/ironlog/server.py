"""Starting the HTTP service: first-start set-up and uvicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ironlog.auth import OPERATOR_SCOPE, KeyManager
from ironlog.instance import Ironlog, init_data_dir


def first_start(data: Path, host: str, port: int, tls: bool = False) -> Iterator[str]:
    """Initialise ``data`` if needed; on the very first start create the
    operator key and a demo tenant with an append/read key, shown once."""
    init_data_dir(data)
    scheme = "https" if tls else "http"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"{scheme}://{shown_host}:{port}"
    with Ironlog(data) as il:
        keys = KeyManager(il.control)
        yield f"ironlog serving {data.resolve()} on {base}"
        yield f"API docs: {base}/schema (OpenAPI: {base}/schema/openapi.json)"
        if keys.list(None):
            yield "operator key: already issued (shown only on first start)"
            return
        op, _ = keys.create(None, (OPERATOR_SCOPE,), "operator")
        if il.control.get_tenant("demo") is None:
            il.create_log("demo", "events", create_tenant=True)
        demo, _ = keys.create("demo", ("append", "read"), "demo")
        yield ""
        yield "First start: these keys are shown once. Store them now."
        yield f"  operator key (manages tenants): {op}"
        yield f"  demo tenant key (append, read): {demo}"
        yield ""
        yield "Append an event:"
        yield (
            f"  curl -s {base}/v1/logs/demo/events/entries -H 'Authorization: Bearer {demo}' "
            "-H 'Content-Type: application/json' "
            """-d '{"actor":"alice","action":"login","outcome":"success"}'"""
        )
        yield ""


def run(
    data: Path,
    host: str,
    port: int,
    workers: int = 1,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    import uvicorn

    os.environ["IRONLOG_DATA"] = str(data.resolve())
    uvicorn.run(
        "ironlog.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
