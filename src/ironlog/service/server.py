"""Starting the HTTP service: first-start set-up and uvicorn (the settings are
``service/config.py``)."""

from __future__ import annotations

import os
import resource
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from ironlog.engine.api_keys import OPERATOR_SCOPE, KeyManager
from ironlog.engine.datadir import database_url, redact
from ironlog.engine.instance import Ironlog, init_data_dir
from ironlog.errors import ConfigurationError
from ironlog.service.config import ServeConfig


def raise_nofile_limit() -> str:
    """Raise the soft descriptor limit to the hard one (every log a worker
    holds open costs a few descriptors; systemd's default soft limit is
    1024) and say what it is: a line for the start-up banner."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as e:
            return f"file descriptors: limit {soft} (could not raise it to {hard}: {e})"
        return f"file descriptors: limit raised from {soft} to {hard}"
    return f"file descriptors: limit {soft}"


def first_start(data: Path, host: str, port: int, tls: bool = False) -> Iterator[str]:
    """Initialise ``data`` if needed; on the very first start create the
    operator key and a demo tenant with an append/read key, shown once."""
    init_data_dir(data)
    scheme = "https" if tls else "http"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"{scheme}://{shown_host}:{port}"
    with Ironlog(data) as il:
        keys = KeyManager(il.control, record=il.record)
        url = database_url()
        stored = f"{data.resolve()} with database {redact(url)}" if url else f"{data.resolve()}"
        yield f"ironlog serving {stored} on {base}"
        yield f"API docs: {base}/schema (OpenAPI: {base}/schema/openapi.json)"
        yield f"Console: {base}/ui (proofs checked in the browser: {base}/ui/verify)"
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


def bind_http(cfg: ServeConfig) -> socket.socket:
    """Bind the HTTP address before anything is created or printed, so a taken
    port fails cleanly; uvicorn (and its workers) serve on this socket.  With
    port 0, ``cfg.port`` becomes the port the system chose."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
    except OSError as e:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror} "
            "(another process? choose another with --port)"
        ) from e
    except (OverflowError, TypeError, UnicodeError) as e:  # e.g. a malformed --host
        sock.close()
        raise ConfigurationError(f"cannot listen on {cfg.host}:{cfg.port}: {e}") from e
    sock.set_inheritable(True)
    cfg.port = int(sock.getsockname()[1])
    return sock


def run(data: Path, cfg: ServeConfig, sock: socket.socket) -> None:
    """Serve on ``sock`` (from :func:`bind_http`) until stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # The workers are other processes: the checked configuration goes to them
    # in the environment, written once here and read once by each worker.
    os.environ.update(cfg.to_env(data))
    if cfg.workers > 1:  # one /metrics view over all workers
        metrics_dir = data / ".metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    config = uvicorn.Config(
        "ironlog.service.http.app:create_app_from_env",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        ssl_certfile=cfg.tls_cert,
        ssl_keyfile=cfg.tls_key,
        log_level="warning",
        access_log=False,
        server_header=False,
        http="ironlog.service.http.guard:GuardedHttpProtocol",
        loop="ironlog.service.http.guard:new_event_loop",
    )
    server = uvicorn.Server(config)
    try:
        if cfg.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if cfg.workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn has logged why
