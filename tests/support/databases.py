"""A database of its own for each test, on a shared MongoDB."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit


def fresh_mongo_database(url: str, test_name: str) -> str:
    """``<session database>_<hash of the test>``: dropped with the session's database."""
    parts = urlsplit(url)
    suffix = hashlib.sha1(test_name.encode()).hexdigest()[:12]
    path = f"{parts.path}_{suffix}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
