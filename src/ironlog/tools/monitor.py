"""``ironlog monitor``: follow logs through their tlog-tiles endpoints.

For each log (its tiles base URL, e.g. ``https://host/logs/acme/payments``,
and its pinned verifier key) the monitor fetches the latest checkpoint and
checks, against the last checkpoint it accepted (kept in a state file):

- the signature, with the pinned key;
- the same size means the same root (else: a fork);
- a smaller size is a rollback;
- a larger size must be consistent: the consistency proof is computed from
  the log's own tiles and verified against both roots;
- with ``--entries``, every new entry bundle is downloaded and its leaves,
  appended to the tree edge kept in the state, must hash to the new root.

A violation is printed, POSTed as JSON to ``--webhook`` if given, and ends the
monitor with exit status 2; the state is not advanced past it.  Network
errors are reported and retried at the next poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ironlog.atomic import make_dirs, replace_atomically
from ironlog.client.trust import describe
from ironlog.core.merkle import (
    HASH_SIZE,
    TreeEdge,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)
from ironlog.core.note import SignedCheckpoint, Verifier, b64decode, b64encode, open_checkpoint
from ironlog.core.tiles import (
    TILE_WIDTH,
    NodeReader,
    TileRef,
    decode_bundle,
    tile_width_at,
)
from ironlog.errors import (
    ConsistencyError,
    FormatError,
    IronlogError,
    NotFoundError,
    UnreachableError,
    VerificationError,
)


@dataclass(frozen=True)
class Violation:
    log: str
    kind: str  # bad_signature | rollback | fork | inconsistent | entries_mismatch
    message: str
    trusted: str | None
    seen: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "kind": self.kind,
            "message": self.message,
            "trusted_checkpoint": self.trusted,
            "seen_checkpoint": self.seen,
        }


class ViolationError(IronlogError):
    code = "monitor_violation"

    def __init__(self, v: Violation) -> None:
        super().__init__(v.message)
        self.violation = v


class State:
    """Per log URL: last accepted checkpoint and (with --entries) the tree edge."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                self.logs = dict(json.loads(path.read_text())["logs"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise FormatError(f"monitor state {path} is unreadable: {e}") from e

    def save(self) -> None:
        make_dirs(self.path.parent)
        with replace_atomically(self.path) as f:
            json.dump({"logs": self.logs}, f, indent=1, sort_keys=True)


