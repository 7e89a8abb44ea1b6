"""The ``ironlog`` console script: starts the CLI, or says what to install.

The base install (``pip install ironlog``) is the pure core, without click and
the server's dependencies; the command then explains itself instead of dying
with a traceback.
"""

from __future__ import annotations

import sys

INSTALL_HINT = (
    "the ironlog command needs the server extra: pip install 'ironlog[server]' "
    "(from a checkout: pip install -e '.[server]')"
)
# Offline checks work with the base install alone.
CORE_HINT = "(the base install verifies offline: python -m ironlog.evidence --help)"


def main() -> None:
    try:
        from ironlog.cli.main import main as cli_main
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "ironlog":
            raise
        print(f"{INSTALL_HINT}; missing module: {e.name}\n{CORE_HINT}", file=sys.stderr)
        raise SystemExit(2) from None
    cli_main()
