"""Signing-key rotation over thousands of entries, and signing in a PKCS#11
token (SoftHSM2) that the service can use but never read from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from ironlog.core import note, tlogproof
from tests.conftest import BIN
from tests.server import run_server
from tests.test_client import tenant_log

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def _receipt_ok(r: dict[str, object], vkey: str) -> bool:
    proof = tlogproof.TlogProof(
        int(r["index"]),  # type: ignore[call-overload]
        tuple(note.b64decode(h) for h in r["inclusion_proof"]),  # type: ignore[attr-defined]
        str(r["checkpoint"]),
    )
    try:
        proof.verify(str(r["entry"]).encode(), note.Verifier.from_vkey(vkey))
    except Exception:
        return False
    return True


def _batch(c: httpx.Client, start: int, n: int) -> None:
    body = "".join(json.dumps({"n": i}) + "\n" for i in range(start, start + n))
    r = c.post("/v1/logs/rot/app/entries", content=body,
               headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    assert r.status_code == 201, r.text


def test_rotation_across_thousands_of_entries(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(data) as s:
        key = tenant_log(s, "rot")
        c = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        old_vkey = c.get("/v1/logs/rot/app").json()["vkey"]
        before = []
        for k in range(3):
            _batch(c, k * 1000, 1000)
            before.append(c.post("/v1/logs/rot/app/entries", json={"k": k}).json())
        assert all(_receipt_ok(r, old_vkey) for r in before)
        r = c.post("/v1/tenants/rot/signing-keys/rotate")
        assert r.status_code == 201, r.text
        new_fp = r.json()["fingerprint"]
        # Overlap: both keys sign (a running service picks the key up within a second).
        import time

        time.sleep(1.2)
        info = c.get("/v1/logs/rot/app").json()
        new_vkey = info["vkey"]
        assert new_vkey != old_vkey and [v["vkey"] for v in info["vkeys"]] == [old_vkey, new_vkey]
        _batch(c, 3003, 1000)
        during = c.post("/v1/logs/rot/app/entries", json={"phase": "overlap"}).json()
        assert _receipt_ok(during, old_vkey) and _receipt_ok(during, new_vkey)
        old_fp = info["vkeys"][0]["fingerprint"]
        # Retire the old key: only the new one signs; old receipts still verify.
        assert c.post(f"/v1/tenants/rot/signing-keys/{old_fp}/retire").status_code == 200
        r = c.post(f"/v1/tenants/rot/signing-keys/{new_fp}/retire")
        assert r.status_code == 400 and "only active" in r.text
        time.sleep(1.2)
        _batch(c, 4004, 1000)
        after = c.post("/v1/logs/rot/app/entries", json={"phase": "after"}).json()
        assert _receipt_ok(after, new_vkey) and not _receipt_ok(after, old_vkey)
        assert all(_receipt_ok(r, old_vkey) for r in before)
        keys = c.get("/v1/logs/rot/app").json()["vkeys"]
        assert keys[0]["retired_us"] and keys[1]["retired_us"] is None
        # An old receipt fetched again today still carries a verifiable proof to a
        # checkpoint signed by the key of its time.
        again = c.get(f"/v1/logs/rot/app/entries/{before[0]['index']}",
                      params={"size": before[0]["index"] + 1}).json()  # fmt: skip
        assert _receipt_ok(again, old_vkey)
        c.close()
    # The full audit and a restart accept the history signed by both keys.
    out = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "verify", "rot/app", "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0 and "ok rot/app: 5005 entries" in out.stdout, out.stdout + out.stderr
    listing = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "tenant", "keys", "rot"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert listing.count("local") == 2 and "active" in listing


@pytest.fixture
def softhsm(tmp_path: Path) -> dict[str, str]:
    assert Path(SOFTHSM).exists() and shutil.which("softhsm2-util"), (
        "make sysdeps installs softhsm2"
    )
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "IRONLOG_PKCS11_PIN": "4321"}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "ironlog", "--pin", "4321",
         "--so-pin", "8765"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return env


def test_pkcs11_signing_with_softhsm(tmp_path: Path, softhsm: dict[str, str]) -> None:
    data = tmp_path / "data"

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), *args],
            env=softhsm, capture_output=True, text=True, check=check,
        )  # fmt: skip

    cli("init")
    cli("log", "create", "hsm/app")
    out = cli("tenant", "rotate-key", "hsm", "--pkcs11-module", SOFTHSM,
              "--pkcs11-token", "ironlog", "--pkcs11-label", "hsm-2026")  # fmt: skip
    hsm_vkey = out.stdout.strip().splitlines()[-1].split("\t")[2]
    local_fp = cli("tenant", "keys", "hsm").stdout.splitlines()[0].split("\t")[0]
    cli("tenant", "retire-key", "hsm", local_fp)
    keys = cli("tenant", "keys", "hsm").stdout
    assert "pkcs11\t" in keys and keys.count("active") == 1
    # The service signs with the token (PIN from the environment, never stored).
    with run_server(data, env=softhsm) as s:
        assert s.operator
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {s.operator}"}) as op:
            key = op.post("/v1/tenants/hsm/keys", json={"scopes": "append,read"}).json()["key"]
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}) as c:
            r = c.post("/v1/logs/hsm/app/entries", json={"actor": "alice"}).json()
            assert c.get("/v1/logs/hsm/app").json()["vkey"] == hsm_vkey
    assert _receipt_ok(r, hsm_vkey)
    signed = note.parse_note(str(r["checkpoint"]))
    assert [sig.name for sig in signed.signatures] == [hsm_vkey.split("+")[0]]
    # The private key cannot be read out of the token.
    probe = subprocess.run(
        [str(BIN / "python"), "-c", """
import pkcs11, os
from pkcs11 import Attribute, KeyType, ObjectClass
tok = pkcs11.lib(os.environ["LIB"]).get_token(token_label="ironlog")
with tok.open(user_pin="4321") as s:
    k = s.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC_EDWARDS,
                  label="hsm-2026")
    print(k[Attribute.SENSITIVE], k[Attribute.EXTRACTABLE])
    try:
        k[Attribute.VALUE]
        print("readable")
    except pkcs11.AttributeSensitive:
        print("sensitive")
"""],
        env={**softhsm, "LIB": SOFTHSM}, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert probe == ["True", "False", "sensitive"]
    # Without the PIN the service cannot sign, and says why.
    no_pin = {k: v for k, v in softhsm.items() if k != "IRONLOG_PKCS11_PIN"}
    r2 = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "append", "hsm/app"],
        input='{"x": 1}\n', env=no_pin, capture_output=True, text=True,
    )  # fmt: skip
    assert r2.returncode != 0 and "IRONLOG_PKCS11_PIN" in r2.stderr
    assert "Traceback" not in r2.stderr
