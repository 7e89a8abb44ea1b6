"""The HTTP API (Litestar on uvicorn)."""

from ironlog.api.app import create_app

__all__ = ["create_app"]
