"""``ucache``: the decorator that picks an engine for you, by a documented rule."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, overload

from . import _decorate
from ._persistent import BCACHE_DEFAULTS, FCACHE_DEFAULTS, RCACHE_DEFAULTS
from ._types import CachedFunction, P, R, Ttl
from .async_memory import acache
from .config import CacheConfig, settle
from .disk import bcache
from .engines import check_engine, require_available
from .exceptions import ConfigurationError, EngineNotAvailableError, TwatCacheError
from .files import fcache
from .memory import MEMORY_DEFAULTS, mcache
from .redis import rcache

__all__ = ["choose_engines", "ucache"]

_log = logging.getLogger("twat_cache")

_UNSET: Any = object()
UCACHE_OPTIONS = (*dict.fromkeys([*MEMORY_DEFAULTS, *FCACHE_DEFAULTS, *RCACHE_DEFAULTS]), "preferred_engine")

# Each engine's decorator and the options it takes.
_DECORATORS: dict[str, tuple[Callable[..., Any], Iterable[str]]] = {
    "memory": (mcache, MEMORY_DEFAULTS),
    "async": (acache, MEMORY_DEFAULTS),
    "disk": (bcache, BCACHE_DEFAULTS),
    "file": (fcache, FCACHE_DEFAULTS),
    "redis": (rcache, RCACHE_DEFAULTS),
}


def choose_engines(func: Callable[..., Any], options: dict[str, Any]) -> list[str]:
    """The engines ``ucache`` tries for ``func``, in order: the first one that can be
    used is used.

    The rule: ``preferred_engine`` if given; else ``url`` selects Redis (for sync and
    async functions alike); else an ``async def`` function gets the async memory
    engine; else ``compress`` or ``mmap`` selects the file engine; else ``folder_name``
    selects the disk engine; else memory. Each choice falls back to the next one that
    still makes sense (file, then disk, then memory).

    >>> def f(x): ...
    >>> choose_engines(f, {}), choose_engines(f, {"folder_name": "reports"})
    (['memory'], ['disk', 'memory'])
    >>> choose_engines(f, {"compress": True, "folder_name": "arrays"})
    ['file', 'disk', 'memory']
    >>> async def g(x): ...
    >>> choose_engines(g, {"folder_name": "reports"}), choose_engines(g, {"preferred_engine": "diskcache"})
    (['async'], ['disk', 'async'])
    >>> choose_engines(f, {"url": "redis://cache.internal:6379/0", "folder_name": "reports"})
    ['redis', 'disk', 'memory']
    """
    last = "async" if _decorate.is_async(func) else "memory"
    if last == "async":
        by_rule = ["async"]
    elif options.get("compress") or options.get("mmap"):
        by_rule = ["file", "disk", "memory"]
    elif options.get("folder_name") is not None:
        by_rule = ["disk", "memory"]
    else:
        by_rule = ["memory"]
    if options.get("url") is not None:
        by_rule = ["redis", *by_rule]
    preferred = options.get("preferred_engine")
    chain = by_rule if preferred is None else [check_engine("ucache", "preferred_engine", preferred), *by_rule]
    if chain[-1] not in ("memory", "async"):
        chain.append(last)
    return list(dict.fromkeys(chain))


@overload
def ucache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def ucache(
    *,
    preferred_engine: str | None = None,
    folder_name: str | os.PathLike[str] | None = None,
    maxsize: int | None = ...,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    local: bool | int | None = None,
    jitter: float | None = None,
    policy: str = "lru",
    compress: bool | str = False,
    mmap: bool = False,
    secret: str | bytes | bool | None = None,
    serializer: Any = "pickle",
    durable: bool = False,
    url: str | None = None,
    namespace: str | None = None,
    timeout: float = 0.25,
    lock: bool = True,
    lock_wait: float = 10.0,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    typed: bool = False,
    name: str | None = None,
    version: str | int | None = None,
    secure: bool = True,
    config: CacheConfig | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def ucache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache a function in the engine that suits it (see ``choose_engines`` for the rule);
    ``fn.cache_engine`` names the engine in use.

    Takes every option of the other decorators plus ``preferred_engine`` (an engine
    name or alias: ``"memory"``, ``"disk"``, ``"file"``, ``"diskcache"``,
    ``"joblib"``...). Options the chosen engine does not have are ignored; ``maxsize``
    is in the chosen engine's unit (entries in memory, bytes on disk). If an engine
    cannot be used (a folder cannot be created, a Redis URL is malformed...), the next
    one is tried and a warning is logged on the ``twat_cache`` logger. Bad option
    values fail as they would in the engine's own decorator.

    >>> import tempfile
    >>> @ucache(ttl=60)
    ... def add(a, b):
    ...     return a + b
    >>> add(1, 2), add.cache_engine
    (3, 'memory')
    >>> @ucache(folder_name=tempfile.mkdtemp(), compress=True)
    ... def table(n):
    ...     return list(range(n))
    >>> len(table(1000)), table.cache_engine
    (1000, 'file')
    """
    given = settle("ucache", config, dict.fromkeys(UCACHE_OPTIONS, _UNSET), options)
    given = {k: v for k, v in given.items() if v is not _UNSET}
    if given.get("preferred_engine") is not None:
        check_engine("ucache", "preferred_engine", given["preferred_engine"])

    def decorate(fn: Any) -> Any:
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        engines = choose_engines(target, given)
        failures = []
        for engine in engines:
            try:
                cached = _build(engine, fn, given)
            except ConfigurationError:
                raise
            except (EngineNotAvailableError, TwatCacheError, OSError) as e:
                failures.append(f"{engine}: {e}")
                _log.warning("ucache: engine %r cannot be used for %s (%s); trying the next one", engine, fn, e)
                continue
            if failures:
                _log.warning("ucache: %s uses the %r engine", _decorate.default_name(target), engine)
            return cached
        raise EngineNotAvailableError("ucache: no engine could be used: " + "; ".join(failures))

    if func is None:
        return decorate
    return decorate(func)


def _build(engine: str, fn: Any, given: dict[str, Any]) -> Any:
    require_available("ucache", engine)
    decorator, accepted = _DECORATORS[engine]
    cached = decorator(**{k: v for k, v in given.items() if k in accepted})(fn)
    # bcache and fcache accept a folder they cannot use (calls go through uncached);
    # ucache picks the next engine instead.
    inner = getattr(cached, "__func__", cached)
    if engine in ("disk", "file") and inner.cache_stats()["store_errors"]:
        raise EngineNotAvailableError(f"its folder {inner.cache_parameters()['folder']} cannot be used")
    return cached