class LogFollower:
    def __init__(self, url: str, vkey: str, http: httpx.Client, state: State, entries: bool):
        self.url = url.rstrip("/")
        self.verifier = Verifier.from_vkey(vkey)
        self.http = http
        self.state = state
        self.entries = entries

    def _get(self, path: str) -> bytes:
        try:
            r = self.http.get(f"{self.url}/{path}")
        except httpx.HTTPError as e:
            raise UnreachableError(f"{self.url}/{path}: {type(e).__name__}: {e}") from e
        if r.status_code == 404:
            raise NotFoundError(f"{self.url}/{path}: 404")
        if r.status_code in (401, 403):
            raise UnreachableError(
                f"{self.url}/{path}: HTTP {r.status_code} (a log that is not public needs a "
                "key with the read scope: --api-key or IRONLOG_API_KEY)"
            )
        if r.status_code != 200:
            raise UnreachableError(f"{self.url}/{path}: HTTP {r.status_code}")
        return r.content

    def _violation(self, kind: str, msg: str, old: str | None, new: str | None) -> ViolationError:
        return ViolationError(Violation(self.url, kind, msg, old, new))

    def poll(self) -> tuple[SignedCheckpoint, bool]:
        """Check the latest checkpoint; True if it was new and accepted."""
        text = self._get("checkpoint").decode("utf-8", "replace")
        rec = self.state.logs.get(self.url, {})
        old_text: str | None = rec.get("checkpoint")
        try:
            cp = open_checkpoint(text, self.verifier)
        except (FormatError, VerificationError) as e:
            raise self._violation("bad_signature", f"{self.url}: {e}", old_text, text) from e
        old = open_checkpoint(old_text, self.verifier) if old_text else None
        n = cp.checkpoint.size
        m = old.checkpoint.size if old else 0
        if old is not None:
            if n < m:
                raise self._violation(
                    "rollback",
                    f"{self.url} rolled back: latest checkpoint {describe(cp)} is older than "
                    f"the one already seen, {describe(old)}",
                    old_text,
                    text,
                )
            if n == m:
                if cp.checkpoint.root != old.checkpoint.root:
                    raise self._violation(
                        "fork",
                        f"{self.url} forked: checkpoint {describe(cp)} and the one already "
                        f"seen, {describe(old)}, have the same size and different roots",
                        old_text,
                        text,
                    )
                return cp, False
        if old is not None and m > 0:
            self._check_consistency(old, cp, old_text, text)
        if self.entries:
            rec["edge"] = self._check_entries(rec, cp, old_text, text)
        rec["checkpoint"] = cp.text()
        rec["checked_us"] = time.time_ns() // 1000
        self.state.logs[self.url] = rec
        self.state.save()
        return cp, True

    def _node_reader(self, size: int) -> NodeReader:
        def tile(level: int, index: int) -> bytes | None:
            width = tile_width_at(level, index, size)
            if width <= 0:
                return None
            data = self._get(TileRef(level, index, width).path())
            if len(data) != width * HASH_SIZE:
                raise FormatError(f"tile {level}/{index} has {len(data)} bytes, not {width * 32}")
            return data

        return NodeReader(tile)

    def _check_consistency(
        self, old: SignedCheckpoint, cp: SignedCheckpoint, old_text: str | None, text: str
    ) -> None:
        m, n = old.checkpoint.size, cp.checkpoint.size
        try:
            proof = consistency_proof(m, n, self._node_reader(n).node)
            verify_consistency(m, n, proof, old.checkpoint.root, cp.checkpoint.root)
        except (ConsistencyError, VerificationError) as e:
            raise self._violation(
                "inconsistent",
                f"{self.url} forked: checkpoint {describe(cp)} is not consistent with the one "
                f"already seen, {describe(old)} ({e})",
                old_text,
                text,
            ) from e
        except NotFoundError as e:
            raise self._violation(
                "inconsistent",
                f"{self.url}: tiles for checkpoint {describe(cp)} are missing ({e})",
                old_text,
                text,
            ) from e

    def _bundles(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        k = start // TILE_WIDTH
        while k * TILE_WIDTH < end:
            width = min(TILE_WIDTH, end - k * TILE_WIDTH)
            entries = decode_bundle(self._get(TileRef(-1, k, width).path()))
            if len(entries) != width:
                raise FormatError(f"entry bundle {k} has {len(entries)} entries, not {width}")
            for i, e in enumerate(entries):
                if k * TILE_WIDTH + i >= start:
                    yield k * TILE_WIDTH + i, e
            k += 1

    def _check_entries(
        self, rec: dict[str, Any], cp: SignedCheckpoint, old_text: str | None, text: str
    ) -> list[list[Any]]:
        edge = TreeEdge.from_peaks([(int(h), b64decode(v)) for h, v in rec.get("edge", [])])
        for _, entry in self._bundles(edge.size, cp.checkpoint.size):
            edge.push(0, leaf_hash(entry))
        if edge.root() != cp.checkpoint.root:
            raise self._violation(
                "entries_mismatch",
                f"{self.url}: the entries served do not hash to checkpoint {describe(cp)}",
                old_text,
                text,
            )
        return [[h, b64encode(v)] for h, v in edge.peaks()]


def notify(webhook: str | None, v: Violation, http: httpx.Client) -> str | None:
    """POST the violation as JSON; returns an error text if that failed."""
    if not webhook:
        return None
    try:
        r = http.post(webhook, json=v.to_json())
        if r.status_code >= 300:
            return f"webhook answered HTTP {r.status_code}"
    except httpx.HTTPError as e:
        return f"webhook failed: {type(e).__name__}: {e}"
    return None


def run(
    targets: list[tuple[str, str]],
    state_path: Path,
    *,
    entries: bool = False,
    webhook: str | None = None,
    api_key: str | None = None,
    interval: float = 10.0,
    once: bool = False,
    say: Callable[[str], None] = print,
    timeout: float = 30.0,
) -> int:
    """Poll until a violation (exit status 2) or, with ``once``, after one round
    (status 0, or 1 if a log could not be reached)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    state = State(state_path)
    with httpx.Client(headers=headers, timeout=timeout) as http:
        followers = [LogFollower(u, k, http, state, entries) for u, k in targets]
        while True:
            unreachable = False
            for f in followers:
                try:
                    cp, new = f.poll()
                except ViolationError as e:
                    say(f"VIOLATION ({e.violation.kind}): {e}")
                    problem = notify(webhook, e.violation, http)
                    if problem:
                        say(problem)
                    return 2
                except IronlogError as e:
                    say(f"warning: {f.url}: {e}")
                    unreachable = True
                    continue
                if new:
                    what = " and entries" if entries else ""
                    say(f"ok: {f.url} {describe(cp)} (signature, consistency{what} verified)")
            if once:
                return 1 if unreachable else 0
            time.sleep(interval)
