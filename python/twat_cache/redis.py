"""``rcache``: caching in Redis or Valkey, shared by every process and machine that
reaches the server."""

from __future__ import annotations

import atexit
import datetime
from collections.abc import Callable, Iterable
from typing import Any, overload

from . import _core
from ._persistent import RCACHE_DEFAULTS, persistent_decorator
from ._types import CachedFunction, P, R, Ttl
from .config import CacheConfig, settle

__all__ = ["rcache"]

# The local tiers' invalidation listeners stop before the interpreter tears down what
# they use (OpenSSL, for rediss://).
atexit.register(_core.stop_listeners)


@overload
def rcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def rcache(
    *,
    url: str | None = None,
    namespace: str | None = None,
    timeout: float | datetime.timedelta = 0.25,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    local: bool | int | None = None,
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
    return persistent_decorator("rcache", func, settle("rcache", config, RCACHE_DEFAULTS, options))
