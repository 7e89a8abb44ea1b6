"""The HTTP API (Litestar on uvicorn)."""

from ironlog.service.http.app import create_app

__all__ = ["create_app"]
