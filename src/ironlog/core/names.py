"""Log names: ``TENANT/LOG``, as the CLI, the SDK and the listeners write them."""

from __future__ import annotations

from typing import NamedTuple

from ironlog.errors import InvalidRequestError


class LogRef(NamedTuple):
    """A log named by its tenant and its name; ``str()`` gives ``TENANT/LOG``."""

    tenant: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.tenant}/{self.name}"

    def __str__(self) -> str:
        return self.path

    @classmethod
    def parse(cls, text: str) -> LogRef:
        """``TENANT/LOG``: two non-empty parts and one slash (the names themselves are
        checked where the log is looked up)."""
        tenant, sep, name = text.partition("/")
        if not sep or not tenant or not name or "/" in name:
            raise InvalidRequestError(f"{text!r} is not TENANT/LOG")
        return cls(tenant, name)
