"""What ``ironlog serve`` runs: the server and its configuration (``server``),
the HTTP API (``http``), the syslog and NDJSON doors (``ingest``), the
background integrity check (``integrity``), witness cosigning (``cosigning``),
the outbound allow-list (``outbound``), per-request limits (``limits``) and
the route decorators of the API and the console (``routing``).
"""
