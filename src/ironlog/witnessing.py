"""Getting a log's checkpoints cosigned by its witnesses (the service side).

A log's witnesses and policy live in the control store (``Ironlog.set_witnesses``).
In each service process a :class:`Witnessing` thread looks after the logs that
have witnesses; a non-blocking ``flock`` per log makes exactly one process
the submitter of each log.  At most once a second per log it sends the newest
checkpoint to every witness (c2sp.org/tlog-witness ``add-checkpoint``),
answers a 409 by resending from the witness's size with a consistency proof,
retries failures with back-off, verifies each cosignature and stores it.
What each witness last said is kept per log (``witness_status``) and shown
in the log's info; a refusal (a fork, for instance) is logged.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from typing import IO, Any

import httpx

from ironlog.engine import Log
from ironlog.errors import FormatError, IronlogError, VerificationError
from ironlog.instance import Ironlog
from ironlog.note import b64encode, parse_note, verify_cosignature
from ironlog.policy import WitnessConf, WitnessPolicy

log = logging.getLogger("ironlog.witnessing")
MIN_INTERVAL = 1.0
MAX_BACKOFF = 30.0
RESCAN = 2.0  # seconds between re-reading which logs have witnesses (and their policies)


def _status(w: WitnessConf, size: int | None, error: str | None) -> dict[str, Any]:
    return {"url": w.url, "cosigned_size": size, "last_error": error,
            "at_us": time.time_ns() // 1000}  # fmt: skip


class _LogState:
    def __init__(self) -> None:
        self.known: dict[str, int] = {}  # witness name -> size it last cosigned
        self.last_submit = 0.0
        self.submitted_size = -1
        self.failures = 0
        self.retry_at = 0.0
        self.status: dict[str, dict[str, Any]] = {}


class Witnessing:
    def __init__(self, il: Ironlog, poll: float = 0.2, timeout: float = 5.0) -> None:
        self.il = il
        self.poll = poll
        self._http = httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self._locks: dict[str, IO[bytes]] = {}
        self._states: dict[str, _LogState] = {}
        self._listed_at = -1e9
        self._witnessed: list[tuple[str, str, WitnessPolicy]] = []
        self._thread = threading.Thread(target=self._run, name="ironlog-witnessing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._http.close()
        for f in self._locks.values():
            f.close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.round()
            except Exception as e:  # keep going; say what happened
                log.warning("witnessing: %s: %s", type(e).__name__, e)

    def round(self) -> None:
        now = time.monotonic()
        if now - self._listed_at >= RESCAN:  # which logs have witnesses, re-read now and then
            self._listed_at = now
            self._witnessed = []
            for info in self.il.list_logs():
                policy = self.il.witness_policy(info.tenant, info.name)
                if policy is not None and policy.witnesses:
                    self._witnessed.append((info.tenant, info.name, policy))
        for tenant, name, policy in self._witnessed:
            if self._own(f"{tenant}/{name}"):
                self.submit(self.il.log(tenant, name), policy)

    def _own(self, path: str) -> bool:
        """True if this process is the submitter of ``path``."""
        if path in self._locks:
            return True
        lock = self.il.data_dir / "logs" / f"{path}.witness.lock"
        f = open(lock, "ab")  # noqa: SIM115 - held open while this process submits
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._locks[path] = f
        return True

    def submit(self, lg: Log, policy: WitnessPolicy) -> None:
        path = lg.info.path
        st = self._states.setdefault(path, _LogState())
        now = time.monotonic()
        # Only signed checkpoints, which are of durable trees, go to witnesses.
        signed = lg.latest_signed()
        size, checkpoint = signed if signed is not None else (0, "")
        if size == 0 or now < st.retry_at or now - st.last_submit < MIN_INTERVAL:
            return
        if size == st.submitted_size and not st.failures:
            return
        if not st.known:
            stored = self.il.control.cosignatures(lg.info.tenant, lg.info.name)
            for s in sorted(stored):
                st.known.update(dict.fromkeys(stored[s], s))
        st.last_submit = now
        lines: dict[str, str] = {}
        failed = False
        for w in policy.witnesses:
            try:
                lines[w.name] = self._one(lg, w, st, size, checkpoint)
            except IronlogError as e:
                failed = True
                st.status[w.name] = _status(w, st.known.get(w.name), str(e))
                log.warning("witness %s on log %s: %s", w.name, path, e)
        if lines:
            self.il.control.add_cosignatures(lg.info.tenant, lg.info.name, size, checkpoint, lines)
        st.submitted_size = size
        st.failures = st.failures + 1 if failed else 0
        st.retry_at = now + min(MAX_BACKOFF, 2.0**st.failures) if failed else 0.0
        self.il.control.set_setting(f"witness_status:{path}", json.dumps(st.status))

    def _one(self, lg: Log, w: WitnessConf, st: _LogState, size: int, checkpoint: str) -> str:
        old = st.known.get(w.name, 0)
        for _ in range(3):
            if old > size:
                raise VerificationError(
                    f"the witness has cosigned size {old}, larger than this log's {size}: "
                    "the log was rolled back"
                )
            proof = lg.consistency_proof(old, size) if 0 < old < size else []
            body = "".join(
                [f"old {old}\n", *(b64encode(h) + "\n" for h in proof), "\n", checkpoint]
            )
            try:
                r = self._http.post(f"{w.url}/add-checkpoint", content=body.encode())
            except httpx.HTTPError as e:
                raise IronlogError(f"cannot reach {w.url}: {type(e).__name__}") from e
            if r.status_code == 409:
                try:
                    old = int(r.text.strip())
                except ValueError as e:
                    raise FormatError(f"409 without a size from {w.url}") from e
                continue
            if r.status_code != 200:
                raise IronlogError(f"HTTP {r.status_code}: {r.text.strip()[:200]}")
            line = self._cosignature(r.text, w, checkpoint)
            st.known[w.name] = size
            st.status[w.name] = _status(w, size, None)
            return line
        raise IronlogError(f"{w.url} kept answering 409")

    @staticmethod
    def _cosignature(answer: str, w: WitnessConf, checkpoint: str) -> str:
        note = parse_note(checkpoint + answer)
        for sig in note.signatures:
            if (sig.name, sig.key_id) == (w.verifier.name, w.verifier.key_id):
                verify_cosignature(note.text, sig, w.verifier)
                return sig.line()
        raise VerificationError(f"{w.url} answered without a cosignature by {w.name}")
