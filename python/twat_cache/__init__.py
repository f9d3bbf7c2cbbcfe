"""twat_cache: one decorator family for caching function results, with engines in Rust.

>>> from twat_cache import mcache
>>> @mcache
... def add(a, b=1):
...     return a + b
>>> add(1), add(1, 1), add(a=1)
(2, 2, 2)
>>> add.cache_info().hits
2
"""

from __future__ import annotations

from ._core import __version__
from ._paths import get_cache_path
from ._registry import clear_cache, get_stats, list_caches
from ._types import CachedFunction, CacheInfo
from .async_memory import acache
from .disk import bcache
from .exceptions import ConfigurationError, EngineNotAvailableError, SerializationError, TwatCacheError
from .files import fcache
from .memory import mcache

__all__ = [
    "CacheInfo",
    "CachedFunction",
    "ConfigurationError",
    "EngineNotAvailableError",
    "SerializationError",
    "TwatCacheError",
    "__version__",
    "acache",
    "bcache",
    "clear_cache",
    "fcache",
    "get_cache_path",
    "get_stats",
    "list_caches",
    "mcache",
]
