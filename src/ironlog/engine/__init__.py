"""The library: an instance (``instance``, with ``datadir``, ``system_log``,
``witnesses``) holds tenants and their logs (``log`` on ``reader``, with its
group-commit ``writer``, ``idempotency`` keys and integrity ``checks``),
signing keys (``signing_keys``), the master key (``master_key``), API keys
(``api_keys``), audits (``audit``) and evidence export (``export``).  It uses
the core and a store; it never imports the service or the CLI.
"""
