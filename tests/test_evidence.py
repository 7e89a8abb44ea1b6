"""Evidence bundles and .tlog-proof files, exported by the CLI and checked
offline — also in a virtualenv that has only the pure core."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN


def _cli(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        capture_output=True,
        text=True,
        check=check,
    )


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    _cli(data, "init")
    out = _cli(data, "log", "create", "acme/pay").stdout
    vkey = out.split("vkey: ")[1].strip()
    events = "".join(json.dumps({"actor": f"u{i}", "n": i}) + "\n" for i in range(10))
    subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "append", "acme/pay"],
        input=events, text=True, check=True, capture_output=True,
    )  # fmt: skip
    return data, vkey


def test_export_and_verify(log: tuple[Path, str], tmp_path: Path, pure_python: str) -> None:
    data, vkey = log
    ev = tmp_path / "ev.json"
    out = _cli(data, "evidence", "export", "acme/pay", "--output", str(ev), "--index", "1",
               "--index", "3")  # fmt: skip
    assert "2 entries, log-signed checkpoint" in out.stdout
    # "-" is stdout (the same bundle), not a file named "-".
    out = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "evidence", "export", "acme/pay",
         "--output", "-", "--index", "1", "--index", "3"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    same = {**json.loads(out.stdout), "exported_at": None}
    assert same == {**json.loads(ev.read_text()), "exported_at": None}
    assert "2 entries" in out.stderr
    assert not (tmp_path / "-").exists()
    # More entries after the export's checkpoint: a second export shows consistency.
    subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "append", "acme/pay"],
        input='{"n": 10}\n', text=True, check=True, capture_output=True,
    )  # fmt: skip
    bundle = json.loads(ev.read_text())
    assert [e["index"] for e in bundle["entries"]] == [1, 3]
    assert json.loads(bundle["entries"][1]["entry"])["actor"] == "u3"
    r = _cli(data, "evidence", "verify", str(ev), "--vkey", vkey)
    assert r.returncode == 0 and "RESULT: everything holds" in r.stdout
    assert "2 entries: each is in the checkpoint's tree" in r.stdout
    assert "the log operator alone vouches" in r.stdout
    by_time = tmp_path / "t.json"
    _cli(data, "evidence", "export", "acme/pay", "--output", str(by_time), "--from", "1h")
    assert len(json.loads(by_time.read_text())["entries"]) == 11
    # Offline, with only the pure core installed.
    pure = subprocess.run(
        [pure_python, "-m", "ironlog.evidence", "verify", str(ev), "--vkey", vkey],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert pure.returncode == 0 and "RESULT: everything holds" in pure.stdout, pure.stderr
    # Tampering is caught, and named.
    for change, expect in (
        (lambda b: b["entries"][1].update(entry=b["entries"][1]["entry"].replace("u3", "u4")),
         "FAIL  entry 3: not in the checkpoint's tree"),
        (lambda b: b.update(checkpoint=b["checkpoint"].replace("\n10\n", "\n12\n")),
         "FAIL  checkpoint: log signature does not verify"),
        (lambda b: b["entries"][0]["inclusion_proof"].reverse(), "FAIL  entry 1"),
    ):  # fmt: skip
        bad = json.loads(ev.read_text())
        change(bad)
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(bad))
        r = subprocess.run(
            [pure_python, "-m", "ironlog.evidence", "verify", str(f), "--vkey", vkey],
            capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 1 and expect in r.stdout, r.stdout
        assert "evidence does NOT hold" in r.stdout
    other = _cli(tmp_path / "data", "log", "create", "acme/other").stdout.split("vkey: ")[1]
    r = _cli(data, "evidence", "verify", str(ev), "--vkey", other.strip(), check=False)
    assert r.returncode == 1 and "does not verify" in r.stdout
    r = _cli(data, "evidence", "export", "acme/pay", "--output", str(ev), "--index", "99",
             check=False)  # fmt: skip
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "junk.json").write_text("{nope")
    r = _cli(data, "evidence", "verify", str(tmp_path / "junk.json"), check=False)
    assert r.returncode == 2 and "not JSON" in r.stderr


def test_proof_verify(log: tuple[Path, str], tmp_path: Path) -> None:
    data, vkey = log
    proof = tmp_path / "e4.tlog-proof"
    proof.write_text(_cli(data, "proof", "acme/pay", "--index", "4").stdout)
    entry = tmp_path / "e4.json"
    q = _cli(data, "query", "acme/pay", "--format", "ndjson").stdout.splitlines()[4]
    row = json.loads(q)
    entry.write_text(json.dumps(row["entry"], separators=(",", ":"), sort_keys=True))
    r = _cli(data, "proof", "verify", str(proof), "--entry", str(entry), "--vkey", vkey)
    assert r.returncode == 0 and "the entry is leaf 4" in r.stdout
    entry.write_text(entry.read_text().replace("u4", "u5"))
    r = _cli(data, "proof", "verify", str(proof), "--entry", str(entry), "--vkey", vkey,
             check=False)  # fmt: skip
    assert r.returncode == 1 and "FAIL" in r.stdout and "inclusion proof" in r.stdout


def test_verify_without_pinned_key_is_not_success(
    log: tuple[Path, str], tmp_path: Path, pure_python: str
) -> None:
    """A bundle checked only against the key inside it proves nothing: a forger
    writes their own key into the file.  Without --vkey: exit 3, "NOT VERIFIED"."""
    data, vkey = log
    ev = tmp_path / "ev.json"
    _cli(data, "evidence", "export", "acme/pay", "--output", str(ev), "--index", "2")
    # A forged bundle: another log's key, checkpoint and proofs, relabelled.
    forger = tmp_path / "forger"
    _cli(forger, "init")
    _cli(forger, "log", "create", "acme/pay")
    subprocess.run(
        [str(BIN / "ironlog"), "--data", str(forger), "append", "acme/pay"],
        input='{"actor":"mallory"}\n' * 3, text=True, check=True, capture_output=True,
    )  # fmt: skip
    forged = tmp_path / "forged.json"
    _cli(forger, "evidence", "export", "acme/pay", "--output", str(forged), "--index", "2")
    cli = [str(BIN / "ironlog"), "evidence", "verify"]
    pure = [pure_python, "-m", "ironlog.evidence", "verify"]
    for cmd in (cli, pure):
        for f in (ev, forged):
            r = subprocess.run([*cmd, str(f)], capture_output=True, text=True)
            assert r.returncode == 3, (cmd, r.stdout, r.stderr)
            assert "RESULT: NOT VERIFIED" in r.stdout and "everything holds" not in r.stdout
            assert "--vkey" in r.stdout and "Traceback" not in r.stderr
            # Caveats are not marked as checks that passed.
            assert "NOTE  log key taken from the file itself" in r.stdout
            assert not [ln for ln in r.stdout.splitlines() if ln.startswith("OK") and "note" in ln]
        # Pinned: the genuine bundle holds, the forged one does not.
        assert subprocess.run([*cmd, str(ev), "--vkey", vkey], capture_output=True).returncode == 0
        r = subprocess.run([*cmd, str(forged), "--vkey", vkey], capture_output=True, text=True)
        assert r.returncode == 1 and "evidence does NOT hold" in r.stdout
        # Accepting the embedded key is an explicit, visible choice.
        r = subprocess.run([*cmd, str(ev), "--trust-embedded-key"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
        assert "RESULT: everything holds against the file's own keys" in r.stdout


def test_exact_entry_bytes_for_offline_verification(log: tuple[Path, str], tmp_path: Path) -> None:
    """The CLI (entry --output, proof --entry-output) and HTTP (Accept:
    application/octet-stream) hand over the exact stored bytes; a proof verify
    failing only on an added newline says so."""
    from tests.server import run_server

    data, vkey = log
    subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "append", "acme/pay"],
        input='{"amount": 1.50, "note": "caf\\u00e9 \\u2713", "big": 12345678901234567890}\n',
        text=True, check=True, capture_output=True,
    )  # fmt: skip
    e_file, p_file, e2_file = tmp_path / "e.bin", tmp_path / "p.tlog-proof", tmp_path / "e2.bin"
    r = _cli(data, "entry", "acme/pay", "10", "--output", str(e_file))
    assert "wrote entry 10" in r.stderr
    stored = e_file.read_bytes()
    assert not stored.endswith(b"\n") and "café ✓".encode() in stored
    assert b'"big":12345678901234567890' in stored
    raw = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), "entry", "acme/pay", "10"], capture_output=True
    )
    assert raw.returncode == 0 and raw.stdout == stored
    p_file.write_text(
        _cli(data, "proof", "acme/pay", "--index", "10", "--entry-output", str(e2_file)).stdout
    )
    assert e2_file.read_bytes() == stored
    verify = ["proof", "verify", str(p_file), "--vkey", vkey, "--entry"]
    r = _cli(data, *verify, str(e2_file))
    assert r.returncode == 0 and "RESULT: everything holds" in r.stdout
    # What `ironlog entry ... > file` in an editor, or `echo`, gives: one newline more.
    (tmp_path / "nl.bin").write_bytes(stored + b"\n")
    r = _cli(data, *verify, str(tmp_path / "nl.bin"), check=False)
    assert r.returncode == 1 and "ends with a newline the stored entry does not have" in r.stdout
    assert "ironlog entry T/L N --output FILE" in r.stdout
    (tmp_path / "other.bin").write_bytes(stored.replace(b'"amount":1.5', b'"amount":1.50'))
    r = _cli(data, *verify, str(tmp_path / "other.bin"), check=False)
    assert r.returncode == 1 and "must hold the entry's exact bytes" in r.stdout
    for args, msg in (
        (("entry", "acme/pay", "99"), "has no entry 99"),
        (("entry", "acme/pay", "1", "--output", str(tmp_path / "no" / "x")), "does not exist"),
        (("proof", "acme/pay", "--from", "1", "--entry-output", str(e2_file)), "with --index"),
    ):
        r = _cli(data, *args, check=False)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    # Over HTTP: the same bytes, nothing re-encoded.
    with run_server(data) as s:
        key = _cli(data, "key", "create", "acme", "--scopes", "read").stdout.strip()
        with s.client(key) as c:
            got = c.get(
                "/v1/logs/acme/pay/entries/10", headers={"Accept": "application/octet-stream"}
            )
            assert got.status_code == 200, got.text
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.content == stored
            assert c.get("/v1/logs/acme/pay/entries/10").json()["entry"].encode() == stored
            missing = c.get(
                "/v1/logs/acme/pay/entries/99", headers={"Accept": "application/octet-stream"}
            )
            assert missing.status_code == 404


def test_proof_verify_is_a_command_and_an_unreadable_file_is_exit_2(
    log: tuple[Path, str], tmp_path: Path
) -> None:
    """``proof verify`` is a subcommand of ``proof`` (``proof T/L`` is ``proof show
    T/L``); a file that cannot be read is one line and exit 2, as for ``evidence
    verify`` and ``python -m ironlog.evidence``, never a traceback."""
    data, vkey = log
    shown = _cli(data, "proof", "show", "acme/pay", "--index", "4").stdout
    assert shown == _cli(data, "proof", "acme/pay", "--index", "4").stdout
    assert shown == _cli(data, "proof", "--index", "4", "acme/pay").stdout
    proof = tmp_path / "e4.tlog-proof"
    proof.write_text(shown)
    entry = tmp_path / "e4.bin"
    entry.write_bytes(_cli(data, "entry", "acme/pay", "4").stdout.encode())
    for args in (
        ("proof", "verify", "/proc/self/mem", "--entry", str(entry), "--vkey", vkey),
        ("proof", "verify", str(proof), "--entry", "/proc/self/mem", "--vkey", vkey),
        ("evidence", "verify", "/proc/self/mem", "--vkey", vkey),
    ):
        r = _cli(data, *args, check=False)
        assert r.returncode == 2 and r.stderr.startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = _cli(data, "proof", "verify", str(proof), "--entry", str(entry), "--vkey", vkey)
    assert "RESULT: everything holds" in r.stdout
    r = _cli(data, "proof", "verify", str(proof), "--vkey", vkey, check=False)
    assert r.returncode == 2 and "Missing option '--entry'" in r.stderr
