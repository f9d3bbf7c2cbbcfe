"""``mcache``: caching in memory, with the engine and the hit path in Rust."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, overload

from . import _decorate, _options
from ._core import CachedFunction as _NativeCachedFunction
from ._freshness import FRESH_DEFAULTS, check_freshness
from ._freshness import spread_ttl as _spread_ttl
from ._signature import param_specs
from ._types import CachedFunction, P, R, Ttl
from .config import CacheConfig, settle

__all__ = ["mcache"]


@overload
def mcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def mcache(
    *,
    maxsize: int | None = 128,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    jitter: float | None = None,
    policy: str = "lru",
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    typed: bool = False,
    name: str | None = None,
    version: str | int | None = None,
    secure: bool = True,
    config: CacheConfig | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def mcache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache a function's results in memory.

    Works bare (``@mcache``) and called (``@mcache(maxsize=256, ttl=60)``), on functions,
    methods (one cache per instance, held weakly), classmethods and staticmethods, sync
    or ``async def`` (then the awaited result is cached; see ``acache``).

    - ``maxsize``: at most this many entries (``None``: unbounded; ``0``: cache nothing).
    - ``ttl``: seconds (or a ``timedelta``) an entry lives after it is stored.
    - ``jitter``: up to this many seconds more, at random per entry, so that entries
      stored together do not expire together (needs ``ttl``).
    - ``policy``: ``"lru"``, ``"lfu"``, ``"fifo"``, ``"rr"`` or ``"tinylfu"`` (W-TinyLFU,
      the best hit ratio on skewed workloads).
    - ``key``: a callable receiving the call's arguments (without ``self`` for a bound
      method) and returning the key; ``ignore``: parameter names left out of the key;
      ``typed``: ``f(1)`` and ``f(1.0)`` get separate entries.
    - ``name``: the registry name (default ``module.qualname``).
    - ``version`` and ``secure`` concern persistent engines; they are accepted here so
      that the decorators are interchangeable.
    - ``config``: a ``CacheConfig`` supplying options not given here.

    >>> calls = []
    >>> @mcache(maxsize=2)
    ... def square(x):
    ...     calls.append(x)
    ...     return x * x
    >>> square(3), square(x=3), square(3)
    (9, 9, 9)
    >>> calls
    [3]
    >>> square.cache_info()
    CacheInfo(hits=2, misses=1, maxsize=2, currsize=1)
    """
    return memory_decorator("mcache", func, settle("mcache", config, MEMORY_DEFAULTS, options))


# The options of the memory decorators and their defaults.
MEMORY_DEFAULTS: dict[str, Any] = {
    "maxsize": 128,
    "ttl": None,
    "jitter": None,
    "policy": "lru",
    **_options.KEY_DEFAULTS,
    **FRESH_DEFAULTS,
}


def memory_decorator(decorator: str, func: Any, options: dict[str, Any]) -> Any:
    """What ``mcache`` and ``acache`` share: every option checked now (decoration time),
    then ``func`` cached in a native memory engine (or the decorator returned)."""
    fresh, ttl = check_freshness(decorator, options)
    engine = _options.check_memory_options(decorator, {**options, "ttl": ttl})
    jitter = _options.check_jitter(decorator, options["jitter"], _spread_ttl(ttl, fresh))
    key = _options.check_key(decorator, options["key"])
    ignored = _options.check_ignore(decorator, options["ignore"])
    is_typed = _options.check_flag(decorator, "typed", options["typed"])
    _options.check_flag(decorator, "secure", options["secure"])
    _options.check_version(decorator, options["version"])
    name = _options.check_name(decorator, options["name"])

    def make(fn: Callable[..., Any]) -> Any:
        _decorate.refuse_generators(decorator, fn)
        return _NativeCachedFunction(
            fn,
            param_specs(fn, ignored, decorator),
            **engine,
            jitter=jitter,
            **fresh,
            typed=is_typed,
            key=key,
            disabled=_decorate.disabled_by_env(),
            is_async=_decorate.is_async(fn),
        )

    def decorate(fn: Any) -> Any:
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        # acache on a plain function caches it like mcache: the memory engine.
        engine = "async" if decorator == "acache" and _decorate.is_async(target) else "memory"
        return _decorate.apply(fn, make, name, engine)

    if func is None:
        return decorate
    return decorate(func)
