"""JSON shapes of the HTTP API and body decoding."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Response

from ironlog.core.note import b64encode
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.errors import InvalidRequestError
from ironlog.store.base import ApiKeyRecord, SigningKeyRecord

MAX_BODY_BYTES = 16 << 20
MAX_BATCH_LINES = 10_000
TLOG_PROOF_TYPE = "text/x.tlog-proof"

T = TypeVar("T")


def json_response(obj: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(obj), status_code=status, media_type="application/json")


def parse_body(body: bytes, model: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as e:
        raise InvalidRequestError(f"invalid request body: {e}") from e
    except msgspec.DecodeError as e:
        raise InvalidRequestError("request body is not valid JSON") from e


def receipt_json(r: Receipt) -> dict[str, Any]:
    """``entry`` is the exact stored bytes (a JSON text, as a string).  The
    proof leads to the tree (``size``, ``root``); ``checkpoint`` is its signed
    note, or null until that tree is durable (non-sync durability modes)."""
    return {
        "index": r.index,
        "leaf_hash": b64encode(r.leaf_hash),
        "entry": r.entry.decode(),
        "size": r.size,
        "root": b64encode(r.root),
        "checkpoint": r.checkpoint or None,
        "inclusion_proof": [b64encode(h) for h in r.inclusion_proof],
    }


def batch_json(b: BatchReceipt) -> dict[str, Any]:
    return {
        "first_index": b.first_index,
        "count": b.count,
        "size": b.size,
        "root": b64encode(b.root),
        "checkpoint": b.checkpoint or None,
    }


def signing_key_json(k: SigningKeyRecord) -> dict[str, Any]:
    """A checkpoint-signing key: never its sealed seed or token reference."""
    return {
        "fingerprint": k.fingerprint,
        "kind": k.kind,
        "created_us": k.created_us,
        "retired_us": k.retired_us,
    }


def key_json(k: ApiKeyRecord) -> dict[str, Any]:
    """Never the secret nor its hash."""
    return {
        "id": k.key_id,
        "tenant": k.tenant,
        "scopes": list(k.scopes),
        "name": k.name,
        "created_us": k.created_us,
        "expires_us": k.expires_us,
        "revoked_us": k.revoked_us,
        "log": k.log,
    }
