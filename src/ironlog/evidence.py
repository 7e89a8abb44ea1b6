"""``python -m ironlog.evidence``: the auditor's offline verifier, under the name the
documentation gives it.  The checks live in :mod:`ironlog.core.evidence`; this module
only runs them, with the base install alone (``pip install ironlog``)."""

import sys

from ironlog.core.evidence import main

if __name__ == "__main__":
    sys.exit(main())
