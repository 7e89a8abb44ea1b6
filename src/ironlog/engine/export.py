"""Writing evidence bundles (``ironlog evidence export``); checked by
:mod:`ironlog.core.evidence`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ironlog.atomic import make_dirs, replace_atomically
from ironlog.core.entry import format_time, now_us
from ironlog.core.evidence import FORMAT
from ironlog.core.note import b64encode
from ironlog.engine.instance import Ironlog
from ironlog.errors import InvalidRequestError, NotFoundError
from ironlog.store.base import Query

MAX_ENTRIES = 100_000


def export_evidence(
    il: Ironlog,
    tenant: str,
    name: str,
    indexes: Sequence[int] = (),
    since_us: int | None = None,
    until_us: int | None = None,
) -> dict[str, Any]:
    """The bundle, with its entries read."""
    bundle = evidence_bundle(il, tenant, name, indexes, since_us, until_us)
    bundle["entries"] = list(bundle["entries"])
    return bundle


class _Entries(list[dict[str, Any]]):
    """The bundle's entries, each read (and proved) only when encoded: a list
    to ``json`` (whose encoder walks it with ``for``), of a known length."""

    def __init__(self, count: int, items: Callable[[], Iterator[dict[str, Any]]]) -> None:
        super().__init__()
        self._count = count
        self._items = items

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._items()

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0


def evidence_bundle(
    il: Ironlog,
    tenant: str,
    name: str,
    indexes: Sequence[int] = (),
    since_us: int | None = None,
    until_us: int | None = None,
) -> dict[str, Any]:
    """The bundle, everything checked and chosen; its ``entries`` are read
    while it is encoded (:func:`bundle_chunks`), so a large one is streamed."""
    lg = il.log(tenant, name)
    head = lg.head().size
    chosen = set(indexes)
    if since_us is not None or until_us is not None:
        q = Query(since_us=since_us, until_us=until_us, from_index=0, limit=MAX_ENTRIES + 1)
        chosen.update(i for i, _ in lg.query(q))
    if not chosen:
        raise InvalidRequestError(
            "no entries selected: give an index (--index N) or a time range (--from/--to)"
        )
    if len(chosen) > MAX_ENTRIES:
        raise InvalidRequestError(f"at most {MAX_ENTRIES} entries per bundle")
    bad = [i for i in chosen if not 0 <= i < head]
    if bad:
        raise InvalidRequestError(f"entry {min(bad)} does not exist (the log has {head})")
    policy = il.witness_policy(tenant, name)
    witnessed = il.witnessed_checkpoint(tenant, name, max(chosen) + 1)
    # Only signed checkpoints, which are of durable trees (non-sync modes sign
    # a little after the append).
    signed = lg.wait_signed(max(chosen) + 1, lg.sign_delay() + 2.0)
    if signed is None:
        raise NotFoundError(f"entry {max(chosen)} is not covered by a signed checkpoint yet")
    size, checkpoint = witnessed if witnessed is not None else signed
    latest = signed[0]
    order = sorted(chosen)

    def entries() -> Iterator[dict[str, Any]]:
        for i in order:
            yield {
                "index": i,
                "entry": lg.entry(i).decode(),
                "inclusion_proof": [b64encode(h) for h in lg.inclusion_proof(i, size)],
            }

    out: dict[str, Any] = {
        "format": FORMAT,
        "log": f"{tenant}/{name}",
        "origin": lg.info.origin,
        "log_vkey": lg.verifier.vkey(),
        "exported_at": format_time(now_us()),
        "checkpoint": checkpoint,
        "witnessed": witnessed is not None,
        "entries": _Entries(len(order), entries),
        "latest_checkpoint": lg.checkpoint(latest),
        "consistency_proof": [
            b64encode(h) for h in (lg.consistency_proof(size, latest) if 0 < size < latest else [])
        ],
    }
    if policy is not None and policy.witnesses:
        out["witnesses"] = [{"vkey": w.verifier.vkey(), "url": w.url} for w in policy.witnesses]
        out["policy"] = policy.group.to_json()
        out["quorum"] = policy.group.quorum
    return out


def bundle_chunks(bundle: dict[str, Any], chunk: int = 1 << 16) -> Iterator[bytes]:
    """The bundle as ``write_bundle`` writes it, byte for byte, in chunks of
    about ``chunk`` bytes (its entries read as they are encoded)."""
    buf: list[str] = []
    held = 0
    for part in json.JSONEncoder(indent=1).iterencode(bundle):
        buf.append(part)
        held += len(part)
        if held >= chunk:
            yield "".join(buf).encode()
            buf, held = [], 0
    buf.append("\n")
    yield "".join(buf).encode()


def write_bundle(bundle: dict[str, Any], path: Path) -> None:
    """Atomically: a temporary file in the same directory, fsync, rename."""
    make_dirs(path.parent)
    with replace_atomically(path) as f:
        json.dump(bundle, f, indent=1)
        f.write("\n")
