"""``fcache``: caching large results (numpy arrays, big bytes) in files built for them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, overload

from ._persistent import FCACHE_DEFAULTS, persistent_decorator
from ._types import CachedFunction, P, R, Ttl
from .config import CacheConfig, settle

__all__ = ["fcache"]


@overload
def fcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def fcache(
    *,
    folder_name: str | os.PathLike[str] | None = None,
    maxsize: int | None = None,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    local: bool | int | None = None,
    jitter: float | None = None,
    compress: bool | str = False,
    mmap: bool = False,
    policy: str = "lru",
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


def fcache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache large results, such as numpy arrays, each in a file of its own.

    An array is written raw at an aligned offset beside a small pickle, so loading it
    is one read into fresh memory; with ``mmap=True`` the result is a read-only
    memory-mapped array (no read at all until pages are touched). Array arguments are
    keyed by hashing their raw bytes in place. Options are those of ``bcache``, plus:

    - ``compress``: ``True``/``"zstd"`` (level 3) or ``"lz4"``; incompressible data is stored raw.
    - ``mmap``: return read-only arrays mapped from the cache file (needs ``compress=False``).

    >>> import tempfile, numpy as np
    >>> @fcache(folder_name=tempfile.mkdtemp(), mmap=True)
    ... def ramp(n):
    ...     return np.arange(n, dtype=np.float64)
    >>> first, again = ramp(1000), ramp(1000)
    >>> bool((first == again).all()), again.flags.writeable
    (True, False)
    """
    return persistent_decorator("fcache", func, settle("fcache", config, FCACHE_DEFAULTS, options))
