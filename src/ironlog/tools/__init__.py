"""Standalone programs: the witness server (``witness_server``) and the monitor (``monitor``)."""
