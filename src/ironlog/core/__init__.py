"""The pure core: no I/O, no SQL, no networking.

Merkle trees (``merkle``), tiles (``tiles``), signed notes and checkpoints
(``note``), tlog-proof files (``tlogproof``), witness policies (``policy``),
syslog parsing (``syslog``), entries (``entry``), evidence checks
(``evidence``), bounded number and time parsing (``numparse``, ``timeparse``).
It imports only itself and :mod:`ironlog.errors`; the base install
(``pip install ironlog``) carries everything it needs.
"""
