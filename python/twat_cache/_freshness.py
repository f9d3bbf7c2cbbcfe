"""Checks of the freshness options every decorator takes (``stale_ttl``,
``stale_if_error``, ``ttl=`` as a callable of the result, ``cache_if``), and the
keyword arguments they become for the native engines (``fresh.rs``)."""

from __future__ import annotations

import datetime
import math
from typing import Any

from ._options import _fail, _seconds, check_ttl

__all__ = ["FRESH_DEFAULTS", "check_freshness", "spread_ttl"]

# The options and their defaults: none of them is on.
FRESH_DEFAULTS: dict[str, Any] = {"stale_ttl": None, "stale_if_error": None, "cache_if": None}

_NEEDS_TTL = "None unless ttl= is given too (an entry goes stale when its ttl ends)"


def _window(where: str, param: str, value: object) -> float:
    seconds = _seconds(value)
    if not (math.isfinite(seconds) and seconds > 0):
        accepted = "a positive number of seconds or timedelta, or None"
        if param == "stale_if_error":
            accepted = "True (as long as the entry is kept), " + accepted + "/False"
        raise _fail(where, param, value, accepted)
    return seconds


def check_freshness(where: str, options: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """The native keyword arguments of the freshness options, and the numeric ``ttl``
    (``None`` when ``ttl`` is a callable: each result then gets its own).

    >>> fresh, ttl = check_freshness("mcache", {"ttl": 60, "stale_ttl": 30, "stale_if_error": True, "cache_if": None})
    >>> ttl, fresh["stale_ttl"], fresh["stale_if_error"]
    (60.0, 30.0, inf)
    >>> check_freshness("mcache", {"ttl": None, "stale_ttl": 5})
    Traceback (most recent call last):
    ...
    twat_cache.exceptions.ConfigurationError: mcache: invalid stale_ttl=5: expected None unless ttl= is given too ...
    """
    ttl = options.get("ttl")
    ttl_of = None
    if callable(ttl) and not isinstance(ttl, datetime.timedelta):
        ttl_of, ttl = ttl, None
    seconds = check_ttl(where, ttl)
    stale_ttl = options.get("stale_ttl")
    if stale_ttl is not None:
        stale_ttl = _window(where, "stale_ttl", stale_ttl)
    on_error = options.get("stale_if_error")
    if on_error is True:
        on_error = math.inf
    elif on_error is None or on_error is False:
        on_error = None
    else:
        on_error = _window(where, "stale_if_error", on_error)
    cache_if = options.get("cache_if")
    if cache_if is not None and not callable(cache_if):
        raise _fail(
            where, "cache_if", cache_if, "a callable taking the result and returning whether to store it, or None"
        )
    if seconds is None and ttl_of is None:
        for param in ("stale_ttl", "stale_if_error"):
            if options.get(param) not in (None, False):
                raise _fail(where, param, options[param], _NEEDS_TTL)
    fresh = {"stale_ttl": stale_ttl, "stale_if_error": on_error, "ttl_of": ttl_of, "cache_if": cache_if}
    return fresh, seconds


def spread_ttl(ttl: float | None, fresh: dict[str, Any]) -> float | None:
    """The ttl ``jitter=`` spreads: the numeric one, or any value for a callable one
    (each result's own ttl is spread)."""
    return ttl if fresh["ttl_of"] is None else math.inf
