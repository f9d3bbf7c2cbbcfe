"""The registry of live caches: ``get_stats``, ``clear_cache``, ``list_caches``.

Caches are held weakly: a cached function that is garbage collected leaves the registry
on its own. The registry also runs the one TTL sweeper thread of the process, which
reclaims expired entries of caches that are no longer called (no thread per cache).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .exceptions import TwatCacheError

__all__ = ["clear_cache", "get_stats", "list_caches"]

_lock = threading.Lock()
_caches: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

# The sweeper: caches with a TTL, and the one thread that purges them.
_ttl_caches: weakref.WeakSet[Any] = weakref.WeakSet()
_sweeper: threading.Thread | None = None
_SWEEP_EVERY = 1.0  # seconds; expired memory waits at most this long after its TTL


def register(name: str, cache: Any) -> None:
    """Lists ``cache`` under ``name`` (a newer cache of the same name replaces it)."""
    with _lock:
        _caches[name] = cache
        params = cache.cache_parameters()
        # Memory caches only: persistent ones reclaim expired entries as they insert
        # (a sweep there would be a write transaction per cache every second).
        if params.get("ttl") is not None and params.get("engine") == "memory":
            _ttl_caches.add(cache)
            if _sweeper is None or not _sweeper.is_alive():
                _start_sweeper()


def after_fork_in_child() -> None:
    """In a child made by ``fork()``: a fresh lock (another thread may have held it at
    the fork) and the sweeper thread, which the child does not inherit."""
    global _lock, _sweeper
    _lock = threading.Lock()
    _sweeper = None
    if len(_ttl_caches):
        _start_sweeper()


def _start_sweeper() -> None:
    global _sweeper
    _sweeper = threading.Thread(target=_sweep_forever, name="twat_cache-ttl-sweeper", daemon=True)
    _sweeper.start()


def unregister(name: str, cache: Any) -> None:
    """Takes ``cache`` out of the registry (if ``name`` still lists it)."""
    with _lock:
        if _caches.get(name) is cache:
            del _caches[name]
        _ttl_caches.discard(cache)


def _sweep_forever() -> None:
    stop = threading.Event()
    while not stop.wait(_SWEEP_EVERY):
        with _lock:
            live = list(_ttl_caches)
        for cache in live:
            cache.purge_expired()
        del live


def _snapshot() -> dict[str, Any]:
    """A strong copy of the registry, taken under the lock (another thread may be
    registering a cache while we iterate)."""
    with _lock:
        return dict(_caches.items())


def _lookup(name: str) -> Any:
    caches = _snapshot()
    if name not in caches:
        known = ", ".join(sorted(caches)) or "none"
        raise KeyError(f"no cache named {name!r}; known caches: {known}")
    return caches[name]


def get_stats(name: str | None = None) -> dict[str, Any]:
    """The counters of one cache by name, or of every cache as ``{name: counters}``.

    >>> from twat_cache import mcache
    >>> @mcache(name="doc.double")
    ... def double(x):
    ...     return 2 * x
    >>> double(1), double(1)
    (2, 2)
    >>> get_stats("doc.double")["hits"]
    1
    """
    if name is not None:
        return dict(_lookup(name).cache_stats())
    return {n: c.cache_stats() for n, c in sorted(_snapshot().items())}


def clear_cache(name: str | None = None) -> None:
    """Empties one cache by name, or every cache. A cache that cannot be emptied (its
    Redis is unreachable) does not stop the others: the error, naming each such
    cache, is raised once the rest are empty."""
    if name is not None:
        _lookup(name).cache_clear()
        return
    failed = []
    for cache_name, cache in sorted(_snapshot().items()):
        try:
            cache.cache_clear()
        except TwatCacheError as e:
            failed.append(f"{cache_name}: {e}")
    if failed:
        raise TwatCacheError("some caches could not be emptied: " + "; ".join(failed))


def list_caches() -> list[str]:
    """The names of the live caches, sorted."""
    return sorted(_snapshot())
