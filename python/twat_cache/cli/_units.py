"""Sizes, durations and times as the command line reads and writes them.

>>> parse_size("1.5G"), parse_size("2GB"), parse_size("512KiB"), parse_size("100")
(1610612736, 2147483648, 524288, 100)
>>> human_size(1_950_000_000), human_size(512), human_size(0)
('1.8G', '512B', '0B')
>>> parse_duration("30d"), parse_duration("1.5h"), parse_duration("90")
(2592000.0, 5400.0, 90.0)
>>> ago(3 * 86400 + 5)
'3 days ago'
"""

from __future__ import annotations

import datetime as _dt
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w|y)?\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_POWERS = "kmgtp"


def parse_size(text: str) -> int:
    """Bytes from ``1.9G``, ``2GB``, ``512KiB``, ``100`` (binary multiples: a ``G`` is 2**30)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (expected a number with K, M, G, T or P, like 2G or 512MB)")
    number, power = float(m.group(1)), m.group(2).lower()
    return int(number * 1024 ** (_POWERS.index(power) + 1 if power else 0))


def parse_duration(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``15m``, ``90s``, ``2w``, ``1y`` or a bare number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (expected a number with s, m, h, d, w or y, like 30d)")
    return float(m.group(1)) * _SECONDS[(m.group(2) or "").lower()]


def human_size(n: int | None) -> str:
    """``1.8G``, ``512B``: one decimal above a kibibyte, as ``du -h`` writes it."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{int(size)}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``3 days``, ``5 minutes``, ``never``."""
    if seconds is None:
        return "never"
    s = abs(seconds)
    for unit, span in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= span:
            n = int(s // span)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(s)
    return f"{n} second{'s' if n != 1 else ''}"


def ago(seconds: float | None) -> str:
    """How long ago, for a table: ``3 days ago``, ``just now``, ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return "just now"
    return f"{human_duration(seconds)} ago"


def iso(us: int | None) -> str | None:
    """A time in microseconds since the epoch as ISO 8601 in UTC, for JSON."""
    if us is None:
        return None
    return _dt.datetime.fromtimestamp(us / 1e6, tz=_dt.timezone.utc).isoformat(timespec="seconds")
