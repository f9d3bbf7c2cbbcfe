"""``rcache``: caching in Redis or Valkey, shared by every process and machine that
reaches the server."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, overload

from . import _decorate, _options
from ._core import PersistentFunction
from ._fingerprint import code_version
from ._serializers import native_serializer
from ._signature import param_specs
from ._types import CachedFunction, P, R
from .config import CacheConfig, settle

__all__ = ["RCACHE_DEFAULTS", "rcache"]

# The options of rcache and their defaults.
RCACHE_DEFAULTS: dict[str, Any] = {
    "url": None,
    "namespace": None,
    "timeout": 0.25,
    "ttl": None,
    "jitter": None,
    "compress": False,
    "secret": None,
    "serializer": "pickle",
    "lock": True,
    "lock_wait": 10.0,
    "key": None,
    "ignore": (),
    "typed": False,
    "name": None,
    "version": None,
    "secure": True,
}

_UNSIGNED_WARNED = threading.Event()


def warn_unsigned(where: str, shown_url: str) -> None:
    """Once per process: entries in a shared Redis without a secret are unsigned pickle,
    which lets anyone who can write to that Redis run code in every client."""
    if _UNSIGNED_WARNED.is_set():
        return
    _UNSIGNED_WARNED.set()
    logging.getLogger("twat_cache").warning(
        "twat_cache: %s on %s without a secret: its entries are unsigned pickle, so anyone "
        "who can write to that server can run code in this process. Set secret= (or "
        "$TWAT_CACHE_SECRET) to sign them, or secret=False to state that the server is trusted.",
        where,
        shown_url,
    )


@overload
def rcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def rcache(
    *,
    url: str | None = None,
    namespace: str | None = None,
    timeout: float | datetime.timedelta = 0.25,
    ttl: float | datetime.timedelta | None = None,
    jitter: float | datetime.timedelta | None = None,
    compress: bool | str = False,
    secret: str | bytes | bool | None = None,
    serializer: Any = "pickle",
    lock: bool = True,
    lock_wait: float | datetime.timedelta = 10.0,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    typed: bool = False,
    name: str | None = None,
    version: str | int | None = None,
    secure: bool = True,
    config: CacheConfig | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def rcache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache a function's results in Redis or Valkey: shared by every process on every
    machine that uses the same server and namespace.

    A server that is down, slow, full or refusing the password never breaks a call: the
    function runs, its value is returned, one warning per outage goes to the
    ``twat_cache`` logger, and after a few failures a circuit breaker skips the server
    (no timeout paid) until a probe succeeds. Values are pickled like ``bcache``'s,
    checksummed, optionally compressed and signed.

    - ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS), ``unix://path``
      or ``redis+cluster://host:port,host:port``; default ``$TWAT_CACHE_REDIS_URL``, else
      ``redis://127.0.0.1:6379/0``.
    - ``namespace``: the part of every key that belongs to this cache (default: its name);
      ``cache_clear()`` empties it in O(1).
    - ``timeout``: seconds every command may take (default 0.25).
    - ``ttl``, ``jitter``, ``compress``: as for ``bcache``; TTLs are kept by the server
      with millisecond precision.
    - ``secret``: sign entries with HMAC-SHA256 (default ``$TWAT_CACHE_SECRET``). Without
      one, anyone who can write to the server can run code in every client (a warning
      says so once per process); ``secret=False`` states the server is trusted.
    - ``serializer``: ``"pickle"`` (the default), ``"json"`` (reading an entry can never
      run code; a value JSON cannot carry unchanged is returned and not stored), or an
      object with ``dumps(value) -> bytes`` and ``loads(bytes)``. Its name is part of
      every key.
    - ``lock``: single flight across processes and machines (default ``True``): one caller
      computes a missing key, the others wait for its value, at most ``lock_wait``
      seconds (then compute themselves).
    - ``key``, ``ignore``, ``typed``, ``name``, ``version``, ``secure``, ``config``: as for
      ``bcache``; ``self`` of a method is keyed by value.

    >>> @rcache(secret=False)  # $TWAT_CACHE_REDIS_URL, else the local server
    ... def profile(user_id):
    ...     return {"id": user_id}
    >>> profile(7), profile(7), profile.cache_info().hits
    ({'id': 7}, {'id': 7}, 1)
    >>> profile.cache_clear()
    0
    """
    return redis_decorator(func, settle("rcache", config, RCACHE_DEFAULTS, options))


def redis_decorator(func: Any, options: dict[str, Any]) -> Any:
    """Checks every option now (decoration time), then caches ``func`` (or returns the
    decorator when used with arguments)."""
    kind = "rcache"
    o = {**RCACHE_DEFAULTS, **options}
    store = _options.check_redis_options(kind, o)
    jitter = _options.check_jitter(kind, o["jitter"], store["ttl"])
    lock = _options.check_flag(kind, "lock", o["lock"])
    lock_wait = _options.check_seconds(kind, "lock_wait", o["lock_wait"])
    key = _options.check_key(kind, o["key"])
    ignored = _options.check_ignore(kind, o["ignore"])
    typed = _options.check_flag(kind, "typed", o["typed"])
    secure = _options.check_flag(kind, "secure", o["secure"])
    version = _options.check_version(kind, o["version"])
    name = _options.check_name(kind, o["name"])

    def make(fn: Callable[..., Any]) -> Any:
        _decorate.refuse_generators(kind, fn)
        cache_name = name or _decorate.default_name(fn)
        cached = PersistentFunction(
            fn,
            param_specs(fn, ignored, kind),
            kind=kind,
            url=store["url"],
            namespace=store["namespace"],
            timeout=store["timeout"],
            lock_wait=lock_wait if lock else None,
            name=cache_name,
            version=str(version) if version is not None else code_version(fn),
            maxsize=None,
            ttl=store["ttl"],
            jitter=jitter,
            policy="lru",
            compress=store["compress"],
            mmap=False,
            secret=store["secret"],
            typed=typed,
            key=key,
            secure=secure,
            disabled=_decorate.disabled_by_env(),
            is_async=_decorate.is_async(fn),
            serializer=native_serializer(store["serializer"]),
        )
        if store["secret"] is None and not store["unsigned_chosen"]:
            warn_unsigned(f"rcache {cache_name!r}", _options.shown_url(store["url"]))
        return cached

    def decorate(fn: Any) -> Any:
        return _decorate.apply(fn, make, name, "redis")

    if func is None:
        return decorate
    return decorate(func)
