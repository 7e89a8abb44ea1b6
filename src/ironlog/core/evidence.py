"""Evidence bundles for auditors: check one offline with only the pure core.

A bundle (JSON, ``ironlog-evidence/v1``) holds selected entries (their exact
bytes) with inclusion proofs against one checkpoint (cosigned by the log's
witnesses when it has any), the log's and witnesses' verifier keys, and a
consistency proof from that checkpoint to the newest one at export time.

    python -m ironlog.evidence verify FILE [--vkey VKEY] [--witness-vkey VKEY ... --quorum K]
    python -m ironlog.evidence proof FILE.tlog-proof --entry ENTRYFILE --vkey VKEY [...]

(``ironlog evidence verify`` and ``ironlog proof verify`` are the same checks.)
Keys given on the command line are the ones to trust.  Keys only found in the
file prove nothing (whoever wrote the file chose them): without ``--vkey`` the
result is "not verified" (exit 3) even when every proof holds, unless
``--trust-embedded-key`` accepts the file's keys explicitly.

Exit status: 0 everything holds against pinned keys, 1 something does not
hold, 2 the file cannot be read, 3 it holds only against keys from the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ironlog.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ironlog.core.note import (
    SignedCheckpoint,
    Verifier,
    b64decode,
    cosigners,
    open_checkpoint,
)
from ironlog.core.policy import parse_group
from ironlog.core.tlogproof import parse_tlog_proof
from ironlog.errors import FormatError, IronlogError

FORMAT = "ironlog-evidence/v1"
EXIT_UNPINNED = 3  # every proof holds, but only against keys from the file itself
_NOTE = "note: "  # a Report line that is a caveat, not a check


@dataclass
class Report:
    """What holds and what does not, line by line."""

    lines: list[tuple[bool, str]] = field(default_factory=list)
    # Keys the result rests on that came from the file, not from the user.
    unpinned: list[str] = field(default_factory=list)
    trust_embedded: bool = False

    def ok(self, text: str) -> None:
        self.lines.append((True, text))

    def fail(self, text: str) -> None:
        self.lines.append((False, text))

    def note(self, text: str) -> None:
        """A caveat, not a check: shown as NOTE, never as OK."""
        self.lines.append((True, _NOTE + text))

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.lines)

    @property
    def pinned(self) -> bool:
        """True unless the result rests on keys taken from the file unasked."""
        return not self.unpinned or self.trust_embedded

    @property
    def exit_code(self) -> int:
        return EXIT_UNPINNED if self.passed and not self.pinned else 0 if self.passed else 1

    def render(self) -> str:
        out = [
            f"NOTE  {text.removeprefix(_NOTE)}"
            if text.startswith(_NOTE)
            else ("OK    " if ok else "FAIL  ") + text
            for ok, text in self.lines
        ]
        if not self.passed:
            out.append("RESULT: evidence does NOT hold")
        elif not self.pinned:
            out.append(
                f"RESULT: NOT VERIFIED: the proofs agree with the {' and '.join(self.unpinned)} "
                "found in the file itself, which anyone could have written; pass the key you "
                "trust with --vkey (and --witness-vkey), or --trust-embedded-key to accept "
                "the file's keys"
            )
        elif self.unpinned:
            out.append(
                "RESULT: everything holds against the file's own keys (--trust-embedded-key)"
            )
        else:
            out.append("RESULT: everything holds")
        return "\n".join(out) + "\n"


def _str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise FormatError(f"evidence field {key!r} must be a string")
    return v


def _hashes(v: Any, what: str) -> list[bytes]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise FormatError(f"{what} must be a list of base64 hashes")
    return [b64decode(x, what) for x in v]


def _keys(
    given: Sequence[str] | None, in_file: Sequence[str], what: str, r: Report
) -> list[Verifier]:
    if given:
        return [Verifier.from_vkey(k) for k in given]
    if in_file:
        r.note(f"{what} taken from the file itself, not independently pinned")
        r.unpinned.append(what)
    return [Verifier.from_vkey(k) for k in in_file]


def _checkpoint(text: str, key: Verifier, label: str, r: Report) -> SignedCheckpoint | None:
    try:
        cp = open_checkpoint(text, key)
    except IronlogError as e:
        r.fail(f"{label}: log signature does not verify with {key.vkey()}: {e}")
        return None
    c = cp.checkpoint
    r.ok(f"{label}: signed by the log key {key.name} (size {c.size})")
    return cp


def verify_bundle(
    bundle: Any,
    vkey: str | None = None,
    witness_vkeys: Sequence[str] | None = None,
    quorum: int | None = None,
    trust_embedded_key: bool = False,
) -> Report:
    """Check ``bundle``; keys not given here are taken from it and make the
    result unpinned unless ``trust_embedded_key``."""
    r = Report(trust_embedded=trust_embedded_key)
    try:
        _verify(bundle, vkey, witness_vkeys, quorum, r)
    except IronlogError as e:
        r.fail(f"malformed evidence: {e}")
    return r


def _verify(
    b: Any, vkey: str | None, wkeys: Sequence[str] | None, quorum: int | None, r: Report
) -> None:
    if not isinstance(b, dict) or b.get("format") != FORMAT:
        raise FormatError(f"not an {FORMAT} file")
    log_key = _keys([vkey] if vkey else None, [_str(b, "log_vkey")], "log key", r)[0]
    file_witnesses = [_str(w, "vkey") for w in b.get("witnesses") or [] if isinstance(w, dict)]
    need = quorum if quorum is not None else int(b.get("quorum") or 0)
    if need or wkeys:
        witnesses = _keys(wkeys, file_witnesses, "witness keys", r)
    else:  # no cosignature is required: the file's witness keys back no claim
        witnesses = [Verifier.from_vkey(k) for k in file_witnesses]
    group = None
    if quorum is None and isinstance(b.get("policy"), dict) and witnesses:
        group = parse_group(b["policy"], {w.name for w in witnesses})
    cp = _checkpoint(_str(b, "checkpoint"), log_key, "checkpoint", r)
    if cp is None:
        return
    if need:
        try:
            got = cosigners(cp.note, witnesses)
        except IronlogError as e:
            r.fail(f"checkpoint: a witness cosignature is invalid: {e}")
            got = []
        names = ", ".join(w.name for w in got) or "none"
        held = group.satisfied({w.name for w in got}) if group else len(got) >= need
        if held:
            r.ok(
                f"checkpoint: cosigned by {len(got)} of {len(witnesses)} witnesses ({names}); "
                "the policy holds"
            )
        else:
            r.fail(f"checkpoint: cosigned by {len(got)} witnesses ({names}); policy not met")
    else:
        r.note("no witness quorum required: the log operator alone vouches for this checkpoint")
    size, root = cp.checkpoint.size, cp.checkpoint.root
    entries = b.get("entries")
    if not isinstance(entries, list):
        raise FormatError("entries must be a list")
    bad = 0
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            raise FormatError("each entry needs an integer index")
        index = int(item["index"])
        data = _str(item, "entry").encode()
        try:
            verify_inclusion(
                index,
                size,
                leaf_hash(data),
                _hashes(item.get("inclusion_proof"), "inclusion proof"),
                root,
            )
        except IronlogError as ex:
            bad += 1
            r.fail(f"entry {index}: not in the checkpoint's tree: {ex}")
    if entries and not bad:
        r.ok(f"{len(entries)} entries: each is in the checkpoint's tree (inclusion proofs)")
    latest_text = b.get("latest_checkpoint")
    if isinstance(latest_text, str):
        latest = _checkpoint(latest_text, log_key, "newest checkpoint", r)
        if latest is not None:
            n = latest.checkpoint.size
            try:
                if size == 0:
                    pass
                elif n < size:
                    raise IronlogError(
                        f"the newest checkpoint ({n}) is smaller than the checkpoint ({size})"
                    )
                else:
                    verify_consistency(
                        size,
                        n,
                        _hashes(b.get("consistency_proof"), "consistency proof"),
                        root,
                        latest.checkpoint.root,
                    )
                r.ok(
                    f"newest checkpoint (size {n}) is consistent with the checkpoint "
                    f"(size {size}): nothing in it was removed or changed"
                )
            except IronlogError as ex:
                r.fail(f"newest checkpoint is not consistent with the checkpoint: {ex}")
    else:
        r.note("no newest checkpoint in the file: consistency not shown")


def verify_proof_file(
    proof_text: bytes, entry: bytes, vkey: str, witness_vkeys: Sequence[str] = (), quorum: int = 0
) -> Report:
    """A c2sp.org/tlog-proof file against the entry's exact bytes."""
    r = Report()
    try:
        proof = parse_tlog_proof(proof_text)
        key = Verifier.from_vkey(vkey)
        signed = proof.verify(entry, key, [Verifier.from_vkey(w) for w in witness_vkeys], quorum)
        r.ok(f"checkpoint signed by {key.name} (size {signed.checkpoint.size})")
        if quorum:
            r.ok(f"at least {quorum} witness cosignatures verify")
        r.ok(f"the entry is leaf {proof.index} of that tree")
    except IronlogError as e:
        r.fail(str(e))
        hint = _entry_bytes_hint(proof_text, entry, vkey)
        if hint:
            r.fail(hint)
    return r


