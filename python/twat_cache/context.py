"""``CacheContext`` and ``engine_context``: an engine used directly, as a key-value store,
for the length of a ``with`` (or ``async with``) block.

>>> with CacheContext(engine_name="cachetools", maxsize=100) as cache:
...     cache.set("answer", 42)
...     cache["question"] = "unknown"
...     ("answer" in cache, cache.get("answer"), cache.get("missing", default=0), len(cache))
True
(True, 42, 0, 2)
"""

from __future__ import annotations

import asyncio
import os
import threading
from types import TracebackType
from typing import Any

from . import _options, _registry
from ._core import DiskHandle, MemoryHandle
from ._paths import get_cache_path
from ._persistent import warn_unsigned
from ._serializers import native_serializer
from .config import CacheConfig, settle
from .engines import check_engine, require_available
from .exceptions import ConfigurationError, TwatCacheError

__all__ = ["Cache", "CacheContext", "engine_context"]

# The options of a context and their defaults (maxsize: entries in memory, bytes on disk).
CONTEXT_DEFAULTS: dict[str, Any] = {
    "folder_name": None,
    "maxsize": None,
    "ttl": None,
    "policy": "lru",
    "compress": False,
    "mmap": False,
    "secret": None,
    "durable": False,
    "typed": False,
    "secure": True,
    "name": None,
    "url": None,
    "namespace": None,
    "timeout": 0.25,
    "serializer": "pickle",
    "local": None,
}

_MISSING: Any = object()
_counter = iter(range(1, 1 << 62))
_counter_lock = threading.Lock()


class Cache:
    """A handle on one engine: ``get``/``set``/``delete``/``clear``, ``in``, ``[]``,
    ``len``, ``stats()``, ``close()``, and ``aget``/``aset``/``adelete`` for async code
    (persistent engines do their I/O in the loop's executor).

    Keys are any value a cached function accepts as an argument (lists and dicts by
    content); values are any object in memory, any picklable one on disk.
    """

    def __init__(self, engine: str, native: MemoryHandle | DiskHandle, name: str, ttl: float | None = None) -> None:
        self.engine = engine
        self.name = name
        self._native: MemoryHandle | DiskHandle | None = native
        self._ttl = ttl

    def _open(self) -> MemoryHandle | DiskHandle:
        if self._native is None:
            raise TwatCacheError(f"cache {self.name!r} is closed")
        return self._native

    @property
    def closed(self) -> bool:
        return self._native is None

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored for ``key``, else ``default``."""
        found, value = self._open().lookup(key)
        return value if found else default

    def set(self, key: Any, value: Any, ttl: float | None = None) -> bool:
        """Stores ``value``; ``ttl`` (seconds or ``timedelta``) overrides the context's TTL
        for this entry. ``False`` when a persistent engine could not store it (a warning
        says why)."""
        seconds = _options.check_ttl("Cache.set", ttl)
        return self._open().set(key, value, seconds)

    def delete(self, key: Any) -> bool:
        """Removes ``key``; ``True`` if it was stored."""
        return self._open().delete(key)

    def clear(self) -> None:
        """Removes every entry of this cache (on disk: of this name, not the folder's
        others; on Redis: of its namespace)."""
        self._open().clear()

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, hit_ratio, evictions, expirations, entries, bytes, store_errors."""
        return dict(self._open().stats())

    def close(self) -> None:
        """Releases the engine (a memory cache drops its entries; a disk cache keeps
        them). Using the handle afterwards raises ``TwatCacheError``; closing twice is fine."""
        native, self._native = self._native, None
        if native is not None:
            _registry.unregister(self.name, self)
            native.close()

    def __contains__(self, key: Any) -> bool:
        return self._open().contains(key)

    def __getitem__(self, key: Any) -> Any:
        found, value = self._open().lookup(key)
        if not found:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._open().set(key, value, None)

    def __delitem__(self, key: Any) -> None:
        if not self._open().delete(key):
            raise KeyError(key)

    def __len__(self) -> int:
        return len(self._open())

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} entries"
        return f"<Cache {self.name!r} engine={self.engine!r} {state}>"

    async def _run(self, method: str, *args: Any) -> Any:
        bound = getattr(self, method)
        if isinstance(self._open(), MemoryHandle):
            return bound(*args)
        return await asyncio.get_running_loop().run_in_executor(None, bound, *args)

    async def aget(self, key: Any, default: Any = None) -> Any:
        return await self._run("get", key, default)

    async def aset(self, key: Any, value: Any, ttl: float | None = None) -> bool:
        result: bool = await self._run("set", key, value, ttl)
        return result

    async def adelete(self, key: Any) -> bool:
        result: bool = await self._run("delete", key)
        return result

    # What the registry calls (get_stats, clear_cache, and the TTL sweeper for memory).
    def cache_stats(self) -> dict[str, Any]:
        return self.stats() if not self.closed else {}

    def cache_clear(self) -> None:
        if not self.closed:
            self.clear()

    def cache_parameters(self) -> dict[str, Any]:
        memory = self.engine in ("memory", "async")
        return {"engine": "memory" if memory else self.engine, "ttl": self._ttl}

    def purge_expired(self) -> int:
        native = self._native
        return native.purge_expired() if isinstance(native, MemoryHandle) else 0


