"""A log with two witnesses and a 2-of-2 policy: witnessed receipts, cosigned
checkpoints on the tiles endpoint, and a forked log refused and reported."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import httpx

from ironlog.core import note, tlogproof
from tests.conftest import BIN
from tests.server import Server, run_server
from tests.test_client import _restore, _snapshot, tenant_log
from tests.test_witness import run_witness


def _wait(fn: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not fn():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def allow_witnesses(s: Server, tenant: str) -> None:
    """The operator lets ``tenant``'s logs have witnesses."""
    with s.client(s.operator) as op:
        r = op.post(f"/v1/tenants/{tenant}/witnessing", json={"enabled": True})
        assert r.status_code == 200, r.text


def test_two_witnesses_two_of_two(tmp_path: Path) -> None:
    data = tmp_path / "data"
    snap = tmp_path / "snap.db"
    db = data / "logs" / "wit" / "app.db"
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(run_server(data, "--witness-allow", "127.0.0.0/8"))
        port = int(s.url.rsplit(":", 1)[1])
        key = tenant_log(s, "wit")
        allow_witnesses(s, "wit")
        c = stack.enter_context(
            httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        )
        vkey = c.get("/v1/logs/wit/app").json()["vkey"]
        origin = vkey.split("+")[0]
        ws = []
        for n in (1, 2):
            (tmp_path / f"w{n}").mkdir()
            ws.append(
                stack.enter_context(
                    run_witness(tmp_path / f"w{n}", [f"{origin}={vkey}"], f"witness.test/w{n}")
                )
            )
        wvs = [note.Verifier.from_vkey(w.vkey) for w in ws]
        conf = {"witnesses": [{"url": w.url, "vkey": w.vkey} for w in ws]}
        c.post("/v1/logs/wit/app/entries", json={"before": "witnesses"})
        published: list[int] = []

        def tiles_size() -> int:
            text = c.get("/logs/wit/app/checkpoint").text
            published.append(note.parse_checkpoint(note.parse_note(text).text).size)
            return published[-1]

        assert tiles_size() == 1
        r = c.put("/v1/tenants/wit/logs/app/witnesses", json=conf)
        assert r.status_code == 200 and r.json()["policy"]["quorum"] == 2, r.text
        # Bad settings are 400s.
        bad = {"witnesses": conf["witnesses"], "policy": {"quorum": 3, "members": ["x"]}}
        assert c.put("/v1/tenants/wit/logs/app/witnesses", json=bad).status_code == 400
        assert (
            c.put(
                "/v1/tenants/wit/logs/app/witnesses", json={"witnesses": [{"url": "x"}]}
            ).status_code
            == 400
        )
        log_key = note.Verifier.from_vkey(vkey)
        for i in range(3):
            c.post("/v1/logs/wit/app/entries", json={"unwitnessed": i})
            tiles_size()  # never below what was published before the witnesses
            r = c.post("/v1/logs/wit/app/entries", params={"witnessed": "true"}, json={"n": i})
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["witnessed"] is True
            proof = tlogproof.TlogProof(
                body["index"],
                tuple(note.b64decode(h) for h in body["inclusion_proof"]),
                body["checkpoint"],
            )
            signed = proof.verify(body["entry"].encode(), log_key, wvs, quorum=2)
            assert signed.checkpoint.size > body["index"]
        r = c.post(
            "/v1/logs/wit/app/entries",
            params={"witnessed": "true"},
            json={"n": 3},
            headers={"Accept": "text/x.tlog-proof"},
        )
        text = r.text
        parsed = tlogproof.parse_tlog_proof(text)
        entry = c.get(f"/v1/logs/wit/app/entries/{parsed.index}").json()["entry"]
        parsed.verify(entry.encode(), log_key, wvs, quorum=2)
        # The tiles checkpoint carries both cosignatures; the log info the status.
        cp = note.parse_note(c.get("/logs/wit/app/checkpoint").text)
        assert note.cosigners(cp, wvs) == wvs
        tiles_size()
        assert published == sorted(published) and published[0] == 1, published
        info = c.get("/v1/logs/wit/app").json()
        assert set(info["witness_status"]) == {"witness.test/w1", "witness.test/w2"}
        assert all(st["last_error"] is None for st in info["witness_status"].values())
        # Evidence for an auditor: the cosigned checkpoint and both witness keys.
        ev = tmp_path / "ev.json"
        out = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "evidence", "export", "wit/app",
             "--output", str(ev), "--index", "0", "--index", "2"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "witnessed checkpoint" in out
        verify = [str(BIN / "ironlog"), "evidence", "verify", str(ev), "--vkey", vkey]
        wargs = [a for w in ws for a in ("--witness-vkey", w.vkey)]
        r2 = subprocess.run([*verify, *wargs, "--quorum", "2"], capture_output=True, text=True)
        assert r2.returncode == 0 and "cosigned by 2 of 2 witnesses" in r2.stdout, r2.stdout
        r2 = subprocess.run(
            [*verify, "--witness-vkey", ws[0].vkey, "--quorum", "2"], capture_output=True, text=True
        )
        assert r2.returncode == 1 and "FAIL  checkpoint: cosigned by 1 witnesses" in r2.stdout
        _snapshot(db, snap)
        c.post("/v1/logs/wit/app/entries", json={"n": 4})
        size = c.get("/v1/logs/wit/app").json()["size"]
        _wait(
            lambda: all(
                st["cosigned_size"] == size
                for st in c.get("/v1/logs/wit/app").json()["witness_status"].values()
            )
        )
        stack.pop_all().close()  # stop the server (and the witnesses), keep the data
    # The operator forks the log: an older copy, then other entries on top.
    _restore(snap, db)
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(run_server(data, "--witness-allow", "127.0.0.0/8", port=port))
        for n, w in enumerate(ws, 1):
            wport = int(w.url.rsplit(":", 1)[1])
            stack.enter_context(run_witness(tmp_path / f"w{n}", [f"{origin}={vkey}"], port=wport))
        c = stack.enter_context(
            httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        )
        r = c.post(
            "/v1/logs/wit/app/entries",
            params={"witnessed": "true", "witness_timeout": "3"},
            json={"evil": 1},
        )
        assert r.status_code == 201 and r.json()["witnessed"] is False
        c.post("/v1/logs/wit/app/entries", json={"evil": 2})
        _wait(
            lambda: all(
                st["last_error"]
                for st in c.get("/v1/logs/wit/app").json()["witness_status"].values()
            )
        )
        errors = [
            st["last_error"] for st in c.get("/v1/logs/wit/app").json()["witness_status"].values()
        ]
        assert all("422" in e or "409" in e or "rolled back" in e for e in errors), errors
        assert s.url
    assert "witness witness.test/w1 on log wit/app" in s.output
