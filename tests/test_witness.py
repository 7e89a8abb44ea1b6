"""``ironlog witness``: every status code of c2sp.org/tlog-witness, and races."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ironlog.core import merkle, note
from tests.conftest import BIN
from tests.server import _free_port

ORIGIN = "test.example/witnessed"
OTHER = "test.example/second"


class Tree:
    """A log kept in memory: leaves, roots, proofs, signed checkpoints."""

    def __init__(self, origin: str) -> None:
        self.signer = note.Signer.generate(origin)
        self.leaves: list[bytes] = []

    def grow(self, n: int) -> None:
        start = len(self.leaves)
        self.leaves += [merkle.leaf_hash(b"entry %d" % i) for i in range(start, start + n)]

    def node(self, height: int, index: int) -> bytes:
        return merkle.root_from_leaves(self.leaves[index << height : (index + 1) << height])

    def checkpoint(self, size: int, root: bytes | None = None) -> str:
        r = root if root is not None else merkle.tree_root(size, self.node)
        return note.Checkpoint(self.signer.name, size, r).sign(self.signer)

    def proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, self.node) if 0 < old < new else []


def body(old: int, proof: list[bytes], checkpoint: str) -> bytes:
    lines = [f"old {old}", *(note.b64encode(h) for h in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint).encode()


@dataclass
class WitnessProc:
    url: str
    vkey: str
    key_file: Path
    output: str = ""


@contextlib.contextmanager
def run_witness(
    tmp: Path, logs: list[str], name: str = "witness.test/w1", port: int | None = None
) -> Iterator[WitnessProc]:
    key_file = tmp / "witness.key"
    if not key_file.exists():
        out = subprocess.run(
            [str(BIN / "ironlog"), "witness", "keygen", name, "--output", str(key_file)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        vkey = out.stdout.strip()
    else:
        vkey = note.CosignatureSigner.from_private_key(key_file.read_text()).vkey()
    port = port or _free_port()
    args = [a for lg in logs for a in ("--log", lg)]
    proc = subprocess.Popen(
        [str(BIN / "ironlog"), "witness", "serve", "--data", str(tmp / "wdata"),
         "--key", str(key_file), "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    w = WitnessProc(url, vkey, key_file)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        yield w
    finally:
        proc.terminate()
        w.output = proc.communicate(timeout=30)[0]


@pytest.fixture
def trees() -> tuple[Tree, Tree]:
    return Tree(ORIGIN), Tree(OTHER)


def _vkeys(*trees: Tree) -> list[str]:
    return [f"{t.signer.name}={t.signer.vkey()}" for t in trees]


def test_keygen_writes_a_private_key_file(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "ironlog"), "witness", "keygen", "witness.test/k",
         "--output", str(tmp_path / "k")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    v = note.Verifier.from_vkey(out.stdout.strip())
    assert v.alg == note.ALG_COSIGNATURE_V1 and v.name == "witness.test/k"
    assert os.stat(tmp_path / "k").st_mode & 0o777 == 0o600
    again = subprocess.run(
        [str(BIN / "ironlog"), "witness", "keygen", "witness.test/k",
         "--output", str(tmp_path / "k")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_every_status_code(tmp_path: Path, trees: tuple[Tree, Tree]) -> None:
    log, other = trees
    log.grow(20)
    other.grow(4)
    with run_witness(tmp_path, _vkeys(log, other)) as w, httpx.Client(base_url=w.url) as c:
        wv = note.Verifier.from_vkey(w.vkey)

        def add(old: int, proof: list[bytes], cp: str) -> httpx.Response:
            return c.post("/add-checkpoint", content=body(old, proof, cp))

        stranger = Tree("test.example/unknown")
        stranger.grow(1)
        assert add(0, [], stranger.checkpoint(1)).status_code == 404
        forged = Tree(ORIGIN)  # same origin, another key
        forged.grow(5)
        assert add(0, [], forged.checkpoint(5)).status_code == 403
        assert add(7, [], log.checkpoint(5)).status_code == 400
        assert c.post("/add-checkpoint", content=b"nonsense").status_code == 400
        r = add(0, [], log.checkpoint(5))
        assert r.status_code == 200
        sig = note.parse_note(log.checkpoint(5) + r.text).signatures[-1]
        body5 = note.parse_note(log.checkpoint(5)).text
        ts = note.verify_cosignature(body5, sig, wv)
        assert abs(ts - time.time()) < 60
        r = add(0, [], log.checkpoint(8))
        assert r.status_code == 409 and r.text == "5\n"
        assert r.headers["content-type"].startswith("text/x.tlog.size")
        bad = log.proof(5, 8)
        bad[0] = bytes(32)
        assert add(5, bad, log.checkpoint(8)).status_code == 422
        assert add(5, [], log.checkpoint(5, root=bytes(32))).status_code == 422  # fork
        assert add(5, log.proof(5, 8), log.checkpoint(8)).status_code == 200
        assert add(8, [], log.checkpoint(8)).status_code == 200  # same checkpoint again
        assert add(0, [bytes(32)], other.checkpoint(4)).status_code == 422  # proof from 0
        empty = note.Checkpoint(OTHER, 0, bytes(32)).sign(other.signer)
        assert add(0, [], empty).status_code == 422  # size 0 needs the empty root
        r = c.get(f"/checkpoint/{ORIGIN}")
        assert r.status_code == 200
        opened = note.parse_note(r.text)
        assert note.parse_checkpoint(opened.text).size == 8
        assert note.cosigners(opened, [wv]) == [wv]
        assert c.get("/checkpoint/test.example/none").status_code == 404
    # The state survives a restart.
    with run_witness(tmp_path, _vkeys(log, other)) as w, httpx.Client(base_url=w.url) as c:
        r = c.post("/add-checkpoint", content=body(0, [], log.checkpoint(9)))
        assert r.status_code == 409 and r.text == "8\n"


def test_racing_requests_cannot_roll_it_back(tmp_path: Path, trees: tuple[Tree, Tree]) -> None:
    log, _ = trees
    log.grow(400)
    with run_witness(tmp_path, _vkeys(log)) as w, httpx.Client(base_url=w.url) as c:
        assert c.post("/add-checkpoint", content=body(0, [], log.checkpoint(10))).status_code == 200
        size = 10
        for round_ in range(15):
            small, big = size + 5, size + 10 + round_
            results: dict[int, int] = {}
            barrier = threading.Barrier(2)

            def send(
                new: int,
                old: int = size,
                barrier: threading.Barrier = barrier,
                results: dict[int, int] = results,
            ) -> None:
                with httpx.Client(base_url=w.url) as own:
                    req = body(old, log.proof(old, new), log.checkpoint(new))
                    barrier.wait()
                    results[new] = own.post("/add-checkpoint", content=req).status_code

            threads = [threading.Thread(target=send, args=(n,)) for n in (big, small)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results.values()) == [200, 409], results
            winner = next(n for n, s in results.items() if s == 200)
            latest = note.parse_note(c.get(f"/checkpoint/{ORIGIN}").text)
            assert note.parse_checkpoint(latest.text).size == winner
            size = winner


def test_witness_serve_on_a_taken_port_says_so_first(
    tmp_path: Path, trees: tuple[Tree, Tree]
) -> None:
    """Like `ironlog serve`: the address is bound before anything is printed or
    created; a taken port is one clear line and exit 1 (it printed "witness ...
    on http://..." and then uvicorn's "[Errno 98]" with exit 3)."""
    import socket

    key_file = tmp_path / "w.key"
    subprocess.run([str(BIN / "ironlog"), "witness", "keygen", "witness.test/p", "--output",
                    str(key_file)], capture_output=True, check=True)  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run(
            [str(BIN / "ironlog"), "witness", "serve", "--data", str(tmp_path / "wdata"),
             "--key", str(key_file), "--port", str(port), "--log", _vkeys(trees[0])[0]],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == "" and not (tmp_path / "wdata").exists()
