"""Getting a log's checkpoints cosigned by its witnesses (the service side).

A log's witnesses and policy live in the control store (``Ironlog.set_witnesses``).
In each service process a :class:`Witnessing` thread looks after the logs that
have witnesses (of tenants the operator allowed to have them); a non-blocking
``flock`` per log makes exactly one process the submitter of each log.

Each log is one task on a bounded thread pool (``MAX_CONCURRENT`` tasks in
flight over all logs, ``PER_TENANT`` of them for one tenant's logs), so a
tenant whose witnesses never answer ties up at most its own share, never the
submissions of other tenants.  At most once a second per log a task sends the
newest checkpoint to each witness that has not cosigned it and is not backing
off (c2sp.org/tlog-witness ``add-checkpoint``), answers a 409 by resending
from the witness's size with a consistency proof, verifies each cosignature
and stores it.  A failing witness backs off on its own (1, 2, 4 … 30 s).

Every request goes to an address checked just before it against the
operator's allow-list (``ironlog.service.outbound``), redirects are not followed, and
what a witness answers is never shown to the tenant: ``witness_status`` (in
the log's info) keeps the HTTP status or a fixed phrase only.  One log's
failure is logged and does not stop the others.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import httpx

from ironlog.core.note import b64encode, parse_note, verify_cosignature
from ironlog.core.policy import WitnessConf, WitnessPolicy
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.errors import FormatError, IronlogError, UnreachableError, VerificationError
from ironlog.service.outbound import OutboundPolicy, Target

log = logging.getLogger("ironlog.witnessing")
MIN_INTERVAL = 1.0
MAX_BACKOFF = 30.0
RESCAN = 2.0  # seconds between re-reading which logs have witnesses (and their policies)
MAX_CONCURRENT = 16  # log submissions in flight in one process, over all tenants
PER_TENANT = 4  # of which the logs of one tenant may use at most this many
MAX_ANSWER = 64 * 1024  # bytes read from a witness's answer


def _status(w: WitnessConf, size: int | None, error: str | None) -> dict[str, Any]:
    return {"url": w.url, "cosigned_size": size, "last_error": error,
            "at_us": time.time_ns() // 1000}  # fmt: skip


class _LogState:
    def __init__(self) -> None:
        self.known: dict[str, int] = {}  # witness name -> size it last cosigned
        self.last_submit = 0.0
        self.failures: Counter[str] = Counter()  # witness name -> failures in a row
        self.retry_at: dict[str, float] = {}  # witness name -> when to try it again
        self.status: dict[str, dict[str, Any]] = {}


class Witnessing:
    def __init__(
        self,
        il: Ironlog,
        poll: float = 0.2,
        timeout: float = 5.0,
        outbound: OutboundPolicy | None = None,
        max_concurrent: int = MAX_CONCURRENT,
        per_tenant: int = PER_TENANT,
    ) -> None:
        self.il = il
        self.poll = poll
        self.timeout = timeout
        self.outbound = outbound or OutboundPolicy()
        self.per_tenant = per_tenant
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), follow_redirects=False
        )
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="ironlog-witness")
        self._stop = threading.Event()
        self._mu = threading.Lock()
        self._busy: set[str] = set()  # logs with a task in flight
        self._tenant_busy: Counter[str] = Counter()
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
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        for f in self._locks.values():
            f.close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.round()
            except Exception as e:  # keep going; say what happened
                log.warning("witnessing: %s: %s", type(e).__name__, e)

    def _rescan(self) -> None:
        """Which logs have witnesses now; a log that cannot be read is skipped (and logged)."""
        witnessed = []
        allowed: dict[str, bool] = {}
        for info in self.il.list_logs():
            if info.quarantined is not None:  # out of service: skipped by every loop
                continue
            try:
                if info.tenant not in allowed:
                    allowed[info.tenant] = self.il.witnessing_allowed(info.tenant)
                if not allowed[info.tenant]:
                    continue
                policy = self.il.witness_policy(info.tenant, info.name)
            except Exception as e:
                log.warning("witnessing: log %s: %s: %s", info.path, type(e).__name__, e)
                continue
            if policy is not None and policy.witnesses:
                witnessed.append((info.tenant, info.name, policy))
        self._witnessed = witnessed

    def round(self) -> None:
        """Start a task for each witnessed log this process submits and that
        has none in flight, within the global and per-tenant bounds."""
        now = time.monotonic()
        if now - self._listed_at >= RESCAN:  # which logs have witnesses, re-read now and then
            self._listed_at = now
            self._rescan()
        for tenant, name, policy in self._witnessed:
            path = f"{tenant}/{name}"
            with self._mu:
                if path in self._busy or self._tenant_busy[tenant] >= self.per_tenant:
                    continue
            try:
                if not self._own(path):
                    continue
            except OSError as e:
                log.warning("witnessing: log %s: %s", path, e)
                continue
            with self._mu:
                self._busy.add(path)
                self._tenant_busy[tenant] += 1
            try:
                self._pool.submit(self._task, tenant, name, policy)
            except RuntimeError:  # shutting down
                self._done(tenant, path)
                return

    def _done(self, tenant: str, path: str) -> None:
        with self._mu:
            self._busy.discard(path)
            self._tenant_busy[tenant] -= 1

    def _task(self, tenant: str, name: str, policy: WitnessPolicy) -> None:
        path = f"{tenant}/{name}"
        try:
            self.submit(self.il.log(tenant, name), policy)
        except Exception as e:  # one log's trouble is its own
            log.warning("witnessing: log %s: %s: %s", path, type(e).__name__, e)
        finally:
            self._done(tenant, path)

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
        if size == 0 or now - st.last_submit < MIN_INTERVAL:
            return
        if not st.known:
            stored = self.il.control.cosignatures(lg.info.tenant, lg.info.name)
            for s in sorted(stored):
                st.known.update(dict.fromkeys(stored[s], s))
        due = [
            w
            for w in policy.witnesses
            if st.known.get(w.name) != size and now >= st.retry_at.get(w.name, 0.0)
        ]
        if not due:
            return
        due.sort(key=lambda w: st.failures[w.name])  # the ones that answer first
        st.last_submit = now
        lines: dict[str, str] = {}
        for w in due:
            if self._stop.is_set():
                break
            try:
                lines[w.name] = self._one(lg, w, st, size, checkpoint)
                st.failures[w.name] = 0
                st.retry_at.pop(w.name, None)
            except IronlogError as e:
                st.failures[w.name] += 1
                backoff = min(MAX_BACKOFF, 2.0 ** (st.failures[w.name] - 1))
                st.retry_at[w.name] = time.monotonic() + backoff
                st.status[w.name] = _status(w, st.known.get(w.name), str(e))
                log.warning("witness %s on log %s: %s", w.name, path, e)
                self._save_status(path, st)  # shown at once, not after the other witnesses
        if lines:
            self.il.control.add_cosignatures(lg.info.tenant, lg.info.name, size, checkpoint, lines)
        self._save_status(path, st)

    def _save_status(self, path: str, st: _LogState) -> None:
        self.il.control.set_setting(f"witness_status:{path}", json.dumps(st.status))

    def _post(self, w: WitnessConf, body: bytes) -> tuple[int, str]:
        """POST to the witness at an address checked just now (the next one if
        it cannot be connected to); its status and (at most MAX_ANSWER bytes
        of) its answer."""
        target = self.outbound.resolve(f"{w.url}/add-checkpoint")
        for n, address in enumerate(target.addresses, 1):
            try:
                return self._post_to(target, target.connect_url(address), body)
            except httpx.ConnectError as e:
                if n == len(target.addresses):
                    raise UnreachableError("cannot reach the witness (ConnectError)") from e
        raise UnreachableError("the witness's name has no address")

    def _post_to(self, target: Target, url: str, body: bytes) -> tuple[int, str]:
        headers = {"Host": target.host_header, "Content-Type": "text/plain; charset=utf-8"}
        ext = {"sni_hostname": target.host} if target.scheme == "https" else {}
        deadline = time.monotonic() + 2 * self.timeout
        try:
            with self._http.stream("POST", url, content=body, headers=headers, extensions=ext) as r:
                answer = bytearray()
                for chunk in r.iter_bytes():
                    answer += chunk
                    if len(answer) > MAX_ANSWER:
                        raise UnreachableError("the witness's answer is too large")
                    if time.monotonic() > deadline:
                        raise UnreachableError("the witness did not finish its answer in time")
                return r.status_code, answer.decode("utf-8", "replace")
        except httpx.ConnectError:
            raise  # the caller tries the next address
        except httpx.TimeoutException as e:
            raise UnreachableError("the witness did not answer in time") from e
        except httpx.HTTPError as e:
            raise UnreachableError(f"cannot reach the witness ({type(e).__name__})") from e

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
            status, answer = self._post(w, body.encode())
            if status == 409:
                text = answer.strip()
                if not text.isdigit() or len(text) > 19:
                    raise UnreachableError("the witness answered HTTP 409 without a size")
                old = int(text)
                continue
            if status != 200:
                raise UnreachableError(f"the witness answered HTTP {status}")
            line = self._cosignature(answer, w, checkpoint)
            st.known[w.name] = size
            st.status[w.name] = _status(w, size, None)
            return line
        raise UnreachableError("the witness kept answering HTTP 409")

    @staticmethod
    def _cosignature(answer: str, w: WitnessConf, checkpoint: str) -> str:
        try:
            note = parse_note(checkpoint + answer)
            for sig in note.signatures:
                if (sig.name, sig.key_id) == (w.verifier.name, w.verifier.key_id):
                    verify_cosignature(note.text, sig, w.verifier)
                    return sig.line()
        except (FormatError, VerificationError) as e:
            raise UnreachableError(
                f"the witness's answer is not a valid cosignature by {w.name}"
            ) from e
        raise UnreachableError(f"the witness answered without a cosignature by {w.name}")
