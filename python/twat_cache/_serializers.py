"""``serializer=`` of the persistent engines: ``"pickle"`` (the default), ``"json"``, or
an object with ``dumps(value) -> bytes`` and ``loads(bytes) -> value``.

JSON entries can never run code when read. A value JSON would carry only by changing
it (a tuple that comes back a list, an int key that comes back a str, a subclass) is
refused: the call returns it, and it is not stored (the usual warning says why).

>>> JSON.loads(JSON.dumps({"a": [1, 2.5, None, True]}))
{'a': [1, 2.5, None, True]}
>>> JSON.dumps((1, 2))
Traceback (most recent call last):
...
TypeError: json cannot carry a tuple unchanged (it would come back a list)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSON", "JsonSerializer", "native_serializer"]

_SCALARS = (str, int, float, bool, type(None))


def _check(value: Any, depth: int = 0) -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if depth > 200:
        raise TypeError("json: the value is nested too deeply")
    if kind is list:
        for item in value:
            _check(item, depth + 1)
        return
    if kind is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise TypeError(f"json cannot carry a dict key of type {type(k).__name__} unchanged")
            _check(item, depth + 1)
        return
    if kind is tuple:
        raise TypeError("json cannot carry a tuple unchanged (it would come back a list)")
    raise TypeError(f"json cannot carry a value of type {kind.__name__}")


class JsonSerializer:
    """Values of plain JSON types only (dict with str keys, list, str, int, float,
    bool, None), each exactly that type, so what comes back equals what went in."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        _check(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JsonSerializer()"


JSON = JsonSerializer()


def native_serializer(serializer: Any) -> tuple[str, Any, Any] | None:
    """What the native engine takes: ``None`` for pickle, else ``(name, dumps, loads)``."""
    if serializer is None:
        return None
    name = getattr(serializer, "name", None) or f"{type(serializer).__module__}.{type(serializer).__qualname__}"
    return (str(name), serializer.dumps, serializer.loads)
