"""The listeners: syslog (RFC 5424/3164 over UDP, TCP, TLS) and NDJSON over TCP."""