class CacheContext:
    """Opens an engine for a ``with`` (or ``async with``) block and closes it at the end,
    also when the block raises. Each entry into the context opens a handle of its own,
    so contexts nest (two on one folder and name share entries).

    - ``engine_name``: ``"memory"``, ``"disk"``, ``"file"``, an alias of the original
      library (``"functools"``, ``"cachetools"``, ``"cachebox"``, ``"diskcache"``,
      ``"klepto"``, ``"joblib"``, ``"aiocache"``), ``"redis"``, or ``None``: ``"redis"``
      with ``url``, ``"file"`` with ``compress``/``mmap``, ``"disk"`` with
      ``folder_name``, else ``"memory"``.
    - ``url``, ``namespace`` (default: the name, else ``"context"``), ``timeout``: for
      ``"redis"``, as for ``rcache``; handles on one namespace share their entries.
    - ``folder_name``, ``maxsize`` (entries in memory, bytes on disk), ``ttl``,
      ``policy``, ``compress``, ``mmap``, ``secret``, ``serializer``, ``durable``, ``typed``, ``secure``,
      ``local`` (disk, file and redis) as for the decorators; ``name``: the registry name, and on disk the namespace
      of the entries in the folder (default: the folder's name); ``config``: a
      ``CacheConfig``.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with CacheContext(engine_name="diskcache", folder_name=folder, ttl=600) as cache:
    ...     cache.set(("user", 7), {"name": "Ada"})
    True
    >>> with engine_context("disk", folder_name=folder) as cache:  # reopened: still there
    ...     cache[("user", 7)]
    {'name': 'Ada'}
    """

    def __init__(self, engine_name: str | None = None, *, config: CacheConfig | None = None, **options: Any) -> None:
        self.options = settle("CacheContext", config, CONTEXT_DEFAULTS, options)
        o = self.options
        if engine_name is None:
            if o["url"] is not None:
                engine_name = "redis"
            elif o["compress"] or o["mmap"]:
                engine_name = "file"
            else:
                engine_name = "disk" if o["folder_name"] is not None else "memory"
        self.engine = check_engine("CacheContext", "engine_name", engine_name)
        require_available("CacheContext", self.engine)
        self._checked = self._check()
        self._open: list[Cache] = []

    def _check(self) -> dict[str, Any]:
        """Every option checked now, before the block runs; returns the normalized
        options the engine is opened with."""
        o, where = self.options, "CacheContext"
        common: dict[str, Any] = {
            "typed": _options.check_flag(where, "typed", o["typed"]),
            "name": _options.check_name(where, o["name"]),
        }
        if self.engine in ("memory", "async"):
            if o["local"] not in (None, False):
                raise ConfigurationError(
                    f"CacheContext: invalid local={o['local']!r}: expected None for the {self.engine!r} engine "
                    "(a local tier sits in front of a shared store: disk, file or redis)"
                )
            return {**common, **_options.check_memory_options(where, o)}
        common["local"] = _options.check_local(where, o["local"])
        if self.engine == "redis":
            checked = _options.check_redis_options(where, o)
            if checked.pop("unsigned_chosen") is False and checked["secret"] is None:
                warn_unsigned("CacheContext", _options.shown_url(checked["url"]))
            return {**common, **checked, "secure": _options.check_flag(where, "secure", o["secure"])}
        return {
            **common,
            **_options.check_store_options(where, o),
            "secure": _options.check_flag(where, "secure", o["secure"]),
        }

    def open(self) -> Cache:
        """Opens a new handle on the engine (``with`` does this for you)."""
        o = dict(self._checked)
        name = o.pop("name")
        if "serializer" in o:
            o["serializer"] = native_serializer(o["serializer"])
        if self.engine in ("memory", "async"):
            native: MemoryHandle | DiskHandle = MemoryHandle(**o)
            name = name or f"context.{self.engine}.{_next()}"
        elif self.engine == "redis":
            o["namespace"] = o["namespace"] or name or "context"
            name = name or f"context.redis.{o['namespace']}"
            native = DiskHandle(
                kind="rcache",
                name=name,
                maxsize=None,
                policy="lru",
                mmap=False,
                durable=False,
                **o,
            )
        else:
            folder = o.pop("folder_name")
            path = get_cache_path(folder if folder is not None else "context")
            name = name or f"context.{os.path.basename(path)}"
            kind = "fcache" if self.engine == "file" else "bcache"
            native = DiskHandle(kind=kind, folder=path, name=name, **o)
        cache = Cache(self.engine, native, name, o["ttl"])
        _registry.register(name, cache)
        return cache

    def __enter__(self) -> Cache:
        cache = self.open()
        self._open.append(cache)
        return cache

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open.pop().close()

    async def __aenter__(self) -> Cache:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"CacheContext(engine_name={self.engine!r})"


def _next() -> int:
    with _counter_lock:
        return next(_counter)


def engine_context(
    engine_name: str | None = None, *, config: CacheConfig | None = None, **options: Any
) -> CacheContext:
    """The function form of ``CacheContext``: ``with engine_context("disk", folder_name="x") as cache:``."""
    return CacheContext(engine_name, config=config, **options)
