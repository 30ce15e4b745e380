"""JSON for the wire: orjson where it gives the standard library's result, the
standard library everywhere else.

python-socketio encodes every packet and the Redis manager every message with
the ``json`` object it is given; orjson does it several times faster. What
orjson refuses (non-string keys, integers past 64 bits on the way out) or
reads differently (it turns integers past 64 bits into floats) goes to the
standard library, so what a client may send and what PNS answers do not change;
the one difference: a non-finite float is written ``null`` (as JavaScript's
JSON.stringify does) where the stdlib writes ``Infinity``, which browsers refuse.

Input nested deeper than ``MAX_DEPTH`` levels is refused on purpose
(``MalformedJSON``), on every path that reads JSON from outside (Socket.IO
packets, HTTP bodies, Redis messages, the forward-auth answer), rather than by
accident at whichever parser's recursion limit comes first.
"""

from __future__ import annotations

import json as _std
import math
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; kept optional for odd platforms
    orjson = None  # type: ignore[assignment]

# 19 digits in a row may be an integer orjson would read as a float; rare
# enough (and then only slower) to send the whole text to the stdlib.
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def dumps(obj: Any, **kwargs: Any) -> str:
    if orjson is not None and not kwargs.get("indent"):
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # orjson.JSONEncodeError: something only the stdlib encodes
            # Rare (integers past 64 bits, non-string keys): keep orjson's null for
            # non-finite floats here too, so the output never depends on the path.
            return _std.dumps(_finite(obj), **kwargs)
    return _std.dumps(obj, **kwargs)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


MAX_DEPTH = 64


class MalformedJSON(ValueError):
    """Text that is not JSON, or JSON nested deeper than ``MAX_DEPTH`` levels."""


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """Return ``value``; raise ``MalformedJSON`` when its containers nest past ``limit``."""
    if not isinstance(value, dict | list):
        return value
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise MalformedJSON(f"nested deeper than {limit} levels")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return value


# Nesting n containers deep takes n opening and n closing brackets: a shorter text
# (most packets: fetches, acknowledgements, counts, signals) cannot be too deep.
_SHORTEST_TOO_DEEP = 2 * (MAX_DEPTH + 1)


def _checked(value: Any, text: str | bytes) -> Any:
    if len(text) < _SHORTEST_TOO_DEEP:
        return value
    # Each level opens a bracket, so a text with no more opening brackets than the
    # bound cannot nest past it (brackets inside strings only add to the count). The
    # count runs in C; the walk is Python, and most long texts (every Redis message,
    # most HTTP bodies) have a handful of brackets.
    if isinstance(text, str):
        opening = text.count("[") + text.count("{")
    else:
        opening = text.count(b"[") + text.count(b"{")
    return value if opening <= MAX_DEPTH else check_depth(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str | bytes) -> Any:
    """Standard JSON only, as HTTP bodies must be: ``NaN`` and ``Infinity`` raise
    ``MalformedJSON`` (orjson refuses them too, and the stdlib then says why), and so
    does nesting past ``MAX_DEPTH``."""
    found = _fast_loads(text)
    if found is not _NOT_READ:
        return found
    return _std_loads(text, parse_constant=_refuse_constant)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """JSON as the wire sends it; ``MalformedJSON`` (a ``ValueError``) when it is not, or
    when it nests past ``MAX_DEPTH``."""
    if not kwargs:
        found = _fast_loads(text)
        if found is not _NOT_READ:
            return found
    return _std_loads(text, **kwargs)


_NOT_READ = object()


def _fast_loads(text: str | bytes) -> Any:
    """orjson's reading, depth-checked; ``_NOT_READ`` where the stdlib must decide
    (no orjson, long integers, or anything orjson refuses: the stdlib says why)."""
    if orjson is None:
        return _NOT_READ
    long_digits = _LONG_DIGITS_BYTES if isinstance(text, bytes) else _LONG_DIGITS
    if long_digits.search(text) is not None:  # type: ignore[arg-type]
        return _NOT_READ
    try:
        value = orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError; also past its own depth of 1024
        return _NOT_READ
    return _checked(value, text)


def _std_loads(text: str | bytes, **kwargs: Any) -> Any:
    try:
        return _checked(_std.loads(text, **kwargs), text)
    except RecursionError:
        raise MalformedJSON(f"nested deeper than {MAX_DEPTH} levels") from None
    except MalformedJSON:
        raise
    except ValueError as exc:  # also UnicodeDecodeError
        raise MalformedJSON(str(exc)) from None
