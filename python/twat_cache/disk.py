"""``bcache``: caching on disk, in a folder that processes share and that survives restarts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, overload

from ._persistent import BCACHE_DEFAULTS, persistent_decorator
from ._types import CachedFunction, P, R, Ttl
from .config import CacheConfig, settle

__all__ = ["bcache"]


@overload
def bcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def bcache(
    *,
    folder_name: str | os.PathLike[str] | None = None,
    maxsize: int | None = None,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    local: bool | int | None = None,
    jitter: float | None = None,
    policy: str = "lru",
    compress: bool | str = False,
    secret: str | bytes | None = None,
    durable: bool = False,
    serializer: Any = "pickle",
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    typed: bool = False,
    name: str | None = None,
    version: str | int | None = None,
    secure: bool = True,
    config: CacheConfig | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def bcache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache a function's results on disk: they survive restarts and are shared by every
    process that uses the same folder.

    Small results live inside an SQLite index (WAL mode), large ones in files of their
    own; every entry is checksummed. Values are pickled (protocol 5, large buffers such
    as numpy arrays written raw beside the pickle).

    - ``folder_name``: a folder under ``$TWAT_CACHE_DIR`` (or ``~/.cache/twat_cache``), or
      an absolute path; ``None`` names it after the function.
    - ``maxsize``: the folder's limit in bytes (``None``: 1 GiB), enforced on every insert.
    - ``ttl``: seconds (or a ``timedelta``) an entry lives, on the wall clock.
    - ``jitter``: up to this many seconds more, at random per entry (needs ``ttl``).
    - ``policy``: what makes room: ``"lru"``, ``"lfu"`` or ``"fifo"``.
    - ``compress``: ``True``/``"zstd"`` or ``"lz4"``; data that does not compress is stored raw.
    - ``durable``: flush each value file to the device before it is renamed into place
      (the default flushes it in the background right after; a power cut in between can
      only lose the entry, never return a damaged one).
    - ``serializer``: ``"pickle"`` (the default), ``"json"`` (reading an entry can never run
      code; a value JSON cannot carry unchanged is returned and not stored), or an object
      with ``dumps(value) -> bytes`` and ``loads(bytes)``. Its name is part of every key.
    - ``secret``: sign entries with HMAC-SHA256 (default ``$TWAT_CACHE_SECRET``); an entry
      that fails verification is never unpickled.
    - ``version``: part of every key; ``None`` uses a fingerprint of the function's code,
      so editing the body starts afresh. ``secure``: BLAKE3 keys (else XXH3-128).
    - ``key``, ``ignore``, ``typed``, ``name``: as for ``mcache``. ``self`` of a method is
      keyed by value (or left out with ``ignore=("self",)``).
    - ``config``: a ``CacheConfig`` supplying options not given here.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> @bcache(folder_name=folder)
    ... def slow_square(x):
    ...     return x * x
    >>> slow_square(4), slow_square(4)
    (16, 16)
    >>> slow_square.cache_info().hits
    1
    """
    return persistent_decorator("bcache", func, settle("bcache", config, BCACHE_DEFAULTS, options))