EXACT_BYTES = (
    "write the exact stored bytes with `ironlog entry T/L N --output FILE`, "
    "`ironlog proof T/L --index N --entry-output FILE`, or GET /v1/logs/T/L/entries/N "
    "with `Accept: application/octet-stream` (query output and jq re-encode entries)"
)


def _entry_bytes_hint(proof_text: bytes, entry: bytes, vkey: str) -> str | None:
    """Why a proof whose checkpoint is genuine may fail: the entry file is not
    the exact stored bytes (most often, a newline added at its end)."""
    try:
        proof = parse_tlog_proof(proof_text)
        cp = open_checkpoint(proof.checkpoint, Verifier.from_vkey(vkey)).checkpoint
    except IronlogError:
        return None  # the checkpoint itself is the problem, not the entry
    trimmed = entry.rstrip(b"\r\n")
    if trimmed != entry:
        try:
            verify_inclusion(proof.index, cp.size, leaf_hash(trimmed), list(proof.proof), cp.root)
        except IronlogError:
            pass
        else:
            return (
                "hint: the entry file ends with a newline the stored entry does not have; "
                "without it the proof holds: " + EXACT_BYTES
            )
    return "hint: the entry file must hold the entry's exact bytes: " + EXACT_BYTES


def read_bundle(path: str) -> Any:
    """The JSON in the file at ``path``, for :func:`verify_bundle`.  Raises OSError
    or FormatError if it cannot be read as JSON (exit 2)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except ValueError as e:
        raise FormatError(f"{path} is not JSON: {e}") from e


def check_proof_file(
    path: str, entry_path: str, vkey: str, witness_vkeys: Sequence[str] = (), quorum: int = 0
) -> Report:
    """:func:`verify_proof_file` on the files at ``path`` (a .tlog-proof) and
    ``entry_path`` (the entry's exact bytes): ``ironlog proof verify``.  Raises
    OSError if either cannot be read (exit 2)."""
    with open(path, "rb") as f:
        proof = f.read()
    with open(entry_path, "rb") as f:
        entry = f.read()
    return verify_proof_file(proof, entry, vkey, witness_vkeys, quorum)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ironlog.evidence", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check an evidence bundle")
    v.add_argument("file")
    v.add_argument(
        "--trust-embedded-key",
        action="store_true",
        help="accept the keys found in the file (else, without --vkey, exit 3: not verified)",
    )
    v.set_defaults(
        check=lambda a: verify_bundle(
            read_bundle(a.file), a.vkey, a.witness_vkey, a.quorum, a.trust_embedded_key
        )
    )
    p = sub.add_parser("proof", help="check a .tlog-proof file against an entry")
    p.set_defaults(
        check=lambda a: check_proof_file(
            a.file, a.entry, a.vkey, a.witness_vkey or (), a.quorum or 0
        )
    )
    p.add_argument("file")
    p.add_argument("--entry", required=True, help="file with the entry's exact bytes")
    for sp, required in ((v, False), (p, True)):
        sp.add_argument("--vkey", required=required, help="the log's verifier key to trust")
        sp.add_argument("--witness-vkey", action="append", default=None, help="repeatable")
        sp.add_argument("--quorum", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        report: Report = args.check(args)
    except (OSError, IronlogError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
