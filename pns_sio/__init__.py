"""PNS: push notifications over Socket.IO, fanned out through Redis, stored in MongoDB or SQLite."""

from .app import create_app
from .errors import PNSError
from .settings import Settings

__all__ = ["PNSError", "Settings", "create_app"]
