"""The SDK names a log by a ``LogRef`` or by its ``TENANT/LOG`` text, alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironlog.client import LogHandler, LogRef, StructlogProcessor
from ironlog.errors import InvalidRequestError


@pytest.mark.parametrize("front", [LogHandler, StructlogProcessor])
def test_the_shippers_take_a_log_ref(
    front: type[LogHandler] | type[StructlogProcessor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    by_ref = front("http://127.0.0.1:1", "ilk_x", LogRef("acme", "app"))
    by_text = front("http://127.0.0.1:1", "ilk_x", "acme/app")
    try:
        assert by_ref.shipper.log == by_text.shipper.log == "acme/app"
        assert by_ref.shipper.spool_path == by_text.shipper.spool_path
        assert by_ref.shipper.spool_path == tmp_path / "ironlog" / "acme__app.spool"
    finally:
        by_ref.close()
        by_text.close()
    with pytest.raises(InvalidRequestError, match="a log is named TENANT/LOG"):
        front("http://127.0.0.1:1", "ilk_x", "acme", spool_path=tmp_path / "s")
