"""Witness policy: which witnesses a log has and how many must cosign.  Pure.

In the spirit of c2sp.org/tlog-policy: a policy is a group, ``quorum`` of
whose ``members`` must be satisfied; a member is a witness (by its key name)
or a nested group.  The JSON form:

    {"witnesses": [{"vkey": "w1.example+…", "url": "https://w1.example"}, ...],
     "policy": {"quorum": 2, "members": ["w1.example", {"quorum": 1, "members": [...]}]}}

Without ``policy``, every witness must cosign.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ironlog.core.note import ALG_COSIGNATURE_V1, Verifier
from ironlog.errors import InvalidRequestError

MAX_WITNESSES = 16  # per log (a tenant has at most 32 over all its logs)


def split_witness_url(url: str) -> tuple[str, str, int, str]:
    """scheme, host, port and path of a witness base URL: http(s), a host, no
    user name or password, no query or fragment (InvalidRequestError if not)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise InvalidRequestError("a witness url is not a valid URL") from e
    if u.scheme not in ("http", "https") or not u.hostname:
        raise InvalidRequestError("a witness url is http(s)://HOST[:PORT][/PATH]")
    if u.username is not None or u.password is not None or "@" in u.netloc:
        raise InvalidRequestError("a witness url must not carry a user name or password")
    if u.query or u.fragment or "?" in url or "#" in url:
        raise InvalidRequestError("a witness url must not have a query or a fragment")
    if any(ord(c) < 33 or ord(c) == 127 for c in url) or len(url) > 2000:
        raise InvalidRequestError("a witness url has spaces or control characters, or is too long")
    default = 443 if u.scheme == "https" else 80
    return u.scheme, u.hostname, port or default, u.path.rstrip("/")


@dataclass(frozen=True)
class WitnessConf:
    url: str
    verifier: Verifier

    @property
    def name(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class Group:
    quorum: int
    members: tuple[str | Group, ...]

    def satisfied(self, names: set[str]) -> bool:
        got = sum(
            1 for m in self.members if (m in names if isinstance(m, str) else m.satisfied(names))
        )
        return got >= self.quorum

    def to_json(self) -> dict[str, Any]:
        return {
            "quorum": self.quorum,
            "members": [m if isinstance(m, str) else m.to_json() for m in self.members],
        }


@dataclass(frozen=True)
class WitnessPolicy:
    witnesses: tuple[WitnessConf, ...]
    group: Group

    def verifiers(self) -> list[Verifier]:
        return [w.verifier for w in self.witnesses]

    def satisfied(self, names: set[str]) -> bool:
        return self.group.satisfied(names)

    def to_json(self) -> dict[str, Any]:
        return {
            "witnesses": [{"url": w.url, "vkey": w.verifier.vkey()} for w in self.witnesses],
            "policy": self.group.to_json(),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def parse_group(obj: Any, names: set[str], depth: int = 0) -> Group:
    """A policy group whose string members must all be in ``names``."""
    if depth > 8 or not isinstance(obj, dict) or set(obj) - {"quorum", "members"}:
        raise InvalidRequestError("a policy group is {quorum, members} (at most 8 deep)")
    members_raw = obj.get("members")
    if not isinstance(members_raw, list) or not members_raw:
        raise InvalidRequestError("a policy group needs a non-empty list of members")
    members: list[str | Group] = []
    for m in members_raw:
        if isinstance(m, str):
            if m not in names:
                raise InvalidRequestError(f"policy names {m!r}, which is not a witness of the log")
            members.append(m)
        else:
            members.append(parse_group(m, names, depth + 1))
    quorum = obj.get("quorum")
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= len(members):
        raise InvalidRequestError(f"quorum must be between 1 and {len(members)}")
    return Group(quorum, tuple(members))


def parse_policy(obj: Any) -> WitnessPolicy:
    if not isinstance(obj, dict) or set(obj) - {"witnesses", "policy"}:
        raise InvalidRequestError('witness settings are {"witnesses": [...], "policy": {...}}')
    raw = obj.get("witnesses")
    if not isinstance(raw, list) or len(raw) > MAX_WITNESSES:
        raise InvalidRequestError(f"witnesses must be a list of at most {MAX_WITNESSES}")
    witnesses = []
    for w in raw:
        if not isinstance(w, dict) or set(w) != {"url", "vkey"}:
            raise InvalidRequestError("each witness is {url, vkey}")
        url, vkey = w["url"], w["vkey"]
        if not isinstance(url, str):
            raise InvalidRequestError("a witness url is http(s)://...")
        split_witness_url(url)
        v = Verifier.from_vkey(str(vkey))
        if v.alg != ALG_COSIGNATURE_V1:
            raise InvalidRequestError(f"witness key {v.name} is not a cosignature/v1 key")
        witnesses.append(WitnessConf(url.rstrip("/"), v))
    names = {w.name for w in witnesses}
    if len(names) != len(witnesses):
        raise InvalidRequestError("two witnesses share a key name")
    if not witnesses:
        return WitnessPolicy((), Group(0, ()))
    group = (
        parse_group(obj["policy"], names)
        if obj.get("policy") is not None
        else Group(len(witnesses), tuple(sorted(names)))
    )
    return WitnessPolicy(tuple(witnesses), group)
