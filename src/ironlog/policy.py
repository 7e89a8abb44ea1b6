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

from ironlog.errors import InvalidRequestError
from ironlog.note import ALG_COSIGNATURE_V1, Verifier

MAX_WITNESSES = 32


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
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidRequestError("a witness url is http(s)://...")
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
