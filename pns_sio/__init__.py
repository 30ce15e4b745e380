"""PNS: push notifications over Socket.IO, fanned out through Redis, stored in MongoDB or SQLite."""

__version__ = "0.1.0"

from .app import create_app
from .errors import PNSError
from .publisher import Publisher, SyncPublisher
from .settings import Settings

__all__ = ["PNSError", "Publisher", "Settings", "SyncPublisher", "__version__", "create_app"]
