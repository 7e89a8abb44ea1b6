"""A witness (c2sp.org/tlog-witness): cosigns a log's checkpoint only if it is
consistent with the last one it cosigned for that log.

``POST /add-checkpoint`` takes ``old <size>\\n``, consistency-proof lines, an
empty line and the signed checkpoint; answers as FORMATS.md says (200 with a
cosignature/v1 line, 400, 403, 404, 409 ``text/x.tlog.size``, 422).
``GET /checkpoint/<origin>`` serves the latest checkpoint it cosigned for
that origin, with its cosignature.

The check of the old size and the write of the new state are one SQLite
``BEGIN IMMEDIATE`` transaction, committed (synchronously) before the answer,
so two racing requests cannot roll the witness back, even from two processes.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, Response, get, post

from ironlog.atomic import fsync_dir, make_dirs
from ironlog.core.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from ironlog.core.note import (
    CosignatureSigner,
    Verifier,
    b64decode,
    open_note,
    parse_checkpoint,
    parse_decimal,
    parse_note,
    text_of,
)
from ironlog.errors import ConfigurationError, FormatError, VerificationError

SIZE_TYPE = "text/x.tlog.size"
MAX_BODY = 64 << 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest(
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint TEXT NOT NULL,
    cosignature TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _plain(status: int, message: str) -> Answer:
    return Answer(status, (message + "\n").encode())


@dataclass(frozen=True)
class AddCheckpoint:
    old: int
    proof: tuple[bytes, ...]
    checkpoint: str


def parse_request(body: bytes) -> AddCheckpoint:
    text = text_of(body, "add-checkpoint request")
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError("no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise FormatError("the request must start with 'old <size>'")
    old = parse_decimal(lines[0][4:], "old size")
    if len(lines) - 1 > 63:
        raise FormatError("more than 63 proof lines")
    proof = []
    for line in lines[1:]:
        h = b64decode(line, "proof hash")
        if len(h) != HASH_SIZE:
            raise FormatError("a proof hash is 32 bytes")
        proof.append(h)
    return AddCheckpoint(old, tuple(proof), note)


class Witness:
    def __init__(self, db: Path, key: CosignatureSigner, logs: dict[str, Verifier]) -> None:
        self.key = key
        self.logs = logs
        self._local = threading.local()
        self._db = db
        con = self._con()
        con.executescript(_SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self._db, isolation_level=None, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            self._local.con = con
        return con

    def add_checkpoint(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY:
            return _plain(413, "request too large")
        try:
            req = parse_request(body)
            note = parse_note(req.checkpoint)
            cp = parse_checkpoint(note.text)
        except FormatError as e:
            return _plain(400, f"malformed request: {e}")
        log_key = self.logs.get(cp.origin)
        if log_key is None:
            return _plain(404, f"unknown log origin {cp.origin}")
        try:
            open_note(req.checkpoint, [log_key])
        except (VerificationError, FormatError) as e:
            return _plain(403, f"checkpoint is not signed by the log's key: {e}")
        if req.old > cp.size:
            return _plain(400, f"old size {req.old} is larger than the checkpoint's {cp.size}")
        if cp.size == 0 and cp.root != EMPTY_ROOT:
            return _plain(422, "a checkpoint of size 0 must have the empty root")
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute(
                "SELECT size, root FROM latest WHERE origin=?", (cp.origin,)
            ).fetchone()
            size, root = (row[0], bytes(row[1])) if row else (0, EMPTY_ROOT)
            if req.old != size:
                con.execute("ROLLBACK")
                return Answer(409, f"{size}\n".encode(), SIZE_TYPE)
            problem = self._check(req, size, root, cp.size, cp.root)
            if problem:
                con.execute("ROLLBACK")
                return _plain(422, problem)
            sig = self.key.cosign(note.text, int(time.time()))
            line = sig.line()
            con.execute(
                "INSERT OR REPLACE INTO latest VALUES (?,?,?,?,?)",
                (cp.origin, cp.size, cp.root, req.checkpoint, line),
            )
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return Answer(200, line.encode())

    @staticmethod
    def _check(req: AddCheckpoint, size: int, root: bytes, new_size: int, new_root: bytes) -> str:
        if req.old == 0:
            return "a consistency proof from size 0 must be empty" if req.proof else ""
        if req.old == new_size:
            if new_root != root:
                return f"two different roots for size {new_size}"
            return "equal sizes need an empty proof" if req.proof else ""
        try:
            verify_consistency(req.old, new_size, req.proof, root, new_root)
        except VerificationError as e:
            return f"bad consistency proof: {e}"
        return ""

    def latest(self, origin: str) -> str | None:
        """The latest cosigned checkpoint of ``origin`` with the cosignature."""
        row = (
            self._con()
            .execute("SELECT checkpoint, cosignature FROM latest WHERE origin=?", (origin,))
            .fetchone()
        )
        return None if row is None else str(row[0]) + str(row[1])


def create_app(witness: Witness) -> Litestar:
    """The witness's HTTP face."""

    @post("/add-checkpoint", status_code=200)
    async def add_checkpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        ans = await anyio.to_thread.run_sync(witness.add_checkpoint, body)
        return Response(ans.body, status_code=ans.status, media_type=ans.content_type)

    @get("/checkpoint/{origin:path}", sync_to_thread=True)
    def checkpoint(origin: str) -> Response[bytes]:
        text = witness.latest(origin.lstrip("/"))
        if text is None:
            return Response(b"unknown origin\n", status_code=404, media_type="text/plain")
        return Response(text.encode(), media_type="text/plain; charset=utf-8")

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "witness": witness.key.vkey()}

    return Litestar(
        route_handlers=[add_checkpoint, checkpoint, healthz],
        request_max_body_size=MAX_BODY,
        openapi_config=None,
    )


def load_key(path: Path) -> CosignatureSigner:
    try:
        return CosignatureSigner.from_private_key(path.read_text())
    except OSError as e:
        raise ConfigurationError(f"cannot read witness key {path}: {e.strerror}") from e


def parse_log(text: str) -> tuple[str, Verifier]:
    """``ORIGIN=VKEY`` (or just VKEY, whose name is the origin)."""
    origin, sep, vkey = text.rpartition("=")
    v = Verifier.from_vkey(vkey if sep else text)
    return (origin if sep else v.name), v


def keygen(name: str, path: Path) -> CosignatureSigner:
    """A new witness key, written to ``path`` (mode 0600, never overwritten)."""
    key = CosignatureSigner.generate(name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise ConfigurationError(f"{path} exists; not overwriting a key") from e
    with os.fdopen(fd, "w") as f:
        f.write(key.private_key() + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.resolve().parent)
    return key


def serve(
    data: Path,
    key: CosignatureSigner,
    logs: dict[str, Verifier],
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> None:
    """Serve until stopped; on ``sock`` if given (bound first by the caller, so
    that a taken port fails before anything is created or printed)."""
    import uvicorn

    make_dirs(data)
    app = create_app(Witness(data / "witness.db", key, logs))
    if sock is None:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
