"""The library: an instance (``instance``) holds tenants and their logs
(``log``, with its group-commit writer), signing keys (``signing_keys``), the
master key (``master_key``), API keys (``api_keys``), audits (``audit``) and
evidence export (``export``).  It uses the core and a store; it never imports
the service or the CLI.
"""
