"""``--filter`` conditions of ``twat-cache ls``: ``FIELD OP VALUE``, all of them met.

Fields: ``size`` (bytes: ``size>1GB``), ``entries``, ``hits``, ``misses``, ``ratio``
(0 to 1), and the ages ``accessed``, ``newest`` and ``oldest`` (``accessed>30d``: not
read nor written for 30 days). Operators: ``>``, ``>=``, ``<``, ``<=``, ``=``, ``!=``.

>>> c = {"bytes": 2 * 2**30, "entries": 3, "accessed_us": 0, "stats": None}
>>> Filter([condition("size>1GB"), condition("accessed>30d")]).accepts(c, now_us=10**16)
True
>>> Filter([condition("entries<3")]).accepts(c, now_us=10**16)
False
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._units import parse_duration, parse_size

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|!=|==|>|<|=)\s*(\S.*?)\s*$")


def _stat(name: str) -> Callable[[dict[str, Any], int], float | None]:
    return lambda c, _now: (c.get("stats") or {}).get(name)


def _age(field: str) -> Callable[[dict[str, Any], int], float | None]:
    def age(c: dict[str, Any], now_us: int) -> float | None:
        us = c.get(field)
        return None if us is None else (now_us - us) / 1e6

    return age


# field -> (how to read it from a cache, how to read the value written after the operator)
FIELDS: dict[str, tuple[Callable[[dict[str, Any], int], float | None], Callable[[str], float]]] = {
    "size": (lambda c, _now: c["bytes"], parse_size),
    "entries": (lambda c, _now: c["entries"], int),
    "hits": (_stat("hits"), int),
    "misses": (_stat("misses"), int),
    "ratio": (_stat("hit_ratio"), float),
    "accessed": (_age("accessed_us"), parse_duration),
    "newest": (_age("newest_us"), parse_duration),
    "oldest": (_age("oldest_us"), parse_duration),
}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: float

    def holds(self, cache: dict[str, Any], now_us: int) -> bool:
        got = FIELDS[self.field][0](cache, now_us)
        # A cache with no such value (no entries to have an age, no counts yet) is not matched.
        return got is not None and _OPS[self.op](got, self.value)


def condition(text: str) -> Condition:
    """A condition from its text; ``ValueError`` with what is accepted otherwise."""
    m = _CONDITION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a filter: expected FIELD OP VALUE, like 'size>1GB' or 'accessed>30d'")
    field, op, value = m.groups()
    if field not in FIELDS:
        raise ValueError(f"unknown filter field {field!r}: expected one of {', '.join(FIELDS)}")
    try:
        parsed = FIELDS[field][1](value)
    except ValueError as e:
        raise ValueError(f"in filter {text!r}: {e}") from None
    return Condition(field, op, float(parsed))


class Filter:
    """All of the conditions."""

    def __init__(self, conditions: list[Condition]) -> None:
        self.conditions = conditions

    def accepts(self, cache: dict[str, Any], now_us: int) -> bool:
        return all(c.holds(cache, now_us) for c in self.conditions)
