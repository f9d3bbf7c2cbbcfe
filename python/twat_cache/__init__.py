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

from . import _fork  # noqa: F401  (registers the fork handlers)
from ._core import __version__
from ._paths import get_cache_path
from ._registry import clear_cache, get_stats, list_caches
from ._types import CachedFunction, CacheInfo
from .async_memory import acache
from .config import CacheConfig, create_cache_config
from .context import Cache, CacheContext, engine_context
from .disk import bcache
from .exceptions import ConfigurationError, EngineNotAvailableError, SerializationError, TwatCacheError
from .files import fcache
from .memory import mcache
from .redis import rcache
from .universal import ucache

__all__ = [
    "Cache",
    "CacheConfig",
    "CacheContext",
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
    "create_cache_config",
    "engine_context",
    "fcache",
    "get_cache_path",
    "get_stats",
    "list_caches",
    "mcache",
    "rcache",
    "ucache",
]
