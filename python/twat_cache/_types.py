"""Public types shared by every decorator: ``CacheInfo`` and the ``CachedFunction`` protocol."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# ``ttl=``: seconds, a ``timedelta``, ``None`` (no expiry), or a callable of the result
# giving its own (seconds, or ``None``).
Ttl = float | datetime.timedelta | Callable[[Any], float | None] | None

__all__ = ["CacheInfo", "CachedFunction", "P", "R"]


class CacheInfo(NamedTuple):
    """Counters of one cache, shaped like ``functools.lru_cache``'s ``cache_info()``.

    >>> CacheInfo(hits=3, misses=1, maxsize=128, currsize=1).hits
    3
    """

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class CachedFunction(Protocol, Generic[P, R_co]):
    """What every twat_cache decorator returns: the function, plus cache controls."""

    __wrapped__: Callable[..., Any]
    __name__: str
    __qualname__: str
    cache_engine: str  # "memory", "async", "disk" or "file"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> dict[str, Any]: ...
    def cache_stats(self) -> dict[str, Any]: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> object: ...
    def cache_delete(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def cache_set(self, value: Any, /, *args: P.args, **kwargs: P.kwargs) -> None: ...
    def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def cache_contains(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
