"""Evidence bundles over HTTP: what ``ironlog evidence export`` writes, streamed.

    GET /v1/logs/{tenant}/{log}/evidence?index=N[&index=M...]  and/or  ?from=&to=

Read scope.  The selection is checked (and the checkpoint chosen) before the
first byte is sent, so a bad one is a 400 (404 while the entries are not yet
under a signed checkpoint); the entries are then read and proved as they are
sent.  An auditor checks the file offline: ``python -m ironlog.evidence verify``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter
from litestar.response import Stream

from ironlog.core.entry import now_us
from ironlog.core.timeparse import parse_time
from ironlog.engine.export import bundle_chunks, evidence_bundle
from ironlog.service.http.access import can_read
from ironlog.service.http.deps import state
from ironlog.service.routing import get


@get(
    "/v1/logs/{tenant:str}/{name:str}/evidence",
    sync_to_thread=True,
    media_type="application/json",
    guards=[can_read],
)
def evidence(
    request: Request[Any, Any, Any],
    tenant: str,
    name: str,
    index: list[int] | None = None,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
) -> Stream:
    """An evidence bundle (``ironlog-evidence/v1``) of the entries chosen by
    ``index`` (repeatable) and/or received in [``from``, ``to``)."""
    now = now_us()
    bundle = evidence_bundle(
        state(request).il,
        tenant,
        name,
        index or (),
        parse_time(from_, now) if from_ else None,
        parse_time(to, now) if to else None,
    )
    filename = f"{tenant}-{name}-evidence.json"
    return Stream(
        bundle_chunks(bundle),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


EVIDENCE_HANDLERS = [evidence]
